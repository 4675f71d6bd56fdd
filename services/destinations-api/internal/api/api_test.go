package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/destinations-api/internal/e2eharness"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

const keyA = "dd-api-key-of-account-a-0123WIFA"

func TestConnectionRoundTrip(t *testing.T) {
	h := newHarness(t)
	path := connPath(accountA, "dd-main")

	created := h.do("PUT", path, tokenA, datadogBody(keyA))
	mustStatus(t, created, http.StatusCreated)
	if created.header.Get("Location") != path || created.header.Get("ETag") == "" {
		t.Fatalf("created: Location %q ETag %q", created.header.Get("Location"), created.header.Get("ETag"))
	}
	var v resourceView
	created.json(t, &v)
	secret, _ := v.Settings["api_key"].(map[string]any)
	if secret["set"] != true || secret["last4"] != "WIFA" || v.Settings["site"] != "datadoghq.eu" || !v.Enabled || v.Type != "datadog" {
		t.Fatalf("created view: %+v", v)
	}
	if contains(created.body, keyA) {
		t.Fatal("the answer holds the API key")
	}

	got := h.do("GET", path, tokenA, nil)
	mustStatus(t, got, http.StatusOK)
	if got.header.Get("ETag") != created.header.Get("ETag") {
		t.Fatalf("GET ETag %q, PUT gave %q", got.header.Get("ETag"), created.header.Get("ETag"))
	}
	mustStatus(t, h.do("GET", path, tokenA, nil, "If-None-Match", got.header.Get("ETag")), http.StatusNotModified)

	// Writing back what was read keeps the secret and changes nothing.
	var read map[string]any
	got.json(t, &read)
	same := h.do("PUT", path, tokenA, map[string]any{"type": "datadog", "settings": read["settings"]})
	mustStatus(t, same, http.StatusOK)
	if same.header.Get("ETag") != got.header.Get("ETag") {
		t.Fatal("an unchanged PUT changed the ETag")
	}

	// A change keeps the stored key when told to.
	changed := h.do("PUT", path, tokenA, map[string]any{"type": "datadog", "enabled": false,
		"settings": map[string]any{"site": "us5.datadoghq.com", "api_key": map[string]any{"set": true}}})
	mustStatus(t, changed, http.StatusOK)
	if changed.header.Get("ETag") == got.header.Get("ETag") {
		t.Fatal("a change kept the ETag")
	}
	changed.json(t, &v)
	if v.Enabled || v.Settings["site"] != "us5.datadoghq.com" || v.Settings["api_key"].(map[string]any)["last4"] != "WIFA" {
		t.Fatalf("changed view: %+v", v)
	}

	list := h.do("GET", "/v1/accounts/"+accountA+"/connections", tokenA, nil)
	mustStatus(t, list, http.StatusOK)
	var p page[resourceView]
	list.json(t, &p)
	if len(p.Items) != 1 || p.Items[0].Name != "dd-main" || p.Items[0].ETag != changed.header.Get("ETag") {
		t.Fatalf("list: %+v", p)
	}

	mustStatus(t, h.do("DELETE", path, tokenA, nil), http.StatusNoContent)
	mustStatus(t, h.do("GET", path, tokenA, nil), http.StatusNotFound)
	mustStatus(t, h.do("DELETE", path, tokenA, nil), http.StatusNotFound)
}

func TestListPagination(t *testing.T) {
	h := newHarness(t)
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("dd-%02d", i)
		want = append(want, name)
		mustStatus(t, h.do("PUT", connPath(accountA, name), tokenA, datadogBody(keyA)), http.StatusCreated)
	}
	var got []string
	next := ""
	for pages := 0; ; pages++ {
		if pages > 4 {
			t.Fatal("pagination does not end")
		}
		q := "?page_size=3"
		if next != "" {
			q += "&page_token=" + next
		}
		r := h.do("GET", "/v1/accounts/"+accountA+"/connections"+q, tokenA, nil)
		mustStatus(t, r, http.StatusOK)
		var p page[resourceView]
		r.json(t, &p)
		for _, it := range p.Items {
			got = append(got, it.Name)
		}
		if next = p.NextPageToken; next == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	for _, q := range []string{"?page_size=0", "?page_size=1001", "?page_size=x", "?page_token=%25%25"} {
		r := h.do("GET", "/v1/accounts/"+accountA+"/connections"+q, tokenA, nil)
		mustStatus(t, r, http.StatusBadRequest)
	}
}

