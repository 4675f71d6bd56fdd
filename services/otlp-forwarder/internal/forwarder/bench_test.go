package forwarder

// Benchmarks of the OTLP forwarder for `make bench`: 1 KB events, broker
// (kfake) and receiver (otlpfake, decoding every request with the
// Collector's pdata) in this process on the same machine. Performance
// targets live here, never in timed unit tests.
//
//   - BenchmarkOTLPConsumeCeiling: a bare franz-go group consumer with the
//     delivery runtime's fetch settings reading a pre-loaded topic; the raw
//     ceiling.
//   - BenchmarkOTLPEncodeOnly: the same records decoded, encoded as log
//     records and handed in 500-entry batches to the connection's Sink,
//     which merges, marshals and gzips each request, answered in memory
//     without a socket: what encoding for OTLP costs, sent nowhere. The
//     forwarder is measured against it.
//   - BenchmarkOTLPWriteBatchOnly: the Sink's part of that pass alone, on
//     entries encoded before the timer.
//   - BenchmarkOTLPForwarder: forwarder.Run with the default delivery
//     configuration draining a pre-loaded topic into the fake over HTTP,
//     with its memory next to max_inflight_bytes (the default and four
//     times it) and the CPU per event; BenchmarkOTLPForwarderCPUSplit the
//     default run under a profile telling its CPU from the rig's.
//   - BenchmarkOTLPEndToEndLatency: events produced at a steady 1k/s while
//     the forwarder runs; latency from an event's timestamp (set when it is
//     produced) to the fake's decoding its record; p50, p99, max.
//
// For the throughput benchmarks b.N is the number of events (run them with
// a fixed count, -benchtime=500000x); one op of the latency benchmark is a
// 5 s window at 1k events/s (-benchtime=1x). TestOTLPBenchReport prints
// one comparison of a run's results against the targets.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/internal/sink/otlp"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

const (
	// benchBatchEntries is the default delivery batch: what one WriteBatch
	// gets.
	benchBatchEntries = 500
	// benchDeliverTimeout bounds a throughput run.
	benchDeliverTimeout = 3 * time.Minute
	// benchConnections is how many OTLP connections the accounts route to
	// (account i to connection i mod benchConnections), each a tenant.
	benchConnections = 4
	// The latency benchmark's load.
	benchLatencyRate   = 1000 // events/s
	benchLatencyWindow = 5 * time.Second
	// benchParkDelay replaces the default park_delay in throughput runs.
	benchParkDelay = 5 * time.Second
)

func benchBroker(b *testing.B) (*kafkatest.Cluster, Config) {
	b.Helper()
	return forwardingtest.BenchBroker(b, Spec)
}

func benchConnName(i int) string { return fmt.Sprintf("otlp-bench-%d", i) }

// benchWriteDestinations routes account i to connection i mod
// benchConnections, each an OTLP connection to endpoint with its own
// tenant and a bearer token from a Secret file.
func benchWriteDestinations(b *testing.B, cfg Config, endpoint string) {
	b.Helper()
	tokenFile := filepath.Join(filepath.Dir(cfg.Destinations.File), "token")
	if err := os.WriteFile(tokenFile, []byte("bench-token\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	var s strings.Builder
	s.WriteString("connections:\n")
	for i := range benchConnections {
		fmt.Fprintf(&s, "  %s:\n    type: otlp\n    settings:\n      endpoint: %s\n      allow_http: true\n      tenant_id: %s\n      auth: {token: {file: %s}}\n",
			benchConnName(i), endpoint, benchConnName(i), tokenFile)
	}
	s.WriteString("routes:\n")
	for i := range forwardingtest.BenchAccounts {
		fmt.Fprintf(&s, "  - account: %q\n    connections: [%s]\n", forwardingtest.BenchAccount(i), benchConnName(i%benchConnections))
	}
	if err := os.WriteFile(cfg.Destinations.File, []byte(s.String()), 0o600); err != nil {
		b.Fatal(err)
	}
}

// benchStart runs the forwarder in this process; stop ends it and waits.
func benchStart(b *testing.B, cfg Config) (stop func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go forwardingtest.RunAsForwarder(ctx, func(ctx context.Context) { done <- Run(ctx, cfg) })
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					b.Errorf("forwarder: %v", err)
				}
			case <-time.After(60 * time.Second):
				b.Error("forwarder did not stop")
			}
		})
	}
	b.Cleanup(stop)
	return stop
}

