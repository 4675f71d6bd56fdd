package console_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/destinations-api/internal/api"
)

// apiDo calls the destinations API of h with the seed admin's token.
func apiDo(t *testing.T, h *harness, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenSeed)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// A form without the policy's inputs (a page from before they were there)
// keeps the filter and redaction the API set, the redaction key included.
func TestConsoleSaveKeepsFilterAndRedaction(t *testing.T) {
	h := newHarness(t)
	path := "/v1/accounts/" + seedAccount + "/connections/dd-policy"
	status, _ := apiDo(t, h, "PUT", path, map[string]any{"type": "datadog",
		"settings":      map[string]any{"site": "datadoghq.eu", "api_key": ddKey},
		"filter":        `event.target.type == "runs"`,
		"redact":        []map[string]any{{"path": "actor.email", "action": "hash"}},
		"redaction_key": "a-redaction-key-of-the-account"})
	if status != http.StatusCreated {
		t.Fatalf("PUT answered %d", status)
	}
	b := h.browser(nil)
	tok := b.signIn(tokenSeed)
	page := b.get("/console/accounts/" + seedAccount + "/connections/dd-policy")
	mustStatus(t, page, http.StatusOK)
	save := url.Values{"csrf": {tok}, "name": {"dd-policy"}, "etag": {etag(t, page)}, "enabled": {"on"}, "settings.site": {"us3.datadoghq.com"}}
	mustStatus(t, b.do("POST", "/console/accounts/"+seedAccount+"/connections", save), http.StatusSeeOther)

	status, v := apiDo(t, h, "GET", path, nil)
	settings, _ := v["settings"].(map[string]any)
	key, _ := v["redaction_key"].(map[string]any)
	redact, _ := v["redact"].([]any)
	if status != http.StatusOK || settings["site"] != "us3.datadoghq.com" || v["filter"] != `event.target.type == "runs"` || len(redact) != 1 || key["set"] != true {
		t.Fatalf("after a save in the console: %d %v", status, v)
	}
}

