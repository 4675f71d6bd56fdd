package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

// eventSink keeps every event it accepts, whole, and can fail or reject.
type eventSink struct {
	mu       sync.Mutex
	got      map[string]*auditlogv1.AuditEvent
	failWith error
	reject   func(ev *auditlogv1.AuditEvent) bool
}

func (s *eventSink) EncodeEntry(ev *auditlogv1.AuditEvent) (sink.Entry[[]byte], error) {
	return marshalEntry(ev)
}

// marshalEntry is ev's protobuf as a sink entry.
func marshalEntry(ev *auditlogv1.AuditEvent) (sink.Entry[[]byte], error) {
	b, err := proto.Marshal(ev)
	return sink.EntryOf(ev, b, len(b)), err
}

// values is the entries' values.
func values(entries []sink.Entry[[]byte]) [][]byte {
	out := make([][]byte, len(entries))
	for i, e := range entries {
		out[i] = e.Value
	}
	return out
}

func (s *eventSink) WriteBatch(_ context.Context, entries []sink.Entry[[]byte]) error {
	batch := values(entries)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failWith != nil {
		return s.failWith
	}
	var be *sink.BatchError
	for i, e := range batch {
		ev := &auditlogv1.AuditEvent{}
		if err := proto.Unmarshal(e, ev); err != nil {
			return err
		}
		if s.reject != nil && s.reject(ev) {
			if be == nil {
				be = sink.NewBatchError(len(batch))
			}
			be.Fail(i, &sink.SendError{Class: sink.Permanent, Status: 400, Err: fmt.Errorf("entry refused")})
			continue
		}
		if s.got == nil {
			s.got = map[string]*auditlogv1.AuditEvent{}
		}
		s.got[ev.Id] = ev
	}
	if be != nil {
		return be
	}
	return nil
}

func (s *eventSink) setFail(err error) {
	s.mu.Lock()
	s.failWith = err
	s.mu.Unlock()
}

func (s *eventSink) events() map[string]*auditlogv1.AuditEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*auditlogv1.AuditEvent, len(s.got))
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

const (
	rawEmail = "jane.secret@example.org"
	rawIP    = "203.0.113.77"
)