// newBenchReceiver starts the fake in counting mode (a long run must not
// keep every record in the memory the benchmark measures), requiring the
// token and a tenant, and hands each accepted request to onAccepted.
func newBenchReceiver(b *testing.B, onAccepted func(otlpfake.Tally)) *otlpfake.Server {
	b.Helper()
	rcv := otlpfake.New()
	b.Cleanup(rcv.Close)
	rcv.RequireAuthorization("Bearer bench-token")
	rcv.RequireTenant(true)
	rcv.Count(onAccepted)
	return rcv
}

// benchTally counts distinct events accepted and those accepted again.
type benchTally struct {
	mu       sync.Mutex
	seen     map[string]bool
	distinct atomic.Int64
	resent   atomic.Int64
}

func newBenchTally(n int) *benchTally { return &benchTally{seen: make(map[string]bool, n)} }

func (t *benchTally) accept(x otlpfake.Tally) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range x.IDs {
		if t.seen[id] {
			t.resent.Add(1)
			continue
		}
		t.seen[id] = true
		t.distinct.Add(1)
	}
}

// BenchmarkOTLPConsumeCeiling is the ceiling: a franz-go group consumer
// with the runtime's consumer and fetch options polling b.N pre-loaded
// records, from a cold start.
func BenchmarkOTLPConsumeCeiling(b *testing.B) {
	cluster, cfg := benchBroker(b)
	forwardingtest.BenchConsumeCeiling(b, cluster, cfg, benchDeliverTimeout)
}

// benchLocalHTTP answers export requests in memory, as the receiver does
// when it accepts them all, after reading (and so counting) the body.
type benchLocalHTTP struct{ requests, bytes *atomic.Int64 }

var benchEmptyAnswer = func() []byte {
	b, _ := plogotlp.NewExportResponse().MarshalProto()
	return b
}()

func (h benchLocalHTTP) RoundTrip(r *http.Request) (*http.Response, error) {
	n, err := io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	h.requests.Add(1)
	h.bytes.Add(n)
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/x-protobuf"}},
		Body:          io.NopCloser(bytes.NewReader(benchEmptyAnswer)),
		ContentLength: int64(len(benchEmptyAnswer)),
		Request:       r,
	}, nil
}

// BenchmarkOTLPEncodeOnly is the work without the plumbing: b.N records
// decoded and encoded by the connection's Encoder on GOMAXPROCS
// goroutines, each 500-entry batch handed to the connection's Sink, which
// merges, marshals and gzips its request and reads the answer made in
// memory: no socket, no server, no Kafka.
func BenchmarkOTLPEncodeOnly(b *testing.B) {
	gen := forwardingtest.NewBenchGen(b, DefaultConfig().Kafka.Topics.Events.Name)
	at := time.Now()
	records := make([]*kgo.Record, forwardingtest.BenchPool)
	for i := range records {
		records[i] = gen.Record(b, i, at.Add(time.Duration(i)*time.Microsecond))
	}
	var requests, wire, entryBytes atomic.Int64
	s, err := otlp.New(otlp.Config{Endpoint: "https://otlp.invalid", Auth: otlp.Auth{}},
		otlp.Options{HTTPClient: &http.Client{Transport: benchLocalHTTP{&requests, &wire}}})
	if err != nil {
		b.Fatal(err)
	}
	enc := otlp.NewEncoder(nil)
	ctx := context.Background()
	batches := int64((b.N + benchBatchEntries - 1) / benchBatchEntries)
	b.ReportAllocs()
	elapsed := forwardingtest.BenchWorkers(b, runtime.GOMAXPROCS(0), batches, func() (func(int64) error, error) {
		entries := make([]sink.Entry[[]byte], 0, benchBatchEntries)
		return func(batch int64) error {
			from := int(batch) * benchBatchEntries
			entries = entries[:0]
			for i := from; i < min(from+benchBatchEntries, b.N); i++ {
				ev, err := auditevent.DecodeRecord(records[i%len(records)])
				if err != nil {
					return err
				}
				entry, err := enc.EncodeEntry(ev)
				if err != nil {
					return err
				}
				entryBytes.Add(int64(otlp.EntrySize(entry.Value)))
				entries = append(entries, entry)
			}
			return s.WriteBatch(ctx, entries)
		}, nil
	})
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(entryBytes.Load())/float64(b.N), "entry-B")
	b.ReportMetric(float64(wire.Load())/float64(b.N), "wire-B")
	b.ReportMetric(float64(b.N)/float64(max(requests.Load(), 1)), "records/request")
}