// Every bad input is answered 400 (or its own code) naming the field.
func otlpSettings(settings map[string]any) map[string]any {
	return map[string]any{"type": "otlp", "settings": settings}
}

func TestBadInputNamesTheField(t *testing.T) {
	h := newHarness(t)
	mustStatus(t, h.do("PUT", connPath(accountA, "kept"), tokenA, datadogBody(keyA)), http.StatusCreated)
	dd := func(settings map[string]any) map[string]any {
		return map[string]any{"type": "datadog", "settings": settings}
	}
	cases := []struct {
		name   string
		path   string
		body   any
		status int
		field  string
		says   string
	}{
		{"no type", connPath(accountA, "x"), map[string]any{"settings": map[string]any{}}, 400, "type", "is required"},
		{"unknown type", connPath(accountA, "x"), map[string]any{"type": "splunk", "settings": map[string]any{}}, 400, "type", "not a connection type"},
		{"storage type as connection", connPath(accountA, "x"), map[string]any{"type": "storage", "settings": map[string]any{}}, 400, "type", "not a connection type"},
		{"bad site", connPath(accountA, "x"), dd(map[string]any{"site": "datadog.example", "api_key": keyA}), 400, "settings.site", "is not a Datadog site"},
		{"missing key", connPath(accountA, "x"), dd(map[string]any{"site": "datadoghq.eu"}), 400, "settings.api_key", "must be set"},
		{"empty key", connPath(accountA, "x"), dd(map[string]any{"api_key": ""}), 400, "settings.api_key", "must not be empty"},
		{"key as file reference", connPath(accountA, "x"), dd(map[string]any{"api_key": map[string]any{"file": "/etc/passwd"}}), 400, "settings.api_key", "file references are not accepted"},
		{"key as env reference", connPath(accountA, "x"), dd(map[string]any{"api_key": map[string]any{"env": "AUDITSTREAM_KEY"}}), 400, "settings.api_key", "environment references are not accepted"},
		{"key as number", connPath(accountA, "x"), dd(map[string]any{"api_key": 12}), 400, "settings.api_key", "must be the secret's value"},
		{"keep with nothing stored", connPath(accountA, "x"), dd(map[string]any{"api_key": map[string]any{"set": true}}), 400, "settings.api_key", "no stored value to keep"},
		{"sealed value injected", connPath(accountA, "kept"), dd(map[string]any{"api_key": map[string]any{"sealed": map[string]any{"kid": "k1"}}}), 400, "settings.api_key", "sealed values cannot be written"},
		{"unknown setting", connPath(accountA, "x"), dd(map[string]any{"api_key": keyA, "sight": "x"}), 400, "settings.sight", "unknown"},
		{"wrong setting type", connPath(accountA, "x"), dd(map[string]any{"api_key": keyA, "compression_level": "max"}), 400, "settings.compression_level", "cannot unmarshal"},
		{"settings not an object", connPath(accountA, "x"), map[string]any{"type": "datadog", "settings": []int{1}}, 400, "settings", "must be a JSON object"},
		{"custom endpoint off", connPath(accountA, "x"), dd(map[string]any{"api_key": keyA, "base_url": "http://169.254.169.254"}), 400, "settings.base_url", "custom endpoints are turned off"},
		{"otlp over http", connPath(accountA, "x"), otlpSettings(map[string]any{"endpoint": "http://otlp.example.com", "allow_http": true}), 400, "settings.allow_http", "plain http is turned off"},
		{"otlp without https", connPath(accountA, "x"), otlpSettings(map[string]any{"endpoint": "http://otlp.example.com"}), 400, "settings.endpoint", "must be https"},
		{"otlp to loopback", connPath(accountA, "x"), otlpSettings(map[string]any{"endpoint": "https://127.0.0.1:4318"}), 400, "settings.endpoint", "a loopback address"},
		{"otlp to localhost", connPath(accountA, "x"), otlpSettings(map[string]any{"endpoint": "https://localhost:4318"}), 400, "settings.endpoint", "a loopback name"},
		{"otlp to a private address", connPath(accountA, "x"), otlpSettings(map[string]any{"endpoint": "https://10.1.2.3/otlp"}), 400, "settings.endpoint", "a private address"},
		{"otlp to link-local", connPath(accountA, "x"), otlpSettings(map[string]any{"endpoint": "https://169.254.169.254"}), 400, "settings.endpoint", "a link-local address"},
		{"otlp to ipv6 loopback", connPath(accountA, "x"), otlpSettings(map[string]any{"endpoint": "https://[::1]:4318"}), 400, "settings.endpoint", "a loopback address"},
		{"otlp token as file reference", connPath(accountA, "x"), otlpSettings(map[string]any{"endpoint": "https://otlp.example.com", "auth": map[string]any{"token": map[string]any{"file": "/etc/passwd"}}}), 400, "settings.auth.token", "file references are not accepted"},
		{"otlp password without user", connPath(accountA, "x"), otlpSettings(map[string]any{"endpoint": "https://otlp.example.com", "auth": map[string]any{"password": keyA}}), 400, "settings.auth.username", "must be set"},
		{"eventbridge with the platform's identity", connPath(accountA, "x"), map[string]any{"type": "eventbridge", "settings": map[string]any{"region": "eu-west-1"}}, 400, "settings.credentials", "platform's own AWS identity"},
		{"role without external id", connPath(accountA, "x"), map[string]any{"type": "eventbridge", "settings": map[string]any{"region": "eu-west-1",
			"credentials": map[string]any{"role_arn": "arn:aws:iam::123456789012:role/x"}}}, 400, "settings.credentials.external_id", "is required"},
		{"local storage off", "/v1/accounts/" + accountA + "/storage-profiles/x", map[string]any{"settings": map[string]any{"kind": "local", "local": map[string]any{"dir": "/etc"}}}, 400, "settings.kind", "local storage is turned off"},
		{"gcs with the platform's identity", "/v1/accounts/" + accountA + "/storage-profiles/x", map[string]any{"settings": map[string]any{"kind": "gcs", "gcs": map[string]any{"bucket": "audit-bucket"}}}, 400, "settings.gcs.credentials", "platform's own Google identity"},
		{"azure outside azure", "/v1/accounts/" + accountA + "/storage-profiles/x", map[string]any{"settings": map[string]any{"kind": "azure", "azure": map[string]any{"account_url": "https://evil.example", "container": "audit", "sas_token": "sv=x"}}}, 400, "settings.azure.account_url", "Azure Blob endpoint"},
		{"s3 without bucket", "/v1/accounts/" + accountA + "/storage-profiles/x", map[string]any{"settings": map[string]any{"kind": "s3", "s3": map[string]any{"region": "eu-west-1",
			"credentials": map[string]any{"access_key_id": "AKIAEXAMPLE0000000", "secret_access_key": "secret-example-0000"}}}}, 400, "settings.s3.bucket", ""},
		{"storage profile of another type", "/v1/accounts/" + accountA + "/storage-profiles/x", map[string]any{"type": "datadog", "settings": map[string]any{}}, 400, "type", "must be \"storage\""},
		{"name differs", connPath(accountA, "x"), map[string]any{"name": "y", "type": "datadog", "settings": map[string]any{}}, 400, "name", "differs"},
		{"unknown body field", connPath(accountA, "x"), map[string]any{"type": "datadog", "settings": map[string]any{}, "color": "red"}, 400, "", "unknown field \"color\""},
		{"not JSON", connPath(accountA, "x"), "{type:", 400, "", "syntax error"},
		{"two values", connPath(accountA, "x"), `{"type":"datadog","settings":{}} {}`, 400, "", "more than one JSON value"},
		{"too large", connPath(accountA, "x"), `{"type":"datadog","settings":{"site":"` + strings.Repeat("a", MaxBodyBytes) + `"}}`, 413, "", "larger than"},
		{"bad name", connPath(accountA, "Bad_Name"), datadogBody(keyA), 400, "", "name: must match"},
		{"bad account", connPath("acc%2F..", "x"), datadogBody(keyA), 400, "", "account: must be"},
		{"audit-logs names a missing connection", "/v1/accounts/" + accountA + "/audit-logs", map[string]any{"streaming": true, "connections": []string{"nope"}}, 400, "connections[0]", "not a connection of this account"},
		{"audit-logs lists one twice", "/v1/accounts/" + accountA + "/audit-logs", map[string]any{"streaming": true, "connections": []string{"kept", "kept"}}, 400, "connections[1]", "listed twice"},
		{"audit-logs names a missing profile", "/v1/accounts/" + accountA + "/audit-logs", map[string]any{"storage_profile": "nope"}, 400, "storage_profile", "not a storage profile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("PUT", c.path, tokenA, c.body)
			mustStatus(t, r, c.status)
			var e struct {
				Error apiError `json:"error"`
			}
			r.json(t, &e)
			if c.field != "" {
				msg, ok := r.fields(t)[c.field]
				if !ok || !strings.Contains(msg, c.says) {
					t.Fatalf("field %q says %q (present %v), want %q; answer %s", c.field, msg, ok, c.says, r.body)
				}
			} else if !strings.Contains(e.Error.Message, c.says) {
				t.Fatalf("message %q, want %q", e.Error.Message, c.says)
			}
			if contains(r.body, keyA) || contains(r.body, "/etc/passwd") {
				t.Fatalf("the error quotes a secret: %s", r.body)
			}
		})
	}
	// Nothing of the refused writes was stored.
	if cfg := h.svc.store.Get(accountA); len(cfg.Connections) != 1 || len(cfg.StorageProfiles) != 0 || cfg.Version != 1 {
		t.Fatalf("after refused writes the account holds %d connections, %d profiles, version %d", len(cfg.Connections), len(cfg.StorageProfiles), cfg.Version)
	}
}

