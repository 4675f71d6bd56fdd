package forwarder

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Entries 3 and 7 of a call fail with ThrottlingException: only those two
// are sent again, and every event ends delivered exactly once.
func TestPartialFailureResendsOnlyTheFailedEntries(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
	p.bus.FailEntries(func(call, i int, _ ebfake.Entry) string {
		if call == 0 && (i == 3 || i == 7) {
			return "ThrottlingException"
		}
		return ""
	})
	p.start()
	ids := p.publish([]string{"acc-00"}, 100)["acc-00"]
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
	got := forwardingtest.Counts(p.ids("eb-a"))
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times, want exactly once", id, got[id])
		}
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d dead letters for throttled entries", n)
	}
}

// A storm of 500s and throttled calls, then recovery: everything arrives.
func TestServerErrorStormThenRecovery(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
	p.bus.FailNext(25, http.StatusInternalServerError, "", "")
	p.bus.Throttle(10)
	p.start()
	ids := p.publish(forwardingtest.Accounts(5), 200)
	var all []string
	for _, v := range ids {
		all = append(all, v...)
	}
	forwardingtest.WaitFor(t, "all events after the storm", 60*time.Second, func() bool { return len(forwardingtest.Counts(p.ids("eb-a"))) >= len(all) })
	got := forwardingtest.Counts(p.ids("eb-a"))
	for _, id := range all {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
	var failed, throttled int
	for _, c := range p.bus.Calls() {
		switch c.ErrorType {
		case "InternalException":
			failed++
		case "ThrottlingException":
			throttled++
		}
	}
	if failed != 25 || throttled != 10 {
		t.Fatalf("the fake answered 500 %d times and throttled %d, want 25 and 10", failed, throttled)
	}
	if dups := len(p.ids("eb-a")) - len(all); dups != 0 {
		t.Errorf("%d duplicates: a failed call delivers nothing, so none are expected", dups)
	}
}

// Account A's bus denies PutEvents; account B keeps flowing within seconds,
// and A's events are parked, not dropped or dead-lettered, until the
// permission is fixed.
func TestDeniedBusDoesNotStallOtherAccounts(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"acc-a": {"eb-a"}, "acc-b": {"eb-b"}})
	p.bus.DenyBus("eb-a")
	p.start()
	start := time.Now()
	ids := p.publish([]string{"acc-a", "acc-b"}, 500)
	forwardingtest.WaitFor(t, "account B delivered", 5*time.Second, func() bool { return p.bus.Count("eb-b") >= 500 })
	t.Logf("account B's 500 events arrived %s after publishing while A's bus was denied", time.Since(start).Round(time.Millisecond))
	parked := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, 500, 20*time.Second)
	parkedIDs := map[string]bool{}
	for _, rec := range parked {
		if c := headers(rec)[deadletter.HeaderConnection]; c != "eb-a" {
			t.Fatalf("parked for %q", c)
		}
		parkedIDs[recordEventID(t, rec)] = true
	}
	for _, id := range ids["acc-a"] {
		if !parkedIDs[id] {
			t.Fatalf("event %s of the denied bus was neither delivered nor parked", id)
		}
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d records dead-lettered; AccessDenied must park", n)
	}
	// the customer fixes the bus policy: parked events are delivered
	p.bus.AllowBus("eb-a")
	forwardingtest.WaitFor(t, "parked events delivered once the bus allows", 30*time.Second, func() bool { return len(forwardingtest.Counts(p.ids("eb-a"))) >= 500 })
}

// Poison records on the topic are dead-lettered; the rest is delivered.
func TestPoisonRecordsAreDeadLettered(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
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
	forwardingtest.WaitFor(t, "good events", 20*time.Second, func() bool { return p.bus.Count("eb-a") >= len(ids["acc-00"]) })
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 3, 10*time.Second)
	if len(dlq) != 3 {
		t.Fatalf("dead-lettered %d, want 3", len(dlq))
	}
	for _, rec := range dlq {
		h := headers(rec)
		if h[deadletter.HeaderDLQReason] == "" || h[deadletter.HeaderSourceTopic] != "audit.events" || h[deadletter.HeaderSourceOffset] == "" || h[deadletter.HeaderForwarder] != Name {
			t.Fatalf("dead letter headers %v", h)
		}
	}
}

