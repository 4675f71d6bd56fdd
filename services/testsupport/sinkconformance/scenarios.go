package sinkconformance

import (
	"cmp"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// 10k events across 50 accounts and several routes: every event reaches
// exactly its account's connections, once, and no other connection.
func testEndToEnd(t *testing.T, a Adapter) {
	accounts := forwardingtest.Accounts(50)
	routes := map[string][]string{}
	want := map[string]map[string]bool{} // connection → accounts routed to it
	var conns []string
	for i, acc := range accounts {
		routes[acc] = []string{fmt.Sprintf("conn-%d", i%10)}
		if i < 10 {
			routes[acc] = append(routes[acc], "conn-extra") // a second route for some accounts
		}
		for _, c := range routes[acc] {
			if want[c] == nil {
				want[c] = map[string]bool{}
				conns = append(conns, c)
			}
			want[c][acc] = true
		}
	}
	p := newPipeline(t, a)
	// Exactly once holds while no request is given up on: on a loaded
	// machine (the race detector's) a short request or batch timeout is
	// hit, and a resend after one is at-least-once's duplicate.
	p.Timeout = 30 * time.Second
	p.Cfg.Delivery.SendTimeout = time.Minute
	p.WriteRoutes(routes)
	p.StartForwarder()
	sent := p.PublishEvents(accounts, 200, nil) // 50 × 200 = 10,000 events

	expected := map[string]int{}
	for c, accs := range want {
		for acc := range accs {
			expected[c] += len(sent[acc])
		}
	}
	for c, n := range expected {
		forwardingtest.WaitFor(t, "delivery to "+c, 60*time.Second, func() bool { return count(p.Fake, c) >= n })
	}
	p.WaitCommitted() // a duplicate would have landed by now
	total := 0
	for _, c := range conns {
		got := p.Fake.Accepted(c)
		total += len(got)
		if len(got) != expected[c] {
			t.Errorf("%s received %d entries, want %d", c, len(got), expected[c])
		}
		for _, e := range got {
			if !want[c][e.Account] {
				t.Fatalf("connection %s received an event of account %s, which does not route to it", c, e.Account)
			}
		}
		seen := forwardingtest.Counts(ids(p.Fake, c))
		for acc := range want[c] {
			for _, id := range sent[acc] {
				if seen[id] != 1 {
					t.Fatalf("%s: event %s of %s delivered %d times, want exactly once", c, id, acc, seen[id])
				}
			}
		}
	}
	p.Fake.CheckRequests(t)
	t.Logf("%d events, %d entries delivered across %d connections (at most %d requests in flight)", 10000, total, len(conns), p.Fake.MaxInFlight())
}

// A route added or changed in the destinations file applies to the next
// events without a restart.
func testReload(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	p.WriteRoutes(map[string][]string{"acc-00": {"conn-a"}})
	p.StartForwarder()
	before := p.PublishEvents([]string{"acc-00"}, 50, nil)
	forwardingtest.WaitFor(t, "first route", 10*time.Second, func() bool { return count(p.Fake, "conn-a") >= 50 })

	p.WriteRoutes(map[string][]string{"acc-00": {"conn-b"}})
	p.WaitDestinations()
	after := p.PublishEvents([]string{"acc-00"}, 50, nil)
	forwardingtest.WaitFor(t, "new route", 10*time.Second, func() bool { return count(p.Fake, "conn-b") >= 50 })
	p.WaitCommitted()
	if n := count(p.Fake, "conn-a"); n != 50 {
		t.Fatalf("the old connection received %d entries after the route moved, want 50 (only those before)", n)
	}
	got := forwardingtest.Counts(ids(p.Fake, "conn-b"))
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

// A storm of server errors and throttled requests, then recovery:
// everything arrives, and only once, since a failed request delivers
// nothing.
func testStorm(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	p.WriteRoutes(map[string][]string{"*": {"conn-a"}})
	p.Fake.ServerErrors(25)
	p.Fake.Throttle(10)
	p.StartForwarder()
	sent := all(p.PublishEvents(forwardingtest.Accounts(5), 200, nil))
	forwardingtest.WaitFor(t, "all events after the storm", 60*time.Second, func() bool { return distinct(p.Fake, "conn-a") >= len(sent) })
	got := forwardingtest.Counts(ids(p.Fake, "conn-a"))
	for _, id := range sent {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
	if f := p.Fake.Failures(); f.ServerErrors != 25 || f.Throttled != 10 {
		t.Fatalf("the fake answered %d server errors and throttled %d, want 25 and 10", f.ServerErrors, f.Throttled)
	}
	if dups := count(p.Fake, "conn-a") - len(sent); dups != 0 {
		t.Errorf("%d duplicates: a failed request delivers nothing, so none are expected", dups)
	}
}

// Account A's connection is refused for good until the customer fixes it;
// account B keeps flowing within seconds, and A's events are parked, not
// dropped or dead-lettered, then delivered once it works.
func testRefused(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	p.WriteRoutes(map[string][]string{"acc-a": {"conn-a"}, "acc-b": {"conn-b"}})
	p.Fake.Refuse("conn-a")
	p.StartForwarder()
	start := time.Now()
	sent := p.PublishEvents([]string{"acc-a", "acc-b"}, 500, nil)
	forwardingtest.WaitFor(t, "account B delivered", 5*time.Second, func() bool { return count(p.Fake, "conn-b") >= 500 })
	t.Logf("account B's 500 events arrived %s after publishing while A's connection was refused", time.Since(start).Round(time.Millisecond))
	parked := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Delivery.RetryTopic.Name, 500, 20*time.Second)
	parkedIDs := map[string]bool{}
	for _, rec := range parked {
		if c := deadletter.Read(rec).Connection; c != "conn-a" {
			t.Fatalf("parked for %q", c)
		}
		parkedIDs[recordEventID(t, rec)] = true
	}
	for _, id := range sent["acc-a"] {
		if !parkedIDs[id] {
			t.Fatalf("event %s of the refused connection was neither delivered nor parked", id)
		}
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Kafka.Topics.DeadLetter.Name, 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d records dead-lettered; a refused connection must park", n)
	}
	p.Fake.Allow("conn-a")
	forwardingtest.WaitFor(t, "parked events delivered once the connection works", 30*time.Second, func() bool { return distinct(p.Fake, "conn-a") >= 500 })
}

// Poison records on the topic are dead-lettered with where they came
// from; the rest is delivered.
func testPoison(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	p.WriteRoutes(map[string][]string{"*": {"conn-a"}})
	topic := p.Cfg.Kafka.Topics.Events.Name
	p.produce(
		&kgo.Record{Topic: topic, Key: []byte("acc-00"), Value: []byte{0xff, 0x00, 0x13}},
		&kgo.Record{Topic: topic, Key: []byte("acc-00"), Value: []byte(`{"target":{"context":{"account":{"id":"acc-00"}}},"timestamp":"yesterday"}`)},
		&kgo.Record{Topic: topic, Key: []byte("acc-00"), Value: []byte(`{"hostname":"no account"}`)},
	)
	p.StartForwarder()
	sent := p.PublishEvents([]string{"acc-00"}, 100, nil)
	forwardingtest.WaitFor(t, "good events", 20*time.Second, func() bool { return count(p.Fake, "conn-a") >= len(sent["acc-00"]) })
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Kafka.Topics.DeadLetter.Name, 3, 10*time.Second)
	if len(dlq) != 3 {
		t.Fatalf("dead-lettered %d, want 3", len(dlq))
	}
	for _, rec := range dlq {
		if d := deadletter.Read(rec); d.Reason == "" || d.SourceTopic != topic || d.Consumer != a.Spec.Name {
			t.Fatalf("dead letter %+v", d)
		}
	}
}

// The destination refuses some entries for good: the forwarder finds
// them, dead-letters exactly those with the destination's code, and
// delivers the rest once.
func testRejected(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	p.WriteRoutes(map[string][]string{"*": {"conn-a"}})
	p.Fake.RejectAction("action-3")
	p.StartForwarder()
	sent := p.PublishEvents([]string{"acc-00"}, 70, nil)["acc-00"] // actions cycle over 7 values: 10 are refused
	// Events i with i%7 == 3 carry action-3 (forwardingtest.TestEvent).
	refused := map[string]bool{}
	for i, id := range sent {
		if i%7 == 3 {
			refused[id] = true
		}
	}
	forwardingtest.WaitFor(t, "good entries", 20*time.Second, func() bool { return count(p.Fake, "conn-a") >= 60 })
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Kafka.Topics.DeadLetter.Name, 10, 20*time.Second)
	if len(dlq) != 10 {
		t.Fatalf("dead-lettered %d, want the 10 refused entries", len(dlq))
	}
	for _, rec := range dlq {
		if d := deadletter.Read(rec); d.Connection != "conn-a" || d.Reason != "rejected" || !strings.Contains(d.ErrorText(), a.RejectedError) {
			t.Fatalf("dead letter %+v", d)
		}
		id := recordEventID(t, rec)
		if !refused[id] {
			t.Fatalf("dead-lettered %s, which the destination did not refuse", id)
		}
		delete(refused, id)
	}
	if len(refused) != 0 {
		t.Fatalf("%d refused events not dead-lettered", len(refused))
	}
	p.WaitCommitted()
	got := forwardingtest.Counts(ids(p.Fake, "conn-a"))
	for i, id := range sent {
		if want := map[bool]int{true: 0, false: 1}[i%7 == 3]; got[id] != want {
			t.Fatalf("event %d (%s) delivered %d times, want %d", i, id, got[id], want)
		}
	}
	if n := count(p.Fake, "conn-a"); n != 60 {
		t.Fatalf("delivered %d, want exactly the 60 good entries", n)
	}
	// Dead-lettered events are counted for their connection, not as
	// undelivered.
	conn := map[string]string{"connection": "conn-a"}
	if n, _ := p.Metric("auditstream_delivery_connection_dead_lettered_total", conn); n != 10 {
		t.Fatalf("dead-lettered for conn-a: %g, want 10", n)
	}
	forwardingtest.WaitFor(t, "no undelivered event", 20*time.Second, func() bool {
		a, ok := p.Metric("auditstream_delivery_oldest_undelivered_seconds", conn)
		return ok && a == 0
	})
}

