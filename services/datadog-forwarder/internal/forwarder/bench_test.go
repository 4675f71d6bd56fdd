package forwarder

// Benchmarks of the Datadog forwarder for `make bench`: 1 KB events, gzip
// on, broker (kfake) and intake (ddfake) in this process on the same
// machine. Performance targets live here, never in timed unit tests.
//
//   - BenchmarkDatadogConsumeCeiling: a bare franz-go group consumer, with
//     the delivery runtime's fetch settings, reading a pre-loaded topic;
//     the ceiling the forwarder is measured against.
//   - BenchmarkDatadogEncodeOnly: the same records decoded, shaped as
//     Datadog logs and gzipped in 500-entry request bodies on every CPU,
//     sent nowhere: what the work itself costs.
//   - BenchmarkDatadogForwarder: forwarder.Run with the default delivery
//     configuration draining a pre-loaded topic into the fake intake over
//     HTTP; also its memory next to max_inflight_bytes, at two settings,
//     each draining the same backlog.
//   - BenchmarkDatadogEndToEndLatency: events produced at a steady 1k/s
//     while the forwarder runs; latency from an event's timestamp (set when
//     it is produced) to the fake's accepting the log.
//
// For the throughput benchmarks b.N is the number of events (run them with
// a fixed count, -benchtime=500000x, so that start-up and the linger of
// the last batches are a small part of a run); one op of the latency
// benchmark is a 5 s window at 1k events/s (-benchtime=1x). TestDatadogBenchReport prints
// one comparison of a run's results against the targets.

import (
	"bytes"
	"context"
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
	"github.com/auditstream/auditstream/services/internal/sink/datadog"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/klauspost/compress/gzip"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// benchBodyEntries is how many entries one request body holds: the
	// default delivery batch.
	benchBodyEntries = 500
	// benchDeliverTimeout bounds a throughput run.
	benchDeliverTimeout = 3 * time.Minute

	// The latency benchmark's load.
	benchLatencyRate   = 1000 // events/s
	benchLatencyWindow = 5 * time.Second
)

// BenchmarkDatadogConsumeCeiling is the ceiling: a franz-go group consumer
// with the runtime's consumer and fetch options (no decoding, no delivery)
// polling b.N pre-loaded records, from a cold start (group join included,
// as for the forwarder).
func BenchmarkDatadogConsumeCeiling(b *testing.B) {
	cluster, cfg := benchBroker(b)
	forwardingtest.BenchConsumeCeiling(b, cluster, cfg, benchDeliverTimeout)
}

// BenchmarkDatadogEncodeOnly is the work without the plumbing: b.N
// records decoded with auditevent.DecodeRecord, encoded by the connection's
// datadog.Encoder, and joined into JSON-array request bodies of
// benchBodyEntries entries gzipped at the connection's level (what
// Sink.encodeBody does), on GOMAXPROCS goroutines, sent nowhere.
func BenchmarkDatadogEncodeOnly(b *testing.B) {
	records := benchRecords(b)
	var entryBytes, wireBytes atomic.Int64
	bodies := int64((b.N + benchBodyEntries - 1) / benchBodyEntries)
	elapsed := forwardingtest.BenchWorkers(b, runtime.GOMAXPROCS(0), bodies, func() (func(int64) error, error) {
		enc, err := newBenchBodyEncoder()
		if err != nil {
			return nil, err
		}
		return func(body int64) error {
			from := int(body) * benchBodyEntries
			raw, err := enc.encode(records, from, min(from+benchBodyEntries, b.N))
			entryBytes.Add(raw)
			wireBytes.Add(int64(enc.body.Len()))
			return err
		}, nil
	})
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(entryBytes.Load())/float64(b.N), "entry-B")
	b.ReportMetric(float64(wireBytes.Load())/float64(b.N), "wire-B")
}

