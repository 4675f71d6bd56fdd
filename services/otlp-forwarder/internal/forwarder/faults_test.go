package forwarder

import (
	"strings"
	"testing"
	"time"

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

// The receiver accepts requests but counts some records rejected
// (partial_success, no indexes): those are dead-lettered with the
// receiver's message, every other event is delivered (at least once: the
// receiver kept them when it answered).
func TestPartialSuccessDeadLettersTheRejected(t *testing.T) {
	p := newPipeline(t)
	p.WriteRoutes(map[string][]string{"*": {"otlp-a"}})
	p.rcv.Reject(action3, otlpfake.PartialSuccess)
	p.StartForwarder()
	ids := p.PublishEvents([]string{"acc-00"}, 70, nil)["acc-00"]
	bad := badIDs(ids)
	checkDeadLetters(t, p, "otlp-a", bad, "timestamp too old")
	p.WaitCommitted()
	got := forwardingtest.Counts(p.IDs("otlp-a"))
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
