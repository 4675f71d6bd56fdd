package forwarder

import (
	"fmt"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// 10k events across 50 accounts and several routes: every event reaches
// exactly its account's connections (buses), once, and no other.
func TestEndToEndEveryEventReachesExactlyItsAccountsBuses(t *testing.T) {
	accounts := forwardingtest.Accounts(50)
	routes := map[string][]string{}
	want := map[string]map[string]bool{} // bus → accounts routed to it
	var buses []string
	for i, acc := range accounts {
		routes[acc] = []string{fmt.Sprintf("eb-%d", i%10)}
		if i < 10 {
			routes[acc] = append(routes[acc], "eb-extra") // a second route for some accounts
		}
		for _, c := range routes[acc] {
			if want[c] == nil {
				want[c] = map[string]bool{}
				buses = append(buses, c)
			}
			want[c][acc] = true
		}
	}
	p := newPipeline(t)
	p.writeRoutes(routes)
	p.start()
	ids := p.publish(accounts, 200) // 50 × 200 = 10,000 events

	expected := map[string]int{}
	for c, accs := range want {
		for acc := range accs {
			expected[c] += len(ids[acc])
		}
	}
	for c, n := range expected {
		forwardingtest.WaitFor(t, "delivery to "+c, 60*time.Second, func() bool { return p.bus.Count(c) >= n })
	}
	p.WaitCommitted() // a duplicate would have landed by now
	total := 0
	for _, c := range buses {
		gotIDs, gotAccounts := p.received(c)
		total += len(gotIDs)
		if len(gotIDs) != expected[c] {
			t.Errorf("%s received %d entries, want %d", c, len(gotIDs), expected[c])
		}
		for _, acc := range gotAccounts {
			if !want[c][acc] {
				t.Fatalf("bus %s received an event of account %s, which does not route to it", c, acc)
			}
		}
		seen := forwardingtest.Counts(gotIDs)
		for acc := range want[c] {
			for _, id := range ids[acc] {
				if seen[id] != 1 {
					t.Fatalf("%s: event %s of %s delivered %d times, want exactly once", c, id, acc, seen[id])
				}
			}
		}
	}
	for _, c := range p.bus.Calls() {
		if len(c.Entries) > 10 || c.Bytes > 256<<10 {
			t.Fatalf("a call of %d entries and %d bytes", len(c.Entries), c.Bytes)
		}
		if c.AccessKeyID != testKeyID {
			t.Fatalf("a call signed with %q", c.AccessKeyID)
		}
	}
	t.Logf("%d events, %d entries delivered to %d buses in %d calls (at most %d in flight)",
		10000, total, len(buses), len(p.bus.Calls()), p.bus.MaxInFlight())
}

// A route added or changed in the destinations file applies to the next
// events without a restart.
func TestDestinationsReloadWithoutRestart(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"acc-00": {"eb-a"}})
	p.start()
	before := p.publish([]string{"acc-00"}, 50)
	forwardingtest.WaitFor(t, "first route", 10*time.Second, func() bool { return p.bus.Count("eb-a") >= 50 })

	p.writeRoutes(map[string][]string{"acc-00": {"eb-b"}})
	p.WaitDestinations()
	after := p.publish([]string{"acc-00"}, 50)
	forwardingtest.WaitFor(t, "new route", 10*time.Second, func() bool { return p.bus.Count("eb-b") >= 50 })
	p.WaitCommitted()
	if n := p.bus.Count("eb-a"); n != 50 {
		t.Fatalf("the old bus received %d entries after the route moved, want 50 (only those before)", n)
	}
	got := forwardingtest.Counts(p.ids("eb-b"))
	for _, id := range after["acc-00"] {
		if got[id] != 1 {
			t.Fatalf("event %s after the reload delivered %d times to the new bus", id, got[id])
		}
	}
	for _, id := range before["acc-00"] {
		if got[id] != 0 {
			t.Fatalf("event %s from before the reload went to the new bus", id)
		}
	}
}
