package forwarder

// Benchmarks of the EventBridge forwarder for `make bench`: 1 KB events,
// broker (kfake) and EventBridge (ebfake, verifying every SigV4 signature)
// in this process on the same machine. Performance targets live here,
// never in timed unit tests.
//
//   - BenchmarkEventBridgeConsumeCeiling: a bare franz-go group consumer,
//     with the delivery runtime's fetch settings, reading a pre-loaded
//     topic; the raw ceiling.
//   - BenchmarkEventBridgeEntryOnly: the same records decoded and encoded
//     as entries, nothing more: the cost of the mapping alone.
//   - BenchmarkEventBridgeEncodeOnly: the same records decoded, encoded and
//     turned into signed PutEvents requests of 10 entries by the SDK, as
//     the sink does (500-entry batches, calls in flight), answered in
//     memory without a socket: what the work of encoding for EventBridge
//     costs, sent nowhere. The forwarder is measured against it.
//   - BenchmarkEventBridgeForwarder: forwarder.Run with the default delivery
//     configuration draining a pre-loaded topic into the fake over HTTP
//     (10 entries a call, up to 8 calls in flight per connection); also its
//     memory next to max_inflight_bytes, at two settings, each draining the
//     same backlog, and the share of the CPUs it kept busy.
//   - BenchmarkEventBridgeEndToEndLatency: events produced at a steady 1k/s
//     while the forwarder runs; latency from an event's timestamp (set when
//     it is produced) to the fake's accepting its entry.
//
// For the throughput benchmarks b.N is the number of events (run them with
// a fixed count, -benchtime=500000x, so that start-up and the linger of
// the last batches are a small part of a run); one op of the latency
// benchmark is a 5 s window at 1k events/s (-benchtime=1x). TestEventBridgeBenchReport
// prints one comparison of a run's results against the targets.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/sink/eventbridge"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// benchBatchEntries is the default delivery batch: what one WriteBatch
	// gets, cut into calls of 10.
	benchBatchEntries = 500
	// benchDeliverTimeout bounds a throughput run. A run that parks events
	// waits out park_delay (1 minute by default) before they come back.
	benchDeliverTimeout = 3 * time.Minute

	// The latency benchmark's load.
	benchLatencyRate   = 1000 // events/s
	benchLatencyWindow = 5 * time.Second
)

// BenchmarkEventBridgeConsumeCeiling is the ceiling: a franz-go group
// consumer with the runtime's consumer and fetch options (no decoding, no
// delivery) polling b.N pre-loaded records, from a cold start (group join
// included, as for the forwarder).
func BenchmarkEventBridgeConsumeCeiling(b *testing.B) {
	cluster, cfg := benchBroker(b)
	forwardingtest.BenchConsumeCeiling(b, cluster, cfg, benchDeliverTimeout)
}

// benchRecords returns the forwardingtest.BenchPool records the encode benchmarks cycle
// through.
func benchRecords(b *testing.B) []*kgo.Record {
	gen := forwardingtest.NewBenchGen(b, DefaultConfig().Kafka.Topics.Events.Name)
	at := time.Now()
	records := make([]*kgo.Record, forwardingtest.BenchPool)
	for i := range records {
		records[i] = gen.Record(b, i, at.Add(time.Duration(i)*time.Microsecond))
	}
	return records
}

// benchConnectionConfig is a benchmark connection's settings.
func benchConnectionConfig(endpoint string) eventbridge.Config {
	return eventbridge.Config{
		Region: "eu-west-1", EventBus: benchConnName(0), Endpoint: endpoint, Prefix: benchPrefix,
		Credentials: eventbridge.Credentials{AccessKeyID: config.SecretLiteral(testKeyID), SecretAccessKey: config.SecretLiteral(testSecret)},
	}.WithDefaults()
}

