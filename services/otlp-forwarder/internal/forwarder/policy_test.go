package forwarder

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// A connection's filter and redaction reach the OTLP record whole: the
// record's attributes repeat fields of the body (user.email,
// client.address), so a redacted field must be redacted in both, and a
// filtered event must not be sent.
func TestFiltersAndRedactionReachTheAttributes(t *testing.T) {
	const rawEmail, rawIP, key = "jane.secret@example.org", "203.0.113.77", "key-of-runs"
	p := newPipeline(t)
	p.WriteRoutes(map[string][]string{"acc-a": {"otlp-runs"}})
	// the file writeRoutes wrote, with a filter and a redaction added
	dest, err := os.ReadFile(p.Cfg.Destinations.File)
	if err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf(`    type: otlp
    filter: 'event.target.type == "runs"'
    redact:
      - {path: actor.email, action: drop}
      - {path: request.ip_address, action: hash}
    redaction_key: %s
`, key)
	p.WriteDestinations(strings.Replace(string(dest), "    type: otlp\n", policy, 1))
	p.StartForwarder()
	ids := p.Publish([]string{"acc-a"}, 30, func(account string, i int) *auditlogv1.AuditEvent {
		ev := forwardingtest.TestEvent(account, i)
		ev.Actor.Email, ev.Request.IpAddress = rawEmail, rawIP
		if i%3 == 0 {
			ev.Target.Type = "runs"
		}
		return ev
	})["acc-a"]
	want := map[string]bool{}
	for i, id := range ids {
		if i%3 == 0 {
			want[id] = true
		}
	}
	forwardingtest.WaitFor(t, "the runs events", 20*time.Second, func() bool { return p.rcv.Accepted("otlp-runs") >= len(want) })
	p.WaitCommitted() // the filtered events too
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(rawIP))
	ipHash := hex.EncodeToString(mac.Sum(nil))
	recs := p.rcv.Records("otlp-runs")
	if len(recs) != len(want) {
		t.Fatalf("received %d records, want the %d runs events", len(recs), len(want))
	}
	for _, r := range recs {
		if !want[r.EventID] {
			t.Errorf("received %s, which the filter drops", r.EventID)
		}
		if _, ok := r.Attrs["user.email"]; ok || r.Attrs["client.address"] != ipHash {
			t.Errorf("%s: user.email %v, client.address %v; want none and %s", r.EventID, r.Attrs["user.email"], r.Attrs["client.address"], ipHash)
		}
		if strings.Contains(r.Body, rawEmail) || strings.Contains(r.Body, rawIP) || !strings.Contains(r.Body, ipHash) {
			t.Errorf("%s: the body is not redacted: %s", r.EventID, r.Body)
		}
		if fmt.Sprint(r.Attrs, r.Resource) != strings.NewReplacer(rawEmail, "", rawIP, "").Replace(fmt.Sprint(r.Attrs, r.Resource)) {
			t.Errorf("%s: a raw redacted value in the attributes", r.EventID)
		}
	}
}