// A token of account A learns nothing of account B: every route answers 404.
func TestAuthMatrix(t *testing.T) {
	h := newHarness(t)
	mustStatus(t, h.do("PUT", connPath(accountB, "dd-b"), tokenB, datadogBody(keyA)), http.StatusCreated)
	mustStatus(t, h.do("PUT", connPath(accountA, "dd-a"), tokenOperator, datadogBody(keyA)), http.StatusCreated)

	for _, tok := range []string{"", "not-a-token"} {
		r := h.do("GET", connPath(accountA, "dd-a"), tok, nil)
		mustStatus(t, r, http.StatusUnauthorized)
		if r.header.Get("WWW-Authenticate") == "" {
			t.Fatal("401 without WWW-Authenticate")
		}
	}
	r, _ := http.NewRequest("GET", h.url+connPath(accountA, "dd-a"), nil)
	r.Header.Set("Authorization", "Basic "+tokenA)
	if resp, err := http.DefaultClient.Do(r); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("basic auth: %v %v", resp.StatusCode, err)
	}

	type call struct{ method, path string }
	for _, c := range []call{
		{"GET", connPath(accountB, "dd-b")}, {"GET", connPath(accountB, "missing")},
		{"PUT", connPath(accountB, "dd-b")}, {"DELETE", connPath(accountB, "dd-b")},
		{"GET", "/v1/accounts/" + accountB + "/connections"}, {"GET", "/v1/accounts/" + accountB + "/audit-logs"},
		{"PUT", "/v1/accounts/" + accountB + "/audit-logs"}, {"GET", "/v1/accounts/acc-never/connections"},
		{"GET", "/v1/accounts/" + accountB + "/storage-profiles/x"},
	} {
		var body any
		if c.method == "PUT" {
			body = datadogBody(keyA)
			if strings.HasSuffix(c.path, "audit-logs") {
				body = map[string]any{"streaming": false}
			}
		}
		r := h.do(c.method, c.path, tokenA, body)
		if r.status != http.StatusNotFound || contains(r.body, "dd-b") {
			t.Errorf("%s %s with account A's token: %d %s, want a 404 that names nothing of B", c.method, c.path, r.status, r.body)
		}
	}
	// B's connection is untouched, and the operator sees both accounts.
	mustStatus(t, h.do("GET", connPath(accountB, "dd-b"), tokenB, nil), http.StatusOK)
	mustStatus(t, h.do("GET", connPath(accountB, "dd-b"), tokenOperator, nil), http.StatusOK)
	var accounts page[struct{ Account string }]
	h.do("GET", "/v1/accounts", tokenOperator, nil).json(t, &accounts)
	if len(accounts.Items) != 2 {
		t.Fatalf("operator lists %v", accounts.Items)
	}
	h.do("GET", "/v1/accounts", tokenA, nil).json(t, &accounts)
	if len(accounts.Items) != 1 || accounts.Items[0].Account != accountA {
		t.Fatalf("account A's token lists %v", accounts.Items)
	}
}