// benchParallel runs work over b.N records on GOMAXPROCS goroutines, in
// runs of benchBatchEntries, and reports events/s, bytes per entry and
// memory.
func benchParallel(b *testing.B, work func(entries [][]byte) error) {
	records := benchRecords(b)
	enc := benchConnectionConfig("").Encoder()
	var entryBytes atomic.Int64
	batches := int64((b.N + benchBatchEntries - 1) / benchBatchEntries)
	elapsed := forwardingtest.BenchWorkers(b, runtime.GOMAXPROCS(0), batches, func() (func(int64) error, error) {
		entries := make([][]byte, 0, benchBatchEntries)
		return func(batch int64) error {
			from := int(batch) * benchBatchEntries
			entries = entries[:0]
			for i := from; i < min(from+benchBatchEntries, b.N); i++ {
				ev, err := auditevent.DecodeRecord(records[i%len(records)])
				if err != nil {
					return err
				}
				entry, err := enc.Encode(ev)
				if err != nil {
					return err
				}
				entryBytes.Add(int64(enc.EntrySize(entry)))
				entries = append(entries, entry)
			}
			return work(entries)
		}, nil
	})
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(entryBytes.Load())/float64(b.N), "entry-B")
}

// BenchmarkEventBridgeEntryOnly is the mapping alone: b.N records decoded
// with auditevent.DecodeRecord and encoded by the connection's Encoder, on
// GOMAXPROCS goroutines.
func BenchmarkEventBridgeEntryOnly(b *testing.B) {
	benchParallel(b, func([][]byte) error { return nil })
}

// BenchmarkEventBridgeEncodeOnly is the work without the plumbing: b.N
// records decoded and encoded as EntryOnly does, then each 500-entry batch
// handed to the connection's Sink, whose SDK client serialises and signs
// its PutEvents calls of 10 entries (up to 8 at once) and reads their
// answers, produced in memory by benchLocalHTTP: no socket, no server, no
// Kafka.
func BenchmarkEventBridgeEncodeOnly(b *testing.B) {
	var calls, bodyBytes atomic.Int64
	sink, err := eventbridge.New(benchConnectionConfig("http://127.0.0.1:9"), eventbridge.Options{HTTPClient: benchLocalHTTP{&calls, &bodyBytes}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	benchParallel(b, func(entries [][]byte) error { return sink.WriteBatch(ctx, entries) })
	b.ReportMetric(float64(bodyBytes.Load())/float64(b.N), "wire-B")
	b.ReportMetric(float64(b.N)/float64(max(calls.Load(), 1)), "entries/call")
}

// benchLocalHTTP answers PutEvents calls in memory: every entry accepted,
// as the fake would answer, after reading the signed request's body.
type benchLocalHTTP struct{ calls, bytes *atomic.Int64 }

var benchEntrySource = []byte(`"Source":`)

func (h benchLocalHTTP) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), ebfake.AuthPrefix) {
		return nil, fmt.Errorf("unsigned request")
	}
	h.calls.Add(1)
	h.bytes.Add(int64(len(body)))
	n := bytes.Count(body, benchEntrySource)
	var answer bytes.Buffer
	answer.WriteString(`{"Entries":[`)
	for i := range n {
		if i > 0 {
			answer.WriteByte(',')
		}
		answer.WriteString(`{"EventId":"11710aed-b79e-4468-a20b-bb3c0c3b4860"}`)
	}
	answer.WriteString(`],"FailedEntryCount":0}`)
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {ebfake.ContentType}},
		Body:          io.NopCloser(&answer),
		ContentLength: int64(answer.Len()),
		Request:       r,
	}, nil
}