// BenchmarkOTLPWriteBatchOnly is the sink's part of the encode-only pass:
// the same records encoded before the timer, then handed in 500-entry
// batches to the connection's Sink (entries read, grouped per account,
// marshalled, gzipped, answered in memory) on GOMAXPROCS goroutines.
func BenchmarkOTLPWriteBatchOnly(b *testing.B) {
	gen := forwardingtest.NewBenchGen(b, DefaultConfig().Kafka.Topics.Events.Name)
	at := time.Now()
	enc := otlp.NewEncoder(nil)
	entries := make([]sink.Entry[[]byte], forwardingtest.BenchPool)
	for i := range entries {
		ev, err := auditevent.DecodeRecord(gen.Record(b, i, at.Add(time.Duration(i)*time.Microsecond)))
		if err != nil {
			b.Fatal(err)
		}
		if entries[i], err = enc.EncodeEntry(ev); err != nil {
			b.Fatal(err)
		}
	}
	var requests, wire atomic.Int64
	s, err := otlp.New(otlp.Config{Endpoint: "https://otlp.invalid", Auth: otlp.Auth{}},
		otlp.Options{HTTPClient: &http.Client{Transport: benchLocalHTTP{&requests, &wire}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	batches := int64((b.N + benchBatchEntries - 1) / benchBatchEntries)
	elapsed := forwardingtest.BenchWorkers(b, runtime.GOMAXPROCS(0), batches, func() (func(int64) error, error) {
		batch := make([]sink.Entry[[]byte], 0, benchBatchEntries)
		return func(n int64) error {
			from := int(n) * benchBatchEntries
			batch = batch[:0]
			for i := from; i < min(from+benchBatchEntries, b.N); i++ {
				batch = append(batch, entries[i%len(entries)])
			}
			return s.WriteBatch(ctx, batch)
		}, nil
	})
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(wire.Load())/float64(b.N), "wire-B")
}

// BenchmarkOTLPForwarder runs forwarder.Run in this process with the
// default delivery configuration, 50 accounts routed to 4 connections,
// against a topic pre-loaded with b.N records, and times it from start
// until the fake has accepted all of them. Sub-benchmarks set
// max_inflight_bytes (max_connection_bytes stays at most a quarter of it,
// as in the defaults); memory is reported next to it, with the CPU per
// event, resent records and parked ones.
func BenchmarkOTLPForwarder(b *testing.B) {
	for _, inflight := range benchInflightSettings {
		b.Run(fmt.Sprintf("max-inflight=%dMB", inflight>>20), func(b *testing.B) {
			benchForwarder(b, inflight, false)
		})
	}
}

// BenchmarkOTLPForwarderCPUSplit is the default forwarder run again, under
// a CPU profile that tells the forwarder's CPU from what the broker and the
// fake take of each event (forwardingtest.StartBenchUsageSplit). Profiling
// slows the run; the report takes only the split from it.
func BenchmarkOTLPForwarderCPUSplit(b *testing.B) {
	benchForwarder(b, DefaultConfig().Delivery.MaxInflightBytes, true)
}

// benchInflightSettings are the max_inflight_bytes the forwarder benchmark
// runs with; the first is the default.
var benchInflightSettings = []config.ByteSize{DefaultConfig().Delivery.MaxInflightBytes, 4 * DefaultConfig().Delivery.MaxInflightBytes}

func benchForwarder(b *testing.B, inflight config.ByteSize, split bool) {
	cluster, cfg := benchBroker(b)
	cfg.Delivery.MaxInflightBytes = inflight
	cfg.Delivery.MaxConnectionBytes = min(cfg.Delivery.MaxConnectionBytes, inflight/4)
	cfg.Delivery.ParkDelay = benchParkDelay
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	forwardingtest.BenchPreload(b, cluster, cfg, b.N)
	tally := newBenchTally(b.N)
	rcv := newBenchReceiver(b, tally.accept)
	benchWriteDestinations(b, cfg, rcv.URL())

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

	parked := forwardingtest.BenchHighWatermarks(cluster, cfg.Delivery.RetryTopic.Name)
	dead := forwardingtest.BenchHighWatermarks(cluster, cfg.Kafka.Topics.DeadLetter.Name)
	refused := 0
	var wire int
	for _, r := range rcv.Requests() {
		if r.Status != http.StatusOK {
			refused++
		}
		wire += r.WireBytes
	}
	if !ok || dead > 0 {
		b.Fatalf("the fake accepted %d of %d events (%d twice) in %s; %d requests refused; %d parked, %d dead-lettered",
			tally.distinct.Load(), b.N, tally.resent.Load(), elapsed.Round(time.Millisecond), refused, parked, dead)
	}
	if n := forwardingtest.BenchUncommitted(b, cluster, cfg); n > 0 {
		b.Fatalf("the fake accepted all %d events, but %d records are not committed", b.N, n)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if r, ok := progress.Steady(int64(b.N)/10, int64(b.N)*9/10); ok {
		b.ReportMetric(r, "steady-events/s")
	}
	b.ReportMetric(float64(refused), "refused-requests")
	b.ReportMetric(float64(tally.resent.Load()), "resent")
	b.ReportMetric(float64(parked), "parked")
	b.ReportMetric(float64(wire)/float64(b.N), "wire-B")
	if n := int64(b.N) - parked; n > 0 {
		if t, ok := progress.Reached(n); ok && t > 0 {
			b.ReportMetric(float64(n)/t.Seconds(), "unparked-events/s")
		}
	}
	b.ReportMetric(benchutil.MB(uint64(cfg.Delivery.MaxInflightBytes)), "max-inflight-MB")
}

// BenchmarkOTLPEndToEndLatency runs the forwarder (default configuration)
// and, once it delivers, produces events at a steady benchLatencyRate with
// ingest's producer settings, each timestamped as it is produced. An
// event's latency is the time the fake decoded its record minus its
// time_unix_nano. One op is a benchLatencyWindow of load.
func BenchmarkOTLPEndToEndLatency(b *testing.B) {
	cluster, cfg := benchBroker(b)
	topic := cfg.Kafka.Topics.Events.Name
	perWindow := int(benchLatencyWindow.Seconds() * benchLatencyRate)
	total := b.N * perWindow

	const warmBase = 1 << 30
	warm := map[string]bool{}
	for i := range forwardingtest.BenchAccounts {
		warm[forwardingtest.BenchID(warmBase+i)] = true
	}
	lat := benchutil.NewLatencies(total)
	var seen, warmSeen atomic.Int64
	rcv := newBenchReceiver(b, func(x otlpfake.Tally) {
		for i, id := range x.IDs {
			if warm[id] {
				warmSeen.Add(1)
				continue
			}
			lat.Record(x.At.Sub(x.Times[i]))
			seen.Add(1)
		}
	})
	benchWriteDestinations(b, cfg, rcv.URL())
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

	var failures atomic.Int64
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
				}
			})
		}
	}
	produced := time.Since(start)
	ok := forwardingtest.BenchWait(60*time.Second, func() bool { return seen.Load() >= int64(total) })
	b.StopTimer()
	mem.Stop(b)
	stop()
	if f := failures.Load(); f > 0 || !ok {
		b.Fatalf("%d of %d produces failed; the fake accepted %d", f, total, seen.Load())
	}
	b.ReportMetric(float64(total)/produced.Seconds(), "produced-events/s")
	b.ReportMetric(benchutil.Millis(lat.Percentile(50)), "p50-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(99)), "p99-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(100)), "max-ms")
}

