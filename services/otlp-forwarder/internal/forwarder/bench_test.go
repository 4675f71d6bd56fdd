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
//     with its memory next to max_inflight_bytes and the CPU per event.
//   - BenchmarkOTLPEndToEndLatency: events produced at a steady 1k/s while
//     the forwarder runs; latency from an event's timestamp (set when it is
//     produced) to the fake's decoding its record; p50, p99, max.
//
// For the throughput benchmarks b.N is the number of events (run them with
// a fixed count, -benchtime=500000x); one op of the latency benchmark is a
// 5 s window at 1k events/s (-benchtime=1x).

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
				entryBytes.Add(int64(otlp.EntrySize(entry)))
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
	entries := make([][]byte, forwardingtest.BenchPool)
	for i := range entries {
		ev, err := auditevent.DecodeRecord(gen.Record(b, i, at.Add(time.Duration(i)*time.Microsecond)))
		if err != nil {
			b.Fatal(err)
		}
		if entries[i], err = enc.Encode(ev); err != nil {
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
		batch := make([][]byte, 0, benchBatchEntries)
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
// until the fake has accepted all of them. It reports memory next to
// max_inflight_bytes, the CPU per event, resent records and parked ones.
func BenchmarkOTLPForwarder(b *testing.B) {
	cluster, cfg := benchBroker(b)
	cfg.Delivery.ParkDelay = benchParkDelay
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	forwardingtest.BenchPreload(b, cluster, cfg, b.N)
	tally := newBenchTally(b.N)
	rcv := newBenchReceiver(b, tally.accept)
	benchWriteDestinations(b, cfg, rcv.URL())

	mem := forwardingtest.StartBenchUsage(b)
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