// BenchmarkEventBridgeBusOnly is what the fake costs on the CPUs it shares
// with the forwarder: PutEvents calls of 10 entries, built and signed by the
// connection's Sink before the timer (captured on their way out), sent
// again and again by a bare net/http client with as many calls out as the
// forwarder has (benchConnections connections, max_concurrent_calls each),
// until the fake has accepted b.N entries, every signature verified. The
// forwarder's CPU per event is at least this pass's, the encode-only
// pass's and the consume ceiling's together.
func BenchmarkEventBridgeBusOnly(b *testing.B) {
	bus := newBenchBus(b, nil)
	capture := &benchCaptureHTTP{}
	sink, err := eventbridge.New(benchConnectionConfig(bus.URL()), eventbridge.Options{HTTPClient: capture})
	if err != nil {
		b.Fatal(err)
	}
	records := benchRecords(b)
	enc := benchConnectionConfig("").Encoder()
	entries := make([][]byte, 0, benchBatchEntries)
	for i := range benchBatchEntries {
		ev, err := auditevent.DecodeRecord(records[i])
		if err != nil {
			b.Fatal(err)
		}
		entry, err := enc.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		entries = append(entries, entry)
	}
	if err := sink.WriteBatch(context.Background(), entries); err != nil {
		b.Fatal(err)
	}
	calls := capture.calls
	if len(calls) == 0 {
		b.Fatal("the sink made no call")
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 128}
	b.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}
	send := func(c benchCall) error {
		req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(c.body))
		if err != nil {
			return err
		}
		req.Header = c.header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the fake answered %s", resp.Status)
		}
		return nil
	}
	perCall := eventbridge.MaxEntries
	total := int64((b.N + perCall - 1) / perCall)
	before := bus.Stats()
	elapsed := forwardingtest.BenchWorkers(b, benchConnections*eventbridge.DefaultMaxConcurrentCalls, total,
		func() (func(int64) error, error) {
			return func(i int64) error { return send(calls[i%int64(len(calls))]) }, nil
		})
	st := bus.Stats()
	if got := st.Accepted - before.Accepted; got < b.N || st.Failed > 0 {
		b.Fatalf("the fake accepted %d of %d entries, %d failed", got, b.N, st.Failed)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// benchCall is a signed PutEvents request as the SDK sent it.
type benchCall struct {
	url    string
	header http.Header
	body   []byte
}

// benchCaptureHTTP keeps every request the SDK sends and answers it as the
// fake would when every entry is accepted.
type benchCaptureHTTP struct {
	mu    sync.Mutex
	calls []benchCall
}

func (h *benchCaptureHTTP) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.calls = append(h.calls, benchCall{url: r.URL.String(), header: r.Header.Clone(), body: body})
	h.mu.Unlock()
	var calls, size atomic.Int64
	r.Body = io.NopCloser(bytes.NewReader(body))
	return benchLocalHTTP{&calls, &size}.Do(r)
}

// BenchmarkEventBridgeForwarder runs forwarder.Run in this process with the
// default delivery configuration (500-entry / 4 MB / 200 ms batches), 50
// accounts routed to 4 connections (each its own bus, each up to 8 calls of
// 10 entries in flight), against a topic pre-loaded with b.N records, and
// times it from start until the fake has accepted all of them.
// Sub-benchmarks set max_inflight_bytes (max_connection_bytes stays half
// of it, as in the defaults); memory is reported next to it. The
// one other setting changed is park_delay (benchParkDelay): events parked
// on the retry topic come back after it, so a run that parks ends in
// seconds, not minutes. It reports parked events, unparked-events/s (the
// rate until every event that was not parked had arrived), resent entries
// (accepted twice after a lost answer) and cpu-% (the share of the
// machine's CPUs the process kept busy).
func BenchmarkEventBridgeForwarder(b *testing.B) {
	for _, inflight := range benchInflightSettings {
		b.Run(fmt.Sprintf("max-inflight=%dMB", inflight>>20), func(b *testing.B) {
			benchForwarder(b, inflight, false)
		})
	}
}

// BenchmarkEventBridgeForwarderCPUSplit is the default forwarder run again,
// under a CPU profile that tells the forwarder's CPU from what the broker
// and the fake take of each event (forwardingtest.StartBenchUsageSplit).
// Profiling slows the run, so its throughput is not the forwarder's; the
// report takes only the split from it.
func BenchmarkEventBridgeForwarderCPUSplit(b *testing.B) {
	benchForwarder(b, DefaultConfig().Delivery.MaxInflightBytes, true)
}

