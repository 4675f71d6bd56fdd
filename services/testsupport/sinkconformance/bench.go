package sinkconformance

// The forwarders' shared benchmarks for `make bench`: the forwarder
// draining a pre-loaded topic into a fake, and the end-to-end latency at a
// steady load. Each forwarder's bench_test.go names them (the report reads
// results by name) and adds the passes only its sink has.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// benchDeliverTimeout bounds a throughput run. A run that parks events
	// waits out park_delay before they come back.
	benchDeliverTimeout = 3 * time.Minute
	// benchParkDelay replaces the default park_delay (1 minute) in the
	// throughput runs: events parked on the retry topic come back after
	// it, so a run that parks ends in seconds, not minutes.
	benchParkDelay = 5 * time.Second

	// The latency benchmark's load.
	benchLatencyRate   = 1000 // events/s
	benchLatencyWindow = 5 * time.Second
)

// BenchFake is a protocol fake set up for a benchmark: it counts what it
// accepts without keeping it, so that a long run holds no delivered entry
// in this process's memory, which the benchmarks measure.
type BenchFake interface {
	// Connection returns the name of the fake's connection i (0 to
	// BenchConnections-1) and its entry of the destinations file's
	// connections map (lines indented by two spaces). It may write secret
	// files into dir.
	Connection(b *testing.B, i int, dir string) (name, yaml string)
	// Delivered is the number of events accepted so far, each once;
	// Resent those accepted again after an answer the sink did not get.
	Delivered() int64
	Resent() int64
	// Refused is the number of requests the fake refused; Failed the
	// entries it refused inside accepted requests.
	Refused() int64
	Failed() int64
	// ReportMetrics reports the fake's own figures of a run (bytes per
	// entry, entries per request).
	ReportMetrics(b *testing.B)
}

// BenchAdapter is what a forwarder hands the shared benchmarks.
type BenchAdapter struct {
	Spec forwarding.Spec
	// NewFake starts the fake, closed at the end of the benchmark;
	// onAccepted, when not nil, gets each accepted entry's event id and
	// event time, and when the fake accepted it.
	NewFake func(b *testing.B, onAccepted func(id string, eventTime, at time.Time)) BenchFake
	// ConnectionBytes is max_connection_bytes for a run with
	// max_inflight_bytes inflight; nil is a quarter of inflight, at most
	// the default.
	ConnectionBytes func(inflight config.ByteSize) config.ByteSize
}

// BenchConnections is how many connections the benchmarks' accounts route
// to: account i to connection i mod BenchConnections.
const BenchConnections = 4

// writeBenchDestinations writes cfg's destinations file: the
// forwardingtest.BenchAccounts accounts routed to the fake's connections.
func writeBenchDestinations(b *testing.B, cfg forwarding.Config, fake BenchFake) {
	b.Helper()
	var s strings.Builder
	names := make([]string, BenchConnections)
	s.WriteString("connections:\n")
	for i := range names {
		var yaml string
		names[i], yaml = fake.Connection(b, i, filepath.Dir(cfg.Destinations.File))
		s.WriteString(yaml)
	}
	s.WriteString("routes:\n")
	for i := range forwardingtest.BenchAccounts {
		fmt.Fprintf(&s, "  - account: %q\n    connections: [%s]\n", forwardingtest.BenchAccount(i), names[i%BenchConnections])
	}
	if err := os.WriteFile(cfg.Destinations.File, []byte(s.String()), 0o600); err != nil {
		b.Fatal(err)
	}
}

// BenchTally counts the events a bench fake accepts, each once, in a
// bitset by the number of their forwardingtest.BenchID: a set of the ids
// themselves would grow with the backlog, in the heap the benchmarks
// measure (about 200 bytes an event, which made a 500,000-event OTLP run
// look as if its forwarder held the backlog). An event accepted a second
// time (its request's answer lost, so the sink sent it again) counts as
// resent; an id that is no BenchID of the run (warm-up), as other.
type BenchTally struct {
	seen     []atomic.Uint64 // bit n: event n was accepted
	distinct atomic.Int64
	resent   atomic.Int64
	other    atomic.Int64
}

// NewBenchTally tallies the events BenchID(0) to BenchID(n-1).
func NewBenchTally(n int) *BenchTally {
	return &BenchTally{seen: make([]atomic.Uint64, (n+63)/64)}
}

// Accept counts the event of id.
func (t *BenchTally) Accept(id string) {
	n, ok := forwardingtest.BenchIDNumber(id)
	if !ok || n >= len(t.seen)*64 {
		t.other.Add(1)
		return
	}
	w, bit := &t.seen[n/64], uint64(1)<<(n%64)
	for {
		old := w.Load()
		if old&bit != 0 {
			t.resent.Add(1)
			return
		}
		if w.CompareAndSwap(old, old|bit) {
			t.distinct.Add(1)
			return
		}
	}
}