// An event whose entry is over every limit of the destination, though its
// record fits the topic: 600 KiB of quotes, each escaped in JSON, make an
// entry of over 1.2 MB. It goes to the dead-letter topic with the reason,
// is never sent, and the events around it are delivered.
func testOversized(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	p.WriteRoutes(map[string][]string{"*": {"conn-a"}})
	p.StartForwarder()
	sent := p.PublishEvents([]string{"acc-00"}, 21, func(i int, ev *auditlogv1.AuditEvent) {
		if i == 10 {
			ev.Extra = map[string]string{"blob": strings.Repeat(`"`, 600<<10)}
		}
	})["acc-00"]
	forwardingtest.WaitFor(t, "the other events", 20*time.Second, func() bool { return count(p.Fake, "conn-a") >= 20 })
	dlq := kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Kafka.Topics.DeadLetter.Name, 1, 10*time.Second)
	if len(dlq) != 1 {
		t.Fatalf("dead-lettered %d, want the one oversized event", len(dlq))
	}
	reason, text := cmp.Or(a.OversizeReason, "encode_failed"), cmp.Or(a.OversizeError, "entry_too_large")
	if d := deadletter.Read(dlq[0]); recordEventID(t, dlq[0]) != sent[10] || d.Reason != reason || d.Connection != "conn-a" ||
		!strings.Contains(d.ErrorText(), text) {
		t.Fatalf("dead letter of %s: %+v", recordEventID(t, dlq[0]), d)
	}
	p.WaitCommitted()
	got := forwardingtest.Counts(ids(p.Fake, "conn-a"))
	if len(got) != 20 || got[sent[10]] != 0 {
		t.Fatalf("delivered %d distinct events, want the 20 others", len(got))
	}
	if f := p.Fake.Failures(); f != (Failures{}) {
		t.Fatalf("requests failed (%+v): the large event must never be sent", f)
	}
}