// A 300 KB event cannot be carried by any PutEvents call: it goes to the
// dead-letter topic with the reason, and the events around it are
// delivered.
func TestOversizedEventIsDeadLetteredWithReason(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
	p.start()
	ids := p.publishEvents([]string{"acc-00"}, 21, func(i int, ev *auditlogv1.AuditEvent) {
		if i == 10 {
			ev.Extra = map[string]string{"blob": strings.Repeat("x", 300<<10)}
		}
	})["acc-00"]
	forwardingtest.WaitFor(t, "the other events", 20*time.Second, func() bool { return p.bus.Count("eb-a") >= 20 })
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 10*time.Second)
	if len(dlq) != 1 {
		t.Fatalf("dead-lettered %d, want the one 300 KB event", len(dlq))
	}
	h := headers(dlq[0])
	if recordEventID(t, dlq[0]) != ids[10] || h[deadletter.HeaderDLQReason] != "encode_failed" || h[deadletter.HeaderConnection] != "eb-a" ||
		!strings.Contains(h[deadletter.HeaderDLQError], "entry_too_large") {
		t.Fatalf("dead letter of %s: headers %v", recordEventID(t, dlq[0]), h)
	}
	p.WaitCommitted()
	got := forwardingtest.Counts(p.ids("eb-a"))
	if len(got) != 20 || got[ids[10]] != 0 {
		t.Fatalf("delivered %d distinct events, want the 20 others", len(got))
	}
	for _, c := range p.bus.Calls() {
		if c.Status != http.StatusOK {
			t.Fatalf("a call was refused (%d %s): the large event must never be sent", c.Status, c.ErrorType)
		}
	}
}

// EventBridge refuses some entries for good (MalformedDetail): exactly
// those are dead-lettered with the code; the rest is delivered once.
func TestRejectedEntriesAreDeadLettered(t *testing.T) {
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
	p.bus.FailEntries(func(_, _ int, e ebfake.Entry) string {
		if strings.Contains(e.Detail, `"action":"action-3"`) {
			return "MalformedDetail"
		}
		return ""
	})
	p.start()
	ids := p.publish([]string{"acc-00"}, 70)["acc-00"] // actions cycle over 7 values: 10 are refused
	refused := map[string]bool{}
	for i, id := range ids {
		if i%7 == 3 {
			refused[id] = true
		}
	}
	forwardingtest.WaitFor(t, "good entries", 20*time.Second, func() bool { return p.bus.Count("eb-a") >= 60 })
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 10, 20*time.Second)
	if len(dlq) != 10 {
		t.Fatalf("dead-lettered %d, want the 10 refused entries", len(dlq))
	}
	for _, rec := range dlq {
		h := headers(rec)
		if h[deadletter.HeaderConnection] != "eb-a" || h[deadletter.HeaderDLQReason] != "rejected" || !strings.Contains(h[deadletter.HeaderDLQError], "MalformedDetail") {
			t.Fatalf("dead letter headers %v", h)
		}
		id := recordEventID(t, rec)
		if !refused[id] {
			t.Fatalf("dead-lettered %s, which the bus did not refuse", id)
		}
		delete(refused, id)
	}
	if len(refused) != 0 {
		t.Fatalf("%d refused events not dead-lettered", len(refused))
	}
	p.WaitCommitted()
	got := forwardingtest.Counts(p.ids("eb-a"))
	for i, id := range ids {
		if want := map[bool]int{true: 0, false: 1}[i%7 == 3]; got[id] != want {
			t.Fatalf("event %d (%s) delivered %d times, want %d", i, id, got[id], want)
		}
	}
	if n := p.bus.Count("eb-a"); n != 60 {
		t.Fatalf("delivered %d, want exactly the 60 good entries", n)
	}
}

