package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/destinations-api/internal/api"
)

const ddKey = "dd-console-key-0123456789WXYZ"

func ddForm(csrf, name, site, key string) url.Values {
	return url.Values{"csrf": {csrf}, "kind": {"datadog"}, "name": {name}, "enabled": {"on"},
		"settings.site": {site}, "settings.api_key": {key}}
}

// Every answer of the console carries a CSP that allows no inline script or
// style and no other origin, nosniff, a referrer policy and a frame rule.
func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t)
	b := h.browser(nil)
	b.signIn(tokenSeed)
	check := func(t *testing.T, a answer, ancestors string) {
		t.Helper()
		csp := a.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self'", "base-uri 'none'", "frame-ancestors " + ancestors} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") || strings.Contains(csp, "script-src") || regexp.MustCompile(`https?:`).MatchString(strings.ReplaceAll(csp, ancestors, "")) {
			t.Errorf("CSP %q allows inline code, scripts or another origin", csp)
		}
		if got := a.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("X-Content-Type-Options %q", got)
		}
		if got := a.header.Get("Referrer-Policy"); got != "same-origin" {
			t.Errorf("Referrer-Policy %q", got)
		}
	}
	for _, path := range []string{"/console/sign-in", "/console/static/console.css", "/console/accounts/" + seedAccount + "/",
		"/console/accounts/" + seedAccount + "/status", "/console/accounts/" + seedAccount + "/archive",
		"/console/accounts/" + otherAccount + "/", "/console/nowhere"} {
		t.Run(path, func(t *testing.T) {
			a := b.get(path)
			check(t, a, "'none'")
			if got := a.header.Get("X-Frame-Options"); got != "DENY" {
				t.Errorf("X-Frame-Options %q, want DENY", got)
			}
			if strings.HasSuffix(path, ".css") {
				if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") || a.status != http.StatusOK {
					t.Errorf("the style sheet answered %d %q", a.status, ct)
				}
			} else if cc := a.header.Get("Cache-Control"); a.status == http.StatusOK && cc != "no-store" {
				t.Errorf("a page answered Cache-Control %q, want no-store", cc)
			}
			// Pages hold no inline script or style, which the CSP would block.
			if strings.Contains(a.body, "<script") || strings.Contains(a.body, "style=") || strings.Contains(a.body, "<style") {
				t.Errorf("%s holds inline script or style", path)
			}
		})
	}

	// An installation that embeds the console names the embedding origin.
	const platform = "https://platform.example.com"
	h2 := newHarness(t, func(c *api.Config) { c.Console.FrameAncestors = []string{platform} })
	a := h2.browser(nil).get("/console/sign-in")
	check(t, a, platform)
	if got := a.header.Get("X-Frame-Options"); got != "" {
		t.Errorf("X-Frame-Options %q with frame_ancestors set; the CSP rule must decide", got)
	}
}

