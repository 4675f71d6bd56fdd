package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/auditstream/auditstream/services/testsupport/testwait"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// memSink is a destination in memory: it records what it accepted and can
// be told to fail. The runtime's contract with sinks is an interface, so the
// runtime is tested against it directly; the forwarders test their sinks
// against HTTP fakes.
type memSink struct {
	mu       sync.Mutex
	got      []string      // event ids, in arrival order
	failWith error         // returned for every batch while set
	gate     chan struct{} // while set, WriteBatch waits for it to close
	reject   func(id string) bool
}

func (s *memSink) EncodeEntry(ev *auditlogv1.AuditEvent) (sink.Entry[[]byte], error) {
	b := []byte(ev.GetId())
	return sink.EntryOf(ev, b, len(b)), nil
}

func (s *memSink) WriteBatch(ctx context.Context, entries []sink.Entry[[]byte]) error {
	batch := values(entries)
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failWith != nil {
		return s.failWith
	}
	var be *sink.BatchError
	for i, e := range batch {
		if s.reject != nil && s.reject(string(e)) {
			if be == nil {
				be = sink.NewBatchError(len(batch))
			}
			be.Fail(i, &sink.SendError{Class: sink.Permanent, Status: 400, Err: fmt.Errorf("bad entry")})
			continue
		}
		s.got = append(s.got, string(e))
	}
	if be != nil {
		return be
	}
	return nil
}

func (s *memSink) setFail(err error) {
	s.mu.Lock()
	s.failWith = err
	s.mu.Unlock()
}

func (s *memSink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// staticRouter builds a destinations table: account → connection names.
func staticRouter(routes map[string][]string) Router {
	conns := map[string]bool{}
	var b strings.Builder
	b.WriteString("routes:\n")
	for acc, names := range routes {
		fmt.Fprintf(&b, "  - account: %q\n    connections: [%s]\n", acc, strings.Join(names, ", "))
		for _, n := range names {
			conns[n] = true
		}
	}
	b.WriteString("connections:\n")
	for n := range conns {
		fmt.Fprintf(&b, "  %s:\n    type: datadog\n", n)
	}
	table, err := destinations.Parse([]byte(b.String()))
	if err != nil {
		panic(fmt.Sprintf("routes %v: %v", routes, err))
	}
	return table
}

type rig struct {
	rt      *Runtime
	reg     *prometheus.Registry
	t       *testing.T
	cluster *kafkatest.Cluster
	kcfg    kafka.Config
	cfg     Config
	sinks   map[string]*memSink
	custom  map[string]sink.Destination[[]byte] // a connection's sink, instead of sinks'
	router  Router
	logs    *logBuffer // when set, captures the runtime's log lines too
}

// logBuffer collects log output for a test to search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (rg *rig) logger() *zap.Logger {
	l := zaptest.NewLogger(rg.t)
	if rg.logs == nil {
		return l
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(rg.logs), zapcore.DebugLevel)
	return zap.New(zapcore.NewTee(l.Core(), core))
}

func newRig(t *testing.T, router Router, conns ...string) *rig {
	t.Helper()
	cluster := kafkatest.New(t)
	kcfg := kafka.Default("test")
	kcfg.Brokers = cluster.Brokers()
	kcfg.Topics.Events.Partitions = 4
	kcfg.Topics.DeadLetter.Partitions = 1
	cfg := DefaultConfig("test")
	cfg.RetryTopic.Partitions = 2
	cfg.Batch = sink.BatchPolicy{Count: 100, Bytes: 1 << 20, Period: 20 * time.Millisecond}
	cfg.Backoff = sink.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2, Jitter: 0.1}
	cfg.RetryBudget = 200 * time.Millisecond
	cfg.ParkDelay = 300 * time.Millisecond
	cfg.UnhealthyProbe = 200 * time.Millisecond
	cfg.CommitInterval = 50 * time.Millisecond
	cfg.RevokeTimeout = 5 * time.Second
	rg := &rig{t: t, cluster: cluster, kcfg: kcfg, cfg: cfg, sinks: map[string]*memSink{}, router: router}
	for _, c := range conns {
		rg.sinks[c] = &memSink{}
	}
	// topics exist before producing, as ingest makes them in production
	cl := cluster.Client()
	if err := kafka.EnsureTopics(context.Background(), cl, kcfg.Topics.Events, kcfg.Topics.DeadLetter, cfg.RetryTopic); err != nil {
		t.Fatal(err)
	}
	return rg
}

func (rg *rig) registry() *prometheus.Registry {
	rg.reg = prometheus.NewRegistry()
	return rg.reg
}

// gauge reads a gauge of the last started runtime.
func (rg *rig) gauge(name string) float64 { return rg.gaugeOf(rg.reg, name) }

// gaugeOf reads a gauge of the runtime with registry reg.
func (rg *rig) gaugeOf(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		rg.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// counter sums a counter's series whose labels include want.
func (rg *rig) counter(name string, want map[string]string) float64 {
	mfs, err := rg.reg.Gather()
	if err != nil {
		rg.t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				total += m.GetCounter().GetValue()
			} else if m.GetGauge() != nil {
				total += m.GetGauge().GetValue()
			}
		}
	}
	return total
}