// benchRecords is forwardingtest.BenchPool records as the broker holds them.
func benchRecords(b *testing.B) []*kgo.Record {
	gen := forwardingtest.NewBenchGen(b, DefaultConfig().Kafka.Topics.Events.Name)
	at := time.Now()
	records := make([]*kgo.Record, forwardingtest.BenchPool)
	for i := range records {
		records[i] = gen.Record(b, i, at.Add(time.Duration(i)*time.Microsecond))
	}
	return records
}

// benchBodyEncoder makes request bodies as a connection with the default
// settings does.
type benchBodyEncoder struct {
	enc     *datadog.Encoder
	level   int
	zw      *gzip.Writer
	body    bytes.Buffer
	entries [][]byte
}

func newBenchBodyEncoder() (*benchBodyEncoder, error) {
	dc := datadog.Config{TagPrefix: benchTagPrefix}.WithDefaults()
	if dc.Compression != datadog.CompressionGzip {
		return nil, fmt.Errorf("default compression is %q, want gzip", dc.Compression)
	}
	zw, err := gzip.NewWriterLevel(io.Discard, dc.CompressionLevel)
	if err != nil {
		return nil, err
	}
	return &benchBodyEncoder{enc: dc.Encoder(), level: dc.CompressionLevel, zw: zw, entries: make([][]byte, 0, benchBodyEntries)}, nil
}

// encode decodes and encodes events from to to (records cycled) into body
// and returns the entries' size as Datadog counts it.
func (e *benchBodyEncoder) encode(records []*kgo.Record, from, to int) (int64, error) {
	e.entries = e.entries[:0]
	for i := from; i < to; i++ {
		ev, err := auditevent.DecodeRecord(records[i%len(records)])
		if err != nil {
			return 0, err
		}
		entry, err := e.enc.Encode(ev)
		if err != nil {
			return 0, err
		}
		e.entries = append(e.entries, entry)
	}
	e.body.Reset()
	e.zw.Reset(&e.body)
	var raw int64
	sep := []byte{'['}
	for _, entry := range e.entries {
		_, _ = e.zw.Write(sep)
		_, _ = e.zw.Write(entry)
		sep[0] = ','
		raw += int64(datadog.EntrySize(entry))
	}
	_, _ = e.zw.Write([]byte{']'})
	return raw, e.zw.Close()
}