// The session cookie is HttpOnly and SameSite=Strict, Secure (with the
// __Host- prefix) except between loopback addresses over plain HTTP, holds
// no token, and dies with sign-out.
func TestSessionCookie(t *testing.T) {
	h := newHarness(t)
	var bodies []string
	b := h.browser(&bodies)
	tok := b.signIn(tokenSeed)
	u, _ := url.Parse(h.url + "/console/")
	var session *http.Cookie
	for _, ck := range b.c.Jar.Cookies(u) {
		if ck.Name == "auditstream-console" {
			session = ck
		}
	}
	if session == nil {
		t.Fatalf("no session cookie: %v", b.c.Jar.Cookies(u))
	}
	setCookie := ""
	for _, body := range bodies {
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "Set-Cookie: auditstream-console=") && !strings.Contains(line, "Max-Age=0") {
				setCookie = line
			}
		}
	}
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/console/"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("session cookie %q lacks %s", setCookie, want)
		}
	}
	if strings.Contains(setCookie, "Secure") {
		t.Errorf("session cookie %q is Secure over plain HTTP on loopback; the browser would not send it back", setCookie)
	}
	if strings.Contains(session.Value, tokenSeed) || len(session.Value) < 40 {
		t.Errorf("session cookie value %q is not an opaque id", session.Value)
	}
	for _, body := range bodies {
		if strings.Contains(body, tokenSeed) {
			t.Fatalf("an answer holds the token:\n%s", body)
		}
	}

	// Reached by a name that is not loopback (as through an ingress), the
	// cookies are Secure with the __Host- prefix.
	c := h.browser(nil)
	page := c.do("GET", "/console/sign-in", nil, "Host", "audit.example.com")
	signin := page.header.Get("Set-Cookie")
	if !strings.HasPrefix(signin, "__Host-auditstream-console-signin=") || !strings.Contains(signin, "Secure") || !strings.Contains(signin, "Path=/;") {
		t.Errorf("sign-in cookie over a public name: %q", signin)
	}
	req, _ := http.NewRequest("POST", h.url+"/console/sign-in", strings.NewReader(url.Values{"csrf": {csrf(t, page)}, "token": {tokenSeed}}.Encode()))
	req.Host = "audit.example.com"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "__Host-auditstream-console-signin", Value: csrf(t, page)})
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var secure string
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "__Host-auditstream-console=") {
			secure = v
		}
	}
	for _, want := range []string{"Secure", "HttpOnly", "SameSite=Strict", "Path=/;"} {
		if !strings.Contains(secure, want) {
			t.Errorf("session cookie over a public name %q lacks %s (status %d)", secure, want, resp.StatusCode)
		}
	}

	// Behind a proxy that terminates TLS, the cookies are Secure even when
	// the proxy calls the console by a loopback name.
	if ck := c.do("GET", "/console/sign-in", nil, "X-Forwarded-Proto", "https").header.Get("Set-Cookie"); !strings.HasPrefix(ck, "__Host-") || !strings.Contains(ck, "Secure") {
		t.Errorf("sign-in cookie behind a TLS proxy: %q", ck)
	}

	// Sign-out ends the session on the server: the old cookie opens nothing.
	mustStatus(t, b.do("POST", "/console/sign-out", url.Values{"csrf": {tok}}), http.StatusSeeOther)
	replay := h.browser(nil)
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: session.Name, Value: session.Value, Path: "/console/"}})
	a := replay.get("/console/accounts/" + seedAccount + "/")
	if a.status != http.StatusSeeOther || !strings.HasSuffix(a.header.Get("Location"), "/console/sign-in") {
		t.Fatalf("a signed-out session's cookie answered %d %q, want a redirect to sign-in", a.status, a.header.Get("Location"))
	}
	// A wrong token does not sign in, and is not shown back.
	page = replay.get("/console/sign-in")
	a = replay.do("POST", "/console/sign-in", url.Values{"csrf": {csrf(t, page)}, "token": {"not-a-token-zzz-0123456789"}})
	if a.status != http.StatusUnauthorized || !strings.Contains(a.body, `id="token-error"`) || strings.Contains(a.body, "not-a-token-zzz") {
		t.Fatalf("a wrong token answered %d:\n%s", a.status, a.body)
	}
}

// Every form needs the session's CSRF token and the console's own origin:
// a forged POST changes nothing.
func TestCSRF(t *testing.T) {
	h := newHarness(t)
	b := h.browser(nil)
	tok := b.signIn(tokenSeed)
	wrong := "x" + tok[1:]
	if wrong == tok { // one token in the alphabet's size starts with x
		wrong = "y" + tok[1:]
	}
	create := "/console/accounts/" + seedAccount + "/connections"
	settings := "/console/accounts/" + seedAccount + "/audit-logs"
	forged := []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"no token", url.Values{"streaming": {"on"}}, nil},
		{"wrong token", url.Values{"csrf": {wrong}, "streaming": {"on"}}, nil},
		{"another origin", url.Values{"csrf": {tok}, "streaming": {"on"}}, []string{"Origin", "https://evil.example"}},
		{"cross-site fetch", url.Values{"csrf": {tok}, "streaming": {"on"}}, []string{"Sec-Fetch-Site", "cross-site"}},
	}
	for _, f := range forged {
		a := b.do("POST", settings, f.form, f.headers...)
		if a.status != http.StatusForbidden {
			t.Errorf("%s: a forged settings form answered %d", f.name, a.status)
		}
		form := ddForm(f.form.Get("csrf"), "forged", "datadoghq.com", ddKey)
		if a := b.do("POST", create, form, f.headers...); a.status != http.StatusForbidden {
			t.Errorf("%s: a forged connection form answered %d", f.name, a.status)
		}
	}
	if a := b.get("/console/accounts/" + seedAccount + "/connections/forged"); a.status != http.StatusNotFound {
		t.Fatalf("a forged form created a connection: %d", a.status)
	}
	if a := b.get("/console/accounts/" + seedAccount + "/"); strings.Contains(a.body, `id="streaming" name="streaming" checked`) {
		t.Fatal("a forged form turned streaming on")
	}
	// Sign-out needs the token too, and sign-in its double-submit cookie.
	mustStatus(t, b.do("POST", "/console/sign-out", url.Values{}), http.StatusForbidden)
	mustStatus(t, b.get("/console/accounts/"+seedAccount+"/"), http.StatusOK)
	fresh := h.browser(nil)
	page := fresh.get("/console/sign-in")
	other := h.browser(nil)
	if a := other.do("POST", "/console/sign-in", url.Values{"csrf": {csrf(t, page)}, "token": {tokenSeed}}); a.status != http.StatusForbidden {
		t.Fatalf("a sign-in without its cookie answered %d", a.status)
	}
	// The genuine form works.
	a := b.do("POST", settings, url.Values{"csrf": {tok}, "streaming": {"on"}})
	mustStatus(t, a, http.StatusSeeOther)
}

