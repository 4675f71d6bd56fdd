package forwarder

import (
	"net/http"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// 429 with Retry-After: the forwarder waits as told, then delivers all
// exactly once.
func TestRateLimitedBacksOffAndDelivers(t *testing.T) {
	p := newPipeline(t)
	p.WriteRoutes(map[string][]string{"*": {"otlp-a"}})
	p.rcv.FailNext(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
	p.StartForwarder()
	ids := p.PublishEvents([]string{"acc-00"}, 300, nil)["acc-00"]
	forwardingtest.WaitFor(t, "all events after 429", 30*time.Second, func() bool { return len(forwardingtest.Counts(p.IDs("otlp-a"))) >= len(ids) })
	reqs := p.rcv.Requests()
	if reqs[0].Status != http.StatusTooManyRequests {
		t.Fatalf("first answer %d, want 429", reqs[0].Status)
	}
	var last time.Time
	for _, r := range reqs[1:] {
		if r.Status == http.StatusOK && r.At.After(last) {
			last = r.At
		}
	}
	if wait := last.Sub(reqs[0].At); wait < time.Second {
		t.Fatalf("the last records were accepted %s after the 429; Retry-After asked for 1s", wait)
	}
	got := forwardingtest.Counts(p.IDs("otlp-a"))
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times: a 429 must not lose or duplicate", id, got[id])
		}
	}
}