// start runs a runtime until the returned stop is called.
func (rg *rig) start() (stop func()) {
	rg.t.Helper()
	custom := rg.custom // this runtime's sinks, whatever a later start uses
	rt, err := New(Options{
		Name: "test", Config: rg.cfg, Kafka: rg.kcfg, Logger: rg.logger(), Registry: rg.registry(),
		Router: rg.router,
		NewSink: func(t *destinations.Connection) (EntrySink, error) {
			if s, ok := custom[t.Name]; ok {
				return NewEntrySink(s, s), nil
			}
			s, ok := rg.sinks[t.Name]
			if !ok {
				return nil, fmt.Errorf("no sink %s", t.Name)
			}
			return NewEntrySink(s, s), nil
		},
	})
	if err != nil {
		rg.t.Fatal(err)
	}
	rg.rt = rt
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					rg.t.Errorf("runtime: %v", err)
				}
			case <-time.After(30 * time.Second):
				rg.t.Error("runtime did not stop")
			}
		})
	}
	rg.t.Cleanup(stop)
	return stop
}

// publish writes n events per account and returns their ids by account.
func (rg *rig) publish(accounts []string, n int) map[string][]string {
	rg.t.Helper()
	cl := rg.cluster.Client()
	p := producer.New(cl, rg.kcfg.Topics.Events.Name)
	ids := map[string][]string{}
	var events []*auditlogv1.AuditEvent
	for i := range n {
		for _, acc := range accounts {
			events = append(events, &auditlogv1.AuditEvent{
				Request: &auditlogv1.Request{Action: fmt.Sprintf("action-%d", i)},
				Target:  &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: acc}}},
			})
		}
	}
	res, err := p.Publish(context.Background(), events)
	if err != nil {
		rg.t.Fatal(err)
	}
	for i, ev := range events {
		ids[auditevent.AccountID(ev)] = append(ids[auditevent.AccountID(ev)], res.IDs[i])
	}
	return ids
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, timeout, cond)
}

// waitCommitted waits until the runtime has committed every record of the
// events and retry topics: whatever it does with them has been done.
func (rg *rig) waitCommitted() {
	rg.t.Helper()
	rg.cluster.WaitCommitted(rg.t, 30*time.Second, rg.cfg.Group, rg.kcfg.Topics.Events.Name, rg.cfg.RetryTopic.Name)
}

func asSet(ids []string) map[string]int {
	m := map[string]int{}
	for _, id := range ids {
		m[id]++
	}
	return m
}

func TestRuntimeRoutesEachAccountOnlyToItsConnections(t *testing.T) {
	router := staticRouter(map[string][]string{"acc-a": {"a"}, "acc-b": {"b", "shared"}, "*": {"all"}})
	rg := newRig(t, router, "a", "b", "shared", "all")
	rg.start()
	ids := rg.publish([]string{"acc-a", "acc-b", "acc-c"}, 200)

	want := map[string][]string{
		"a":      ids["acc-a"],
		"b":      ids["acc-b"],
		"shared": ids["acc-b"],
		"all":    append(append(append([]string(nil), ids["acc-a"]...), ids["acc-b"]...), ids["acc-c"]...),
	}
	for name, w := range want {
		waitFor(t, "delivery to "+name, 20*time.Second, func() bool { return len(rg.sinks[name].ids()) >= len(w) })
	}
	rg.waitCommitted() // anything extra arrives before
	for name, w := range want {
		got := asSet(rg.sinks[name].ids())
		if len(got) != len(w) || len(rg.sinks[name].ids()) != len(w) {
			t.Errorf("%s: got %d entries (%d distinct), want %d exactly once", name, len(rg.sinks[name].ids()), len(got), len(w))
		}
		for _, id := range w {
			if got[id] != 1 {
				t.Errorf("%s: id %s delivered %d times", name, id, got[id])
				break
			}
		}
	}
}

func TestRuntimeDeadLettersPoisonRecordsAndKeepsGoing(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"*": {"all"}}), "all")
	cl := rg.cluster.Client()
	poison := []*kgo.Record{
		{Topic: "audit.events", Value: []byte("\x00\x01 not protobuf")},
		{Topic: "audit.events", Value: []byte(`{"actor": "wrong type"}`), Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}},
		{Topic: "audit.events", Value: []byte(`{}`), Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("text/plain")}}},
	}
	if err := cl.ProduceSync(context.Background(), poison...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	rg.start()
	ids := rg.publish([]string{"acc-a"}, 50)
	waitFor(t, "good events", 20*time.Second, func() bool { return len(rg.sinks["all"].ids()) >= len(ids["acc-a"]) })
	dlq := kafkatest.ReadAll(t, rg.cluster.Brokers(), "audit.events.dlq", 3, 10*time.Second)
	if len(dlq) != 3 {
		t.Fatalf("dead-lettered %d records, want 3", len(dlq))
	}
	for _, rec := range dlq {
		h := headerMap(rec)
		if h[deadletter.HeaderDLQReason] == "" || h[deadletter.HeaderSourceTopic] != "audit.events" || h[deadletter.HeaderSourceOffset] == "" || h[deadletter.HeaderSourcePartition] == "" {
			t.Errorf("dead letter headers incomplete: %v", h)
		}
	}
	reasons := map[string]bool{}
	for _, rec := range dlq {
		reasons[headerMap(rec)[deadletter.HeaderDLQReason]] = true
	}
	for _, want := range []string{auditevent.ReasonBadProtobuf, auditevent.ReasonWrongType, auditevent.ReasonBadContentType} {
		if !reasons[want] {
			t.Errorf("no dead letter with reason %s (got %v)", want, reasons)
		}
	}
}