// Distinct, Resent and Other are the counts so far.
func (t *BenchTally) Distinct() int64 { return t.distinct.Load() }
func (t *BenchTally) Resent() int64   { return t.resent.Load() }
func (t *BenchTally) Other() int64    { return t.other.Load() }

// WriteBenchSecret writes a connection's secret file as a mounted Secret
// is, well before the service starts: a file modified within seconds of
// being read is read again at every use (config's racy-file rule), which
// would make a benchmark measure the file system instead of the sink.
func WriteBenchSecret(b *testing.B, path, value string) {
	b.Helper()
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(path, old, old); err != nil {
		b.Fatal(err)
	}
}

// BenchInflightSettings are the max_inflight_bytes the forwarder benchmark
// runs with: the default first, then four times as much.
func BenchInflightSettings(spec forwarding.Spec) []config.ByteSize {
	d := forwarding.DefaultConfig(spec).Delivery.MaxInflightBytes
	return []config.ByteSize{d, 4 * d}
}

// BenchForwarderName is the name (after "Benchmark") of the forwarder
// run at inflight, as the report reads it.
func BenchForwarderName(prefix string, inflight config.ByteSize) string {
	return fmt.Sprintf("%sForwarder/max-inflight=%dMB", prefix, inflight>>20)
}

// BenchForwarders runs the forwarder benchmark at each of the
// BenchInflightSettings as a sub-benchmark.
func BenchForwarders(b *testing.B, a BenchAdapter) {
	for _, inflight := range BenchInflightSettings(a.Spec) {
		b.Run(fmt.Sprintf("max-inflight=%dMB", inflight>>20), func(b *testing.B) {
			BenchForwarder(b, a, inflight, false)
		})
	}
}

// BenchForwarderCPUSplit is the default forwarder run again, under a CPU
// profile that tells the forwarder's CPU from what the broker and the fake
// take of each event (forwardingtest.StartBenchUsageSplit). Profiling slows
// the run, so its throughput is not the forwarder's; the report takes only
// the split from it.
func BenchForwarderCPUSplit(b *testing.B, a BenchAdapter) {
	BenchForwarder(b, a, forwarding.DefaultConfig(a.Spec).Delivery.MaxInflightBytes, true)
}

// BenchStart runs the forwarder of spec in this process, under the label
// the CPU split counts as the forwarder's; stop ends it and waits.
func BenchStart(b *testing.B, spec forwarding.Spec, cfg forwarding.Config) (stop func()) {
	b.Helper()
	return forwardingtest.RunForwarder(b, 60*time.Second, func(ctx context.Context) error {
		var err error
		forwardingtest.RunAsForwarder(ctx, func(ctx context.Context) { err = forwarding.Run(ctx, spec, cfg) })
		return err
	})
}

