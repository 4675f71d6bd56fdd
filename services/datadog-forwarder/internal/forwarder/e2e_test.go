package forwarder

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/forwardingtest"
	"github.com/auditstream/auditstream/services/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// 20k events across 50 accounts and several routes: every event reaches
// exactly its account's connections, once, and no other connection.
func TestEndToEndEveryEventReachesExactlyItsAccountsConnections(t *testing.T) {
	accounts := forwardingtest.Accounts(50)
	routes := map[string][]string{}
	want := map[string]map[string]bool{} // connection → accounts routed to it
	keys := []string{}
	for i, acc := range accounts {
		conn := fmt.Sprintf("dd-%d", i%10)
		routes[acc] = []string{conn}
		if i < 10 {
			routes[acc] = append(routes[acc], "dd-extra") // a second route for some accounts
		}
		for _, c := range routes[acc] {
			if want[c] == nil {
				want[c] = map[string]bool{}
				keys = append(keys, c)
			}
			want[c][acc] = true
		}
	}
	p := newPipeline(t, keys...)
	p.writeRoutes(routes)
	p.start()
	ids := p.publish(accounts, 400) // 50 × 400 = 20,000 events

	expected := map[string]int{}
	for c, accs := range want {
		for acc := range accs {
			expected[c] += len(ids[acc])
		}
	}
	for c, n := range expected {
		forwardingtest.WaitFor(t, "delivery to "+c, 60*time.Second, func() bool { return p.intake.Count(c) >= n })
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would have landed by now
	total := 0
	for _, c := range keys {
		gotIDs, gotAccounts := p.received(c)
		total += len(gotIDs)
		if len(gotIDs) != expected[c] {
			t.Errorf("%s received %d logs, want %d", c, len(gotIDs), expected[c])
		}
		for _, acc := range gotAccounts {
			if !want[c][acc] {
				t.Fatalf("connection %s received an event of account %s, which does not route to it", c, acc)
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
	t.Logf("%d events, %d logs delivered across %d connections", 20000, total, len(keys))
}

// A 500 storm, then recovery: everything arrives.
func TestServerErrorStormThenRecovery(t *testing.T) {
	p := newPipeline(t, "dd-a")
	p.writeRoutes(map[string][]string{"*": {"dd-a"}})
	p.intake.FailNext(25, http.StatusInternalServerError, nil)
	p.start()
	ids := p.publish(forwardingtest.Accounts(5), 200)
	all := slices.Concat(ids["acc-00"], ids["acc-01"], ids["acc-02"], ids["acc-03"], ids["acc-04"])
	forwardingtest.WaitFor(t, "all events after the storm", 60*time.Second, func() bool { return len(forwardingtest.Counts(mustIDs(p, "dd-a"))) >= len(all) })
	got := forwardingtest.Counts(mustIDs(p, "dd-a"))
	for _, id := range all {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
	failed := 0
	for _, r := range p.intake.Requests() {
		if r.Status == http.StatusInternalServerError {
			failed++
		}
	}
	if failed != 25 {
		t.Fatalf("the intake answered 500 %d times, want 25", failed)
	}
}

func mustIDs(p *pipeline, key string) []string {
	ids, _ := p.received(key)
	return ids
}

// 429 with Retry-After: the forwarder waits as told, then delivers all.
func TestRateLimitedBacksOffAndDelivers(t *testing.T) {
	p := newPipeline(t, "dd-a")
	p.writeRoutes(map[string][]string{"*": {"dd-a"}})
	p.intake.FailNext(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
	p.start()
	ids := p.publish([]string{"acc-00"}, 300)
	forwardingtest.WaitFor(t, "all events after 429", 30*time.Second, func() bool { return len(forwardingtest.Counts(mustIDs(p, "dd-a"))) >= len(ids["acc-00"]) })
	reqs := p.intake.Requests()
	if reqs[0].Status != http.StatusTooManyRequests {
		t.Fatalf("first answer %d, want 429", reqs[0].Status)
	}
	if len(mustIDs(p, "dd-a")) != len(ids["acc-00"]) {
		t.Fatalf("delivered %d logs for %d events: a 429 must not duplicate", len(mustIDs(p, "dd-a")), len(ids["acc-00"]))
	}
}

// Account A's connection answers 403 forever; account B keeps flowing within
// seconds, and A's events are parked, not dropped or dead-lettered.
func TestForbiddenConnectionDoesNotStallOtherAccounts(t *testing.T) {
	p := newPipeline(t, "dd-a", "dd-b")
	p.writeRoutes(map[string][]string{"acc-a": {"dd-a"}, "acc-b": {"dd-b"}})
	p.intake.Always("dd-a", http.StatusForbidden, nil)
	p.start()
	start := time.Now()
	ids := p.publish([]string{"acc-a", "acc-b"}, 500)
	forwardingtest.WaitFor(t, "account B delivered", 5*time.Second, func() bool { return p.intake.Count("dd-b") >= 500 })
	t.Logf("account B's 500 events arrived %s after publishing while A's connection was refused", time.Since(start).Round(time.Millisecond))
	parked := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, 500, 20*time.Second)
	parkedIDs := map[string]bool{}
	for _, rec := range parked {
		for _, h := range rec.Headers {
			if h.Key == delivery.HeaderConnection && string(h.Value) != "dd-a" {
				t.Fatalf("parked for %s", h.Value)
			}
		}
		parkedIDs[recordEventID(t, rec)] = true
	}
	for _, id := range ids["acc-a"] {
		if !parkedIDs[id] {
			t.Fatalf("event %s of the refused account was neither delivered nor parked", id)
		}
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d records dead-lettered; a 403 must park", n)
	}
	// the admin fixes the key: parked events are delivered
	p.intake.Reset()
	p.intake.AddKey("dd-a")
	p.intake.AddKey("dd-b")
	forwardingtest.WaitFor(t, "parked events delivered once the key works", 30*time.Second, func() bool { return len(forwardingtest.Counts(mustIDs(p, "dd-a"))) >= 500 })
}

// Poison records on the topic are dead-lettered; the rest is delivered.
func TestPoisonRecordsAreDeadLettered(t *testing.T) {
	p := newPipeline(t, "dd-a")
	p.writeRoutes(map[string][]string{"*": {"dd-a"}})
	cl := p.Cluster.Client()
	poison := []*kgo.Record{
		{Topic: "audit.events", Key: []byte("acc-00"), Value: []byte{0xff, 0x00, 0x13}},
		{Topic: "audit.events", Key: []byte("acc-00"), Value: []byte(`{"target":{"context":{"account":{"id":"acc-00"}}},"timestamp":"yesterday"}`)},
		{Topic: "audit.events", Key: []byte("acc-00"), Value: []byte(`{"hostname":"no account"}`)},
	}
	if err := cl.ProduceSync(context.Background(), poison...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.start()
	ids := p.publish([]string{"acc-00"}, 100)
	forwardingtest.WaitFor(t, "good events", 20*time.Second, func() bool { return p.intake.Count("dd-a") >= len(ids["acc-00"]) })
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 3, 10*time.Second)
	if len(dlq) != 3 {
		t.Fatalf("dead-lettered %d, want 3", len(dlq))
	}
	for _, rec := range dlq {
		h := map[string]string{}
		for _, x := range rec.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[delivery.HeaderDLQReason] == "" || h[delivery.HeaderSourceTopic] != "audit.events" || h[delivery.HeaderSourceOffset] == "" {
			t.Fatalf("dead letter headers %v", h)
		}
	}
}

// Two forwarder instances, with partitions moving between them mid-stream:
// nothing is lost.
func TestTwoInstancesWithRebalanceLoseNothing(t *testing.T) {
	p := newPipeline(t, "dd-a")
	p.writeRoutes(map[string][]string{"*": {"dd-a"}})
	stopFirst := p.start()
	accs := forwardingtest.Accounts(10)
	batches := []map[string][]string{p.publish(accs, 100)}
	p.start()
	batches = append(batches, p.publish(accs, 100))
	stopFirst()
	batches = append(batches, p.publish(accs, 100))
	var all []string
	for _, b := range batches {
		for _, ids := range b {
			all = append(all, ids...)
		}
	}
	forwardingtest.WaitFor(t, "every event across the rebalance", 60*time.Second, func() bool { return len(forwardingtest.Counts(mustIDs(p, "dd-a"))) >= len(all) })
	got := forwardingtest.Counts(mustIDs(p, "dd-a"))
	for _, id := range all {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
	t.Logf("%d events, %d logs (%d duplicates from hand-overs)", len(all), len(mustIDs(p, "dd-a")), len(mustIDs(p, "dd-a"))-len(all))
}