// A protobuf record is routed by its account and decoded by the workers. A
// record whose account reads but which does not decode is dead-lettered
// once, however many connections it was routed to (one of them, whose sink
// cannot be built, parks its events before any worker sees them), and so
// is one of an account no connection wants; the partition keeps moving.
func TestRuntimeDeadLettersUndecodableRoutedRecordsOnce(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"acc-b": {"b", "shared", "broken"}}), "b", "shared")
	routed, unrouted := undecodableRecord(t, "acc-b"), undecodableRecord(t, "acc-z")
	for _, rec := range []*kgo.Record{routed, unrouted} {
		if acc, ok := auditevent.RecordAccount(rec); !ok {
			t.Fatalf("test record not scanned (account %q)", acc)
		}
		if _, err := auditevent.DecodeRecord(rec); err == nil {
			t.Fatal("test record decodes")
		}
	}
	if err := rg.cluster.Client().ProduceSync(context.Background(), routed, unrouted).FirstErr(); err != nil {
		t.Fatal(err)
	}
	rg.start()
	ids := rg.publish([]string{"acc-b"}, 20)
	for _, name := range []string{"b", "shared"} {
		waitFor(t, "delivery to "+name, 20*time.Second, func() bool { return len(rg.sinks[name].ids()) >= len(ids["acc-b"]) })
	}
	dlq := kafkatest.ReadAll(t, rg.cluster.Brokers(), "audit.events.dlq", 2, 10*time.Second)
	// a second dead letter, by a worker or by a parked copy read back
	// after park_delay, is written before the records are committed
	rg.waitCommitted()
	if more := kafkatest.ReadAll(t, rg.cluster.Brokers(), "audit.events.dlq", 3, time.Second); len(more) != 2 {
		t.Fatalf("dead letters: %d, want 2 (one per bad record)", len(more))
	}
	keys := map[string]bool{}
	for _, rec := range dlq {
		h := headerMap(rec)
		keys[string(rec.Key)] = true
		if h[deadletter.HeaderDLQReason] != auditevent.ReasonBadProtobuf || h[deadletter.HeaderConnection] != "" {
			t.Errorf("dead letter of %s: reason %q connection %q, want %q and none", rec.Key, h[deadletter.HeaderDLQReason], h[deadletter.HeaderConnection], auditevent.ReasonBadProtobuf)
		}
	}
	if !keys["acc-b-undecodable"] || !keys["acc-z-undecodable"] {
		t.Errorf("dead letters for %v, want the two undecodable records", keys)
	}
	// and neither went round the retry topic, where the broken
	// connection's events are parked
	for _, rec := range kafkatest.ReadAll(t, rg.cluster.Brokers(), rg.cfg.RetryTopic.Name, 1000, 2*time.Second) {
		if strings.HasSuffix(string(rec.Key), "-undecodable") {
			t.Errorf("undecodable record %s parked for %s", rec.Key, headerMap(rec)[deadletter.HeaderConnection])
		}
	}
}