// BenchForwarder runs forwarding.Run in this process with the default
// delivery configuration, but max_inflight_bytes inflight and park_delay
// benchParkDelay, against a topic pre-loaded with b.N records, and times
// it from start until the fake has accepted all of them; with split, under
// a CPU profile that tells the forwarder's CPU from the broker's and the
// fake's (forwardingtest.StartBenchUsageSplit). It reports parked events,
// unparked-events/s (the rate until every event that was not parked had
// arrived), resent entries (accepted twice after a lost answer), memory
// next to max_inflight_bytes and the fake's own figures.
func BenchForwarder(b *testing.B, a BenchAdapter, inflight config.ByteSize, split bool) {
	cluster, cfg := forwardingtest.BenchBroker(b, a.Spec)
	cfg.Delivery.MaxInflightBytes = inflight
	cfg.Delivery.MaxConnectionBytes = min(cfg.Delivery.MaxConnectionBytes, inflight/4)
	if a.ConnectionBytes != nil {
		cfg.Delivery.MaxConnectionBytes = a.ConnectionBytes(inflight)
	}
	cfg.Delivery.ParkDelay = benchParkDelay
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	forwardingtest.BenchPreload(b, cluster, cfg, b.N)
	fake := a.NewFake(b, nil)
	writeBenchDestinations(b, cfg, fake)

	var mem *forwardingtest.BenchUsage
	if split {
		mem = forwardingtest.StartBenchUsageSplit(b)
	} else {
		mem = forwardingtest.StartBenchUsage(b)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	stop := BenchStart(b, a.Spec, cfg)
	progress := forwardingtest.NewBenchProgress(start)
	ok := forwardingtest.BenchWait(benchDeliverTimeout, func() bool {
		n := fake.Delivered()
		progress.See(n)
		return n >= int64(b.N)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	mem.Stop(b)
	stop()

	parked := forwardingtest.BenchHighWatermarks(cluster, cfg.Delivery.RetryTopic.Name)
	dead := forwardingtest.BenchHighWatermarks(cluster, cfg.Kafka.Topics.DeadLetter.Name)
	resent := fake.Resent()
	if !ok || dead > 0 || fake.Failed() > 0 {
		b.Fatalf("the fake accepted %d of %d events (%d twice) in %s; %d requests refused, %d entries failed; %d events parked, %d dead-lettered",
			fake.Delivered(), b.N, resent, elapsed.Round(time.Millisecond), fake.Refused(), fake.Failed(), parked, dead)
	}
	// Offsets are committed only for records delivered, parked or
	// dead-lettered: none may be left once the fake holds all of them.
	if n := forwardingtest.BenchUncommitted(b, cluster, cfg); n > 0 {
		b.Fatalf("the fake accepted %d events (%d twice), but %d records are not committed", fake.Delivered(), resent, n)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(fake.Refused()), "refused-requests")
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
	fake.ReportMetrics(b)
	b.ReportMetric(benchutil.MB(uint64(inflight)), "max-inflight-MB")
}

// BenchEndToEndLatency runs the forwarder (default configuration) and,
// once it delivers, produces events at a steady benchLatencyRate with
// ingest's producer settings, each timestamped as it is produced. An
// event's latency is the time the fake accepted its entry minus that
// timestamp; an entry accepted again (its first answer was lost) keeps the
// time it was first accepted. One op is a benchLatencyWindow of load.
func BenchEndToEndLatency(b *testing.B, a BenchAdapter) {
	cluster, cfg := forwardingtest.BenchBroker(b, a.Spec)
	topic := cfg.Kafka.Topics.Events.Name
	perWindow := int(benchLatencyWindow.Seconds() * benchLatencyRate)
	total := b.N * perWindow

	// Warm-up records are numbered from warmBase, a multiple of
	// forwardingtest.BenchPool so that the forwardingtest.BenchAccounts of
	// them cover every account.
	const warmBase = 1 << 30
	warm := map[string]bool{}
	for i := range forwardingtest.BenchAccounts {
		warm[forwardingtest.BenchID(warmBase+i)] = true
	}
	lat := benchutil.NewLatencies(total)
	var (
		seen, warmSeen atomic.Int64
		mu             sync.Mutex
		first          = make(map[string]bool, total) // ids accepted so far
	)
	fake := a.NewFake(b, func(id string, eventTime, at time.Time) {
		if warm[id] {
			warmSeen.Add(1)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !first[id] {
			first[id] = true
			lat.Record(at.Sub(eventTime))
			seen.Add(1)
		}
	})
	writeBenchDestinations(b, cfg, fake)
	stop := BenchStart(b, a.Spec, cfg)
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

	if f := failures.Load(); f > 0 {
		b.Fatalf("%d of %d produces failed; first: %v", f, total, *firstErr.Load())
	}
	if !ok || fake.Refused() > 0 || fake.Failed() > 0 {
		b.Fatalf("the fake accepted %d of %d events; %d requests refused, %d entries failed", seen.Load(), total, fake.Refused(), fake.Failed())
	}
	b.ReportMetric(float64(total)/produced.Seconds(), "produced-events/s")
	b.ReportMetric(benchutil.Millis(lat.Percentile(50)), "p50-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(99)), "p99-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(100)), "max-ms")
}

// RunBenchReport prints one comparison of a benchmark run against a
// forwarder's targets (s.Report). It reads the `go test -bench`
// output named by AUDITSTREAM_BENCH_OUTPUT and fails without it. It fails
// only when the output lacks a result, or, with
// AUDITSTREAM_BENCH_STRICT=1, when a target is missed.
func RunBenchReport(t *testing.T, s BenchReportSpec) {
	path := os.Getenv("AUDITSTREAM_BENCH_OUTPUT")
	if path == "" {
		t.Fatal("set AUDITSTREAM_BENCH_OUTPUT to a `go test -bench` output (make bench does)")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := benchutil.Parse(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Failures) > 0 {
		t.Errorf("the benchmark run failed: %s", out.Failures[0])
	}
	text, below, err := s.Report(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(os.Stdout, text); err != nil {
		t.Fatal(err)
	}
	if below > 0 && os.Getenv("AUDITSTREAM_BENCH_STRICT") == "1" {
		t.Errorf("%d target(s) below", below)
	}
}
