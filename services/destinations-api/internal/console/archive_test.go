package console_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/destinations-api/internal/api"
	"github.com/auditstream/auditstream/services/destinations-api/internal/e2eharness"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/objstore"
)

// The Archive page of a filtered and redacted storage profile says, per
// day, what its policy left out and redacted, and the day still verifies.
func TestArchivePageFilteredProfile(t *testing.T) {
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
	policy, err := eventfilter.NewPolicy(`event.outcome.result == "FAILURE"`, []eventfilter.Rule{{Path: "actor.email", Action: eventfilter.Mask, Keep: 6}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	day := today.AddDate(0, 0, -2)
	// Offsets 0..5: 0 and 3 are failures, kept; 4 left out.
	e2eharness.WriteFilteredArchive(t, st, archive.NewSigner(priv), seedAccount, map[time.Time]int{day: 6}, today.AddDate(0, 0, -1), policy)
	h.apiDo("PUT", "/v1/accounts/"+seedAccount+"/storage-profiles/archive", tokenSeed, map[string]any{"settings": map[string]any{
		"kind": "local", "prefix": "audit", "local": map[string]any{"dir": dir}}}, http.StatusCreated)
	h.apiDo("PUT", "/v1/accounts/"+seedAccount+"/audit-logs", tokenSeed, map[string]any{"streaming": false, "connections": []string{},
		"storage_profile": "archive"}, http.StatusOK)

	b := h.browser(nil)
	b.signIn(tokenSeed)
	a := b.get("/console/accounts/" + seedAccount + "/archive")
	mustStatus(t, a, http.StatusOK)
	_, row, _ := strings.Cut(a.body, `id="day-`+day.Format(time.DateOnly)+`"`)
	row, _, _ = strings.Cut(row, "</tr>")
	for _, want := range []string{"Verified", "4 event(s) left out by the storage profile's filter",
		"Filter <code>event.outcome.result == &#34;FAILURE&#34;</code>", "<code>actor.email</code> (mask 6)", `data-label="Problems">none`} {
		if !strings.Contains(row, want) {
			t.Errorf("the filtered day's row lacks %q:\n%s", want, row)
		}
	}
	_, quiet, _ := strings.Cut(a.body, `id="day-`+today.AddDate(0, 0, -1).Format(time.DateOnly)+`"`)
	quiet, _, _ = strings.Cut(quiet, "</tr>")
	if !strings.Contains(quiet, "none: every event, whole") {
		t.Errorf("the quiet day's row:\n%s", quiet)
	}
}