// An account's admin sees and changes only that account: another
// account's pages and forms answer 404, as the API does; an operator
// reaches every account.
func TestCrossAccountDenied(t *testing.T) {
	h := newHarness(t)
	seed := h.browser(nil)
	tok := seed.signIn(tokenSeed)
	mustStatus(t, seed.do("POST", "/console/accounts/"+seedAccount+"/connections", ddForm(tok, "dd-seed", "datadoghq.eu", ddKey)), http.StatusSeeOther)

	other := h.browser(nil)
	otok := other.signIn(tokenOther)
	if home := other.get("/console/"); home.status != http.StatusSeeOther || !strings.Contains(home.header.Get("Location"), otherAccount) {
		t.Fatalf("the other admin's home: %d %q", home.status, home.header.Get("Location"))
	}
	base := "/console/accounts/" + seedAccount
	for _, path := range []string{base + "/", base + "/status", base + "/archive", base + "/connections/dd-seed", base + "/connections/_new?type=datadog"} {
		if a := other.get(path); a.status != http.StatusNotFound || strings.Contains(a.body, "dd-seed") {
			t.Errorf("GET %s as the other account's admin: %d", path, a.status)
		}
	}
	for _, path := range []string{base + "/connections", base + "/connections/dd-seed/delete", base + "/connections/dd-seed/test", base + "/audit-logs"} {
		if a := other.do("POST", path, ddForm(otok, "dd-seed", "datadoghq.com", "other-key-0123456789abcd")); a.status != http.StatusNotFound {
			t.Errorf("POST %s as the other account's admin: %d", path, a.status)
		}
	}
	if a := seed.get(base + "/connections/dd-seed"); a.status != http.StatusOK || !strings.Contains(a.body, `value="datadoghq.eu" selected`) {
		t.Fatalf("the seed's connection after the other admin's tries: %d", a.status)
	}

	op := h.browser(nil)
	op.signIn(tokenOperator)
	if a := op.get("/console/"); a.status != http.StatusOK || !strings.Contains(a.body, seedAccount) {
		t.Fatalf("the operator's account list: %d", a.status)
	}
	if a := op.get(base + "/connections/dd-seed"); a.status != http.StatusOK {
		t.Fatalf("the operator opening the seed's connection: %d", a.status)
	}
}

