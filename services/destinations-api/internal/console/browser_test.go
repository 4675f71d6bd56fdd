package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/auditstream/auditstream/services/destinations-api/internal/api"
	"github.com/auditstream/auditstream/services/destinations-api/internal/e2eharness"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// chromium finds Debian's chromium (make tools and .ci/run install it).
// Its absence fails the test: the console is only proven in a browser.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the console's browser test needs a headless chromium: install Debian's (apt-get install -y chromium, which `make tools` does) or set CHROMIUM to a Chrome binary")
	return ""
}

// tab is one browser tab: every step fails the test with what it was
// doing; shot writes a screenshot of the whole page as a test artifact and
// keeps the page's HTML, to look for secrets afterwards.
type tab struct {
	t     *testing.T
	ctx   context.Context
	dir   string
	pages *[]string
}

func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		b.t.Fatalf("%s: %v\npage:\n%s", what, err, html)
	}
}

func run[T any](b *tab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

func (b *tab) html() string {
	b.t.Helper()
	h := run(b, "read the page", chromedp.OuterHTML(chromedp.CSS("html")))
	*b.pages = append(*b.pages, h)
	return h
}

// unlabeled finds what a keyboard or screen-reader user could not use:
// a visible form control without a label, or a clickable element that is
// not a link or button (a script-less page has none of those anyway).
const unlabeled = `Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
	.filter(e => e.labels.length === 0).map(e => e.name)
	.concat(Array.from(document.querySelectorAll('[onclick], [role=button], div[tabindex], span[tabindex]')).map(e => e.tagName))`

func (b *tab) shot(name string) {
	b.t.Helper()
	b.html()
	if bad := run(b, "look for unlabeled controls", chromedp.Evaluate[[]string](unlabeled)); len(bad) > 0 {
		b.t.Errorf("%s: controls without a label or not a link or button: %v", name, bad)
	}
	png := run(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	return run(b, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// startBrowser starts chromium for the test; its screenshots go to the
// test's artifact directory.
func startBrowser(t *testing.T, exe string, pages *[]string) *tab {
	t.Helper()
	dir := t.ArtifactDir()
	t.Logf("screenshots go to %s (kept with go test -artifacts -outputdir DIR)", dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.WindowSize(1200, 900),
		// Tests run as root in containers, where chromium's sandbox cannot
		// start; the pages come from this test only.
		chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	// The first run starts the browser and binds it to its context: the
	// test's, not one step's timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return &tab{t: t, ctx: ctx, dir: dir, pages: pages}
}

func field(id string) chromedp.CSS { return chromedp.CSS(`[id="` + id + `"]`) }

// An account admin, in a real browser, signs in with the seed account's
// token, adds a Datadog connection whose key the intake refuses (the test
// shows the 403), fixes the key (the test passes), turns streaming on, and
// the account's next event reaches the intake through the real forwarder;
// the status page shows it healthy. Another account's admin cannot see
// any of it. No page ever holds either key.
func TestConsoleInBrowser(t *testing.T) {
	exe := chromium(t)
	const goodKey, badKey = "dd-browser-key-good-0123456789GOOD", "dd-browser-key-bad-0123456789BADK"
	intake := ddfake.New(goodKey)
	t.Cleanup(intake.Close)
	h := newHarness(t, func(c *api.Config) {
		c.API.AllowCustomEndpoints = true
		c.Console.StatusRefresh = time.Second
	})
	fwdLog := e2eharness.StartDatadogForwarder(t, h.kafka(), h.cfg.Encryption.KeyringFile, e2eharness.TestDelivery+"status: {interval: 300ms}\n")

	var pages []string
	b := startBrowser(t, exe, &pages)
	ctx, dir := b.ctx, b.dir
	base := h.url + "/console/accounts/" + seedAccount

	// Sign in with the keyboard: type the token, press Enter.
	b.do("open the sign-in page", chromedp.Navigate(h.url+"/console/"), chromedp.WaitVisible(field("token")))
	b.shot("01-sign-in")
	b.do("sign in", chromedp.SendKeys(field("token"), tokenSeed+"\r"), chromedp.WaitVisible(field("streaming")))
	if loc := run(b, "location", chromedp.Location()); loc != base+"/" {
		t.Fatalf("after sign-in the browser is at %s, want the seed account's settings", loc)
	}
	b.shot("02-settings")

	// A Datadog connection with a key the intake refuses.
	b.do("add a Datadog connection", chromedp.Click(chromedp.CSS(`a[href$="connections/_new?type=datadog"]`)), chromedp.WaitVisible(field("name")))
	b.do("fill the form",
		chromedp.SendKeys(field("name"), "dd-main"),
		chromedp.SendKeys(field("settings.base_url"), intake.URL()),
		chromedp.SendKeys(field("settings.api_key"), badKey),
		chromedp.SendKeys(field("settings.timeout"), "2s"))
	b.shot("03-new-datadog-connection")
	b.do("save it", chromedp.Click(chromedp.CSS("form.card button.primary")), chromedp.WaitVisible(chromedp.CSS("button#test")))
	if got := b.text(".flash"); !strings.Contains(got, "Saved") {
		t.Fatalf("after saving: %q", got)
	}
	b.do("test it", chromedp.Click(chromedp.CSS("button#test")), chromedp.WaitVisible(chromedp.CSS("#verdict")))
	verdict := b.text("#verdict")
	for _, want := range []string{"Test failed", "bad_credentials", "Destination answered\nHTTP 403", "unhealthy"} {
		if !strings.Contains(verdict, want) {
			t.Errorf("the failed test's verdict lacks %q:\n%s", want, verdict)
		}
	}
	b.shot("04-test-refused-key")
	if v := run(b, "the key input", chromedp.Value(field("settings.api_key"))); v != "" {
		t.Fatalf("the key input holds %q after the test", v)
	}

	// The admin fixes the key: the test passes.
	b.do("type the right key and save", chromedp.SendKeys(field("settings.api_key"), goodKey),
		chromedp.Click(chromedp.CSS("form.card button.primary")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if got := b.text(`[id="settings.api_key-state"]`); !strings.Contains(got, "••••"+goodKey[len(goodKey)-4:]) {
		t.Fatalf("the saved key reads %q", got)
	}
	b.do("test again", chromedp.Click(chromedp.CSS("button#test")), chromedp.WaitVisible(chromedp.CSS("#verdict")))
	if verdict := b.text("#verdict"); !strings.Contains(verdict, "Test passed") || !strings.Contains(verdict, "ok") {
		t.Fatalf("the test with the right key:\n%s", verdict)
	}
	b.shot("05-test-passed")

	// Streaming on, to the new connection.
	b.do("open the settings", chromedp.Click(chromedp.CSS(`header nav a[href$="/`+seedAccount+`/"]`)), chromedp.WaitVisible(field("streaming")))
	b.do("turn streaming on", chromedp.Click(field("streaming")), chromedp.Click(field("stream-dd-main")),
		chromedp.Click(chromedp.CSS(`form[action$="/audit-logs"] button.primary`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	b.shot("06-streaming-on")

	// The account's next event reaches the intake through the forwarder.
	id := e2eharness.PublishEvent(t, h.kafka(), seedAccount, "console-e2e")
	forwardingtest.WaitFor(t, "the event at the Datadog intake", time.Minute, func() bool {
		for _, log := range intake.Logs(goodKey) {
			if log["audit-id"] == id {
				return true
			}
		}
		return false
	})

	// A filter set in the form: a typo is shown by the field with its
	// position; once fixed, only the events it keeps reach the intake.
	b.do("open the connection", chromedp.Navigate(base+"/connections/dd-main"), chromedp.WaitVisible(field("filter")))
	b.do("type a filter with a typo", chromedp.SendKeys(field("filter"), `event.request.actoin.startsWith("delete-")`),
		chromedp.SendKeys(field("redact.0.path"), "actor.id"), chromedp.SetValue(field("redact.0.action"), "mask"),
		chromedp.Click(chromedp.CSS("form.card button.primary")), chromedp.WaitVisible(field("filter-error")))
	if got := b.text(`[id="filter-error"]`); !strings.Contains(got, "1:") || !strings.Contains(got, "actoin") {
		t.Errorf("the filter's error: %q", got)
	}
	b.shot("06a-filter-typo")
	b.do("fix the filter and save", chromedp.SetValue(field("filter"), `event.request.action.startsWith("delete-")`),
		chromedp.Click(chromedp.CSS("form.card button.primary")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	b.shot("06b-filter-saved")
	arrived := func(id string) map[string]any {
		for _, log := range intake.Logs(goodKey) {
			if log["audit-id"] == id {
				return log
			}
		}
		return nil
	}
	// The forwarder applies the change when it reads it: pairs of events
	// until one the filter leaves out stays out, then one more pair.
	applied := false
	for i := 0; i < 30 && !applied; i++ {
		out := e2eharness.PublishEvent(t, h.kafka(), seedAccount, fmt.Sprintf("discard-run-%d", i))
		in := e2eharness.PublishEvent(t, h.kafka(), seedAccount, fmt.Sprintf("delete-run-%d", i))
		forwardingtest.WaitFor(t, "the kept event at the intake", time.Minute, func() bool { return arrived(in) != nil })
		applied = arrived(out) == nil
	}
	if !applied {
		t.Fatal("every event the filter excludes still reached the intake")
	}
	out := e2eharness.PublishEvent(t, h.kafka(), seedAccount, "discard-run-last")
	in := e2eharness.PublishEvent(t, h.kafka(), seedAccount, "delete-run-last")
	forwardingtest.WaitFor(t, "the kept event at the intake", time.Minute, func() bool { return arrived(in) != nil })
	if arrived(out) != nil {
		t.Fatal("an event the filter excludes reached the intake")
	}
	if log := arrived(in); strings.Contains(fmt.Sprint(log), "user-e2e") {
		t.Errorf("the kept event's actor.id is not masked: %v", log)
	}

	// The status page refreshes itself until the forwarder's report shows
	// the delivery.
	b.do("open the status page", chromedp.Navigate(base+"/status"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if refresh := run(b, "the refresh", chromedp.AttributeValue(chromedp.CSS(`meta[http-equiv="refresh"]`), "content")); refresh.Value != "1" {
		t.Fatalf("the status page's refresh: %+v", refresh)
	}
	b.do("wait for the page to show the connection healthy",
		chromedp.WaitVisible(chromedp.CSS(`section.status.healthy`), chromedp.RetryInterval(200*time.Millisecond)))
	status := b.text("section.status.healthy")
	if !strings.Contains(status, "dd-main") || strings.Contains(status, "Delivered today\n0") || strings.Contains(status, "Last success\nnever") {
		t.Errorf("the status of dd-main:\n%s", status)
	}
	b.shot("07-status")

	// On a phone-sized screen, nothing is wider than the screen.
	b.do("narrow the window", chromedp.EmulateViewport(360, 740), chromedp.Navigate(base+"/"), chromedp.WaitVisible(field("streaming")))
	if over := run(b, "measure", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`)); over {
		t.Error("the settings page scrolls sideways on a 360 px wide screen")
	}
	b.shot("08-settings-narrow")
	b.do("narrow connection page", chromedp.Navigate(base+"/connections/dd-main"), chromedp.WaitVisible(chromedp.CSS("button#test")))
	if over := run(b, "measure", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`)); over {
		t.Error("the connection page scrolls sideways on a 360 px wide screen")
	}
	b.shot("09-connection-narrow")

	// Another account's admin, in a browser context of its own, sees none
	// of it.
	octx, ocancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(ocancel)
	if err := chromedp.Do(octx); err != nil {
		t.Fatalf("open a second browser context: %v", err)
	}
	o := &tab{t: t, ctx: octx, dir: dir, pages: &pages}
	o.do("sign in as the other account's admin", chromedp.Navigate(h.url+"/console/sign-in"), chromedp.WaitVisible(field("token")),
		chromedp.SendKeys(field("token"), tokenOther+"\r"), chromedp.WaitVisible(field("streaming")))
	if page := o.html(); strings.Contains(page, "dd-main") || !strings.Contains(page, otherAccount) {
		t.Fatal("the other admin's own settings page shows the seed's connection, or not its own account")
	}
	for _, path := range []string{"/", "/connections/dd-main", "/status"} {
		o.do("open the seed's "+path, chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("h1")))
		if got := o.text("h1"); got != "Not found" || strings.Contains(o.html(), "dd-main") {
			t.Errorf("the other admin opening the seed's %s sees %q", path, got)
		}
	}
	o.shot("10-other-account-not-found")

	for _, page := range pages {
		for _, k := range []string{goodKey, badKey, tokenSeed, tokenOther} {
			if strings.Contains(page, k) {
				t.Fatalf("a page holds a secret (%s...):\n%s", k[:8], page)
			}
		}
	}
	for _, k := range []string{goodKey, badKey} {
		if strings.Contains(h.logs.String(), k) || strings.Contains(fwdLog.String(), k) {
			t.Fatal("a log holds an API key")
		}
	}
}
