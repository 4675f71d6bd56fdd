package console_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
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

// The console does not edit filters and redaction; saving a connection in
// it keeps those the API set, the redaction key included.
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