// A refused save shows the API's error next to the field it names, and the
// secret typed is never sent back; a stored secret reads as set and its
// last 4; no answer and no log line holds the key.
func TestFieldErrorsAndSecrets(t *testing.T) {
	h := newHarness(t)
	var bodies []string
	b := h.browser(&bodies)
	tok := b.signIn(tokenSeed)
	create := "/console/accounts/" + seedAccount + "/connections"

	a := b.do("POST", create, ddForm(tok, "dd-one", "datadoghq.moon", ddKey))
	mustStatus(t, a, http.StatusBadRequest)
	siteErr := regexp.MustCompile(`<p class="error" id="settings.site-error">([^<]+)</p>`).FindStringSubmatch(a.body)
	if siteErr == nil || !strings.Contains(siteErr[1], "datadoghq.moon") {
		t.Fatalf("no error next to the site field:\n%s", a.body)
	}
	if !strings.Contains(a.body, `aria-describedby="settings.site-error`) || !strings.Contains(a.body, `<a href="#settings.site">Site</a>`) {
		t.Error("the site's error is not tied to its input, or not linked from the summary")
	}
	a = b.do("POST", create, ddForm(tok, "Bad Name", "datadoghq.com", ddKey))
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, `id="name-error"`) {
		t.Fatalf("a bad name answered %d without an error at the name:\n%s", a.status, a.body)
	}

	mustStatus(t, b.do("POST", create, ddForm(tok, "dd-one", "datadoghq.eu", ddKey)), http.StatusSeeOther)
	page := b.get(create + "/dd-one")
	if !strings.Contains(page.body, "Set ••••"+ddKey[len(ddKey)-4:]) {
		t.Fatalf("the stored key does not read as set with its last 4:\n%s", page.body)
	}
	// Saving with the key left blank keeps it; a bad site on the way shows
	// its error but keeps the key out of the page.
	keep := url.Values{"csrf": {tok}, "name": {"dd-one"}, "etag": {etag(t, page)}, "enabled": {"on"}, "settings.site": {"us3.datadoghq.com"}}
	mustStatus(t, b.do("POST", create, keep), http.StatusSeeOther)
	page = b.get(create + "/dd-one")
	if !strings.Contains(page.body, `value="us3.datadoghq.com" selected`) || !strings.Contains(page.body, "Set ••••WXYZ") {
		t.Fatalf("after a save with the key blank:\n%s", page.body)
	}
	bad := ddForm(tok, "dd-one", "nowhere", ddKey+"-new")
	bad.Set("etag", etag(t, page))
	mustStatus(t, b.do("POST", create, bad), http.StatusBadRequest)

	for _, body := range bodies {
		if strings.Contains(body, ddKey) {
			t.Fatalf("an answer holds the API key:\n%s", body)
		}
	}
	if strings.Contains(h.logs.String(), ddKey) {
		t.Fatal("a log line holds the API key")
	}
}

// A storage profile made through its form (kind local, allowed in this
// installation) tests ok and becomes the account's archive; a settings
// form read before another change answers with the API's 412 on the page,
// and changes nothing.
func TestStorageProfileAndStaleSettings(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.API.AllowLocalStorage = true })
	b := h.browser(nil)
	tok := b.signIn(tokenSeed)
	base := "/console/accounts/" + seedAccount
	if a := b.get(base + "/storage-profiles/_new?kind=local"); a.status != http.StatusOK || !strings.Contains(a.body, `id="settings.local.dir"`) {
		t.Fatalf("the local storage form: %d", a.status)
	}
	dir := t.TempDir()
	form := url.Values{"csrf": {tok}, "kind": {"local"}, "name": {"disk"}, "settings.local.dir": {dir}}
	mustStatus(t, b.do("POST", base+"/storage-profiles", form), http.StatusSeeOther)
	a := b.do("POST", base+"/storage-profiles/disk/test", url.Values{"csrf": {tok}})
	if a.status != http.StatusOK || !strings.Contains(a.body, "Test passed") {
		t.Fatalf("testing the local profile: %d\n%s", a.status, a.body)
	}
	// Without allow_local_storage the API refuses the kind, next to the
	// field it names.
	h2 := newHarness(t)
	b2 := h2.browser(nil)
	tok2 := b2.signIn(tokenSeed)
	form.Set("csrf", tok2)
	a = b2.do("POST", base+"/storage-profiles", form)
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "allow_local_storage") {
		t.Fatalf("a local profile where it is off: %d\n%s", a.status, a.body)
	}

	settings := b.get(base + "/")
	stale := etag(t, settings)
	mustStatus(t, b.do("POST", base+"/audit-logs", url.Values{"csrf": {tok}, "etag": {stale}, "storage_profile": {"disk"}}), http.StatusSeeOther)
	if page := b.get(base + "/"); !strings.Contains(page.body, `<option value="disk" selected>`) {
		t.Fatalf("the archive is not the new profile:\n%s", page.body)
	}
	a = b.do("POST", base+"/audit-logs", url.Values{"csrf": {tok}, "etag": {stale}, "storage_profile": {""}})
	if a.status != http.StatusPreconditionFailed || !strings.Contains(a.body, "If-Match") {
		t.Fatalf("a stale settings form: %d\n%s", a.status, a.body)
	}
	if page := b.get(base + "/"); !strings.Contains(page.body, `<option value="disk" selected>`) {
		t.Fatal("a stale settings form changed the archive")
	}
	// An unknown storage profile is refused next to its field.
	a = b.do("POST", base+"/audit-logs", url.Values{"csrf": {tok}, "storage_profile": {"nope"}})
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, `id="storage_profile-error"`) {
		t.Fatalf("an unknown storage profile: %d\n%s", a.status, a.body)
	}
}