// eventRecord is the record of a valid event of account.
func eventRecord(t *testing.T, account string) *kgo.Record {
	t.Helper()
	rec, err := auditevent.NewRecord("audit.events", &auditlogv1.AuditEvent{
		Id:        "ev-" + account,
		Request:   &auditlogv1.Request{Action: "a"},
		Timestamp: timestamppb.Now(),
		Target:    &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: account}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// undecodableRecord is the record of an event of account whose hostname
// (field 4) is given again, as invalid UTF-8: the last value wins, and
// proto3 refuses it. Its account still reads.
func undecodableRecord(t *testing.T, account string) *kgo.Record {
	rec := eventRecord(t, account)
	rec.Value = protowire.AppendBytes(protowire.AppendTag(rec.Value, 4, protowire.BytesType), []byte{0xff})
	rec.Key = []byte(account + "-undecodable")
	return rec
}

// The workers check each decoded event against the account it was routed
// by.
func TestSharedEventRefusesAnotherAccount(t *testing.T) {
	rec := eventRecord(t, "acc-a")
	s := &sharedEvent{account: "acc-b"}
	if ev, err := s.event(rec); ev != nil || !errors.Is(err, errAccountMismatch) || reasonFor(err) != reasonAccountMismatch {
		t.Fatalf("event = %v, %v (reason %s), want the mismatch", ev, err, reasonFor(err))
	}
	s = &sharedEvent{account: "acc-a"}
	s.encoders.Store(2)
	if ev, err := s.event(rec); err != nil || auditevent.AccountID(ev) != "acc-a" {
		t.Fatalf("event = %v, %v", ev, err)
	}
	s.encoded()
	if s.ev == nil {
		t.Fatal("event let go while a job still has to encode it")
	}
	s.encoded()
	if s.ev != nil {
		t.Fatal("event kept after every job encoded it")
	}
}

// A burst smaller than a batch goes out once the connection has been idle
// for batch.idle, not after batch.period; with idle off it waits the
// period out.
func TestRuntimeIdleFlushesTheEndOfABurst(t *testing.T) {
	const period = 3 * time.Second
	for _, idle := range []time.Duration{50 * time.Millisecond, 0} {
		t.Run(fmt.Sprintf("idle=%s", idle), func(t *testing.T) {
			rg := newRig(t, staticRouter(map[string][]string{"*": {"all"}}), "all")
			rg.cfg.Batch = sink.BatchPolicy{Count: 1000, Bytes: 1 << 20, Period: period, Idle: idle}
			rg.start()
			start := time.Now()
			ids := rg.publish([]string{"acc-a"}, 30)
			delivered := func() bool { return len(rg.sinks["all"].ids()) == len(ids["acc-a"]) }
			if idle > 0 {
				// consumer start-up included, well before the period
				waitFor(t, "the burst", period/2, delivered)
				t.Logf("burst delivered %s after it was published", time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(period / 2) // the behaviour: nothing goes out before the period
			if n := len(rg.sinks["all"].ids()); n != 0 {
				t.Fatalf("%d events delivered before the period with idle off", n)
			}
			waitFor(t, "the burst, after the period", 20*time.Second, delivered)
			if d := time.Since(start); d < period {
				t.Fatalf("burst delivered after %s, before the period", d)
			}
		})
	}
}

func headerMap(rec *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range rec.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestRuntimeParksFailingConnectionWithoutBlockingOthers(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"acc-bad": {"bad"}, "acc-good": {"good"}}), "bad", "good")
	rg.sinks["bad"].setFail(&sink.SendError{Class: sink.Retryable, Status: 500, Err: fmt.Errorf("intake down")})
	rg.start()
	ids := rg.publish([]string{"acc-bad", "acc-good"}, 100)
	waitFor(t, "good connection keeps delivering", 10*time.Second, func() bool { return len(rg.sinks["good"].ids()) >= 100 })
	parked := kafkatest.ReadAll(t, rg.cluster.Brokers(), rg.cfg.RetryTopic.Name, 100, 10*time.Second)
	if len(parked) < 100 {
		t.Fatalf("parked %d, want at least 100", len(parked))
	}
	h := headerMap(parked[0])
	if h[deadletter.HeaderConnection] != "bad" || h[deadletter.HeaderAttempt] == "" || h[deadletter.HeaderDue] == "" {
		t.Fatalf("retry headers: %v", h)
	}
	// the destination heals: every parked event arrives, none twice
	rg.sinks["bad"].setFail(nil)
	waitFor(t, "parked events delivered after recovery", 20*time.Second, func() bool { return len(asSet(rg.sinks["bad"].ids())) >= 100 })
	// A failed batch delivered nothing and each event was parked once, so
	// each arrives once; the good connection got its own events, once.
	for conn, want := range map[string][]string{"bad": ids["acc-bad"], "good": ids["acc-good"]} {
		got := asSet(rg.sinks[conn].ids())
		if len(got) != len(want) {
			t.Fatalf("connection %s got %d distinct events, want its %d", conn, len(got), len(want))
		}
		for _, id := range want {
			if got[id] != 1 {
				t.Fatalf("event %s delivered %d times to %s, want once", id, got[id], conn)
			}
		}
	}
}

func TestRuntimeUnhealthyConnectionParksNotDrops(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"acc-a": {"denied"}, "acc-b": {"ok"}}), "denied", "ok")
	rg.sinks["denied"].setFail(&sink.SendError{Class: sink.Unhealthy, Status: 403, Err: fmt.Errorf("forbidden")})
	rg.start()
	rg.publish([]string{"acc-a", "acc-b"}, 50)
	waitFor(t, "healthy account delivered", 10*time.Second, func() bool { return len(rg.sinks["ok"].ids()) >= 50 })
	parked := kafkatest.ReadAll(t, rg.cluster.Brokers(), rg.cfg.RetryTopic.Name, 50, 10*time.Second)
	if len(parked) < 50 {
		t.Fatalf("parked %d of 50 events of the unhealthy connection", len(parked))
	}
	for _, rec := range parked {
		if h := headerMap(rec); h[deadletter.HeaderConnection] != "denied" {
			t.Fatalf("parked for %q", h[deadletter.HeaderConnection])
		}
	}
	if n := len(kafkatest.ReadAll(t, rg.cluster.Brokers(), "audit.events.dlq", 1, 500*time.Millisecond)); n != 0 {
		t.Fatalf("%d events dead-lettered; an unhealthy connection must park them", n)
	}
}