// benchInflightSettings are the max_inflight_bytes the forwarder benchmark
// runs with: the default first, then four times as much.
var benchInflightSettings = []config.ByteSize{DefaultConfig().Delivery.MaxInflightBytes, 4 * DefaultConfig().Delivery.MaxInflightBytes}

// benchParkDelay replaces the default park_delay (1 minute) in the
// throughput runs.
const benchParkDelay = 5 * time.Second

func benchForwarder(b *testing.B, inflight config.ByteSize, split bool) {
	cluster, cfg := benchBroker(b)
	cfg.Delivery.MaxInflightBytes = inflight
	cfg.Delivery.MaxConnectionBytes = inflight * DefaultConfig().Delivery.MaxConnectionBytes / DefaultConfig().Delivery.MaxInflightBytes
	cfg.Delivery.ParkDelay = benchParkDelay
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	forwardingtest.BenchPreload(b, cluster, cfg, b.N)
	tally := newBenchTally(b.N)
	bus := newBenchBus(b, tally.accept)
	benchWriteDestinations(b, cfg, bus.URL())

	var mem *forwardingtest.BenchUsage
	if split {
		mem = forwardingtest.StartBenchUsageSplit(b)
	} else {
		mem = forwardingtest.StartBenchUsage(b)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	stop := benchStart(b, cfg)
	progress := forwardingtest.NewBenchProgress(start)
	ok := forwardingtest.BenchWait(benchDeliverTimeout, func() bool {
		n := tally.distinct.Load()
		progress.See(n)
		return n >= int64(b.N)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	mem.Stop(b)
	stop()

	st := bus.Stats()
	parked := forwardingtest.BenchHighWatermarks(cluster, cfg.Delivery.RetryTopic.Name)
	dead := forwardingtest.BenchHighWatermarks(cluster, cfg.Kafka.Topics.DeadLetter.Name)
	resent := tally.resent.Load()
	if !ok || dead > 0 || st.Failed > 0 {
		b.Fatalf("the fake accepted %d of %d events (%d twice) in %s; %d of %d calls refused, %d entries failed; %d events parked, %d dead-lettered",
			tally.distinct.Load(), b.N, resent, elapsed.Round(time.Millisecond), st.Calls-st.OK, st.Calls, st.Failed, parked, dead)
	}
	// Offsets are committed only for records delivered, parked or
	// dead-lettered: none may be left once the fake holds all of them.
	if n := forwardingtest.BenchUncommitted(b, cluster, cfg); n > 0 {
		b.Fatalf("the fake accepted %d events (%d twice), but %d records are not committed", tally.distinct.Load(), resent, n)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(st.Calls-st.OK), "refused-calls")
	b.ReportMetric(float64(resent), "resent")
	if t, ok := progress.Reached(int64(b.N) - parked); ok && t > 0 {
		b.ReportMetric(float64(int64(b.N)-parked)/t.Seconds(), "unparked-events/s")
	}
	b.ReportMetric(float64(parked), "parked")
	if t, ok := progress.Reached(1); ok {
		b.ReportMetric(benchutil.Millis(t), "first-ms")
	}
	if r, ok := progress.Steady(int64(b.N)/10, int64(b.N)*9/10); ok {
		b.ReportMetric(r, "steady-events/s")
	}
	b.ReportMetric(float64(st.Bytes)/float64(max(st.Accepted, 1)), "entry-B")
	b.ReportMetric(float64(st.Accepted)/float64(max(st.OK, 1)), "entries/call")
	b.ReportMetric(benchutil.MB(uint64(inflight)), "max-inflight-MB")
}

// BenchmarkEventBridgeEndToEndLatency runs the forwarder (default
// configuration) and, once it delivers, produces events at a steady
// benchLatencyRate with ingest's producer settings, each timestamped as it
// is produced. An event's latency is the time the fake accepted its entry
// minus that timestamp (read from the entry's Detail, to the
// microsecond). One op is a benchLatencyWindow of load.
func BenchmarkEventBridgeEndToEndLatency(b *testing.B) {
	cluster, cfg := benchBroker(b)
	topic := cfg.Kafka.Topics.Events.Name
	perWindow := int(benchLatencyWindow.Seconds() * benchLatencyRate)
	total := b.N * perWindow

	// Warm-up records are numbered from warmBase, a multiple of forwardingtest.BenchPool
	// so that the forwardingtest.BenchAccounts of them cover every account.
	const warmBase = 1 << 30
	warm := map[string]bool{}
	for i := range forwardingtest.BenchAccounts {
		warm[forwardingtest.BenchID(warmBase+i)] = true
	}
	lat := benchutil.NewLatencies(total)
	var (
		seen, warmSeen atomic.Int64
		badDetail      atomic.Pointer[error]
	)
	bus := newBenchBus(b, func(e ebfake.Entry) {
		var d struct {
			ID        string `json:"id"`
			Timestamp string `json:"timestamp"`
		}
		err := json.Unmarshal([]byte(e.Detail), &d)
		var at time.Time
		if err == nil {
			at, err = auditevent.ParseTimestamp(d.Timestamp)
		}
		if err != nil {
			badDetail.CompareAndSwap(nil, &err)
			return
		}
		if warm[d.ID] {
			warmSeen.Add(1)
			return
		}
		lat.Record(e.Received.Sub(at))
		seen.Add(1)
	})
	benchWriteDestinations(b, cfg, bus.URL())
	stop := benchStart(b, cfg)
	defer stop()

	gen := forwardingtest.NewBenchGen(b, topic)
	prod := forwardingtest.BenchProducer(cluster)
	ctx := context.Background()
	for i := range forwardingtest.BenchAccounts {
		if err := prod.ProduceSync(ctx, gen.Record(b, warmBase+i, time.Now())).FirstErr(); err != nil {
			b.Fatalf("warm-up produce: %v", err)
		}
	}
	if !forwardingtest.BenchWait(30*time.Second, func() bool { return warmSeen.Load() >= forwardingtest.BenchAccounts }) {
		b.Fatalf("warm-up: the fake accepted %d of %d events", warmSeen.Load(), forwardingtest.BenchAccounts)
	}

	var (
		failures atomic.Int64
		firstErr atomic.Pointer[error]
	)
	mem := forwardingtest.StartBenchUsage(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := range b.N {
		winStart := time.Now()
		for i := range perWindow {
			due := winStart.Add(time.Duration(i) * time.Second / benchLatencyRate)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			prod.Produce(ctx, gen.Record(b, w*perWindow+i, time.Now()), func(_ *kgo.Record, err error) {
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			})
		}
	}
	produced := time.Since(start)
	ok := forwardingtest.BenchWait(60*time.Second, func() bool { return seen.Load() >= int64(total) })
	b.StopTimer()
	mem.Stop(b)
	stop()

	if err := badDetail.Load(); err != nil {
		b.Fatalf("an accepted entry's detail does not read: %v", *err)
	}
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d of %d produces failed; first: %v", f, total, *firstErr.Load())
	}
	if st := bus.Stats(); !ok || st.Calls != st.OK || st.Failed > 0 {
		b.Fatalf("the fake accepted %d of %d events; %d of %d calls refused, %d entries failed", seen.Load(), total, st.Calls-st.OK, st.Calls, st.Failed)
	}
	b.ReportMetric(float64(total)/produced.Seconds(), "produced-events/s")
	b.ReportMetric(benchutil.Millis(lat.Percentile(50)), "p50-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(99)), "p99-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(100)), "max-ms")
}

// Targets of the EventBridge forwarder (the issue's, on a 2-core machine).
const (
	benchTargetOfEncodeOnly = 0.70
	benchTargetP99          = time.Second
)

type benchReport struct {
	text  string
	below int
}

// Names of the benchmark results the report reads.
const (
	benchNameCeiling = "EventBridgeConsumeCeiling"
	benchNameEntry   = "EventBridgeEntryOnly"
	benchNameEncode  = "EventBridgeEncodeOnly"
	benchNameBus     = "EventBridgeBusOnly"
	benchNameLatency = "EventBridgeEndToEndLatency"
	benchNameSplit   = "EventBridgeForwarderCPUSplit"
)

func benchNameForwarder(inflight config.ByteSize) string {
	return fmt.Sprintf("EventBridgeForwarder/max-inflight=%dMB", inflight>>20)
}

// eventBridgeBenchReport lays out the ceiling, the entry-only and
// encode-only passes and the forwarder runs (median over -count runs),
// their memory, the latency, and a verdict per target.
func eventBridgeBenchReport(out benchutil.Output) (benchReport, error) {
	get := func(name string) (benchutil.Result, int, error) {
		r, runs := out.Median(name)
		if runs == 0 {
			return r, 0, fmt.Errorf("no result for Benchmark%s in the benchmark output", name)
		}
		return r, runs, nil
	}
	ceiling, runs, err := get(benchNameCeiling)
	if err != nil {
		return benchReport{}, err
	}
	entry, _, err := get(benchNameEntry)
	if err != nil {
		return benchReport{}, err
	}
	encode, _, err := get(benchNameEncode)
	if err != nil {
		return benchReport{}, err
	}
	bus, _, err := get(benchNameBus)
	if err != nil {
		return benchReport{}, err
	}
	fwds := make([]benchutil.Result, len(benchInflightSettings))
	fwdRuns := make([]int, len(benchInflightSettings))
	for i, inflight := range benchInflightSettings {
		if fwds[i], fwdRuns[i], err = get(benchNameForwarder(inflight)); err != nil {
			return benchReport{}, err
		}
	}
	latency, _, err := get(benchNameLatency)
	if err != nil {
		return benchReport{}, err
	}
	split, _, err := get(benchNameSplit)
	if err != nil {
		return benchReport{}, err
	}

	metric := func(r benchutil.Result, unit string) string {
		v, ok := r.Metrics[unit]
		if !ok {
			return "-"
		}
		return benchutil.FormatValue(v)
	}
	ratio := func(r benchutil.Result, unit string, of benchutil.Result) (float64, string) {
		a, okA := r.Metrics[unit]
		b, okB := of.Metrics["events/s"]
		if !okA || !okB || b == 0 {
			return math.NaN(), "-"
		}
		return a / b, benchutil.FormatPercent(a / b)
	}
	labels := []string{"raw franz-go consume ceiling", "entry-only (decode, EventBridge entry)", "encode-only (+ SDK PutEvents calls, signed)", "bus-only (the fake taking signed calls)"}
	results := []benchutil.Result{ceiling, entry, encode, bus}
	const firstForwarder = 4
	for i, inflight := range benchInflightSettings {
		label := fmt.Sprintf("forwarder into the fake, max_inflight %d MiB", inflight>>20)
		if i == 0 {
			label += " (default)"
		}
		labels = append(labels, label)
		results = append(results, fwds[i])
	}

	var s strings.Builder
	fmt.Fprintf(&s, "\nEventBridge forwarder against its ceilings (median of %d run(s); 1 KB records, broker and EventBridge fake in this process)\n", runs)
	tbl := &benchutil.Table{}
	tbl.Row("", "events/s", "of ceiling", "of encode-only", "steady events/s", "of encode-only", "parked", "CPU µs/event", "CPU busy")
	for i, r := range results {
		c, e, ue := "-", "-", "-"
		if i > 0 {
			_, c = ratio(r, "events/s", ceiling)
		}
		if i >= firstForwarder {
			_, e = ratio(r, "events/s", encode)
			_, ue = ratio(r, "steady-events/s", encode)
		}
		tbl.Row(labels[i], metric(r, "events/s"), c, e, metric(r, "steady-events/s"), ue, metric(r, "parked"), forwardingtest.BenchMicros(r), metric(r, "cpu-%")+" %")
	}
	tbl.WriteTo(&s)
	s.WriteString("steady: the rate from 10 % to 90 % of the events delivered, without start-up and the linger of the last batches;\n" +
		"the targets are judged on events/s over the whole run.\n")
	s.WriteString(forwardingtest.BenchBound(encode, fwds[0], split, "EventBridge fake"))
	fmt.Fprintf(&s, "entries a call: encode-only %s, forwarder %s; entries resent after a lost answer: %s\n",
		metric(encode, "entries/call"), metric(fwds[0], "entries/call"), metric(fwds[0], "resent"))
	s.WriteString("\nmemory (MB): peak is the whole process (benchutil: heap and stacks, garbage included); over-base is above the\nheap in use before the run (the broker holding the loaded topic, the event pool); live is the live heap's peak above its own\n")
	mt := &benchutil.Table{}
	mt.Row("", "max_inflight", "live over base", "peak over base", "peak")
	labels = append(labels, "end-to-end latency run (1k events/s)")
	results = append(results, latency)
	for i, r := range results {
		mt.Row(labels[i], metric(r, "max-inflight-MB"), metric(r, "live-over-base-MB"), metric(r, "peak-over-base-MB"), metric(r, "peak-MB"))
	}
	mt.WriteTo(&s)
	fmt.Fprintf(&s, "\nend-to-end latency at %s events/s (default config): p50 %s ms, p99 %s ms, max %s ms\n",
		metric(latency, "produced-events/s"), metric(latency, "p50-ms"), metric(latency, "p99-ms"), metric(latency, "max-ms"))

	rep := benchReport{}
	var verdicts strings.Builder
	line := func(target, verdict, got string) {
		fmt.Fprintf(&verdicts, "  %-46s %-13s %s\n", target, verdict, got)
	}
	verdict := func(target string, pass bool, got string) {
		v := "PASS"
		if !pass {
			v = "BELOW TARGET"
			rep.below++
		}
		line(target, v, got)
	}
	fwd := fwds[0]
	r, txt := ratio(fwd, "events/s", encode)
	if fwd.Metrics["parked"] > 0 {
		txt += fmt.Sprintf(" (%s parked; the rest at %s events/s)", metric(fwd, "parked"), metric(fwd, "unparked-events/s"))
	}
	verdict(fmt.Sprintf("forwarder >= %s of encode-only", benchutil.FormatPercent(benchTargetOfEncodeOnly)), r >= benchTargetOfEncodeOnly, txt)
	p99, ok := latency.Metrics["p99-ms"]
	verdict(fmt.Sprintf("end-to-end p99 < %s at 1k events/s", benchTargetP99), ok && p99 < benchutil.Millis(benchTargetP99), metric(latency, "p99-ms")+" ms")
	pass, got, backlog := forwardingtest.BenchMemoryVerdict(benchInflightSettings, fwds, fwdRuns)
	verdict(fmt.Sprintf("memory set by config (backlog %s MB)", benchutil.FormatValue(backlog)), pass, got)
	_, txt = ratio(fwd, "steady-events/s", encode)
	line("steady forwarder / encode-only", "(no target)", txt)
	_, txt = ratio(fwd, "events/s", ceiling)
	line("forwarder / consume ceiling", "(no target)", txt)
	_, txt = ratio(fwd, "events/s", entry)
	line("forwarder / entry-only", "(no target)", txt)
	if bound, ok := forwardingtest.BenchBoundRate(encode, fwd, split); ok {
		line("bound beside the broker and fake", "(no target)",
			fmt.Sprintf("%s events/s = %s of encode-only", benchutil.FormatValue(bound), benchutil.FormatPercent(bound/encode.Metrics["events/s"])))
	}
	s.WriteString("\ntargets (2-core machine)\n")
	s.WriteString(verdicts.String())
	rep.text = s.String()
	return rep, nil
}

// The report reads the benchmarks' result lines and judges each target.
func TestEventBridgeBenchReportFormat(t *testing.T) {
	const output = `BenchmarkEventBridgeConsumeCeiling-2                 	  200000	      2500 ns/op	    400000 events/s	     300.0 peak-MB	      40.0 peak-over-base-MB	      30.0 live-over-base-MB	 1000 cpu-ns/op
BenchmarkEventBridgeEntryOnly-2                      	  200000	      2000 ns/op	    500000 events/s	      30.0 peak-MB	       5.0 peak-over-base-MB	       2.0 live-over-base-MB
BenchmarkEventBridgeEncodeOnly-2                     	  200000	     10000 ns/op	    100000 events/s	      30.0 peak-MB	       5.0 peak-over-base-MB	       2.0 live-over-base-MB	  10.0 entries/call	 20000 cpu-ns/op
BenchmarkEventBridgeBusOnly-2                        	  200000	      5000 ns/op	    200000 events/s	 9000 cpu-ns/op
BenchmarkEventBridgeForwarder/max-inflight=16MB-2    	  200000	     12500 ns/op	     80000 events/s	 85000 unparked-events/s	 10 parked	 0 resent	 10.0 entries/call	 95.0 cpu-%	     300.0 peak-MB	      60.0 peak-over-base-MB	 50.0 live-over-base-MB	      16.8 max-inflight-MB	 25000 cpu-ns/op
BenchmarkEventBridgeForwarder/max-inflight=64MB-2    	  200000	     15000 ns/op	     66000 events/s	 66000 unparked-events/s	 0 parked	 0 resent	 10.0 entries/call	 94.0 cpu-%	     400.0 peak-MB	     150.0 peak-over-base-MB	 120.0 live-over-base-MB	      67.1 max-inflight-MB
BenchmarkEventBridgeForwarderCPUSplit-2    	  200000	      9000 ns/op	    90000 events/s	 27000 cpu-ns/op	 36.0 rig-cpu-%
BenchmarkEventBridgeEndToEndLatency-2                	       1	5000000000 ns/op	      1000 produced-events/s	     150.0 p50-ms	    1200 p99-ms	      1300 max-ms	 80.0 peak-MB
PASS
`
	out, err := benchutil.Parse(strings.NewReader(output), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eventBridgeBenchReport(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"forwarder >= 70.0 % of encode-only             PASS          80.0 % (10.0 parked; the rest at 85,000 events/s)",
		"end-to-end p99 < 1s at 1k events/s             BELOW TARGET  1,200 ms",
		"memory set by config (backlog 205 MB)          PASS          live 50.0 MB at 16 MiB (allowed 198), live 120 MB at 64 MiB (allowed 601)",
		"forwarder / consume ceiling                    (no target)   20.0 %",
		"forwarder / entry-only                         (no target)   16.0 %",
		"entries a call: encode-only 10.0, forwarder 10.0; entries resent after a lost answer: 0.00",
		"the broker and the EventBridge fake took 9.00 µs of CPU per event (36.0 % of 25.0 µs",
		"the forwarder itself, with the garbage collector, 16.0 µs, of which the encode-only work (20.0 µs) is 125.0 %",
		"bus-only (the fake taking signed calls)",
		fmt.Sprintf("bound beside the broker and fake               (no target)   %s events/s = %s of encode-only",
			benchutil.FormatValue(float64(runtime.NumCPU())*1e9/29000), benchutil.FormatPercent(float64(runtime.NumCPU())*1e9/29000/100000)),
	} {
		if !strings.Contains(rep.text, want) {
			t.Errorf("report lacks %q:\n%s", want, rep.text)
		}
	}
	if rep.below != 1 {
		t.Errorf("%d targets below, want 1:\n%s", rep.below, rep.text)
	}
	if _, err := eventBridgeBenchReport(benchutil.Output{}); err == nil {
		t.Error("no error for an output without results")
	}
}
