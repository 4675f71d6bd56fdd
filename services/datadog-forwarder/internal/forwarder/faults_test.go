package forwarder

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

// Faults only the Datadog intake has; the rest are in the sink
// conformance suite (conformance_test.go).

// 429 with Retry-After: the forwarder waits as told, then delivers all.
func TestRateLimitedBacksOffAndDelivers(t *testing.T) {
	p := newPipeline(t, "dd-a")
	p.WriteRoutes(map[string][]string{"*": {"dd-a"}})
	p.intake.FailNext(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
	// When each request was answered, and what was accepted.
	type answered struct {
		status int
		at     time.Time
	}
	var mu sync.Mutex
	var answers []answered
	got := map[string]int{}
	p.intake.Observe(func(o ddfake.Observed) {
		mu.Lock()
		defer mu.Unlock()
		answers = append(answers, answered{o.Status, o.At})
		for _, e := range o.Entries {
			var log struct {
				ID string `json:"audit-id"`
			}
			if err := json.Unmarshal(e, &log); err != nil {
				t.Errorf("accepted entry does not decode: %v", err)
			}
			got[log.ID]++
		}
	})
	p.StartForwarder()
	ids := p.PublishEvents([]string{"acc-00"}, 300, nil)["acc-00"]
	forwardingtest.WaitFor(t, "all events after 429", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(ids)
	})
	mu.Lock()
	defer mu.Unlock()
	if answers[0].status != http.StatusTooManyRequests {
		t.Fatalf("first answer %d, want 429", answers[0].status)
	}
	// The refused entries were sent again no sooner than Retry-After asked,
	// and the last accepted request carried some of them.
	var last time.Time
	for _, a := range answers[1:] {
		if a.status == http.StatusAccepted && a.at.After(last) {
			last = a.at
		}
	}
	if wait := last.Sub(answers[0].at); wait < time.Second {
		t.Fatalf("the last entries were accepted %s after the 429; Retry-After asked for 1s", wait)
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times: a 429 must not lose or duplicate", id, got[id])
		}
	}
}

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