func TestRuntimeDeadLettersRejectedEntriesAndDeliversTheRest(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"*": {"picky"}}), "picky")
	var bad sync.Map
	rg.sinks["picky"].reject = func(id string) bool { _, ok := bad.Load(id); return ok }
	ids := rg.publish([]string{"acc-a"}, 40)
	for _, id := range ids["acc-a"][:5] {
		bad.Store(id, true)
	}
	rg.start()
	waitFor(t, "good entries", 10*time.Second, func() bool { return len(rg.sinks["picky"].ids()) >= 35 })
	dlq := kafkatest.ReadAll(t, rg.cluster.Brokers(), "audit.events.dlq", 5, 10*time.Second)
	if len(dlq) != 5 {
		t.Fatalf("dead-lettered %d, want 5", len(dlq))
	}
	for _, rec := range dlq {
		if h := headerMap(rec); h[deadletter.HeaderConnection] != "picky" || h[deadletter.HeaderDLQReason] != reasonPermanent || !strings.Contains(h[deadletter.HeaderDLQError], "400") {
			t.Fatalf("dead letter headers %v", h)
		}
	}
}

func TestRuntimeRestartLosesNothing(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"*": {"all"}}), "all")
	stop := rg.start()
	first := rg.publish([]string{"acc-a", "acc-b"}, 300)
	waitFor(t, "some delivered", 10*time.Second, func() bool { return len(rg.sinks["all"].ids()) > 0 })
	stop()
	second := rg.publish([]string{"acc-a", "acc-b"}, 300)
	rg.start()
	all := append(append(append(first["acc-a"], first["acc-b"]...), second["acc-a"]...), second["acc-b"]...)
	waitFor(t, "everything delivered after restart", 20*time.Second, func() bool { return len(asSet(rg.sinks["all"].ids())) >= len(all) })
	got := asSet(rg.sinks["all"].ids())
	for _, id := range all {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
}

// A second member joins while the first has events out to a sink that does
// not answer: partitions move with those events outstanding, the new owner
// sends them again from the last commit, and the first member drops what
// it still had queued for them. Nothing is lost, and the only duplicates
// are the events the first member was already sending.
func TestRuntimeRebalanceBetweenTwoInstancesLosesNothing(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"*": {"all"}}), "all")
	rg.cfg.RevokeTimeout = time.Second // the stuck sends outlast it
	rg.cfg.RetryBudget = time.Minute
	rg.cfg.SendTimeout = time.Minute
	rg.cfg.BacklogMaxWait = time.Minute
	accounts := make([]string, 12) // over all 4 partitions
	for i := range accounts {
		accounts[i] = fmt.Sprintf("acc-%02d", i)
	}
	gate := make(chan struct{})
	a := &wireSink{memSink: &memSink{gate: gate}}
	rg.custom = map[string]sink.Destination[[]byte]{"all": a}
	stopFirst := rg.start()
	first := rg.publish(accounts, 200)
	regA := rg.reg
	// Each record holds its value, key and 64 bytes of MaxInflightBytes: the
	// first member has fetched at least half the batch and delivered none.
	waitFor(t, "the first member to hold the first batch, sending some", 20*time.Second, func() bool {
		return rg.gaugeOf(regA, "auditstream_delivery_inflight_bytes") >= float64(12*200*64) && len(a.holdingIDs()) > 0
	})
	sending := a.holdingIDs() // in WriteBatch calls that will not return before the hand-over

	b := &wireSink{memSink: &memSink{}}
	rg.custom = map[string]sink.Destination[[]byte]{"all": b}
	stopSecond := rg.start() // a second member joins: partitions move away from the first
	second := rg.publish(accounts, 200)
	firstSet := map[string]bool{}
	for _, ids := range first {
		for _, id := range ids {
			firstSet[id] = true
		}
	}
	waitFor(t, "the second member to send events of a partition the first held unfinished", 30*time.Second, func() bool {
		for _, id := range b.ids() {
			if firstSet[id] {
				return true
			}
		}
		return false
	})
	close(gate) // the first member's stuck sends complete: their events arrive twice
	stopFirst() // and it leaves: its partitions move again
	third := rg.publish(accounts, 200)
	var all []string
	for _, batch := range []map[string][]string{first, second, third} {
		for _, ids := range batch {
			all = append(all, ids...)
		}
	}
	waitFor(t, "every event after two rebalances", 30*time.Second, func() bool {
		got := asSet(b.ids())
		for _, id := range a.ids() {
			got[id]++
		}
		return len(got) >= len(all)
	})
	stopSecond()

	fromA, fromB := asSet(a.ids()), asSet(b.ids())
	moved := 0
	for id := range firstSet {
		if fromB[id] > 0 {
			moved++
		}
	}
	var dups []string
	for _, id := range all {
		if n := fromA[id] + fromB[id]; n == 0 {
			t.Fatalf("lost %s", id)
		} else if n > 1 {
			dups = append(dups, id)
		}
	}
	// The first member had at most its WriteBatch calls' events and one
	// batch flushed on revoke in hand: everything else of the moved
	// partitions it dropped for the new owner to send.
	bound := len(sending) + rg.cfg.Batch.Count
	if len(dups) > bound {
		t.Fatalf("%d events delivered twice; the first member was sending %d when its partitions moved, plus at most one batch of %d flushed on revoke", len(dups), len(sending), rg.cfg.Batch.Count)
	}
	sentBoth := 0
	for _, id := range sending {
		if fromB[id] > 0 {
			sentBoth++
		}
	}
	t.Logf("%d events; %d of the first batch sent by the new owner, %d in the first member's stuck sends (%d of them also sent by the new owner), %d duplicates (bound %d)", len(all), moved, len(sending), sentBoth, len(dups), bound)
}