func TestConditionalWrites(t *testing.T) {
	h := newHarness(t)
	path := connPath(accountA, "dd-main")
	mustStatus(t, h.do("PUT", path, tokenA, datadogBody(keyA), "If-Match", "*"), http.StatusPreconditionFailed)
	first := h.do("PUT", path, tokenA, datadogBody(keyA), "If-None-Match", "*")
	mustStatus(t, first, http.StatusCreated)
	mustStatus(t, h.do("PUT", path, tokenA, datadogBody(keyA), "If-None-Match", "*"), http.StatusPreconditionFailed)
	etag := first.header.Get("ETag")
	second := h.do("PUT", path, tokenA, datadogBody(keyA+"2"), "If-Match", etag)
	mustStatus(t, second, http.StatusOK)
	// A writer that read the first version is refused, not silently overwriting.
	stale := h.do("PUT", path, tokenA, datadogBody(keyA+"3"), "If-Match", etag)
	mustStatus(t, stale, http.StatusPreconditionFailed)
	mustStatus(t, h.do("DELETE", path, tokenA, nil, "If-Match", etag), http.StatusPreconditionFailed)
	mustStatus(t, h.do("DELETE", path, tokenA, nil, "If-Match", second.header.Get("ETag")), http.StatusNoContent)

	// Two writers race from the same version: exactly one wins.
	mustStatus(t, h.do("PUT", path, tokenA, datadogBody(keyA)), http.StatusCreated)
	etag = h.do("GET", path, tokenA, nil).header.Get("ETag")
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Go(func() {
			codes[i] = h.do("PUT", path, tokenA, datadogBody(fmt.Sprintf("%s-racer-%d", keyA, i)), "If-Match", etag).status
		})
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[0] != http.StatusOK || codes[1] != http.StatusPreconditionFailed || codes[len(codes)-1] != http.StatusPreconditionFailed {
		t.Fatalf("racing writers got %v, want one 200 and the rest 412", codes)
	}
}

