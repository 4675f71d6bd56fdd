package forwarder

import (
	"slices"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

// Entries 3 and 7 of a call fail with ThrottlingException: only those two
// are sent again, and every event ends delivered exactly once.
func TestPartialFailureResendsOnlyTheFailedEntries(t *testing.T) {
	p := newPipeline(t)
	p.WriteRoutes(map[string][]string{"*": {"eb-a"}})
	p.bus.FailEntries(func(call, i int, _ ebfake.Entry) string {
		if call == 0 && (i == 3 || i == 7) {
			return "ThrottlingException"
		}
		return ""
	})
	p.StartForwarder()
	ids := p.PublishEvents([]string{"acc-00"}, 100, nil)["acc-00"]
	forwardingtest.WaitFor(t, "every event", 20*time.Second, func() bool { return p.bus.Count("eb-a") >= len(ids) })
	p.WaitCommitted() // a duplicate would have landed by now

	calls := p.bus.Calls()
	first := calls[0]
	if first.Failed() != 2 || first.Codes[3] != "ThrottlingException" || first.Codes[7] != "ThrottlingException" {
		t.Fatalf("first call: codes %v", first.Codes)
	}
	failed := []string{parseDetail(t, first.Entries[3].Detail).ID, parseDetail(t, first.Entries[7].Detail).ID}
	sent := p.sent("eb-a")
	for _, id := range ids {
		want := 1
		if slices.Contains(failed, id) {
			want = 2
		}
		if sent[id] != want {
			t.Errorf("event %s sent %d times, want %d", id, sent[id], want)
		}
	}
	resent := 0
	for _, c := range calls[1:] {
		for _, e := range c.Entries {
			if slices.Contains(failed, parseDetail(t, e.Detail).ID) {
				resent++
				if len(c.Entries) != 2 {
					t.Errorf("a failed entry was resent in a call of %d entries; want the 2 failed alone", len(c.Entries))
				}
			}
		}
	}
	if resent != 2 {
		t.Errorf("failed entries resent %d times, want 2", resent)
	}
	got := forwardingtest.Counts(p.IDs("eb-a"))
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times, want exactly once", id, got[id])
		}
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d dead letters for throttled entries", n)
	}
}