// The destination answers slower than the request timeout: requests time
// out, are retried, and once it is fast again everything arrives once.
func testSlow(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	p.WriteRoutes(map[string][]string{"*": {"conn-a"}}) // timeout: 2s per request
	p.Fake.Slow(3 * time.Second)
	p.StartForwarder()
	sent := p.PublishEvents([]string{"acc-00"}, 30, nil)["acc-00"]
	forwardingtest.WaitFor(t, "a request the forwarder gave up on", 20*time.Second, func() bool { return p.Fake.Failures().Abandoned > 0 })
	p.Fake.Slow(0)
	forwardingtest.WaitFor(t, "all entries after the destination sped up", 30*time.Second, func() bool { return distinct(p.Fake, "conn-a") >= len(sent) })
	abandoned := p.Fake.Failures().Abandoned
	// An abandoned request delivered nothing, so its entries, sent again,
	// each arrive once.
	got := forwardingtest.Counts(ids(p.Fake, "conn-a"))
	for _, id := range sent {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times after %d timed-out requests, want once", id, got[id], abandoned)
		}
	}
	if n := len(kafkatest.ReadAll(t, p.Cluster.Brokers(), p.Cfg.Kafka.Topics.DeadLetter.Name, 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d dead letters; a timed-out request is retried, not rejected", n)
	}
}