func TestAuditLogsAndInUse(t *testing.T) {
	h := newHarness(t)
	al := "/v1/accounts/" + accountA + "/audit-logs"
	var v auditLogsView
	r := h.do("GET", al, tokenA, nil)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &v)
	if v.Streaming || len(v.Connections) != 0 || v.StorageProfile != "" {
		t.Fatalf("a new account's settings: %+v", v)
	}
	mustStatus(t, h.do("PUT", connPath(accountA, "dd-main"), tokenA, datadogBody(keyA)), http.StatusCreated)
	on := h.do("PUT", al, tokenA, map[string]any{"streaming": true, "connections": []string{"dd-main"}}, "If-Match", v.ETag)
	mustStatus(t, on, http.StatusOK)
	on.json(t, &v)
	if !v.Streaming || !slices.Equal(v.Connections, []string{"dd-main"}) {
		t.Fatalf("after turning streaming on: %+v", v)
	}
	r = h.do("DELETE", connPath(accountA, "dd-main"), tokenA, nil)
	mustStatus(t, r, http.StatusConflict)
	if !contains(r.body, "in use") {
		t.Fatalf("delete in use: %s", r.body)
	}
	mustStatus(t, h.do("PUT", al, tokenA, map[string]any{"streaming": false}), http.StatusOK)
	mustStatus(t, h.do("DELETE", connPath(accountA, "dd-main"), tokenA, nil), http.StatusNoContent)
	// Nothing is left: the account's record is a tombstone.
	if h.svc.store.Get(accountA) != nil {
		t.Fatal("an account with nothing configured still has a configuration")
	}
}

