package destinations

import (
	"strings"
	"testing"
)

const policyFile = `
connections:
  dd:
    type: datadog
    filter: 'event.target.type == "runs" && event.outcome.result != "SUCCESS"'
    redact:
      - {path: actor.email, action: drop}
      - {path: request.ip_address, action: hash}
      - {path: actor.access_token.token, action: mask, keep: 3}
    redaction_key: {env: AUDITSTREAM_TEST_REDACTION_KEY}
    settings: {site: datadoghq.eu}
routes:
  - account: acc-1
    connections: [dd]
`

func TestConnectionPolicyFromFile(t *testing.T) {
	t.Setenv("AUDITSTREAM_TEST_REDACTION_KEY", "key-one")
	tab, err := Parse([]byte(policyFile))
	if err != nil {
		t.Fatal(err)
	}
	c := tab.Lookup("dd")
	p, err := c.Policy()
	if err != nil || p == nil {
		t.Fatalf("Policy() = %v, %v", p, err)
	}
	if p.Filter() == "" || len(p.Rules()) != 3 || p.Rules()[2].Keep != 3 {
		t.Fatalf("policy %q %+v", p.Filter(), p.Rules())
	}
	// Without a redaction key the connection cannot redact, and says which
	// field is missing without a value.
	t.Setenv("AUDITSTREAM_TEST_REDACTION_KEY", "")
	tab2, _ := Parse([]byte(policyFile))
	if _, err := tab2.Lookup("dd").Policy(); err == nil || !strings.Contains(err.Error(), "connections.dd.redaction_key: ") {
		t.Fatalf("a missing key: %v", err)
	}
	// No filter and no rules: no policy.
	plain, _ := Parse([]byte("connections: {dd: {type: datadog}}"))
	if p, err := plain.Lookup("dd").Policy(); p != nil || err != nil {
		t.Fatalf("a plain connection has policy %v, %v", p, err)
	}
}

// A change of filter, rules or key rebuilds the connection's worker; the
// same policy written otherwise does not.
func TestPolicyChangesFingerprint(t *testing.T) {
	fp := func(doc string) string {
		t.Helper()
		tab, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return tab.Lookup("dd").Fingerprint
	}
	base := fp(policyFile)
	for name, edit := range map[string][2]string{
		"filter": {`!= "SUCCESS"`, `!= "FAILURE"`},
		"path":   {`actor.email, action: drop`, `actor.id, action: drop`},
		"action": {`request.ip_address, action: hash`, `request.ip_address, action: drop`},
		"keep":   {`keep: 3`, `keep: 5`},
		"key":    {`{env: AUDITSTREAM_TEST_REDACTION_KEY}`, `{env: OTHER_KEY}`},
	} {
		if fp(strings.Replace(policyFile, edit[0], edit[1], 1)) == base {
			t.Errorf("changing the %s kept the fingerprint", name)
		}
	}
	if fp(strings.Replace(policyFile, `{path: actor.email, action: drop}`, "\n        path: actor.email\n        action: drop", 1)) != base {
		t.Error("the same rule in block style changed the fingerprint")
	}
}

func TestPolicyErrorsOnLoad(t *testing.T) {
	conn := func(body string) string {
		return "connections:\n  dd:\n    type: datadog\n" + body
	}
	for _, c := range []struct{ doc, says string }{
		{conn("    filter: 'event.target.typ == \"runs\"'\n"), "connections.dd.filter: line 4: 1:13: undefined field 'typ'"},
		{conn("    filter: 'event.outcome.status_code == \"202\"'\n"), "connections.dd.filter: line 4: 1:27: found no matching overload"},
		{conn("    filter: 'event.target.type'\n"), "connections.dd.filter: line 4: must be a condition (a bool), not string"},
		{conn("    filter: 42\n"), "connections.dd.filter: line 4: must be a CEL expression (a string)"},
		{conn("    filter: ''\n"), "connections.dd.filter: line 4: is empty"},
		{conn("    redact:\n      - {path: actor.id, action: drop}\n      - {path: actor.mail, action: drop}\n"), `connections.dd.redact[1].path: line 6: path "actor.mail": "mail" is not a field of Actor`},
		{conn("    redact:\n      - {path: actor.email, action: erase}\n"), `connections.dd.redact[0].action: line 5: action "erase" is not drop, mask or hash`},
		{conn("    redact:\n      - {path: actor.email, action: mask, keep: 99}\n"), `connections.dd.redact[0].keep: line 5: keep must be between 1 and 64`},
		{conn("    redact:\n      - {path: actor.email, action: mask, keep: many}\n"), `connections.dd.redact[0].keep: line 5: must be a number of characters`},
		{conn("    redact:\n      - {path: outcome.status_code, action: hash}\n    redaction_key: k\n"), `connections.dd.redact[0].path: line 5: path "outcome.status_code" is not a string`},
		{conn("    redact:\n      - {path: actor.email, action: hash}\n"), `connections.dd.redact[0].action: line 5: hash needs the connection's redaction_key`},
		{conn("    redact:\n      - {path: actor.email, action: drop}\n      - {path: actor.email, action: mask}\n"), `connections.dd.redact[1].path: line 6: "actor.email" is redacted by redact[0] already`},
		{conn("    redact:\n      - {path: actor.email}\n"), `connections.dd.redact[0].action: line 5: is required`},
		{conn("    redact:\n      - {path: actor.email, action: drop, why: gdpr}\n"), `connections.dd.redact[0].why: line 5: unknown field (known: path, action, keep)`},
		{conn("    redact: actor.email\n"), `connections.dd.redact: line 4: must be a list of {path, action, keep}`},
		{conn("    redact:\n      - {path: id, action: drop}\n"), `connections.dd.redact[0].path: line 5: path "id" cannot be redacted`},
		{conn("    redaction_key: {file: a, env: B}\n"), `connections.dd.redaction_key: line 4: a secret needs exactly one of file or env`},
		{conn("    filters: x\n"), `connections.dd.filters: line 4: unknown field (known: type, enabled, settings, filter, redact, redaction_key)`},
	} {
		_, err := Parse([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s\n got %v\nwant %q", c.doc, err, c.says)
		}
	}
}
