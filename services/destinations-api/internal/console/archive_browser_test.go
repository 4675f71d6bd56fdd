package console_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/auditstream/auditstream/services/destinations-api/internal/api"
	"github.com/auditstream/auditstream/services/destinations-api/internal/e2eharness"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/objstore"
)

// apiDo calls the API over HTTP with token and fails the test unless it
// answers want.
func (h *harness) apiDo(method, path, token string, body any, want int) {
	h.t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		h.t.Fatalf("%s %s answered %d, want %d: %s", method, path, resp.StatusCode, want, got)
	}
}

// The seed account archives to a local directory through a storage
// profile set with the API; the archive package's writer and digester
// write its days there as the archiver does, signed, and one day then
// loses an object. The admin opens the archive page from the settings
// page: the good day is verified, the damaged one shows the problem as
// the verification names it, also on a phone-sized screen.
func TestConsoleArchiveInBrowser(t *testing.T) {
	exe := chromium(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	h := newHarness(t, func(c *api.Config) {
		c.API.AllowLocalStorage = true
		c.Archive.PublicKeys = []string{e2eharness.PublicKeyFile(t, t.TempDir(), pub)}
	})
	dir := t.TempDir()
	st, err := objstore.Open(context.Background(), objstore.Settings{Kind: objstore.KindLocal, Prefix: "audit", Local: &objstore.LocalSettings{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	good, damaged, quiet := today.AddDate(0, 0, -3), today.AddDate(0, 0, -2), today.AddDate(0, 0, -1)
	e2eharness.WriteArchive(t, st, archive.NewSigner(priv), seedAccount, map[time.Time]int{good: 6, damaged: 4}, quiet)
	folder := filepath.Join(dir, "audit", seedAccount, damaged.Format("2006/01/02"))
	objs, err := os.ReadDir(folder)
	if err != nil || len(objs) != 1 {
		t.Fatalf("objects of %s: %v %v", damaged.Format(time.DateOnly), objs, err)
	}
	if err := os.Remove(filepath.Join(folder, objs[0].Name())); err != nil {
		t.Fatal(err)
	}
	h.apiDo("PUT", "/v1/accounts/"+seedAccount+"/storage-profiles/archive", tokenSeed, map[string]any{"settings": map[string]any{
		"kind": "local", "prefix": "audit", "local": map[string]any{"dir": dir}}}, http.StatusCreated)
	h.apiDo("PUT", "/v1/accounts/"+seedAccount+"/audit-logs", tokenSeed, map[string]any{"streaming": false, "connections": []string{},
		"storage_profile": "archive"}, http.StatusOK)

	var pages []string
	b := startBrowser(t, exe, &pages)
	b.do("sign in", chromedp.Navigate(h.url+"/console/"), chromedp.WaitVisible(field("token")),
		chromedp.SendKeys(field("token"), tokenSeed+"\r"), chromedp.WaitVisible(field("streaming")))
	b.do("open the archive from the settings", chromedp.Click(field("archive-days")), chromedp.WaitVisible(chromedp.CSS("table.days")))
	row := func(day time.Time) string {
		return b.text(`[id="day-` + day.Format(time.DateOnly) + `"]`)
	}
	if r := row(good); !strings.Contains(r, "Verified") || !strings.Contains(r, "6") || strings.Contains(r, "Problem") {
		t.Errorf("the good day's row:\n%s", r)
	}
	if r := row(damaged); !strings.Contains(r, "Problem") || !strings.Contains(r, archive.ProblemMissing+": listed in") {
		t.Errorf("the damaged day's row:\n%s", r)
	}
	if r := row(quiet); !strings.Contains(r, "Verified: no events") {
		t.Errorf("the quiet day's row:\n%s", r)
	}
	if r := row(today); !strings.Contains(r, "Not archived") {
		t.Errorf("today's row:\n%s", r)
	}
	b.shot("11-archive")

	// A malformed day: the error is by its field.
	b.do("ask for a day that is not a date", chromedp.SetValue(field("from"), "03/01/2026"),
		chromedp.Click(chromedp.CSS("form.card button.primary")), chromedp.WaitVisible(field("from-error")))
	if got := b.text(`[id="from-error"]`); !strings.Contains(got, "not a date") {
		t.Errorf("the error by the From field: %q", got)
	}
	b.shot("12-archive-bad-date")

	b.do("narrow the window", chromedp.EmulateViewport(360, 740),
		chromedp.Navigate(h.url+"/console/accounts/"+seedAccount+"/archive"), chromedp.WaitVisible(chromedp.CSS("table.days")))
	if over := run(b, "measure", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`)); over {
		t.Error("the archive page scrolls sideways on a 360 px wide screen")
	}
	b.shot("13-archive-narrow")
	for _, page := range pages {
		if strings.Contains(page, tokenSeed) {
			t.Fatal("a page holds the token")
		}
	}
}
