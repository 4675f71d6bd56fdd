package forwarder

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

const (
	rawEmail = "jane.secret@example.org"
	rawIP    = "203.0.113.77"
)

// policyEvent is event i of account: every third targets a run, every
// other one failed, every fifth is one the intake refuses for dd-all.
func policyEvent(account string, i int) *auditlogv1.AuditEvent {
	ev := forwardingtest.TestEvent(account, i)
	ev.Actor.Email = rawEmail
	ev.Request.IpAddress = rawIP
	if i%3 == 0 {
		ev.Target.Type = "runs"
	}
	if i%2 == 0 {
		ev.Outcome.Result = "FAILURE"
	}
	if i%5 == 0 {
		ev.Request.Action = "refused"
	}
	return ev
}

func hmacHex(key, v string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(v))
	return hex.EncodeToString(mac.Sum(nil))
}

// captureStderr sends what the forwarder logs (it logs to stderr) to a
// file the test reads.
func captureStderr(t *testing.T) (read func() string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	orig := os.Stderr
	os.Stderr = f
	t.Cleanup(func() { os.Stderr = orig; f.Close() })
	return func() string {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

// Two Datadog connections of one account with their own filter and
// redaction: each receives exactly its events, in exactly its form, and
// the raw values of the redacted fields appear nowhere downstream: not in
// the intake, the retry topic (dd-runs fails at first, so its events are
// parked and come back), the dead-letter topic (dd-all refuses some), the
// status topic or the logs. Filtered events commit and show in the status.
func TestEndToEndFiltersAndRedactionPerConnection(t *testing.T) {
	p := newPipeline(t, "dd-runs", "dd-all")
	p.Cfg.Log.Level = "debug"
	p.Cfg.Status.Interval = 200 * time.Millisecond
	logs := captureStderr(t)
	keyFile := filepath.Join(p.DestDir, "runs-redaction.key")
	if err := os.WriteFile(keyFile, []byte("key-of-runs"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"dd-runs", "dd-all"} {
		if err := os.WriteFile(filepath.Join(p.DestDir, n+".key"), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	settings := func(n string) string {
		return fmt.Sprintf("    settings: {base_url: %q, api_key: {file: %q}, tag_prefix: scalr, timeout: 10s}\n", p.intake.URL(), filepath.Join(p.DestDir, n+".key"))
	}
	p.WriteDestinations(`connections:
  dd-runs:
    type: datadog
    filter: 'event.target.type == "runs" && event.outcome.result != "SUCCESS"'
    redact:
      - {path: actor.email, action: drop}
      - {path: request.ip_address, action: hash}
    redaction_key: {file: ` + keyFile + `}
` + settings("dd-runs") + `  dd-all:
    type: datadog
    redact:
      - {path: actor.email, action: mask, keep: 4}
      - {path: request.ip_address, action: hash}
    redaction_key: key-of-all
` + settings("dd-all") + `routes:
  - account: acc-a
    connections: [dd-runs, dd-all]
`)
	p.intake.Always("dd-runs", http.StatusServiceUnavailable, nil)
	p.intake.RejectEntries(func(e []byte) bool { return bytes.Contains(e, []byte(`"action":"refused"`)) })
	status := statusReader(t, p)
	p.start()

	const n = 60
	ids := p.Publish([]string{"acc-a"}, n, policyEvent)["acc-a"]
	// the intake refuses the "refused" events of either connection
	wantRuns, wantAll := map[string]bool{}, map[string]bool{}
	parkRuns, refused := 0, 0
	for i, id := range ids {
		ev := policyEvent("acc-a", i)
		runs := ev.Target.Type == "runs" && ev.Outcome.Result != "SUCCESS"
		if runs {
			parkRuns++
		}
		if ev.Request.Action == "refused" {
			refused += map[bool]int{true: 2, false: 1}[runs]
			continue
		}
		wantRuns[id] = runs
		wantAll[id] = true
	}
	for id, runs := range wantRuns {
		if !runs {
			delete(wantRuns, id)
		}
	}
	parked := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, parkRuns, 30*time.Second)
	if len(parked) < parkRuns {
		t.Fatalf("parked %d of dd-runs' %d events", len(parked), parkRuns)
	}
	p.intake.Recover("dd-runs")
	forwardingtest.WaitFor(t, "both connections deliver", 30*time.Second, func() bool {
		return p.intake.Count("dd-runs") >= len(wantRuns) && p.intake.Count("dd-all") >= len(wantAll)
	})
	p.WaitCommitted() // the filtered events too

	for conn, c := range map[string]struct {
		want  map[string]bool
		email any
		key   string
	}{
		"dd-runs": {wantRuns, nil, "key-of-runs"},
		"dd-all":  {wantAll, "....org", "key-of-all"},
	} {
		logs := p.intake.Logs(conn)
		if len(logs) != len(c.want) {
			t.Errorf("%s received %d logs, want %d", conn, len(logs), len(c.want))
		}
		ipHash := hmacHex(c.key, rawIP)
		for _, log := range logs {
			id, _ := log["audit-id"].(string)
			if !c.want[id] {
				t.Errorf("%s received %s, not one of its events", conn, id)
			}
			actor, _ := log["actor"].(map[string]any)
			request, _ := log["request"].(map[string]any)
			if actor["email"] != c.email || request["ip-address"] != ipHash {
				t.Errorf("%s: actor %v request %v; want email %v and ip %s", conn, actor, request, c.email, ipHash)
			}
		}
		for _, e := range p.intake.Entries(conn) {
			if bytes.Contains(e, []byte(rawEmail)) || bytes.Contains(e, []byte(rawIP)) {
				t.Fatalf("%s received a raw redacted value: %s", conn, e)
			}
		}
	}

	v := waitStatus(t, status, "dd-runs", "filtered events", func(v connstatus.View) bool { return v.Filtered == int64(n-parkRuns) })
	if v.FilterErrors != 0 {
		t.Errorf("status of dd-runs: %+v", v)
	}
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", n, 2*time.Second)
	if len(dlq) != refused {
		t.Errorf("dead-lettered %d, want %d", len(dlq), refused)
	}
	parked = kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, 10*n, 2*time.Second)
	for where, recs := range map[string][]*kgo.Record{"retry topic": parked, "dead-letter topic": dlq} {
		for _, rec := range recs {
			if bytes.Contains(rec.Value, []byte(rawEmail)) || bytes.Contains(rec.Value, []byte(rawIP)) || strings.Contains(fmt.Sprint(rec.Headers), rawEmail) {
				t.Fatalf("the %s holds a raw redacted value (connection %s)", where, headerValue(rec, deadletter.HeaderConnection))
			}
		}
	}
	if st := statusTopicBytes(t, p); strings.Contains(st, rawEmail) || strings.Contains(st, rawIP) {
		t.Error("the status topic holds a raw redacted value")
	}
	out := logs()
	if strings.Contains(out, rawEmail) || strings.Contains(out, rawIP) {
		t.Error("a log line holds a raw redacted value")
	}
	if !strings.Contains(out, "dead-lettering record") {
		t.Errorf("the logs were not captured:\n%s", out)
	}
}

func headerValue(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