// Two forwarder instances, with partitions moving between them while the
// first still has requests out: the second sends the moved partitions'
// events again from the last commit, and the first drops what it still had
// queued for them. Nothing is lost, and the only duplicates are events the
// first was already sending. Each instance has a fake of its own, so the
// test sees who sent what.
func testRebalance(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	// Batches small against the backlog, and a hand-over that does not wait
	// for the first instance's slow requests to be answered.
	p.Cfg.Delivery.Batch = sink.BatchPolicy{Count: 100, Bytes: 4 << 20, Period: 20 * time.Millisecond}
	p.Cfg.Delivery.RevokeTimeout = 200 * time.Millisecond
	p.WriteRoutes(map[string][]string{"*": {"conn-a"}})
	fakeA := p.Fake
	fakeA.Slow(1500 * time.Millisecond) // under the 2s request timeout
	stopFirst := p.StartForwarder()
	accs := forwardingtest.Accounts(10)
	first := p.PublishEvents(accs, 300, nil)
	forwardingtest.WaitFor(t, "the first instance to have requests out", 10*time.Second, func() bool { return fakeA.MaxInFlight() > 0 })
	if n := count(fakeA, "conn-a"); n != 0 {
		t.Fatalf("the slow fake accepted %d entries before the hand-over; want them all outstanding", n)
	}

	fakeB := a.NewFake(t)
	p.Fake = fakeB
	p.secondDestinations()
	p.WriteRoutes(map[string][]string{"*": {"conn-a"}})
	stopSecond := p.StartForwarder() // partitions move away from the first instance
	second := p.PublishEvents(accs, 100, nil)
	firstSet := map[string]bool{}
	for _, id := range all(first) {
		firstSet[id] = true
	}
	forwardingtest.WaitFor(t, "the second instance to send events the first held unfinished", 30*time.Second, func() bool {
		return slices.ContainsFunc(ids(fakeB, "conn-a"), func(id string) bool { return firstSet[id] })
	})
	// Both instances deliver all they own, the first its requests from
	// before the hand-over included (those of moved partitions are the
	// duplicates); then the first leaves and its partitions move again.
	fakeA.Slow(0)
	delivered := func(batches ...map[string][]string) func() bool {
		want := all(batches...)
		return func() bool {
			got := forwardingtest.Counts(append(ids(fakeA, "conn-a"), ids(fakeB, "conn-a")...))
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
	third := p.PublishEvents(accs, 100, nil)
	forwardingtest.WaitFor(t, "every event after the first instance left", 60*time.Second, delivered(first, second, third))
	stopSecond()

	everything := all(first, second, third)
	fromA, fromB := forwardingtest.Counts(ids(fakeA, "conn-a")), forwardingtest.Counts(ids(fakeB, "conn-a"))
	moved := 0
	for id := range firstSet {
		if fromB[id] > 0 {
			moved++
		}
	}
	dups := 0
	for _, id := range everything {
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
	t.Logf("%d events; %d of the first batch sent by the second instance, %d duplicates (bound %d)", len(everything), moved, dups, bound)
}

// kill -9 in the middle of delivery, then restart: nothing is lost, and the
// duplicates are bounded by what was in flight.
func testKilled(t *testing.T, a Adapter) {
	if testing.Short() {
		t.Skip("builds the forwarder binary")
	}
	bin := forwardingtest.BuildBinary(t, a.Binary)
	p := newPipeline(t, a)
	p.WriteRoutes(map[string][]string{"*": {"conn-a"}})
	p.Fake.Slow(20 * time.Millisecond) // keep requests in flight when the kill lands
	sent := all(p.PublishEvents(forwardingtest.Accounts(10), 600, nil))
	const inflightBytes = 256 << 10
	cfgFile := p.WriteProcessConfig("127.0.0.1:0", inflightBytes, "")
	startProcess := func() *exec.Cmd {
		return forwardingtest.StartProcess(t, nil, &forwardingtest.TestWriter{T: t, Prefix: "forwarder"}, bin, "--config", cfgFile)
	}
	first := startProcess()
	forwardingtest.WaitFor(t, "delivery under way", 30*time.Second, func() bool { return count(p.Fake, "conn-a") >= 1500 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := count(p.Fake, "conn-a")
	if atKill >= len(sent) {
		t.Fatalf("everything was delivered before the kill (%d); the test needs a slower fake", atKill)
	}

	startProcess()
	forwardingtest.WaitFor(t, "every event after the restart", 60*time.Second, func() bool { return distinct(p.Fake, "conn-a") >= len(sent) })
	accepted := ids(p.Fake, "conn-a")
	if n := count(p.Fake, "conn-a"); n != len(accepted) {
		t.Fatalf("the adapter's AcceptedCount says %d, its Accepted has %d entries", n, len(accepted))
	}
	got := forwardingtest.Counts(accepted)
	for _, id := range sent {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
	dups := len(accepted) - len(sent)
	window := a.DuplicateWindow(inflightBytes)
	t.Logf("%d events; %d delivered before the kill; %d duplicates after restart (window %d)", len(sent), atKill, dups, window)
	if dups > window {
		t.Fatalf("%d duplicates, more than one in-flight window (%d)", dups, window)
	}
}

// A throttled answer asking for 1s (429 with Retry-After: 1) to the first
// request: the refused entries are accepted no sooner than asked, and
// every event is delivered exactly once.
func testRetryAfter(t *testing.T, a Adapter) {
	p := newPipeline(t, a)
	f := p.Fake.(RetryAfterFake) // newPipeline checked it
	p.WriteRoutes(map[string][]string{"*": {"conn-a"}})
	const retryAfter = time.Second
	f.ThrottleRetryAfter(1, retryAfter)
	p.StartForwarder()
	sent := p.PublishEvents([]string{"acc-00"}, 300, nil)["acc-00"]
	forwardingtest.WaitFor(t, "all events after the throttled answer", 30*time.Second, func() bool { return distinct(p.Fake, "conn-a") >= len(sent) })
	answers := f.Answers()
	if !answers[0].Throttled {
		t.Fatalf("first answer %+v, want throttled", answers[0])
	}
	// The refused entries were sent again no sooner than Retry-After
	// asked, and the last accepted request carried some of them.
	var last time.Time
	for _, an := range answers[1:] {
		if an.Accepted && an.At.After(last) {
			last = an.At
		}
	}
	if wait := last.Sub(answers[0].At); wait < retryAfter {
		t.Fatalf("the last entries were accepted %s after the throttled answer; Retry-After asked for %s", wait, retryAfter)
	}
	got := forwardingtest.Counts(ids(p.Fake, "conn-a"))
	for _, id := range sent {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times: a throttled answer must not lose or duplicate", id, got[id])
		}
	}
}