// BenchmarkDatadogIntakeOnly is what the fake intake costs on the CPUs it
// shares with the forwarder: request bodies of benchBodyEntries entries,
// encoded before the timer as the encode-only pass encodes them, POSTed by
// a bare net/http client with as many requests out as the forwarder has
// (benchConnections connections, requests_in_flight each), until the fake
// has accepted b.N entries. The forwarder's CPU per event is at least this
// pass's, the encode-only pass's and the consume ceiling's together.
func BenchmarkDatadogIntakeOnly(b *testing.B) {
	records := benchRecords(b)
	enc, err := newBenchBodyEncoder()
	if err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, 64)
	for i := range bodies {
		if _, err := enc.encode(records, i*benchBodyEntries, (i+1)*benchBodyEntries); err != nil {
			b.Fatal(err)
		}
		bodies[i] = bytes.Clone(enc.body.Bytes())
	}
	in := newBenchIntake(b, nil)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}
	requests := int64((b.N + benchBodyEntries - 1) / benchBodyEntries)
	post := func(i int64) error {
		req, err := http.NewRequest(http.MethodPost, in.URL()+ddfake.LogsPath, bytes.NewReader(bodies[i%int64(len(bodies))]))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("DD-API-KEY", benchConnName(int(i)%benchConnections))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("the intake answered %s", resp.Status)
		}
		return nil
	}
	elapsed := forwardingtest.BenchWorkers(b, benchConnections*DefaultConfig().Delivery.RequestsInFlight, requests,
		func() (func(int64) error, error) { return post, nil })
	if got := in.delivered(); got < int64(b.N) {
		b.Fatalf("the intake accepted %d of %d entries", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkDatadogForwarder runs forwarder.Run in this process with the
// default delivery configuration (500-entry / 4 MB / 200 ms batches), 50
// accounts routed to 4 gzip connections, against a topic pre-loaded with
// b.N records, and times it from start until the fake intake has accepted
// all of them. Sub-benchmarks set max_inflight_bytes (max_connection_bytes
// stays a quarter of it, as in the defaults); memory is reported next to
// it. The one other setting changed is park_delay (benchParkDelay): events
// parked on the retry topic come back after it, so a run that parks ends
// in seconds, not minutes. It reports parked events, and unparked-events/s,
// the rate until every event that was not parked had arrived.
func BenchmarkDatadogForwarder(b *testing.B) {
	for _, inflight := range benchInflightSettings {
		b.Run(fmt.Sprintf("max-inflight=%dMB", inflight>>20), func(b *testing.B) {
			benchForwarder(b, inflight, false)
		})
	}
}

// BenchmarkDatadogForwarderCPUSplit is the default forwarder run again,
// under a CPU profile that tells the forwarder's CPU from what the broker
// and the fake take of each event (forwardingtest.StartBenchUsageSplit).
// Profiling slows the run, so its throughput is not the forwarder's; the
// report takes only the split from it.
func BenchmarkDatadogForwarderCPUSplit(b *testing.B) {
	benchForwarder(b, DefaultConfig().Delivery.MaxInflightBytes, true)
}

// benchInflightSettings are the max_inflight_bytes the forwarder benchmark
// runs with; the first is the default.
var benchInflightSettings = []config.ByteSize{DefaultConfig().Delivery.MaxInflightBytes, 4 * DefaultConfig().Delivery.MaxInflightBytes}

// benchParkDelay replaces the default park_delay (1 minute) in the
// throughput runs.
const benchParkDelay = 5 * time.Second

func benchForwarder(b *testing.B, inflight config.ByteSize, split bool) {
	cluster, cfg := benchBroker(b)
	cfg.Delivery.MaxInflightBytes = inflight
	cfg.Delivery.MaxConnectionBytes = min(cfg.Delivery.MaxConnectionBytes, inflight/4)
	cfg.Delivery.ParkDelay = benchParkDelay
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	forwardingtest.BenchPreload(b, cluster, cfg, b.N)
	in := newBenchIntake(b, nil)
	benchWriteDestinations(b, cfg, in.URL())

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
		n := in.delivered()
		progress.See(n)
		return n >= int64(b.N)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	mem.Stop(b)
	stop()

	parked := forwardingtest.BenchHighWatermarks(cluster, cfg.Delivery.RetryTopic.Name)
	dead := forwardingtest.BenchHighWatermarks(cluster, cfg.Kafka.Topics.DeadLetter.Name)
	resent, accepted := in.resent.Load(), in.accepted.Load()
	if !ok || dead > 0 {
		b.Fatalf("the intake accepted %d of %d events (%d twice) in %s; %d requests refused; %d events parked, %d dead-lettered",
			accepted-resent, b.N, resent, elapsed.Round(time.Millisecond), in.rejected.Load(), parked, dead)
	}
	// Offsets are committed only for records delivered, parked or
	// dead-lettered: none may be left once the intake holds all of them.
	if n := forwardingtest.BenchUncommitted(b, cluster, cfg); n > 0 {
		b.Fatalf("the intake accepted %d events (%d twice), but %d records are not committed", accepted-resent, resent, n)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(in.rejected.Load()), "refused-requests")
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
	b.ReportMetric(float64(in.entryBytes.Load())/float64(accepted), "entry-B")
	b.ReportMetric(float64(in.wireBytes.Load())/float64(accepted), "wire-B")
	b.ReportMetric(float64(accepted)/float64(max(in.requests.Load(), 1)), "entries/req")
	b.ReportMetric(benchutil.MB(uint64(inflight)), "max-inflight-MB")
}

// BenchmarkDatadogEndToEndLatency runs the forwarder (default
// configuration) and, once it delivers, produces events at a steady
// benchLatencyRate with ingest's producer settings, each timestamped as it
// is produced. An event's latency is the time the fake intake accepted its
// log (the time of its answer) minus that timestamp. One op is a
// benchLatencyWindow of load.
func BenchmarkDatadogEndToEndLatency(b *testing.B) {
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
		seen    atomic.Int64
		badBody atomic.Pointer[error]
		mu      sync.Mutex
		first   = make(map[string]bool, total) // ids accepted so far
	)
	in := newBenchIntake(b, func(entries [][]byte, at time.Time) {
		ids, times, err := benchEntryTimes(entries)
		if err != nil {
			badBody.CompareAndSwap(nil, &err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for i, id := range ids {
			// An entry accepted again (its first answer was lost) keeps
			// the time it was first accepted.
			if !warm[id] && !first[id] {
				first[id] = true
				lat.Record(at.Sub(times[i]))
				seen.Add(1)
			}
		}
	})
	benchWriteDestinations(b, cfg, in.URL())
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
	if !forwardingtest.BenchWait(30*time.Second, func() bool { return in.delivered() >= forwardingtest.BenchAccounts }) {
		b.Fatalf("warm-up: the intake accepted %d of %d events", in.delivered(), forwardingtest.BenchAccounts)
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

	if err := badBody.Load(); err != nil {
		b.Fatalf("an accepted body does not read: %v", *err)
	}
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d of %d produces failed; first: %v", f, total, *firstErr.Load())
	}
	if !ok {
		b.Fatalf("the intake accepted %d of %d events; %d requests refused", seen.Load(), total, in.rejected.Load())
	}
	b.ReportMetric(float64(total)/produced.Seconds(), "produced-events/s")
	b.ReportMetric(benchutil.Millis(lat.Percentile(50)), "p50-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(99)), "p99-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(100)), "max-ms")
}

// Targets of the Datadog forwarder (the issue's, on a 2-core machine).
const (
	benchTargetEventsPerSec = 100_000
	benchTargetOfEncodeOnly = 0.70
	benchTargetP99          = time.Second
)

type benchReport struct {
	text  string
	below int
}

// Names of the benchmark results the report reads.
const (
	benchNameCeiling = "DatadogConsumeCeiling"
	benchNameEncode  = "DatadogEncodeOnly"
	benchNameIntake  = "DatadogIntakeOnly"
	benchNameLatency = "DatadogEndToEndLatency"
	benchNameSplit   = "DatadogForwarderCPUSplit"
)

func benchNameForwarder(inflight config.ByteSize) string {
	return fmt.Sprintf("DatadogForwarder/max-inflight=%dMB", inflight>>20)
}

// datadogBenchReport lays out the ceiling, the encode-only pass and the
// forwarder runs (median over -count runs), their memory, the latency, and
// a verdict per target.
func datadogBenchReport(out benchutil.Output) (benchReport, error) {
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
	intake, _, err := get(benchNameIntake)
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
	labels := []string{"raw franz-go consume ceiling", "encode-only (decode, Datadog shape, gzip)", "intake-only (the fake taking encoded bodies)"}
	results := []benchutil.Result{ceiling, encode, intake}
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
	fmt.Fprintf(&s, "\nDatadog forwarder against its ceilings (median of %d run(s); 1 KB records, gzip, broker and intake in this process)\n", runs)
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
	s.WriteString(forwardingtest.BenchBound(encode, fwds[0], split, "Datadog intake"))
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
	unparked := ""
	if fwd.Metrics["parked"] > 0 {
		unparked = fmt.Sprintf(" (%s parked; the rest at %s events/s)", metric(fwd, "parked"), metric(fwd, "unparked-events/s"))
	}
	rate := fwd.Metrics["events/s"]
	verdict(fmt.Sprintf("forwarder >= %s events/s", benchutil.FormatValue(benchTargetEventsPerSec)),
		rate >= benchTargetEventsPerSec, benchutil.FormatValue(rate)+" events/s"+unparked)
	r, txt := ratio(fwd, "events/s", encode)
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
		line("bound beside the broker and intake", "(no target)",
			fmt.Sprintf("%s events/s = %s of encode-only", benchutil.FormatValue(bound), benchutil.FormatPercent(bound/encode.Metrics["events/s"])))
	}
	s.WriteString("\ntargets (2-core machine)\n")
	s.WriteString(verdicts.String())
	rep.text = s.String()
	return rep, nil
}

// The report reads the benchmarks' result lines and judges each target.
func TestDatadogBenchReportFormat(t *testing.T) {
	const output = `BenchmarkDatadogConsumeCeiling-2   	  200000	      2500 ns/op	    400000 events/s	     300.0 peak-MB	      40.0 peak-over-base-MB	      30.0 live-over-base-MB	 1000 cpu-ns/op	 50 cpu-%
BenchmarkDatadogEncodeOnly-2       	  200000	      6250 ns/op	    160000 events/s	      30.0 peak-MB	       5.0 peak-over-base-MB	       2.0 live-over-base-MB	 12500 cpu-ns/op	 100 cpu-%
BenchmarkDatadogIntakeOnly-2       	  200000	      2000 ns/op	    500000 events/s	 4500 cpu-ns/op	 100 cpu-%
BenchmarkDatadogForwarder/max-inflight=16MB-2    	  200000	      8000 ns/op	    125000 events/s	 130000 unparked-events/s	 10 parked	     300.0 peak-MB	      60.0 peak-over-base-MB	 50.0 live-over-base-MB	      16.8 max-inflight-MB	 20000 cpu-ns/op	 100 cpu-%	 130000 steady-events/s
BenchmarkDatadogForwarder/max-inflight=64MB-2    	  200000	     10000 ns/op	    100000 events/s	 100000 unparked-events/s	 0 parked	     400.0 peak-MB	     150.0 peak-over-base-MB	 120.0 live-over-base-MB	      67.1 max-inflight-MB
BenchmarkDatadogForwarderCPUSplit-2    	  200000	      9000 ns/op	    110000 events/s	 22000 cpu-ns/op	 25.0 rig-cpu-%
BenchmarkDatadogEndToEndLatency-2                	       1	5000000000 ns/op	      1000 produced-events/s	     150.0 p50-ms	    1200 p99-ms	      1300 max-ms	 80.0 peak-MB
PASS
`
	out, err := benchutil.Parse(strings.NewReader(output), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := datadogBenchReport(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"forwarder >= 100,000 events/s                  PASS          125,000 events/s (10.0 parked; the rest at 130,000 events/s)",
		"forwarder >= 70.0 % of encode-only             PASS          78.1 %",
		"end-to-end p99 < 1s at 1k events/s             BELOW TARGET  1,200 ms",
		"memory set by config (backlog 205 MB)          PASS          live 50.0 MB at 16 MiB (allowed 198), live 120 MB at 64 MiB (allowed 601)",
		"forwarder / consume ceiling                    (no target)   31.2 %",
		"the broker and the Datadog intake took 5.00 µs of CPU per event (25.0 % of 20.0 µs",
		"the forwarder itself, with the garbage collector, 15.0 µs, of which the encode-only work (12.5 µs) is 83.3 %",
		"intake-only (the fake taking encoded bodies)",
		"steady forwarder / encode-only                 (no target)   81.2 %",
		fmt.Sprintf("bound beside the broker and intake             (no target)   %s events/s = %s of encode-only",
			benchutil.FormatValue(float64(runtime.NumCPU())*1e9/17500), benchutil.FormatPercent(float64(runtime.NumCPU())*1e9/17500/160000)),
	} {
		if !strings.Contains(rep.text, want) {
			t.Errorf("report lacks %q:\n%s", want, rep.text)
		}
	}
	if rep.below != 1 {
		t.Errorf("%d targets below, want 1:\n%s", rep.below, rep.text)
	}
	if _, err := datadogBenchReport(benchutil.Output{}); err == nil {
		t.Error("no error for an output without results")
	}
}
