package forwarder

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
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
	// Exactly once holds while no request is given up on: on a loaded
	// machine (the race detector's) a 2s request or 5s batch timeout is
	// hit, and a resend after one is at-least-once's duplicate.
	p.requestTimeout = 30 * time.Second
	p.Cfg.Delivery.SendTimeout = time.Minute
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
	p.WaitCommitted() // a duplicate would have landed by now
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
	p.start()
	ids := p.publish([]string{"acc-00"}, 300)["acc-00"]
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
			if h.Key == deadletter.HeaderConnection && string(h.Value) != "dd-a" {
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
		if h[deadletter.HeaderDLQReason] == "" || h[deadletter.HeaderSourceTopic] != "audit.events" || h[deadletter.HeaderSourceOffset] == "" {
			t.Fatalf("dead letter headers %v", h)
		}
	}
}

// Two forwarder instances, with partitions moving between them while the
// first still has requests out: the second sends the moved partitions'
// events again from the last commit, and the first drops what it still had
// queued for them. Nothing is lost, and the only duplicates are events the
// first was already sending. Each instance has an intake of its own, so
// the test sees who sent what.
func TestTwoInstancesWithRebalanceLoseNothing(t *testing.T) {
	p := newPipeline(t, "dd-a")
	// Batches small against the backlog, and a hand-over that does not wait
	// for the first instance's slow requests to be answered.
	p.Cfg.Delivery.Batch = sink.BatchPolicy{Count: 100, Bytes: 4 << 20, Period: 20 * time.Millisecond}
	p.Cfg.Delivery.RevokeTimeout = 200 * time.Millisecond
	p.writeRoutes(map[string][]string{"*": {"dd-a"}})
	intakeA := p.intake
	intakeA.Slow(1500 * time.Millisecond) // under the 2s request timeout
	stopFirst := p.start()
	accs := forwardingtest.Accounts(10)
	first := p.publish(accs, 300)
	forwardingtest.WaitFor(t, "the first instance to have requests out", 10*time.Second, func() bool { return intakeA.MaxInFlight() > 0 })
	if n := intakeA.Count("dd-a"); n != 0 {
		t.Fatalf("the slow intake accepted %d logs before the hand-over; want them all outstanding", n)
	}

	intakeB := ddfake.New("dd-a")
	t.Cleanup(intakeB.Close)
	p.intake = intakeB
	p.Cfg.Destinations.File = filepath.Join(t.TempDir(), "destinations.yaml")
	p.writeRoutes(map[string][]string{"*": {"dd-a"}})
	stopSecond := p.start() // partitions move away from the first instance
	second := p.publish(accs, 100)
	firstSet := map[string]bool{}
	for _, ids := range first {
		for _, id := range ids {
			firstSet[id] = true
		}
	}
	idsOf := func(s *ddfake.Server) []string {
		var ids []string
		for _, log := range s.Logs("dd-a") {
			id, _ := log["audit-id"].(string)
			ids = append(ids, id)
		}
		return ids
	}
	forwardingtest.WaitFor(t, "the second instance to send events the first held unfinished", 30*time.Second, func() bool {
		for _, id := range idsOf(intakeB) {
			if firstSet[id] {
				return true
			}
		}
		return false
	})
	// Both instances deliver all they own, the first its requests from
	// before the hand-over included (those of moved partitions are the
	// duplicates); then the first leaves and its partitions move again.
	intakeA.Slow(0)
	var all []string
	delivered := func(batches ...map[string][]string) func() bool {
		var want []string
		for _, b := range batches {
			for _, ids := range b {
				want = append(want, ids...)
			}
		}
		return func() bool {
			got := forwardingtest.Counts(idsOf(intakeB))
			for _, id := range idsOf(intakeA) {
				got[id]++
			}
			for _, id := range want {
				if got[id] == 0 {
					return false
				}
			}
			return true
		}
	}
	forwardingtest.WaitFor(t, "every event of the first two batches", 60*time.Second, delivered(first, second))
	stopFirst()
	third := p.publish(accs, 100)
	forwardingtest.WaitFor(t, "every event after the first instance left", 60*time.Second, delivered(first, second, third))
	stopSecond()
	for _, b := range []map[string][]string{first, second, third} {
		for _, ids := range b {
			all = append(all, ids...)
		}
	}

	fromA, fromB := forwardingtest.Counts(idsOf(intakeA)), forwardingtest.Counts(idsOf(intakeB))
	moved := 0
	for id := range firstSet {
		if fromB[id] > 0 {
			moved++
		}
	}
	var dups int
	for _, id := range all {
		switch n := fromA[id] + fromB[id]; {
		case n == 0:
			t.Fatalf("lost %s", id)
		case n > 1:
			dups++
		}
	}
	// At the hand-over the first instance had at most RequestsInFlight
	// batches out and one more flushed on revoke; the rest of what it held
	// of the moved partitions it must drop, not send.
	bound := (p.Cfg.Delivery.RequestsInFlight + 1) * p.Cfg.Delivery.Batch.Count
	if dups > bound {
		t.Fatalf("%d events delivered twice; the first instance had at most %d out when its partitions moved", dups, bound)
	}
	t.Logf("%d events; %d of the first batch sent by the second instance, %d duplicates (bound %d)", len(all), moved, dups, bound)
}