// Targets of the OTLP forwarder (2-core machine), as for the other
// forwarders.
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
	benchNameCeiling    = "OTLPConsumeCeiling"
	benchNameEncode     = "OTLPEncodeOnly"
	benchNameWriteBatch = "OTLPWriteBatchOnly"
	benchNameLatency    = "OTLPEndToEndLatency"
	benchNameSplit      = "OTLPForwarderCPUSplit"
)

func benchNameForwarder(inflight config.ByteSize) string {
	return fmt.Sprintf("OTLPForwarder/max-inflight=%dMB", inflight>>20)
}

// otlpBenchReport lays out the ceiling, the encode-only and
// WriteBatch-only passes and the forwarder runs (median over -count runs),
// their memory, the latency, and a verdict per target.
func otlpBenchReport(out benchutil.Output) (benchReport, error) {
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
	encode, _, err := get(benchNameEncode)
	if err != nil {
		return benchReport{}, err
	}
	writeBatch, _, err := get(benchNameWriteBatch)
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
	labels := []string{"raw franz-go consume ceiling", "encode-only (decode, OTLP record, request, gzip)", "WriteBatch-only (request and gzip of encoded entries)"}
	results := []benchutil.Result{ceiling, encode, writeBatch}
	const firstForwarder = 3
	for i, inflight := range benchInflightSettings {
		label := fmt.Sprintf("forwarder into the fake, max_inflight %d MiB", inflight>>20)
		if i == 0 {
			label += " (default)"
		}
		labels = append(labels, label)
		results = append(results, fwds[i])
	}

	var s strings.Builder
	fmt.Fprintf(&s, "\nOTLP forwarder against its ceilings (median of %d run(s); 1 KB records, protobuf, gzip, broker and OTLP fake in this process)\n", runs)
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
	s.WriteString(forwardingtest.BenchBound(encode, fwds[0], split, "OTLP fake"))
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
	if bound, ok := forwardingtest.BenchBoundRate(encode, fwd, split); ok {
		line("bound beside the broker and OTLP fake", "(no target)",
			fmt.Sprintf("%s events/s = %s of encode-only", benchutil.FormatValue(bound), benchutil.FormatPercent(bound/encode.Metrics["events/s"])))
	}
	s.WriteString("\ntargets (2-core machine)\n")
	s.WriteString(verdicts.String())
	rep.text = s.String()
	return rep, nil
}