// Every change is an audit event of its account, naming the token, with
// before and after and no secret; no secret reaches a topic, a log line or
// an answer in plain text.
func TestChangesAreAuditedAndSecretsNeverLeak(t *testing.T) {
	h := newHarness(t)
	path := connPath(accountA, "dd-main")
	mustStatus(t, h.do("PUT", path, tokenA, datadogBody(keyA)), http.StatusCreated)
	mustStatus(t, h.do("PUT", path, tokenA, datadogBody(keyA+"-rotated-XYZW")), http.StatusOK)
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"streaming": true, "connections": []string{"dd-main"}}), http.StatusOK)

	recs := kafkatest.ReadAll(t, h.cluster.Brokers(), h.cfg.Kafka.Topics.Events.Name, 3, 10*time.Second)
	if len(recs) != 3 {
		t.Fatalf("%d audit events, want 3", len(recs))
	}
	var actions []string
	for _, rec := range recs {
		ev, err := auditevent.DecodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if auditevent.AccountID(ev) != accountA || ev.Actor.GetId() != "admin-a" || string(rec.Key) != accountA {
			t.Fatalf("event account %q actor %q key %q", auditevent.AccountID(ev), ev.Actor.GetId(), rec.Key)
		}
		actions = append(actions, ev.Request.GetAction())
		if ev.Request.GetAction() == "update-audit-log-connection" && (!strings.Contains(ev.Extra["before"], `"last4":"WIFA"`) || !strings.Contains(ev.Extra["after"], `"last4":"XYZW"`)) {
			t.Fatalf("update event before/after: %v", ev.Extra)
		}
	}
	want := []string{"create-audit-log-connection", "update-audit-log-connection", "update-audit-log-settings"}
	slices.Sort(actions)
	if !slices.Equal(actions, want) {
		t.Fatalf("actions %v, want %v", actions, want)
	}
	dest := kafkatest.ReadAll(t, h.cluster.Brokers(), h.cfg.Kafka.Topics.Destinations.Name, 3, 10*time.Second)
	for _, secret := range []string{keyA, keyA + "-rotated-XYZW", tokenA} {
		for _, rec := range append(recs, dest...) {
			if contains(rec.Value, secret) || contains(rec.Key, secret) {
				t.Fatalf("topic %s holds a secret in plain text", rec.Topic)
			}
			for _, hd := range rec.Headers {
				if contains(hd.Value, secret) {
					t.Fatalf("a header of topic %s holds a secret", rec.Topic)
				}
			}
		}
		if strings.Contains(h.logs.String(), secret) {
			t.Fatal("the log holds a secret")
		}
	}
}

// A restarted API rebuilds the same configuration from the topic, also
// after compaction.
func TestRestartRebuildsFromTopic(t *testing.T) {
	h := newHarness(t)
	path := connPath(accountA, "dd-main")
	mustStatus(t, h.do("PUT", path, tokenA, datadogBody(keyA)), http.StatusCreated)
	for i := range 3 {
		mustStatus(t, h.do("PUT", path, tokenA, datadogBody(fmt.Sprintf("%s-v%d", keyA, i))), http.StatusOK)
	}
	before := h.do("GET", path, tokenA, nil)
	h.cluster.Compact()
	again := startHarness(t, h.cluster, h.cfg)
	after := again.do("GET", path, tokenA, nil)
	mustStatus(t, after, http.StatusOK)
	if string(after.body) != string(before.body) {
		t.Fatalf("after a restart:\n%s\nbefore:\n%s", after.body, before.body)
	}
	// And it can write on top.
	mustStatus(t, again.do("PUT", path, tokenA, datadogBody(keyA), "If-Match", after.header.Get("ETag")), http.StatusOK)

}