// The connection form shows the filter, the rules and whether a redaction
// key is set (never the key), and edits them: a rule added in an empty
// row, one removed with its checkbox, the filter changed, a blank key
// kept.
func TestConsoleEditsFilterAndRedaction(t *testing.T) {
	h := newHarness(t)
	path := "/v1/accounts/" + seedAccount + "/connections/dd-policy"
	status, _ := apiDo(t, h, "PUT", path, map[string]any{"type": "datadog",
		"settings":      map[string]any{"site": "datadoghq.eu", "api_key": ddKey},
		"filter":        `event.target.type == "runs"`,
		"redact":        []map[string]any{{"path": "actor.email", "action": "hash"}, {"path": "actor.access_token.token", "action": "mask", "keep": 3}},
		"redaction_key": "a-redaction-key-of-the-account"})
	if status != http.StatusCreated {
		t.Fatalf("PUT answered %d", status)
	}
	b := h.browser(nil)
	tok := b.signIn(tokenSeed)
	page := b.get("/console/accounts/" + seedAccount + "/connections/dd-policy")
	mustStatus(t, page, http.StatusOK)
	for _, want := range []string{
		`<textarea id="filter" name="filter"`, `>event.target.type == &#34;runs&#34;</textarea>`,
		`name="redact.0.path" value="actor.email"`, `<option value="hash" selected>hash</option>`,
		`name="redact.1.path" value="actor.access_token.token"`, `name="redact.1.keep" value="3"`,
		`name="redact.1.remove"`, `name="redact.2.path" value=""`, `name="redact.3.path" value=""`,
		`id="redaction_key" name="redaction_key" value=""`, "Set ••••ount.",
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the connection's page lacks %q", want)
		}
	}
	if strings.Contains(page.body, `name="redact.4.path"`) || strings.Contains(page.body, `name="redact.2.remove"`) {
		t.Error("the page offers more than two empty rows, or a Remove box on an empty one")
	}
	if strings.Contains(page.body, "a-redaction-key-of-the-account") {
		t.Fatal("the page holds the redaction key")
	}

	form := func(extra url.Values) url.Values {
		v := url.Values{"csrf": {tok}, "name": {"dd-policy"}, "etag": {etag(t, b.get("/console/accounts/"+seedAccount+"/connections/dd-policy"))},
			"enabled": {"on"}, "settings.site": {"datadoghq.eu"}, "policy": {"1"},
			"filter":        {`event.target.type == "runs" && event.outcome.result != "SUCCESS"`},
			"redact.0.path": {"actor.email"}, "redact.0.action": {"hash"}, "redact.0.keep": {""}, "redact.0.stored": {"1"},
			"redact.1.path": {"actor.access_token.token"}, "redact.1.action": {"mask"}, "redact.1.keep": {"3"}, "redact.1.stored": {"1"}, "redact.1.remove": {"on"},
			"redact.2.path": {"request.ip_address"}, "redact.2.action": {"mask"}, "redact.2.keep": {"5"},
			"redact.3.path": {""}, "redact.3.action": {""}, "redact.3.keep": {""},
			"redaction_key": {""}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}

	// A filter with a typo: refused, the error by the filter with its
	// position, the form as submitted.
	bad := b.do("POST", "/console/accounts/"+seedAccount+"/connections", form(url.Values{"filter": {`event.target.typ == "runs"`}}))
	mustStatus(t, bad, http.StatusBadRequest)
	if !strings.Contains(bad.body, `<p class="error" id="filter-error">1:`) || !strings.Contains(bad.body, `>event.target.typ == &#34;runs&#34;</textarea>`) ||
		!strings.Contains(bad.body, `href="#filter"`) {
		t.Fatalf("a filter with a typo:\n%s", bad.body)
	}
	// A bad path in the third row, the second rule sent (the one before it
	// is removed): the error is by the third row's path.
	bad = b.do("POST", "/console/accounts/"+seedAccount+"/connections", form(url.Values{"redact.2.path": {"request.ip_adress"}}))
	mustStatus(t, bad, http.StatusBadRequest)
	if !strings.Contains(bad.body, `<p class="error" id="redact.2.path-error">`) || strings.Contains(bad.body, `id="redact.1.path-error"`) ||
		!strings.Contains(bad.body, `name="redact.1.remove" checked`) {
		t.Fatalf("a bad path in the third row:\n%s", bad.body)
	}
	// Keep that is not a number is refused by the console, by its input.
	bad = b.do("POST", "/console/accounts/"+seedAccount+"/connections", form(url.Values{"redact.2.keep": {"five"}}))
	mustStatus(t, bad, http.StatusBadRequest)
	if !strings.Contains(bad.body, `<p class="error" id="redact.2.keep-error">&#34;five&#34; is not a whole number`) {
		t.Fatalf("a Keep that is not a number:\n%s", bad.body)
	}

	mustStatus(t, b.do("POST", "/console/accounts/"+seedAccount+"/connections", form(nil)), http.StatusSeeOther)
	status, v := apiDo(t, h, "GET", path, nil)
	key, _ := v["redaction_key"].(map[string]any)
	redact, _ := json.Marshal(v["redact"])
	if status != http.StatusOK || v["filter"] != `event.target.type == "runs" && event.outcome.result != "SUCCESS"` || key["set"] != true || key["last4"] != "ount" ||
		string(redact) != `[{"action":"hash","path":"actor.email"},{"action":"mask","keep":5,"path":"request.ip_address"}]` {
		t.Fatalf("after the save: %d %v %s", status, v, redact)
	}

	// Emptied: no filter, no rules; a new key replaces the old one.
	mustStatus(t, b.do("POST", "/console/accounts/"+seedAccount+"/connections", form(url.Values{"filter": {"  "},
		"redact.0.remove": {"on"}, "redact.2.path": {""}, "redact.2.action": {""}, "redact.2.keep": {""}, "redaction_key": {"another-key-9876"}})), http.StatusSeeOther)
	_, v = apiDo(t, h, "GET", path, nil)
	key, _ = v["redaction_key"].(map[string]any)
	if _, has := v["filter"]; has || v["redact"] != nil || key["last4"] != "9876" {
		t.Fatalf("after emptying: %v", v)
	}

	// A storage profile's form has them too.
	np := b.get("/console/accounts/" + seedAccount + "/storage-profiles/_new?kind=s3")
	mustStatus(t, np, http.StatusOK)
	if !strings.Contains(np.body, `<textarea id="filter"`) || !strings.Contains(np.body, `name="redact.0.path"`) || !strings.Contains(np.body, "deliberately incomplete") {
		t.Fatalf("the new storage profile form:\n%s", np.body)
	}
}

// A test's verdict shows what the filter said of the test event, which is
// sent all the same.
func TestConsoleVerdictShowsFilter(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.API.AllowLocalStorage = true })
	dir := t.TempDir()
	status, _ := apiDo(t, h, "PUT", "/v1/accounts/"+seedAccount+"/storage-profiles/disk", map[string]any{"type": "storage",
		"settings": map[string]any{"kind": "local", "local": map[string]any{"dir": dir}},
		"filter":   `event.target.type == "runs"`})
	if status != http.StatusCreated {
		t.Fatalf("PUT answered %d", status)
	}
	b := h.browser(nil)
	tok := b.signIn(tokenSeed)
	a := b.do("POST", "/console/accounts/"+seedAccount+"/storage-profiles/disk/test", url.Values{"csrf": {tok}})
	if a.status != http.StatusOK || !strings.Contains(a.body, "Test passed") ||
		!strings.Contains(a.body, "<dt>Filter</dt><dd>excludes the test event (sent anyway") {
		t.Fatalf("the verdict of a profile whose filter excludes the test: %d\n%s", a.status, a.body)
	}
}
