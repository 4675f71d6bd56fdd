package forwarder

import (
	"net/http"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

// Faults only the Datadog intake has; the rest are in the sink
// conformance suite (conformance_test.go).

// 413 for a batch: the forwarder splits it and delivers everything once.
func TestPayloadTooLargeSplitsAndDelivers(t *testing.T) {
	p := newPipeline(t, "dd-a")
	p.WriteRoutes(map[string][]string{"*": {"dd-a"}})
	p.intake.FailNext(3, http.StatusRequestEntityTooLarge, nil)
	p.StartForwarder()
	ids := p.PublishEvents([]string{"acc-00"}, 400, nil)
	forwardingtest.WaitFor(t, "all entries", 20*time.Second, func() bool { return p.intake.Count("dd-a") >= len(ids["acc-00"]) })
	p.WaitCommitted()
	got := forwardingtest.Counts(p.IDs("dd-a"))
	if len(got) != 400 || p.intake.Count("dd-a") != 400 {
		t.Fatalf("delivered %d logs, %d distinct, want 400 exactly once", p.intake.Count("dd-a"), len(got))
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d dead letters; a 413 must be split, not rejected", n)
	}
}
