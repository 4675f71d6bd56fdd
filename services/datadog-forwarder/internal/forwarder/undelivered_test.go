package forwarder

import (
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

const oldestUndelivered = "auditstream_delivery_oldest_undelivered_seconds"

// The age of a connection's oldest undelivered event rises while the intake
// refuses its key, parked events included, and falls to zero once they are
// delivered.
func TestOldestUndeliveredRisesWhileRefusedAndFallsAfterRecovery(t *testing.T) {
	p := newPipeline(t, "dd")
	p.WriteRoutes(map[string][]string{"acc-1": {"dd"}})
	p.StartForwarder()
	conn := map[string]string{"connection": "dd"}
	age := func() float64 {
		t.Helper()
		v, ok := p.Metric(oldestUndelivered, conn)
		if !ok {
			t.Fatalf("no %s for connection dd", oldestUndelivered)
		}
		return v
	}
	parked := func() float64 {
		v, _ := p.Metric("auditstream_delivery_parked_total", conn)
		return v
	}

	p.PublishEvents([]string{"acc-1"}, 10, nil)
	forwardingtest.WaitFor(t, "10 delivered", 20*time.Second, func() bool { return p.intake.Count("dd") == 10 })
	p.WaitCommitted()
	if a := age(); a != 0 {
		t.Fatalf("everything is delivered, yet the oldest undelivered event is %gs old", a)
	}

	// The intake refuses the key (403): the connection's events are parked.
	p.intake.RemoveKey("dd")
	before := time.Now()
	p.PublishEvents([]string{"acc-1"}, 5, nil)
	after := time.Now()
	forwardingtest.WaitFor(t, "events parked", 20*time.Second, func() bool { return parked() >= 5 })
	// Each time they go round the retry topic again, the age is there and
	// has not fallen: a parked event counts as undelivered, from when it
	// entered the pipeline, between parking and reading back too.
	last := 0.0
	for round := 0; round < 4; round++ {
		n := parked()
		forwardingtest.WaitFor(t, "parked again", 20*time.Second, func() bool { return parked() > n })
		scraped := time.Now()
		a := age()
		if a <= 0 || a < last {
			t.Fatalf("round %d: oldest undelivered %gs while refused (before: %gs)", round, a, last)
		}
		if lo, hi := scraped.Sub(after).Seconds(), time.Since(before).Seconds(); a < lo || a > hi {
			t.Fatalf("round %d: oldest undelivered %gs, want the age of the events published %gs to %gs ago", round, a, lo, hi)
		}
		last = a
	}
	// With no event coming in, the age keeps rising: it is read when scraped.
	forwardingtest.WaitFor(t, "the age to rise", 20*time.Second, func() bool { return age() >= last+1 })

	p.intake.AddKey("dd")
	forwardingtest.WaitFor(t, "15 delivered", 20*time.Second, func() bool { return p.intake.Count("dd") == 15 })
	p.WaitCommitted()
	forwardingtest.WaitFor(t, "the age to fall to zero", 20*time.Second, func() bool { return age() == 0 })
	if dl, ok := p.Metric("auditstream_delivery_connection_dead_lettered_total", conn); !ok || dl != 0 {
		t.Fatalf("dead-lettered for dd: %g (exposed %v), want 0", dl, ok)
	}
}
