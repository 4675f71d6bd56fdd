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
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/internal/sink/eventbridge"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// BenchmarkEventBridgeConsumeCeiling is the ceiling, run first
// (sinkconformance.BenchConsumeCeiling).
func BenchmarkEventBridgeConsumeCeiling(b *testing.B) { sinkconformance.BenchConsumeCeiling(b, Spec) }

// benchConnectionConfig is a benchmark connection's settings.
func benchConnectionConfig(endpoint string) eventbridge.Config {
	return eventbridge.Config{
		Region: "eu-west-1", EventBus: benchConnName(0), Endpoint: endpoint, Prefix: benchPrefix,
		Credentials: eventbridge.Credentials{AccessKeyID: config.SecretLiteral(testKeyID), SecretAccessKey: config.SecretLiteral(testSecret)},
	}.WithDefaults()
}

// benchEncode runs b.N records decoded and encoded by the connection's
// Encoder through write in batches of sinkconformance.BenchBatchEntries on
// GOMAXPROCS goroutines (sinkconformance.BenchEncode).
func benchEncode(b *testing.B, write func(entries []sink.Entry[eventbridge.Entry]) error) {
	enc := benchConnectionConfig("").Encoder()
	sinkconformance.BenchEncode(b, Spec, enc, enc.EntrySize,
		func() (func([]sink.Entry[eventbridge.Entry]) error, error) { return write, nil })
}

// BenchmarkEventBridgeEntryOnly is the mapping alone: b.N records decoded
// with auditevent.DecodeRecord and encoded by the connection's Encoder, on
// GOMAXPROCS goroutines.
func BenchmarkEventBridgeEntryOnly(b *testing.B) {
	benchEncode(b, func([]sink.Entry[eventbridge.Entry]) error { return nil })
}

// BenchmarkEventBridgeEncodeOnly is the work without the plumbing: b.N
// records decoded and encoded as EntryOnly does, then each 500-entry batch
// handed to the connection's Sink, whose SDK client serialises and signs
// its PutEvents calls of 10 entries (up to 8 at once) and reads their
// answers, produced in memory by benchLocalHTTP: no socket, no server, no
// Kafka.
func BenchmarkEventBridgeEncodeOnly(b *testing.B) {
	var calls, bodyBytes atomic.Int64
	s, err := eventbridge.New(benchConnectionConfig("http://127.0.0.1:9"), eventbridge.Options{HTTPClient: benchLocalHTTP{&calls, &bodyBytes}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	benchEncode(b, func(entries []sink.Entry[eventbridge.Entry]) error { return s.WriteBatch(ctx, entries) })
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
// until the fake has accepted b.N entries, every signature verified
// (sinkconformance.BenchReplay). The forwarder's CPU per event is at least
// this pass's, the encode-only pass's and the consume ceiling's together.
func BenchmarkEventBridgeBusOnly(b *testing.B) {
	bus := newBenchBus(b, nil)
	capture := &benchCaptureHTTP{}
	s, err := eventbridge.New(benchConnectionConfig(bus.URL()), eventbridge.Options{HTTPClient: capture})
	if err != nil {
		b.Fatal(err)
	}
	entries := sinkconformance.BenchEntries(b, Spec, benchConnectionConfig("").Encoder())
	if err := s.WriteBatch(context.Background(), entries[:sinkconformance.BenchBatchEntries]); err != nil {
		b.Fatal(err)
	}
	before := bus.Stats()
	sinkconformance.BenchReplay(b, capture.calls, benchConnections*eventbridge.DefaultMaxConcurrentCalls, eventbridge.MaxEntries, http.StatusOK)
	st := bus.Stats()
	if got := st.Accepted - before.Accepted; got < b.N || st.Failed > 0 {
		b.Fatalf("the fake accepted %d of %d entries, %d failed", got, b.N, st.Failed)
	}
}

// benchCaptureHTTP keeps every request the SDK sends and answers it as the
// fake would when every entry is accepted.
type benchCaptureHTTP struct {
	mu    sync.Mutex
	calls []sinkconformance.BenchRequest
}

func (h *benchCaptureHTTP) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.calls = append(h.calls, sinkconformance.BenchRequest{URL: r.URL.String(), Header: r.Header.Clone(), Body: body})
	h.mu.Unlock()
	var calls, size atomic.Int64
	r.Body = io.NopCloser(bytes.NewReader(body))
	return benchLocalHTTP{&calls, &size}.Do(r)
}

// The other benchmarks every forwarder has (sinkconformance), against the
// fake through benchAdapter: the forwarder at each max_inflight_bytes
// setting, the default run under a CPU profile, and the end-to-end latency
// at 1k events/s.
func BenchmarkEventBridgeForwarder(b *testing.B) { sinkconformance.BenchForwarders(b, benchAdapter) }
func BenchmarkEventBridgeForwarderCPUSplit(b *testing.B) {
	sinkconformance.BenchForwarderCPUSplit(b, benchAdapter)
}
func BenchmarkEventBridgeEndToEndLatency(b *testing.B) {
	sinkconformance.BenchEndToEndLatency(b, benchAdapter)
}

// benchReportSpec is the EventBridge forwarder's report: its passes, the
// entries a call and the run against entry-only; the targets are the
// shared ones.
var benchReportSpec = sinkconformance.BenchReportSpec{
	Prefix: "EventBridge",
	Spec:   Spec,
	Setup:  "1 KB records, broker and EventBridge fake in this process",
	Passes: []sinkconformance.BenchPass{
		{Name: "EntryOnly", Label: "entry-only (decode, EventBridge entry)"},
		{Name: "EncodeOnly", Label: "encode-only (+ SDK PutEvents calls, signed)"},
		{Name: "BusOnly", Label: "bus-only (the fake taking signed calls)"},
	},
	Peer:      "EventBridge fake",
	BoundPeer: "fake",
	Note: func(passes map[string]benchutil.Result, fwd benchutil.Result) string {
		return fmt.Sprintf("entries a call: encode-only %s, forwarder %s; entries resent after a lost answer: %s\n",
			sinkconformance.Metric(passes["EncodeOnly"], "entries/call"), sinkconformance.Metric(fwd, "entries/call"), sinkconformance.Metric(fwd, "resent"))
	},
	Against: []sinkconformance.BenchPass{{Name: "EntryOnly", Label: "forwarder / entry-only"}},
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
	sinkconformance.CheckBenchReport(t, benchReportSpec, output, []string{
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
	}, 1)
}