func TestRuntimeDeadLettersParkedEventsPastMaxAge(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"*": {"down"}}), "down")
	rg.cfg.ParkDelay = 100 * time.Millisecond
	rg.cfg.MaxAge = 400 * time.Millisecond
	rg.sinks["down"].setFail(&sink.SendError{Class: sink.Retryable, Status: 503, Err: fmt.Errorf("unavailable")})
	rg.start()
	rg.publish([]string{"acc-a"}, 10)
	dlq := kafkatest.ReadAll(t, rg.cluster.Brokers(), "audit.events.dlq", 10, 20*time.Second)
	if len(dlq) != 10 {
		t.Fatalf("dead-lettered %d of 10 after max age", len(dlq))
	}
	for _, rec := range dlq {
		h := headerMap(rec)
		if h[deadletter.HeaderDLQReason] != reasonMaxAge || h[deadletter.HeaderSourceTopic] != "audit.events" || h[deadletter.HeaderConnection] != "down" {
			t.Fatalf("headers %v", h)
		}
		if _, err := auditevent.DecodeRecord(rec); err != nil {
			t.Fatalf("dead letter does not hold the original event: %v", err)
		}
	}
}

// A sink that stops answering stops fetching once MaxInflightBytes are out:
// memory is set by configuration, not by the backlog. The sink itself
// measures what it is handed: batches and sends are sized so that a
// runtime fetching past the cap would hand it the whole backlog at once.
func TestRuntimeBackPressureBoundsMemory(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"*": {"stuck"}}), "stuck")
	rg.cfg.MaxInflightBytes = 64 << 10
	rg.cfg.MaxConnectionBytes = 64 << 10
	rg.cfg.BacklogMaxWait = time.Minute // the stuck connection is not parked
	rg.cfg.Batch = sink.BatchPolicy{Count: 10000, Bytes: 16 << 20, Period: 20 * time.Millisecond}
	rg.cfg.RequestsInFlight = 64
	rg.cfg.RetryBudget = time.Minute
	rg.cfg.SendTimeout = time.Minute
	gate := make(chan struct{})
	rg.sinks["stuck"].gate = gate
	ws := &wireSink{memSink: rg.sinks["stuck"]}
	rg.custom = map[string]sink.Destination[[]byte]{"stuck": ws}
	ids := rg.publish([]string{"acc-a", "acc-b"}, 2000) // ~4000 records, far more than the cap holds
	want := len(ids["acc-a"]) + len(ids["acc-b"])
	rg.start()
	// Wait until the sink is handed nothing new for a while: fetching has
	// stopped, or the backlog is all out.
	var held, calls int
	waitFor(t, "the stuck sink to be handed nothing new", 20*time.Second, func() bool {
		h, c := ws.holding()
		if h > 0 && h == held && c == calls && time.Since(ws.lastCall()) > 20*rg.cfg.Batch.Period {
			return true
		}
		held, calls = h, c
		return false
	})
	peak, events := ws.peakHeld()
	// Each event the sink holds is its whole record's value: the runtime
	// holds at least as much of MaxInflightBytes for it.
	if peak > int(rg.cfg.MaxInflightBytes) {
		t.Fatalf("the stuck sink was handed %d bytes (%d of %d events) at once; the cap is %d", peak, events, want, rg.cfg.MaxInflightBytes)
	}
	// Fetching went on until near the cap (each record also holds its key
	// and 64 bytes of overhead, about half an event here).
	if peak < int(rg.cfg.MaxInflightBytes)/3 {
		t.Fatalf("the stuck sink was handed only %d bytes (%d events); fetching stopped far below the cap %d", peak, events, rg.cfg.MaxInflightBytes)
	}
	if inflight := rg.gauge("auditstream_delivery_inflight_bytes"); inflight < float64(peak) || inflight > float64(rg.cfg.MaxInflightBytes) {
		t.Fatalf("in-flight bytes gauge %v with the sink holding %d bytes; want between those and the cap %d", inflight, peak, rg.cfg.MaxInflightBytes)
	}
	if n := len(kafkatest.ReadAll(t, rg.cluster.Brokers(), rg.cfg.RetryTopic.Name, 1, 200*time.Millisecond)); n != 0 {
		t.Fatalf("%d events parked; a single slow connection should only slow fetching", n)
	}
	close(gate)
	waitFor(t, "everything once the sink answers", 20*time.Second, func() bool { return len(asSet(rg.sinks["stuck"].ids())) >= want })
	if peak, _ := ws.peakHeld(); peak > int(rg.cfg.MaxInflightBytes) {
		t.Fatalf("the sink was handed %d bytes at once while draining; the cap is %d", peak, rg.cfg.MaxInflightBytes)
	}
	t.Logf("the stuck sink held %d bytes in %d events (cap %d) of a backlog of %d events", peak, events, rg.cfg.MaxInflightBytes, want)
}

