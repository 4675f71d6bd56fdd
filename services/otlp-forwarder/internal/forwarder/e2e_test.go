package forwarder

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// 6k events across 30 accounts and several routes: every event reaches
// exactly its account's connections, once, under its account's resource,
// and no other connection.
func TestEndToEndEveryEventReachesExactlyItsAccountsConnections(t *testing.T) {
	accounts := forwardingtest.Accounts(30)
	routes := map[string][]string{}
	want := map[string]map[string]bool{} // connection → accounts routed to it
	var conns []string
	for i, acc := range accounts {
		routes[acc] = []string{fmt.Sprintf("otlp-%d", i%5)}
		if i < 5 {
			routes[acc] = append(routes[acc], "otlp-extra")
		}
		for _, c := range routes[acc] {
			if want[c] == nil {
				want[c] = map[string]bool{}
				conns = append(conns, c)
			}
			want[c][acc] = true
		}
	}
	p := newPipeline(t)
	// Exactly once holds while no request is given up on (see the Datadog
	// forwarder's test of the same name).
	p.requestTimeout = 30 * time.Second
	p.Cfg.Delivery.SendTimeout = time.Minute
	p.writeRoutes(routes)
	p.start()
	ids := p.publish(accounts, 200)

	expected := map[string]int{}
	for c, accs := range want {
		for acc := range accs {
			expected[c] += len(ids[acc])
		}
	}
	for c, n := range expected {
		forwardingtest.WaitFor(t, "delivery to "+c, 60*time.Second, func() bool { return p.rcv.Accepted(c) >= n })
	}
	p.WaitCommitted()
	for _, c := range conns {
		gotIDs, gotAccounts := p.received(c)
		if len(gotIDs) != expected[c] {
			t.Errorf("%s received %d records, want %d", c, len(gotIDs), expected[c])
		}
		for _, acc := range gotAccounts {
			if !want[c][acc] {
				t.Fatalf("connection %s received a record of account %q, which does not route to it", c, acc)
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
	for _, r := range p.rcv.Requests() {
		if r.ContentType != "application/x-protobuf" || r.ContentEncoding != "gzip" {
			t.Fatalf("request sent as %q %q, want the defaults protobuf and gzip", r.ContentType, r.ContentEncoding)
		}
	}
}

// A 503 storm, then recovery: everything arrives.
func TestServiceUnavailableStormThenRecovery(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"otlp-a"}})
	p.rcv.FailNext(25, http.StatusServiceUnavailable, nil)
	p.start()
	ids := p.publish(forwardingtest.Accounts(5), 200)
	all := slices.Concat(ids["acc-00"], ids["acc-01"], ids["acc-02"], ids["acc-03"], ids["acc-04"])
	forwardingtest.WaitFor(t, "all events after the storm", 60*time.Second, func() bool { return len(forwardingtest.Counts(mustIDs(p, "otlp-a"))) >= len(all) })
	got := forwardingtest.Counts(mustIDs(p, "otlp-a"))
	for _, id := range all {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
	failed := 0
	for _, r := range p.rcv.Requests() {
		if r.Status == http.StatusServiceUnavailable {
			failed++
		}
	}
	if failed != 25 {
		t.Fatalf("the receiver answered 503 %d times, want 25", failed)
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d dead letters after a 503 storm", n)
	}
}

// 429 with Retry-After: the forwarder waits as told, then delivers all
// exactly once.
func TestRateLimitedBacksOffAndDelivers(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"otlp-a"}})
	p.rcv.FailNext(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
	p.start()
	ids := p.publish([]string{"acc-00"}, 300)["acc-00"]
	forwardingtest.WaitFor(t, "all events after 429", 30*time.Second, func() bool { return len(forwardingtest.Counts(mustIDs(p, "otlp-a"))) >= len(ids) })
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
	got := forwardingtest.Counts(mustIDs(p, "otlp-a"))
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times: a 429 must not lose or duplicate", id, got[id])
		}
	}
}

// Account A's receiver answers 401 forever; account B keeps flowing, and
// A's events are parked, not dropped or dead-lettered. Once the token is
// fixed they are delivered.
func TestUnauthorizedConnectionDoesNotStallOtherAccounts(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"acc-a": {"otlp-a"}, "acc-b": {"otlp-b"}})
	p.rcv.Always("otlp-a", http.StatusUnauthorized, nil)
	p.start()
	start := time.Now()
	ids := p.publish([]string{"acc-a", "acc-b"}, 500)
	forwardingtest.WaitFor(t, "account B delivered", 10*time.Second, func() bool { return p.rcv.Accepted("otlp-b") >= 500 })
	t.Logf("account B's 500 events arrived %s after publishing while A's receiver refused", time.Since(start).Round(time.Millisecond))
	parked := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, 500, 20*time.Second)
	parkedIDs := map[string]bool{}
	for _, rec := range parked {
		if c := headers(rec)[deadletter.HeaderConnection]; c != "otlp-a" {
			t.Fatalf("parked for %q", c)
		}
		parkedIDs[recordEventID(t, rec)] = true
	}
	for _, id := range ids["acc-a"] {
		if !parkedIDs[id] {
			t.Fatalf("event %s of the refused account was neither delivered nor parked", id)
		}
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d records dead-lettered; a 401 must park", n)
	}
	p.rcv.Always("otlp-a", 0, nil) // the admin fixes the token
	forwardingtest.WaitFor(t, "parked events delivered once the token works", 30*time.Second, func() bool {
		return len(forwardingtest.Counts(mustIDs(p, "otlp-a"))) >= 500
	})
}

// Poison records on the topic are dead-lettered; the rest is delivered.
func TestPoisonRecordsAreDeadLettered(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"otlp-a"}})
	poison := []*kgo.Record{
		{Topic: "audit.events", Key: []byte("acc-00"), Value: []byte{0xff, 0x00, 0x13}},
		{Topic: "audit.events", Key: []byte("acc-00"), Value: []byte(`{"target":{"context":{"account":{"id":"acc-00"}}},"timestamp":"yesterday"}`)},
		{Topic: "audit.events", Key: []byte("acc-00"), Value: []byte(`{"hostname":"no account"}`)},
	}
	if err := p.Cluster.Client().ProduceSync(context.Background(), poison...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.start()
	ids := p.publish([]string{"acc-00"}, 100)
	forwardingtest.WaitFor(t, "good events", 20*time.Second, func() bool { return p.rcv.Accepted("otlp-a") >= len(ids["acc-00"]) })
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 3, 10*time.Second)
	if len(dlq) != 3 {
		t.Fatalf("dead-lettered %d, want 3", len(dlq))
	}
	for _, rec := range dlq {
		h := headers(rec)
		if h[deadletter.HeaderDLQReason] == "" || h[deadletter.HeaderSourceTopic] != "audit.events" || h[deadletter.HeaderSourceOffset] == "" {
			t.Fatalf("dead letter headers %v", h)
		}
	}
}

// receivedOnce fails unless every id arrived at conn exactly once.
func receivedOnce(t *testing.T, p *pipeline, conn string, ids []string) {
	t.Helper()
	got := forwardingtest.Counts(mustIDs(p, conn))
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times, want once", id, got[id])
		}
	}
}
