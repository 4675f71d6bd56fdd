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
//     default run under a profile telling its CPU from the rig's
//     (sinkconformance.BenchForwarder).
//   - BenchmarkOTLPEndToEndLatency: events produced at a steady 1k/s while
//     the forwarder runs; latency from an event's timestamp (set when it is
//     produced) to the fake's decoding its record; p50, p99, max
//     (sinkconformance.BenchEndToEndLatency).
//
// For the throughput benchmarks b.N is the number of events (run them with
// a fixed count, -benchtime=500000x); one op of the latency benchmark is a
// 5 s window at 1k events/s (-benchtime=1x). TestOTLPBenchReport prints
// one comparison of a run's results against the targets.

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/internal/sink/otlp"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// BenchmarkOTLPConsumeCeiling is the ceiling, run first
// (sinkconformance.BenchConsumeCeiling).
func BenchmarkOTLPConsumeCeiling(b *testing.B) { sinkconformance.BenchConsumeCeiling(b, Spec) }

// benchEntrySize is an entry's size as the sink counts it.
func benchEntrySize(e sink.Entry[otlp.Entry]) int { return otlp.EntrySize(e.Value) }

// BenchmarkOTLPEncodeOnly is the work without the plumbing: b.N records
// decoded and encoded by the connection's Encoder on GOMAXPROCS
// goroutines, each 500-entry batch handed to the connection's Sink, which
// merges, marshals and gzips its request and reads the answer made in
// memory: no socket, no server, no Kafka (sinkconformance.BenchEncode).
func BenchmarkOTLPEncodeOnly(b *testing.B) {
	var requests, wire atomic.Int64
	s := newBenchSink(b, &requests, &wire)
	ctx := context.Background()
	sinkconformance.BenchEncode(b, Spec, otlp.NewEncoder(nil), benchEntrySize,
		func() (func([]sink.Entry[otlp.Entry]) error, error) {
			return func(entries []sink.Entry[otlp.Entry]) error { return s.WriteBatch(ctx, entries) }, nil
		})
	b.ReportMetric(float64(wire.Load())/float64(b.N), "wire-B")
	b.ReportMetric(float64(b.N)/float64(max(requests.Load(), 1)), "records/request")
}

// BenchmarkOTLPWriteBatchOnly is the sink's part of the encode-only pass:
// the same records encoded before the timer, then handed in 500-entry
// batches to the connection's Sink (entries read, grouped per account,
// marshalled, gzipped, answered in memory) on GOMAXPROCS goroutines.
func BenchmarkOTLPWriteBatchOnly(b *testing.B) {
	entries := sinkconformance.BenchEntries(b, Spec, otlp.NewEncoder(nil))
	var requests, wire atomic.Int64
	s := newBenchSink(b, &requests, &wire)
	ctx := context.Background()
	sinkconformance.BenchBatches(b, func() (func(from, to int) error, error) {
		batch := make([]sink.Entry[otlp.Entry], 0, sinkconformance.BenchBatchEntries)
		return func(from, to int) error {
			batch = batch[:0]
			for i := from; i < to; i++ {
				batch = append(batch, entries[i%len(entries)])
			}
			return s.WriteBatch(ctx, batch)
		}, nil
	})
	b.ReportMetric(float64(wire.Load())/float64(b.N), "wire-B")
}

// The other benchmarks every forwarder has (sinkconformance), against the
// fake through benchAdapter: the forwarder at each max_inflight_bytes
// setting, the default run under a CPU profile, and the end-to-end latency
// at 1k events/s.
func BenchmarkOTLPForwarder(b *testing.B) { sinkconformance.BenchForwarders(b, benchAdapter) }
func BenchmarkOTLPForwarderCPUSplit(b *testing.B) {
	sinkconformance.BenchForwarderCPUSplit(b, benchAdapter)
}
func BenchmarkOTLPEndToEndLatency(b *testing.B) {
	sinkconformance.BenchEndToEndLatency(b, benchAdapter)
}

// benchReportSpec is the OTLP forwarder's report: its passes; the targets
// are the shared ones.
var benchReportSpec = sinkconformance.BenchReportSpec{
	Prefix: "OTLP",
	Spec:   Spec,
	Setup:  "1 KB records, protobuf, gzip, broker and OTLP fake in this process",
	Passes: []sinkconformance.BenchPass{
		{Name: "EncodeOnly", Label: "encode-only (decode, OTLP record, request, gzip)"},
		{Name: "WriteBatchOnly", Label: "WriteBatch-only (request and gzip of encoded entries)"},
	},
	Peer:      "OTLP fake",
	BoundPeer: "OTLP fake",
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
	sinkconformance.CheckBenchReport(t, benchReportSpec, output, []string{
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
	}, 2)
}
