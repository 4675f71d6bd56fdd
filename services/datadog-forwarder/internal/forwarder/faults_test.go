package forwarder

import (
	"bytes"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

// A route added or changed in the destinations file applies to the next
// events without a restart.
func TestDestinationsReloadWithoutRestart(t *testing.T) {
	p := newPipeline(t, "dd-a", "dd-b")
	p.writeRoutes(map[string][]string{"acc-00": {"dd-a"}})
	p.start()
	before := p.publish([]string{"acc-00"}, 50)
	forwardingtest.WaitFor(t, "first route", 10*time.Second, func() bool { return p.intake.Count("dd-a") >= 50 })

	p.writeRoutes(map[string][]string{"acc-00": {"dd-b"}})
	p.WaitDestinations()
	after := p.publish([]string{"acc-00"}, 50)
	forwardingtest.WaitFor(t, "new route", 10*time.Second, func() bool { return p.intake.Count("dd-b") >= 50 })
	p.WaitCommitted()
	if n := p.intake.Count("dd-a"); n != 50 {
		t.Fatalf("the old connection received %d logs after the route moved, want 50 (only those before)", n)
	}
	got := forwardingtest.Counts(mustIDs(p, "dd-b"))
	for _, id := range after["acc-00"] {
		if got[id] != 1 {
			t.Fatalf("event %s after the reload delivered %d times to the new connection", id, got[id])
		}
	}
	for _, id := range before["acc-00"] {
		if got[id] != 0 {
			t.Fatalf("event %s from before the reload went to the new connection", id)
		}
	}
}

// The intake rejects some entries with 400: the forwarder finds them,
// dead-letters exactly those, and delivers the rest.
func TestBadEntriesAreIsolatedAndDeadLettered(t *testing.T) {
	p := newPipeline(t, "dd-a")
	p.writeRoutes(map[string][]string{"*": {"dd-a"}})
	p.intake.RejectEntries(func(entry []byte) bool { return bytes.Contains(entry, []byte(`"action":"action-3"`)) })
	p.start()
	ids := p.publish([]string{"acc-00"}, 70) // actions cycle over 7 values: 10 are bad
	forwardingtest.WaitFor(t, "good entries", 20*time.Second, func() bool { return p.intake.Count("dd-a") >= 60 })
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 10, 20*time.Second)
	if len(dlq) != 10 {
		t.Fatalf("dead-lettered %d, want the 10 rejected entries", len(dlq))
	}
	// Events i with i%7 == 3 carry action-3 (forwardingtest.TestEvent).
	bad := map[string]bool{}
	for i, id := range ids["acc-00"] {
		if i%7 == 3 {
			bad[id] = true
		}
	}
	for _, rec := range dlq {
		h := map[string]string{}
		for _, x := range rec.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[deadletter.HeaderConnection] != "dd-a" || h[deadletter.HeaderDLQReason] == "" {
			t.Fatalf("dead letter headers %v", h)
		}
		ev, err := auditevent.DecodeRecord(rec)
		if err != nil {
			t.Fatalf("dead letter does not hold the event: %v", err)
		}
		if !bad[ev.GetId()] {
			t.Fatalf("dead-lettered %s (%s), which the intake did not reject", ev.GetId(), ev.GetRequest().GetAction())
		}
		delete(bad, ev.GetId())
	}
	if len(bad) != 0 {
		t.Fatalf("%d rejected events not dead-lettered (%d dead letters)", len(bad), len(dlq))
	}
	p.WaitCommitted()
	got := forwardingtest.Counts(mustIDs(p, "dd-a"))
	for i, id := range ids["acc-00"] {
		if want := map[bool]int{true: 0, false: 1}[i%7 == 3]; got[id] != want {
			t.Fatalf("event %d (%s) delivered %d times, want %d", i, id, got[id], want)
		}
	}
	if n := p.intake.Count("dd-a"); n != 60 {
		t.Fatalf("delivered %d, want exactly the 60 good entries of %d", n, len(ids["acc-00"]))
	}
	// Dead-lettered events are counted for their connection, not as
	// undelivered.
	conn := map[string]string{"connection": "dd-a"}
	if n, _ := p.Metric("auditstream_delivery_connection_dead_lettered_total", conn); n != 10 {
		t.Fatalf("dead-lettered for dd-a: %g, want 10", n)
	}
	forwardingtest.WaitFor(t, "no undelivered event", 20*time.Second, func() bool {
		a, ok := p.Metric(oldestUndelivered, conn)
		return ok && a == 0
	})
}

// 413 for a batch: the forwarder splits it and delivers everything once.
func TestPayloadTooLargeSplitsAndDelivers(t *testing.T) {
	p := newPipeline(t, "dd-a")
	p.writeRoutes(map[string][]string{"*": {"dd-a"}})
	p.intake.FailNext(3, http.StatusRequestEntityTooLarge, nil)
	p.start()
	ids := p.publish([]string{"acc-00"}, 400)
	forwardingtest.WaitFor(t, "all entries", 20*time.Second, func() bool { return p.intake.Count("dd-a") >= len(ids["acc-00"]) })
	p.WaitCommitted()
	got := forwardingtest.Counts(mustIDs(p, "dd-a"))
	if len(got) != 400 || p.intake.Count("dd-a") != 400 {
		t.Fatalf("delivered %d logs, %d distinct, want 400 exactly once", p.intake.Count("dd-a"), len(got))
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d dead letters; a 413 must be split, not rejected", n)
	}
}

// The intake answers slower than the request timeout: requests time out,
// are retried, and once it is fast again everything arrives.
func TestSlowIntakeTimesOutAndRetries(t *testing.T) {
	p := newPipeline(t, "dd-a")
	p.writeRoutes(map[string][]string{"*": {"dd-a"}}) // timeout: 2s per request
	p.intake.Slow(3 * time.Second)
	p.start()
	ids := p.publish([]string{"acc-00"}, 100)
	forwardingtest.WaitFor(t, "a request the forwarder gave up on", 20*time.Second, func() bool {
		return slices.ContainsFunc(p.intake.Requests(), func(r ddfake.Request) bool { return r.Status == 0 })
	})
	p.intake.Slow(0)
	forwardingtest.WaitFor(t, "all entries after the intake sped up", 30*time.Second, func() bool { return len(forwardingtest.Counts(mustIDs(p, "dd-a"))) >= len(ids["acc-00"]) })
	// The requests the forwarder gave up on: the fake records them answered
	// with nothing (status 0) once the client has gone.
	abandoned := 0
	for _, r := range p.intake.Requests() {
		if r.Status == 0 {
			abandoned++
		}
	}
	if abandoned == 0 {
		t.Fatalf("no request timed out (%d requests): the test did not make the forwarder give up on one", len(p.intake.Requests()))
	}
	// An abandoned request delivered nothing, so its entries, sent again,
	// each arrive once.
	got := forwardingtest.Counts(mustIDs(p, "dd-a"))
	for _, id := range ids["acc-00"] {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times after %d timed-out requests, want once", id, got[id], abandoned)
		}
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d dead letters; a timed-out request is retried, not rejected", n)
	}
}