// wireSink is a memSink whose entries are the events' protobuf form, as
// large as their records' values, and which measures what its WriteBatch
// calls hold at once.
type wireSink struct {
	*memSink
	mu           sync.Mutex
	held, events int
	peak, peakN  int
	calls        int
	last         time.Time
	inCall       map[string]int // ids in WriteBatch calls now
}

func (s *wireSink) EncodeEntry(ev *auditlogv1.AuditEvent) (sink.Entry[[]byte], error) {
	return marshalEntry(ev)
}

func (s *wireSink) WriteBatch(ctx context.Context, entries []sink.Entry[[]byte]) error {
	batch := values(entries)
	n := 0
	ids := make([][]byte, len(batch))
	for i, e := range batch {
		n += len(e)
		var ev auditlogv1.AuditEvent
		if err := proto.Unmarshal(e, &ev); err != nil {
			return err
		}
		ids[i] = []byte(ev.GetId())
	}
	s.mu.Lock()
	if s.inCall == nil {
		s.inCall = map[string]int{}
	}
	for _, id := range ids {
		s.inCall[string(id)]++
	}
	s.held += n
	s.events += len(batch)
	s.calls++
	s.last = time.Now()
	if s.held > s.peak {
		s.peak, s.peakN = s.held, s.events
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		for _, id := range ids {
			if s.inCall[string(id)]--; s.inCall[string(id)] == 0 {
				delete(s.inCall, string(id))
			}
		}
		s.held -= n
		s.events -= len(batch)
		s.mu.Unlock()
	}()
	return s.memSink.WriteBatch(ctx, sink.Values(ids))
}

// holding is the bytes in WriteBatch calls now, and the calls so far.
func (s *wireSink) holding() (held, calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held, s.calls
}

// holdingIDs is the ids in WriteBatch calls now.
func (s *wireSink) holdingIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.inCall))
	for id := range s.inCall {
		out = append(out, id)
	}
	return out
}

func (s *wireSink) lastCall() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// peakHeld is the most bytes WriteBatch calls held at once, and in how
// many events.
func (s *wireSink) peakHeld() (bytes, events int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.peakN
}

// One connection that stops answering holds at most MaxConnectionBytes;
// beyond that its events are parked, and the other connection keeps going.
func TestRuntimeSlowConnectionIsParkedNotBlockingOthers(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"acc-slow": {"slow"}, "acc-fast": {"fast"}}), "slow", "fast")
	rg.cfg.MaxInflightBytes = 256 << 10
	rg.cfg.MaxConnectionBytes = 32 << 10
	rg.cfg.BacklogMaxWait = 300 * time.Millisecond
	rg.cfg.RetryBudget = time.Minute
	rg.cfg.SendTimeout = time.Minute
	gate := make(chan struct{})
	rg.sinks["slow"].gate = gate
	t.Cleanup(func() { close(gate) })
	rg.start()
	ids := rg.publish([]string{"acc-slow", "acc-fast"}, 2000)
	waitFor(t, "the fast connection delivers everything", 20*time.Second, func() bool { return len(rg.sinks["fast"].ids()) >= len(ids["acc-fast"]) })
	parked := kafkatest.ReadAll(t, rg.cluster.Brokers(), rg.cfg.RetryTopic.Name, 1, 5*time.Second)
	if len(parked) == 0 {
		t.Fatal("no event of the stuck connection was parked")
	}
	if h := headerMap(parked[0]); h[deadletter.HeaderConnection] != "slow" {
		t.Fatalf("parked for %v", h)
	}
}