// The report reads the benchmarks' result lines and judges each target.
func TestOTLPBenchReportFormat(t *testing.T) {
	const output = `BenchmarkOTLPConsumeCeiling-2   	  200000	      2500 ns/op	    400000 events/s	     300.0 peak-MB	      40.0 peak-over-base-MB	      30.0 live-over-base-MB	 1000 cpu-ns/op	 50 cpu-%
BenchmarkOTLPEncodeOnly-2       	  200000	      6250 ns/op	    100000 events/s	      30.0 peak-MB	       5.0 peak-over-base-MB	       2.0 live-over-base-MB	 20000 cpu-ns/op	 100 cpu-%
BenchmarkOTLPWriteBatchOnly-2   	  200000	      2000 ns/op	    150000 events/s	 13000 cpu-ns/op	 100 cpu-%
BenchmarkOTLPForwarder/max-inflight=16MB-2    	  200000	      8000 ns/op	    65000 events/s	 70000 unparked-events/s	 10 parked	     300.0 peak-MB	      60.0 peak-over-base-MB	 50.0 live-over-base-MB	      16.8 max-inflight-MB	 30000 cpu-ns/op	 100 cpu-%	 72000 steady-events/s
BenchmarkOTLPForwarder/max-inflight=64MB-2    	  200000	     10000 ns/op	    60000 events/s	 0 parked	     400.0 peak-MB	     150.0 peak-over-base-MB	 700.0 live-over-base-MB	      67.1 max-inflight-MB
BenchmarkOTLPForwarderCPUSplit-2    	  200000	      9000 ns/op	    50000 events/s	 32000 cpu-ns/op	 25.0 rig-cpu-%
BenchmarkOTLPEndToEndLatency-2                	       1	5000000000 ns/op	      1000 produced-events/s	     150.0 p50-ms	    900 p99-ms	      1300 max-ms	 80.0 peak-MB
PASS
`
	out, err := benchutil.Parse(strings.NewReader(output), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := otlpBenchReport(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"forwarder >= 70.0 % of encode-only             BELOW TARGET  65.0 % (10.0 parked; the rest at 70,000 events/s)",
		"end-to-end p99 < 1s at 1k events/s             PASS          900 ms",
		"memory set by config (backlog 205 MB)          BELOW TARGET  live 50.0 MB at 16 MiB (allowed 198), live 700 MB at 64 MiB (allowed 601)",
		"steady forwarder / encode-only                 (no target)   72.0 %",
		"forwarder / consume ceiling                    (no target)   16.2 %",
		"WriteBatch-only (request and gzip of encoded entries)",
		"the broker and the OTLP fake took 7.50 µs of CPU per event (25.0 % of 30.0 µs",
		"the forwarder itself, with the garbage collector, 22.5 µs, of which the encode-only work (20.0 µs) is 88.9 %",
		fmt.Sprintf("bound beside the broker and OTLP fake          (no target)   %s events/s = %s of encode-only",
			benchutil.FormatValue(float64(runtime.NumCPU())*1e9/27500), benchutil.FormatPercent(float64(runtime.NumCPU())*1e9/27500/100000)),
	} {
		if !strings.Contains(rep.text, want) {
			t.Errorf("report lacks %q:\n%s", want, rep.text)
		}
	}
	if rep.below != 2 {
		t.Errorf("%d targets below, want 2:\n%s", rep.below, rep.text)
	}
	if _, err := otlpBenchReport(benchutil.Output{}); err == nil {
		t.Error("no error for an output without results")
	}
}
