package forwarder

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

const (
	rawEmail = "jane.secret@example.org"
	rawIP    = "203.0.113.77"
)

func hmacHex(key, v string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(v))
	return hex.EncodeToString(mac.Sum(nil))
}

// Two EventBridge connections of one account with their own filter and
// redaction: each bus receives exactly its events in exactly its form, and
// the raw values of the redacted fields appear nowhere downstream: not on
// a bus, the retry topic (eb-runs is denied at first, so its events are
// parked and come back), the dead-letter topic (eb-all refuses some
// entries for good) or the logs. Filtered events commit.
func TestEndToEndFiltersAndRedactionPerConnection(t *testing.T) {
	p := newPipeline(t)
	p.Cfg.Log.Level = "debug"
	logFile, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	orig := os.Stderr
	os.Stderr = logFile // the forwarder logs to stderr
	t.Cleanup(func() { os.Stderr = orig; logFile.Close() })

	conn := func(name, policy string) string {
		c := p.connectionYAML(name)
		return strings.Replace(c, "    type: eventbridge\n", "    type: eventbridge\n"+policy, 1)
	}
	p.WriteDestinations("connections:\n" +
		conn("eb-runs", `    filter: 'event.target.type == "runs" && event.outcome.result != "SUCCESS"'
    redact:
      - {path: actor.email, action: drop}
      - {path: request.ip_address, action: hash}
    redaction_key: key-of-runs
`) + conn("eb-all", `    redact:
      - {path: actor.email, action: mask, keep: 4}
      - {path: request.ip_address, action: hash}
    redaction_key: {file: `+filepath.Join(p.DestDir, "all.key")+`}
`) + "routes:\n  - account: acc-a\n    connections: [eb-runs, eb-all]\n")
	if err := os.WriteFile(filepath.Join(p.DestDir, "all.key"), []byte("key-of-all"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.bus.DenyBus("eb-runs")
	p.bus.FailEntries(func(_, _ int, e ebfake.Entry) string {
		if e.Bus == "eb-all" && strings.Contains(e.Detail, `"refused"`) {
			return "InvalidArgument"
		}
		return ""
	})
	p.start()

	const n = 60
	wantRuns, wantAll := map[string]bool{}, map[string]bool{}
	refused := 0
	ids := p.publishEvents([]string{"acc-a"}, n, func(i int, ev *auditlogv1.AuditEvent) {
		ev.Actor.Email, ev.Request.IpAddress = rawEmail, rawIP
		if i%3 == 0 {
			ev.Target.Type = "runs"
		}
		if i%2 == 0 {
			ev.Outcome.Result = "FAILURE"
		}
		if i%5 == 0 {
			ev.Request.Action = "refused"
		}
	})["acc-a"]
	for i, id := range ids {
		if i%6 == 0 { // runs, failed
			wantRuns[id] = true
		}
		if i%5 == 0 {
			refused++
		} else {
			wantAll[id] = true
		}
	}
	parked := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, len(wantRuns), 30*time.Second)
	if len(parked) < len(wantRuns) {
		t.Fatalf("parked %d of eb-runs' %d events", len(parked), len(wantRuns))
	}
	p.bus.AllowBus("eb-runs")
	forwardingtest.WaitFor(t, "both buses receive their events", 30*time.Second, func() bool {
		return p.bus.Count("eb-runs") >= len(wantRuns) && p.bus.Count("eb-all") >= len(wantAll)
	})
	p.WaitCommitted() // the filtered events too

	for bus, c := range map[string]struct {
		want  map[string]bool
		email any
		key   string
	}{
		"eb-runs": {wantRuns, nil, "key-of-runs"},
		"eb-all":  {wantAll, "....org", "key-of-all"},
	} {
		entries := p.bus.Entries(bus)
		if len(entries) != len(c.want) {
			t.Errorf("%s received %d events, want %d", bus, len(entries), len(c.want))
		}
		for _, e := range entries {
			var d struct {
				ID    string         `json:"id"`
				Actor map[string]any `json:"actor"`
				Req   map[string]any `json:"request"`
			}
			if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
				t.Fatal(err)
			}
			if !c.want[d.ID] {
				t.Errorf("%s received %s, not one of its events", bus, d.ID)
			}
			ip := d.Req["ip-address"]
			if ip == nil {
				ip = d.Req["ip_address"]
			}
			if d.Actor["email"] != c.email || ip != hmacHex(c.key, rawIP) {
				t.Errorf("%s: actor %v request %v", bus, d.Actor, d.Req)
			}
			if strings.Contains(e.Detail, rawEmail) || strings.Contains(e.Detail, rawIP) {
				t.Fatalf("%s received a raw redacted value", bus)
			}
		}
	}
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", n, 2*time.Second)
	if len(dlq) != refused {
		t.Errorf("dead-lettered %d, want %d", len(dlq), refused)
	}
	parked = kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, 10*n, 2*time.Second)
	for _, rec := range append(parked, dlq...) {
		if bytes.Contains(rec.Value, []byte(rawEmail)) || bytes.Contains(rec.Value, []byte(rawIP)) || strings.Contains(fmt.Sprint(rec.Headers), rawIP) {
			t.Fatalf("%s holds a raw redacted value", rec.Topic)
		}
	}
	logs, err := os.ReadFile(logFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(logs, []byte(rawEmail)) || bytes.Contains(logs, []byte(rawIP)) {
		t.Error("a log line holds a raw redacted value")
	}
	if !bytes.Contains(logs, []byte("dead-lettering record")) {
		t.Errorf("the logs were not captured:\n%s", logs)
	}
}