// An EventBridge connection's nested secrets (credentials.*) are sealed and
// read back as set with their last 4; an error of a nested field lands at
// that field; no answer holds them.
func TestEventBridgeForm(t *testing.T) {
	const keyID, secret = "AKIACONSOLETEST12345", "console-secret-access-key-0123456789abcd"
	h := newHarness(t)
	var bodies []string
	b := h.browser(&bodies)
	tok := b.signIn(tokenSeed)
	create := "/console/accounts/" + seedAccount + "/connections"
	form := url.Values{"csrf": {tok}, "kind": {"eventbridge"}, "name": {"bus"}, "enabled": {"on"}, "settings.region": {"eu-west-1"},
		"settings.event_bus": {"audit"}, "settings.credentials.access_key_id": {keyID}, "settings.credentials.secret_access_key": {secret},
		"settings.credentials.role_arn": {"not-an-arn"}}
	a := b.do("POST", create, form)
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, `id="settings.credentials.role_arn-error"`) {
		t.Fatalf("a bad role ARN: %d\n%s", a.status, a.body)
	}
	form.Del("settings.credentials.role_arn")
	mustStatus(t, b.do("POST", create, form), http.StatusSeeOther)
	page := b.get(create + "/bus")
	for _, want := range []string{"Set ••••2345", "Set ••••abcd", `value="eu-west-1"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the EventBridge page lacks %q", want)
		}
	}
	for _, body := range bodies {
		if strings.Contains(body, keyID) || strings.Contains(body, secret) {
			t.Fatalf("an answer holds an AWS key:\n%s", body)
		}
	}
}

// An account without an archive is told so on the Archive page, with a way
// to choose one; the settings page links to the page only once a storage
// profile archives the account.
func TestArchivePageWithoutArchive(t *testing.T) {
	h := newHarness(t)
	b := h.browser(nil)
	b.signIn(tokenSeed)
	base := "/console/accounts/" + seedAccount
	a := b.get(base + "/archive")
	mustStatus(t, a, http.StatusOK)
	if !strings.Contains(a.body, "has no archive") || !strings.Contains(a.body, `href="/console/accounts/`+seedAccount+`/#storage_profile"`) ||
		strings.Contains(a.body, "<table") {
		t.Fatalf("the archive page of an account without an archive:\n%s", a.body)
	}
	if s := b.get(base + "/"); strings.Contains(s.body, `id="archive-days"`) {
		t.Fatal("the settings page links to the archive days of an account without an archive")
	}
	// A malformed day is answered by its field, not as a failure.
	a = b.get(base + "/archive?from=tomorrow")
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, `id="from-error"`) || !strings.Contains(a.body, "not a date") {
		t.Fatalf("a malformed day: %d\n%s", a.status, a.body)
	}
}

// An OTLP connection through the console: basic auth's password is sealed
// and read back as set with its last 4; an endpoint the installation
// refuses (a loopback address) is named at its field; no answer holds the
// password.
func TestOTLPForm(t *testing.T) {
	const password = "glc_console-otlp-token-0123456789wxyz"
	h := newHarness(t)
	var bodies []string
	b := h.browser(&bodies)
	tok := b.signIn(tokenSeed)
	create := "/console/accounts/" + seedAccount + "/connections"
	if page := b.get(create + "/_new?type=otlp"); page.status != http.StatusOK || !strings.Contains(page.body, "OTLP endpoint") || !strings.Contains(page.body, "Bearer token") {
		t.Fatalf("the new OTLP connection form: %d\n%s", page.status, page.body)
	}
	form := url.Values{"csrf": {tok}, "kind": {"otlp"}, "name": {"grafana"}, "enabled": {"on"},
		"settings.endpoint": {"https://127.0.0.1:4318"}, "settings.auth.username": {"123456"}, "settings.auth.password": {password},
		"settings.encoding": {"protobuf"}, "settings.compression": {"gzip"}}
	a := b.do("POST", create, form)
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, `id="settings.endpoint-error"`) || !strings.Contains(a.body, "loopback") {
		t.Fatalf("a loopback endpoint: %d\n%s", a.status, a.body)
	}
	form.Set("settings.endpoint", "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp")
	mustStatus(t, b.do("POST", create, form), http.StatusSeeOther)
	page := b.get(create + "/grafana")
	for _, want := range []string{"Set ••••wxyz", `value="123456"`, `value="https://otlp-gateway-prod-eu-west-2.grafana.net/otlp"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the OTLP page lacks %q", want)
		}
	}
	for _, body := range bodies {
		if strings.Contains(body, password) {
			t.Fatalf("an answer holds the password:\n%s", body)
		}
	}
}