// Two connections of one account with their own filter and redaction: each
// gets exactly its events in its form, filtered events commit, and the raw
// values of redacted fields reach neither a sink, nor the retry topic (the
// failing connection's events are parked and come back), nor the
// dead-letter topic, nor a log line.
func TestRuntimeAppliesEachConnectionsPolicy(t *testing.T) {
	t.Setenv("AUDITSTREAM_TEST_KEY_RUNS", "key-of-runs")
	table, err := destinations.Parse([]byte(`
connections:
  runs:
    type: datadog
    filter: 'event.target.type == "runs"'
    redact:
      - {path: actor.email, action: drop}
      - {path: request.ip_address, action: hash}
    redaction_key: {env: AUDITSTREAM_TEST_KEY_RUNS}
  all:
    type: datadog
    redact:
      - {path: actor.email, action: mask, keep: 4}
      - {path: request.ip_address, action: hash}
    redaction_key: key-of-all
routes:
  - account: acc-a
    connections: [runs, all]
`))
	if err != nil {
		t.Fatal(err)
	}
	rg := newRig(t, table)
	rg.logs = &logBuffer{}
	runs, all := &eventSink{}, &eventSink{}
	// runs fails at first, so its events go round the retry topic; all
	// refuses some events for good, so they are dead-lettered
	runs.setFail(&sink.SendError{Class: sink.Retryable, Status: 503, Err: fmt.Errorf("intake down")})
	all.reject = func(ev *auditlogv1.AuditEvent) bool { return ev.GetRequest().GetAction() == "refused" }
	rg.custom = map[string]sink.Destination[[]byte]{"runs": runs, "all": all}
	rg.start()

	wantRuns, wantAll := map[string]bool{}, map[string]bool{}
	var events []*auditlogv1.AuditEvent
	publish := func(n int) {
		t.Helper()
		var batch []*auditlogv1.AuditEvent
		for i := range n {
			typ, action := "workspaces", "update"
			if i%3 == 0 {
				typ = "runs"
			}
			if i%5 == 0 {
				action = "refused"
			}
			batch = append(batch, &auditlogv1.AuditEvent{
				Actor:   &auditlogv1.Actor{Id: "user-1", Email: rawEmail},
				Request: &auditlogv1.Request{Action: action, IpAddress: rawIP},
				Target:  &auditlogv1.Target{Type: typ, Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: "acc-a"}}},
			})
		}
		res, err := producer.New(rg.cluster.Client(), rg.kcfg.Topics.Events.Name).Publish(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range batch {
			if ev.Target.Type == "runs" {
				wantRuns[res.IDs[i]] = true
			}
			if ev.Request.Action != "refused" {
				wantAll[res.IDs[i]] = true
			}
		}
		events = append(events, batch...)
	}
	publish(30)

	waitFor(t, "runs parks its events", 20*time.Second, func() bool {
		return rg.counter("auditstream_delivery_parked_total", map[string]string{"connection": "runs"}) >= float64(len(wantRuns))
	})
	runsParked := len(wantRuns)
	runs.setFail(nil)
	waitFor(t, "runs recovers", 20*time.Second, func() bool { return len(runs.events()) >= len(wantRuns) })
	publish(15) // and this time, nothing is parked
	waitFor(t, "both connections deliver", 20*time.Second, func() bool {
		return len(runs.events()) >= len(wantRuns) && len(all.events()) >= len(wantAll)
	})
	rg.waitCommitted() // filtered events included

	check := func(name string, got map[string]*auditlogv1.AuditEvent, want map[string]bool, email string, key string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s got %d events, want %d", name, len(got), len(want))
		}
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(rawIP))
		ipHash := hex.EncodeToString(mac.Sum(nil))
		for id, ev := range got {
			if !want[id] {
				t.Errorf("%s got event %s (%s %s), not for it", name, id, ev.Target.Type, ev.Request.Action)
				continue
			}
			if ev.Actor.Email != email || ev.Actor.Id != "user-1" {
				t.Errorf("%s: actor %v, want email %q", name, ev.Actor, email)
			}
			if ip := ev.Request.IpAddress; ip != ipHash {
				t.Errorf("%s: ip %q, want its HMAC under the connection's key %q", name, ip, ipHash)
			}
		}
	}
	check("runs", runs.events(), wantRuns, "", "key-of-runs")
	check("all", all.events(), wantAll, "....org", "key-of-all")
	var runsIP, allIP string
	for _, ev := range runs.events() {
		runsIP = ev.Request.IpAddress
	}
	for _, ev := range all.events() {
		allIP = ev.Request.IpAddress
	}
	if runsIP == allIP {
		t.Error("the two connections' keys hash the address alike")
	}

	if f := rg.counter("auditstream_delivery_filtered_total", map[string]string{"connection": "runs"}); f != float64(len(events)-len(wantRuns)) {
		t.Errorf("filtered_total{runs} = %v, want %d", f, len(events)-len(wantRuns))
	}
	if f := rg.counter("auditstream_delivery_filtered_total", map[string]string{"connection": "all"}); f != 0 {
		t.Errorf("filtered_total{all} = %v, want 0", f)
	}
	for _, s := range rg.rt.Status() {
		if s.Name == "runs" && s.Filtered != int64(len(events)-len(wantRuns)) {
			t.Errorf("status of runs: filtered %d", s.Filtered)
		}
	}

	parked := kafkatest.ReadAll(t, rg.cluster.Brokers(), rg.cfg.RetryTopic.Name, 1000, 2*time.Second)
	dlq := kafkatest.ReadAll(t, rg.cluster.Brokers(), "audit.events.dlq", 1000, 2*time.Second)
	if len(parked) < runsParked || len(dlq) != len(events)-len(wantAll) {
		t.Fatalf("parked %d (want at least %d), dead-lettered %d (want %d)", len(parked), runsParked, len(dlq), len(events)-len(wantAll))
	}
	for where, recs := range map[string][]*kgo.Record{"retry topic": parked, "dead-letter topic": dlq} {
		for _, rec := range recs {
			if h := headerMap(rec); h[deadletter.HeaderPolicy] == "" {
				t.Errorf("%s record for %s lacks its policy header: %v", where, h[deadletter.HeaderConnection], h)
			}
			for _, raw := range []string{rawEmail, rawIP} {
				if bytes.Contains(rec.Value, []byte(raw)) || strings.Contains(fmt.Sprint(rec.Headers), raw) {
					t.Errorf("%s holds the raw %q", where, raw)
				}
			}
		}
	}
	if logs := rg.logs.String(); strings.Contains(logs, rawEmail) || strings.Contains(logs, rawIP) || !strings.Contains(logs, "dead-lettering") {
		t.Errorf("logs leak a redacted value or lack the dead letters:\n%s", logs)
	}
}
