package forwarder

import (
	"slices"
	"strings"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
)

// action3 matches the records of events i with i%7 == 3
// (forwardingtest.TestEvent cycles its action over 7 values).
func action3(r otlpfake.Record) bool { return r.Attrs["event.name"] == "action-3" }

// badIDs are the ids of the events that carry action-3.
func badIDs(ids []string) map[string]bool {
	bad := map[string]bool{}
	for i, id := range ids {
		if i%7 == 3 {
			bad[id] = true
		}
	}
	return bad
}

// checkDeadLetters reads want dead letters and checks they are exactly the
// bad events, for conn, with the receiver's words in their error.
func checkDeadLetters(t *testing.T, p *pipeline, conn string, bad map[string]bool, message string) {
	t.Helper()
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", len(bad), 20*time.Second)
	if len(dlq) != len(bad) {
		t.Fatalf("dead-lettered %d, want the %d rejected records", len(dlq), len(bad))
	}
	left := maps(bad)
	for _, rec := range dlq {
		h := headers(rec)
		if h[deadletter.HeaderConnection] != conn || h[deadletter.HeaderDLQReason] == "" || !strings.Contains(h[deadletter.HeaderDLQError], message) {
			t.Fatalf("dead letter headers %v; want the receiver's %q", h, message)
		}
		id := recordEventID(t, rec)
		if !left[id] {
			t.Fatalf("dead-lettered %s, which the receiver did not reject", id)
		}
		delete(left, id)
	}
	if len(left) != 0 {
		t.Fatalf("%d rejected events not dead-lettered", len(left))
	}
}

func maps(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// The receiver answers 400 for requests holding some records: the
// forwarder bisects to them, dead-letters exactly those with the
// receiver's message, and delivers every other event once.
func TestBadRecordsAreIsolatedAndDeadLettered(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"otlp-a"}})
	p.rcv.Reject(action3, otlpfake.BadRequest)
	p.start()
	ids := p.publish([]string{"acc-00"}, 70)["acc-00"]
	bad := badIDs(ids)
	checkDeadLetters(t, p, "otlp-a", bad, "log records are invalid")
	p.WaitCommitted()
	got := forwardingtest.Counts(mustIDs(p, "otlp-a"))
	for _, id := range ids {
		if want := map[bool]int{true: 0, false: 1}[bad[id]]; got[id] != want {
			t.Fatalf("event %s delivered %d times, want %d", id, got[id], want)
		}
	}
}

// The receiver accepts requests but counts some records rejected
// (partial_success, no indexes): those are dead-lettered with the
// receiver's message, every other event is delivered (at least once: the
// receiver kept them when it answered).
func TestPartialSuccessDeadLettersTheRejected(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"otlp-a"}})
	p.rcv.Reject(action3, otlpfake.PartialSuccess)
	p.start()
	ids := p.publish([]string{"acc-00"}, 70)["acc-00"]
	bad := badIDs(ids)
	checkDeadLetters(t, p, "otlp-a", bad, "timestamp too old")
	p.WaitCommitted()
	got := forwardingtest.Counts(mustIDs(p, "otlp-a"))
	dups := 0
	for _, id := range ids {
		switch {
		case bad[id] && got[id] != 0:
			t.Fatalf("rejected event %s recorded as delivered", id)
		case !bad[id] && got[id] == 0:
			t.Fatalf("lost %s", id)
		case got[id] > 1:
			dups += got[id] - 1
		}
	}
	t.Logf("%d events, %d rejected, %d resent while isolating them", len(ids), len(bad), dups)
}

// An event over max_request_bytes alone is dead-lettered without being
// sent; the events around it are delivered, in requests within the limit.
func TestEventOverRequestLimitIsDeadLettered(t *testing.T) {
	const limit = 64 << 10
	p := newPipeline(t)
	p.maxRequestBytes = limit
	p.rcv.SetMaxRequestBytes(limit)
	p.writeRoutes(map[string][]string{"*": {"otlp-a"}})
	p.start()
	ids := p.publishEvents([]string{"acc-00"}, 300, func(i int, ev *auditlogv1.AuditEvent) {
		if i == 150 {
			ev.Extra = map[string]string{"blob": strings.Repeat("x", limit)}
		}
	})["acc-00"]
	checkDeadLetters(t, p, "otlp-a", map[string]bool{ids[150]: true}, "over max_request_bytes")
	p.WaitCommitted()
	receivedOnce(t, p, "otlp-a", slices.Delete(slices.Clone(ids), 150, 151))
	for _, r := range p.rcv.Requests() {
		if r.Status != 200 || r.Bytes > limit {
			t.Fatalf("request of %d bytes answered %d; the limit is %d", r.Bytes, r.Status, limit)
		}
	}
}

// The receiver answers slower than the request timeout: requests time out,
// are retried, and once it is fast again everything arrives once.
func TestSlowReceiverTimesOutAndRetries(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"otlp-a"}}) // timeout: 2s per request
	p.rcv.Slow(3 * time.Second)
	p.start()
	ids := p.publish([]string{"acc-00"}, 100)["acc-00"]
	forwardingtest.WaitFor(t, "a request the forwarder gave up on", 20*time.Second, func() bool {
		return slices.ContainsFunc(p.rcv.Requests(), func(r otlpfake.Request) bool { return r.Status == 0 })
	})
	p.rcv.Slow(0)
	forwardingtest.WaitFor(t, "all events after the receiver sped up", 30*time.Second, func() bool {
		return len(forwardingtest.Counts(mustIDs(p, "otlp-a"))) >= len(ids)
	})
	p.WaitCommitted()
	receivedOnce(t, p, "otlp-a", ids)
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d dead letters; a timed-out request is retried, not rejected", n)
	}
}