// The numbers an operator watches move with what happened, and the status
// endpoint names the broken connection and why.
func TestRuntimeMetricsAndStatus(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"acc-ok": {"ok"}, "acc-denied": {"denied"}}), "ok", "denied")
	rg.sinks["denied"].setFail(&sink.SendError{Class: sink.Unhealthy, Status: 403, Err: fmt.Errorf("api key rejected")})
	cl := rg.cluster.Client()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "audit.events", Value: []byte("garbage")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ids := rg.publish([]string{"acc-ok", "acc-denied"}, 30)
	rg.start()
	waitFor(t, "deliveries", 10*time.Second, func() bool { return len(rg.sinks["ok"].ids()) >= len(ids["acc-ok"]) })
	waitFor(t, "parking and dead letter counted", 10*time.Second, func() bool {
		return rg.counter("auditstream_delivery_parked_total", map[string]string{"connection": "denied"}) >= 30 &&
			rg.counter("auditstream_delivery_dead_lettered_total", nil) >= 1
	})
	checks := []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
	}{
		{"auditstream_delivery_delivered_total", map[string]string{"connection": "ok", "forwarder": "test"}, func(v float64) bool { return v == 30 }},
		{"auditstream_delivery_delivered_total", map[string]string{"connection": "denied"}, func(v float64) bool { return v == 0 }},
		{"auditstream_delivery_failed_total", map[string]string{"connection": "denied", "reason": "unhealthy"}, func(v float64) bool { return v >= 30 }},
		{"auditstream_delivery_parked_total", map[string]string{"connection": "denied", "reason": parkReasonUnhealthy}, func(v float64) bool { return v >= 1 }},
		{"auditstream_delivery_dead_lettered_total", map[string]string{"reason": auditevent.ReasonBadProtobuf}, func(v float64) bool { return v == 1 }},
		{"auditstream_delivery_connection_healthy", map[string]string{"connection": "denied"}, func(v float64) bool { return v == 0 }},
		{"auditstream_delivery_connection_healthy", map[string]string{"connection": "ok"}, func(v float64) bool { return v == 1 }},
	}
	for _, c := range checks {
		if v := rg.counter(c.name, c.labels); !c.want(v) {
			t.Errorf("%s%v = %v", c.name, c.labels, v)
		}
	}
	for _, name := range []string{"auditstream_delivery_batch_size", "auditstream_delivery_send_duration_seconds", "auditstream_delivery_end_to_end_seconds"} {
		found := false
		mfs, _ := rg.reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetHistogram().GetSampleCount() > 0 && labelValue(m, "connection") == "ok" {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("histogram %s has no samples for the connection that delivers", name)
		}
	}
	status := map[string]ConnectionStatus{}
	for _, s := range rg.rt.Status() {
		status[s.Name] = s
	}
	if s := status["denied"]; s.Healthy || s.UnhealthySince == nil || !strings.Contains(s.LastError, "403") {
		t.Errorf("status of the denied connection: %+v", s)
	}
	if s := status["ok"]; !s.Healthy || s.LastSuccess == nil {
		t.Errorf("status of the healthy connection: %+v", s)
	}
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// A parked event is undelivered until delivered, also while it sits on the
// retry topic unread (fetching the retry topic is paused, as the runtime
// does past max_retry_held_bytes): the metric and the status say how old
// the oldest is, and both clear once the connection recovers.
func TestRuntimeOldestUndeliveredCountsParkedEventsNotReadBack(t *testing.T) {
	rg := newRig(t, staticRouter(map[string][]string{"acc-d": {"denied"}}), "denied")
	rg.sinks["denied"].setFail(&sink.SendError{Class: sink.Unhealthy, Status: 403, Err: fmt.Errorf("api key rejected")})
	rg.start()
	var cl *kgo.Client
	waitFor(t, "the runtime's client", 10*time.Second, func() bool {
		rg.rt.mu.Lock()
		defer rg.rt.mu.Unlock()
		cl = rg.rt.client
		return cl != nil
	})
	cl.PauseFetchTopics(rg.cfg.RetryTopic.Name)

	before := time.Now().Truncate(time.Millisecond) // record timestamps have milliseconds
	rg.publish([]string{"acc-d"}, 5)
	after := time.Now()
	denied := map[string]string{"connection": "denied"}
	waitFor(t, "5 events parked", 10*time.Second, func() bool {
		return rg.counter("auditstream_delivery_parked_total", denied) >= 5
	})
	scraped := time.Now()
	age := rg.counter("auditstream_delivery_oldest_undelivered_seconds", denied)
	if lo, hi := scraped.Sub(after).Seconds(), time.Since(before).Seconds(); age < lo || age > hi {
		t.Fatalf("oldest undelivered %gs with every event parked and unread, want the age of the events published %gs to %gs ago", age, lo, hi)
	}
	var st ConnectionStatus
	for _, s := range rg.rt.Status() {
		if s.Name == "denied" {
			st = s
		}
	}
	if st.OldestUndelivered == nil || st.OldestUndelivered.Before(before) || st.OldestUndelivered.After(after) {
		t.Fatalf("status: oldest undelivered %v, want when the events were published (%s to %s)", st.OldestUndelivered, before, after)
	}
	if st.Queued != 0 || st.Parked != 5 {
		t.Fatalf("status: want nothing queued and the 5 events parked, got %+v", st)
	}

	rg.sinks["denied"].setFail(nil)
	cl.ResumeFetchTopics(rg.cfg.RetryTopic.Name)
	waitFor(t, "5 delivered", 20*time.Second, func() bool { return len(rg.sinks["denied"].ids()) == 5 })
	rg.waitCommitted()
	waitFor(t, "the age to fall to zero", 10*time.Second, func() bool {
		return rg.counter("auditstream_delivery_oldest_undelivered_seconds", denied) == 0
	})
	for _, s := range rg.rt.Status() {
		if s.Name == "denied" && s.OldestUndelivered != nil {
			t.Fatalf("status after recovery: oldest undelivered %v", s.OldestUndelivered)
		}
	}
}