func TestNameDefinedInTheFileIsRefused(t *testing.T) {
	file := t.TempDir() + "/destinations.yaml"
	if err := writeFile(file, "connections:\n  dd-platform:\n    type: datadog\n    settings: {api_key: {env: X}}\n"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.API.DestinationsFile = file })
	r := h.do("PUT", connPath(accountA, "dd-platform"), tokenA, datadogBody(keyA))
	mustStatus(t, r, http.StatusConflict)
	if !contains(r.body, "destinations file") {
		t.Fatalf("answer: %s", r.body)
	}
	r = h.do("PUT", "/v1/accounts/"+accountA+"/storage-profiles/dd-platform", tokenA, map[string]any{"settings": map[string]any{}})
	mustStatus(t, r, http.StatusConflict)
}

// Until the destinations topic is read to its end, every call is answered
// 503: a resource not read yet would otherwise read as missing.
func TestNotReadyAnswers503(t *testing.T) {
	in := e2eharness.NewInstallation(t)
	cfg := testConfig(t, in.Cluster, in.Keyring)
	cfg.Kafka.Topics.Bootstrap = false // the topic never appears
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := New(ctx, cfg, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	wait := svc.Start(ctx, zap.NewNop())
	defer func() { cancel(); wait(); svc.Close() }()
	srv := httptest.NewServer(svc.API.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+connPath(accountA, "dd"), nil)
	req.Header.Set("Authorization", "Bearer "+tokenA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("before the topic is read: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if err := svc.Ready(ctx); err == nil {
		t.Fatal("the readiness check passes before the topic is read")
	}
}

// Every operation openapi.json describes is served: none answers as an
// unknown route.
func TestEveryDocumentedOperationIsServed(t *testing.T) {
	h := newHarness(t)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, ops := range doc.Paths {
		for method := range ops {
			n++
			p := strings.NewReplacer("{account}", accountA, "{name}", "x").Replace(path)
			var body any
			if method == "put" {
				body = map[string]any{}
			}
			r := h.do(strings.ToUpper(method), p, tokenOperator, body)
			if r.status == http.StatusMethodNotAllowed || (r.status == http.StatusNotFound && contains(r.body, "route not found")) {
				t.Errorf("%s %s is documented but not served: %d %s", method, path, r.status, r.body)
			}
		}
	}
	if n < 14 {
		t.Fatalf("openapi.json describes %d operations", n)
	}
}

// Behind a trusted proxy the audit event names the client, from
// X-Forwarded-For; anyone else's header is ignored.
func TestClientIPBehindTrustedProxies(t *testing.T) {
	a := &API{cfg: Config{API: Settings{TrustedProxies: []string{"10.0.0.0/8", "192.168.1.1/32"}}}}
	for _, c := range []struct{ remote, xff, want string }{
		{"203.0.113.9:5555", "", "203.0.113.9"},
		{"203.0.113.9:5555", "198.51.100.7", "203.0.113.9"}, // not a proxy: its header is not trusted
		{"10.1.2.3:443", "198.51.100.7", "198.51.100.7"},
		{"10.1.2.3:443", "6.6.6.6, 198.51.100.7, 192.168.1.1", "198.51.100.7"}, // the spoofed first hop is not read
		{"10.1.2.3:443", "", "10.1.2.3"},
		{"10.1.2.3:443", "garbage, 198.51.100.7", "198.51.100.7"},
		{"10.1.2.3:443", "198.51.100.7, garbage", "10.1.2.3"},
		{"[::ffff:10.1.2.3]:443", "2001:db8::1", "2001:db8::1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := a.clientIP(r); got != c.want {
			t.Errorf("from %s with %q: %q, want %q", c.remote, c.xff, got, c.want)
		}
	}
	cfg := DefaultConfig()
	cfg.API.TrustedProxies = []string{"10.0.0.0/8", "ten"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `api.trusted_proxies[1]: "ten" is not a CIDR`) {
		t.Fatalf("bad CIDR: %v", err)
	}
}
