package sinkconformance

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	rawEmail = "jane.secret@example.org"
	rawIP    = "203.0.113.77"
)

// policyEvent changes event i: every third targets a run, every other one
// failed, every fifth is one the destination refuses for good.
func policyEvent(i int, ev *auditlogv1.AuditEvent) {
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

var typeLine = regexp.MustCompile(`(?m)^    type: .*\n`)

// Two connections of one account with their own filter and redaction:
// each receives exactly its events, in exactly its form, and the raw
// values of the redacted fields appear nowhere downstream: not at the
// destination, the retry topic (conn-runs is refused at first, so its
// events are parked and come back), the dead-letter topic (the destination
// refuses some entries for good), the status topic or the logs. Filtered
// events commit and show in the status.
func testPolicy(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	p.Timeout = 10 * time.Second
	p.Cfg.Log.Level = "debug"
	p.Cfg.Status.Interval = 200 * time.Millisecond
	logs := captureStderr(t)
	keyFile := filepath.Join(p.DestDir, "runs-redaction.key")
	if err := os.WriteFile(keyFile, []byte("key-of-runs"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := func(name, policy string) string {
		c := p.Fake.Connection(name, p.DestDir, p.Timeout)
		loc := typeLine.FindStringIndex(c)
		if loc == nil {
			t.Fatalf("the adapter's connection has no type line:\n%s", c)
		}
		return c[:loc[1]] + policy + c[loc[1]:]
	}
	p.WriteDestinations("connections:\n" +
		conn("conn-runs", `    filter: 'event.target.type == "runs" && event.outcome.result != "SUCCESS"'
    redact:
      - {path: actor.email, action: drop}
      - {path: request.ip_address, action: hash}
    redaction_key: {file: `+keyFile+`}
`) + conn("conn-all", `    redact:
      - {path: actor.email, action: mask, keep: 4}
      - {path: request.ip_address, action: hash}
    redaction_key: key-of-all
`) + "routes:\n  - account: acc-a\n    connections: [conn-runs, conn-all]\n")
	p.Fake.Refuse("conn-runs")
	p.Fake.RejectAction("refused")
	status := p.StatusReader()
	p.StartForwarder()

	const n = 60
	ids := p.PublishEvents([]string{"acc-a"}, n, policyEvent)["acc-a"]
	wantRuns, wantAll := map[string]bool{}, map[string]bool{}
	parkRuns, refused := 0, 0
	for i, id := range ids {
		runs := i%6 == 0 // a run, failed
		if runs {
			parkRuns++
		}
		if i%5 == 0 { // refused by the destination for either connection
			refused += map[bool]int{true: 2, false: 1}[runs]
			continue
		}
		wantAll[id] = true
		if runs {
			wantRuns[id] = true
		}
	}
	parked := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, parkRuns, 30*time.Second)
	if len(parked) < parkRuns {
		t.Fatalf("parked %d of conn-runs' %d events", len(parked), parkRuns)
	}
	p.Fake.Allow("conn-runs")
	forwardingtest.WaitFor(t, "both connections deliver", 30*time.Second, func() bool {
		return count(p.Fake, "conn-runs") >= len(wantRuns) && count(p.Fake, "conn-all") >= len(wantAll)
	})
	p.WaitCommitted() // the filtered events too

	for name, c := range map[string]struct {
		want  map[string]bool
		email any
		key   string
	}{
		"conn-runs": {wantRuns, nil, "key-of-runs"},
		"conn-all":  {wantAll, "....org", "key-of-all"},
	} {
		got := p.Fake.Accepted(name)
		if len(got) != len(c.want) {
			t.Errorf("%s received %d entries, want %d", name, len(got), len(c.want))
		}
		for _, e := range got {
			if !c.want[e.ID] {
				t.Errorf("%s received %s, not one of its events", name, e.ID)
			}
			if e.Email != c.email || e.IP != hmacHex(c.key, rawIP) {
				t.Errorf("%s: email %v ip %v; want email %v and ip %s", name, e.Email, e.IP, c.email, hmacHex(c.key, rawIP))
			}
			if strings.Contains(e.Raw, rawEmail) || strings.Contains(e.Raw, rawIP) {
				t.Fatalf("%s received a raw redacted value: %s", name, e.Raw)
			}
		}
	}

	v := forwardingtest.WaitStatus(t, status, "conn-runs", "filtered events", func(v connstatus.View) bool { return v.Filtered == int64(n-parkRuns) })
	if v.FilterErrors != 0 {
		t.Errorf("status of conn-runs: %+v", v)
	}
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Kafka.Topics.DeadLetter.Name, n, 2*time.Second)
	if len(dlq) != refused {
		t.Errorf("dead-lettered %d, want %d", len(dlq), refused)
	}
	parked = kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, 10*n, 2*time.Second)
	for where, recs := range map[string][]*kgo.Record{"retry topic": parked, "dead-letter topic": dlq} {
		for _, rec := range recs {
			if strings.Contains(string(rec.Value), rawEmail) || strings.Contains(string(rec.Value), rawIP) || strings.Contains(fmt.Sprint(rec.Headers), rawEmail) || strings.Contains(fmt.Sprint(rec.Headers), rawIP) {
				t.Fatalf("the %s holds a raw redacted value (connection %s)", where, deadletter.Read(rec).Connection)
			}
		}
	}
	if st := p.StatusTopicBytes(); strings.Contains(st, rawEmail) || strings.Contains(st, rawIP) {
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
