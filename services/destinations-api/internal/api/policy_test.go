package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

const redactionKey = "redaction-key-of-dd-main-KEYZ"

func policyBody(key any) map[string]any {
	b := datadogBody(keyA)
	b["filter"] = `event.target.type == "runs"`
	b["redact"] = []map[string]any{{"path": "actor.email", "action": "hash"}, {"path": "request.ip_address", "action": "mask", "keep": 3}}
	if key != nil {
		b["redaction_key"] = key
	}
	return b
}

// A connection's filter, redaction rules and redaction key go in and come
// back (the key as set and its last 4 only), are sealed in the topic, and
// open on the consumer's side into the policy a forwarder applies.
func TestConnectionPolicyRoundTrip(t *testing.T) {
	h := newHarness(t)
	path := connPath(accountA, "dd-main")
	created := h.do("PUT", path, tokenA, policyBody(redactionKey))
	mustStatus(t, created, http.StatusCreated)
	var v resourceView
	created.json(t, &v)
	if v.Filter != `event.target.type == "runs"` || len(v.Redact) != 2 || v.Redact[1].Keep != 3 ||
		v.RedactionKey == nil || !v.RedactionKey.Set || v.RedactionKey.Last4 != "KEYZ" {
		t.Fatalf("created view: %+v", v)
	}
	if contains(created.body, redactionKey) {
		t.Fatal("the answer holds the redaction key")
	}

	// Kept with {"set": true}: unchanged, same ETag.
	keep := policyBody(map[string]any{"set": true})
	keep["settings"] = map[string]any{"site": "datadoghq.eu", "api_key": map[string]any{"set": true}}
	same := h.do("PUT", path, tokenA, keep)
	mustStatus(t, same, http.StatusOK)
	if same.header.Get("ETag") != created.header.Get("ETag") {
		t.Fatal("keeping the key changed the resource")
	}

	res := h.svc.store.Get(accountA).Connections["dd-main"]
	c := destinations.NewAPIResourceConnection(accountA, destinations.CollectionConnections, "dd-main", res, destinations.SecretboxOpener(h.svc.API.sealer.box))
	p, err := c.Policy()
	if err != nil || p == nil || p.Filter() == "" || len(p.Rules()) != 2 {
		t.Fatalf("the consumer's policy: %v, %v", p, err)
	}
	for _, rec := range kafkatest.ReadAll(t, h.cluster.Brokers(), h.cfg.Kafka.Topics.Destinations.Name, 2, 10*time.Second) {
		if contains(rec.Value, redactionKey) {
			t.Fatal("the destinations topic holds the redaction key in plain text")
		}
	}
	if strings.Contains(h.logs.String(), redactionKey) {
		t.Fatal("the log holds the redaction key")
	}

	// Left out, the key is unset, and a hash rule is then refused.
	bad := h.do("PUT", path, tokenA, policyBody(nil))
	mustStatus(t, bad, http.StatusBadRequest)
	if f := bad.fields(t); !strings.Contains(f["redact[0].action"], "redaction_key") {
		t.Fatalf("fields %v", f)
	}
}

// Every problem is a 400 naming the field and, in a filter, the position.
func TestPolicyValidationOnWrite(t *testing.T) {
	h := newHarness(t)
	path := connPath(accountA, "dd-main")
	for _, c := range []struct {
		change func(b map[string]any)
		field  string
		says   string
	}{
		{func(b map[string]any) { b["filter"] = `event.target.typ == "runs"` }, "filter", "1:13: undefined field 'typ'"},
		{func(b map[string]any) { b["filter"] = `event.target.type` }, "filter", "must be a condition (a bool)"},
		{func(b map[string]any) {
			b["redact"] = []map[string]any{{"path": "actor.id", "action": "drop"}, {"path": "actor.mail", "action": "drop"}}
		}, "redact[1].path", `"mail" is not a field of Actor`},
		{func(b map[string]any) { b["redact"] = []map[string]any{{"path": "actor.email", "action": "erase"}} }, "redact[0].action", `action "erase" is not drop, mask or hash`},
		{func(b map[string]any) {
			b["redact"] = []map[string]any{{"path": "actor.email", "action": "mask", "keep": 99}}
		}, "redact[0].keep", "keep must be between 1 and 64"},
		{func(b map[string]any) {
			b["redact"] = []map[string]any{{"path": "actor.email", "action": "drop"}, {"path": "actor.email", "action": "drop"}}
		}, "redact[1].path", "redacted by redact[0] already"},
		{func(b map[string]any) { b["redaction_key"] = map[string]any{"set": true} }, "redaction_key", "no stored value to keep"},
	} {
		b := policyBody(redactionKey)
		c.change(b)
		r := h.do("PUT", path, tokenA, b)
		mustStatus(t, r, http.StatusBadRequest)
		if f := r.fields(t); !strings.Contains(f[c.field], c.says) {
			t.Errorf("%s: fields %v, want %q", c.field, f, c.says)
		}
	}
	mustStatus(t, h.do("GET", path, tokenA, nil), http.StatusNotFound)
}