// Two forwarder instances, with partitions moving between them while the
// first still has calls out: the second sends the moved partitions' events
// again from the last commit, and the first drops what it still had queued
// for them. Nothing is lost, and the only duplicates are events the first
// was already sending. Each instance has a bus fake of its own, so the
// test sees who sent what.
func TestTwoInstancesWithRebalanceLoseNothing(t *testing.T) {
	p := newPipeline(t)
	// Batches small against the backlog, and a hand-over that does not wait
	// for the first instance's slow calls to be answered.
	p.Cfg.Delivery.Batch = sink.BatchPolicy{Count: 100, Bytes: 4 << 20, Period: 20 * time.Millisecond}
	p.Cfg.Delivery.RevokeTimeout = 200 * time.Millisecond
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
	busA := p.bus
	busA.Slow(1500 * time.Millisecond) // under the call timeout
	stopFirst := p.start()
	accs := forwardingtest.Accounts(10)
	first := p.publish(accs, 300)
	forwardingtest.WaitFor(t, "the first instance to have calls out", 10*time.Second, func() bool { return busA.MaxInFlight() > 0 })
	if n := busA.Count("eb-a"); n != 0 {
		t.Fatalf("the slow bus accepted %d entries before the hand-over; want them all outstanding", n)
	}

	busB := ebfake.New()
	t.Cleanup(busB.Close)
	busB.AddKey(ebfake.Key{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: testSessionToken})
	busB.RequireKnownKeys(true)
	p.bus = busB
	p.Cfg.Destinations.File = filepath.Join(t.TempDir(), "destinations.yaml")
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
	stopSecond := p.start() // partitions move away from the first instance
	second := p.publish(accs, 100)
	firstSet := map[string]bool{}
	for _, ids := range first {
		for _, id := range ids {
			firstSet[id] = true
		}
	}
	idsOf := func(s *ebfake.Server) []string {
		var ids []string
		for _, e := range s.Entries("eb-a") {
			ids = append(ids, parseDetail(t, e.Detail).ID)
		}
		return ids
	}
	forwardingtest.WaitFor(t, "the second instance to send events the first held unfinished", 30*time.Second, func() bool {
		for _, id := range idsOf(busB) {
			if firstSet[id] {
				return true
			}
		}
		return false
	})
	// Both instances deliver all they own, the first its calls from before
	// the hand-over included (those of moved partitions are the
	// duplicates); then the first leaves and its partitions move again.
	busA.Slow(0)
	delivered := func(batches ...map[string][]string) func() bool {
		var want []string
		for _, b := range batches {
			for _, ids := range b {
				want = append(want, ids...)
			}
		}
		return func() bool {
			got := forwardingtest.Counts(idsOf(busB))
			for _, id := range idsOf(busA) {
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

	var all []string
	for _, b := range []map[string][]string{first, second, third} {
		for _, ids := range b {
			all = append(all, ids...)
		}
	}
	fromA, fromB := forwardingtest.Counts(idsOf(busA)), forwardingtest.Counts(idsOf(busB))
	moved := 0
	for id := range firstSet {
		if fromB[id] > 0 {
			moved++
		}
	}
	dups := 0
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

// The bus answers slower than the call timeout: calls time out, are
// retried, and once it is fast again everything arrives.
func TestSlowBusTimesOutAndRetries(t *testing.T) {
	p := newPipeline(t)
	p.callTimeout = 2 * time.Second
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
	p.bus.Slow(3 * time.Second)
	p.start()
	ids := p.publish([]string{"acc-00"}, 30)["acc-00"]
	forwardingtest.WaitFor(t, "a call the forwarder gave up on", 20*time.Second, func() bool {
		return slices.ContainsFunc(p.bus.Calls(), func(c ebfake.Call) bool { return c.Status == 0 })
	})
	p.bus.Slow(0)
	forwardingtest.WaitFor(t, "all entries after the bus sped up", 30*time.Second, func() bool { return len(forwardingtest.Counts(p.ids("eb-a"))) >= len(ids) })
	// The calls the forwarder gave up on: the fake records them answered
	// with nothing (status 0) once the client has gone.
	abandoned := 0
	for _, c := range p.bus.Calls() {
		if c.Status == 0 {
			abandoned++
		}
	}
	if abandoned == 0 {
		t.Fatalf("no call timed out (%d calls): the test did not make the forwarder give up on one", len(p.bus.Calls()))
	}
	// An abandoned call delivered nothing, so its entries, sent again, each
	// arrive once.
	got := forwardingtest.Counts(p.ids("eb-a"))
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times after %d timed-out calls, want once", id, got[id], abandoned)
		}
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), "audit.events.dlq", 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d dead letters; a timed-out call is retried, not rejected", n)
	}
}
