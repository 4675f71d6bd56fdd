package forwarder

// Helpers of the OTLP forwarder's benchmarks (bench_test.go): the receiver
// fake as the shared benchmarks see it (counting, not keeping, what it
// accepts) and the sink answered in memory that the encode-only and
// WriteBatch-only passes hand their batches to.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/sink/otlp"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// benchToken is the connections' bearer token, which the fake requires.
const benchToken = "bench-token"

func benchConnName(i int) string { return fmt.Sprintf("otlp-bench-%d", i) }

// benchReceiver is the OTLP fake in counting mode (a long run must not
// keep every record in the memory the benchmark measures), requiring the
// token and a tenant. It tallies distinct events accepted and those
// accepted again, and hands each accepted record's id and time to
// onAccepted (when set) with the time the fake decoded it.
type benchReceiver struct {
	rcv   *otlpfake.Server
	tally *sinkconformance.BenchTally

	mu         sync.Mutex // serialises onAccepted
	onAccepted func(id string, eventTime, at time.Time)
}

func newBenchFake(b *testing.B, onAccepted func(id string, eventTime, at time.Time)) sinkconformance.BenchFake {
	b.Helper()
	r := &benchReceiver{rcv: otlpfake.New(), onAccepted: onAccepted, tally: sinkconformance.NewBenchTally(b.N)}
	b.Cleanup(r.rcv.Close)
	r.rcv.RequireAuthorization("Bearer " + benchToken)
	r.rcv.RequireTenant(true)
	r.rcv.Count(r.accept)
	return r
}

func (r *benchReceiver) accept(x otlpfake.Tally) {
	for _, id := range x.IDs {
		r.tally.Accept(id)
	}
	if r.onAccepted == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, id := range x.IDs {
		r.onAccepted(id, x.Times[i], x.At)
	}
}

// Connection is an OTLP connection to the fake, its own tenant, with the
// bearer token in a Secret file.
func (r *benchReceiver) Connection(b *testing.B, i int, dir string) (name, yaml string) {
	tokenFile := filepath.Join(dir, "token")
	sinkconformance.WriteBenchSecret(b, tokenFile, benchToken)
	name = benchConnName(i)
	return name, fmt.Sprintf("  %s:\n    type: otlp\n    settings:\n      endpoint: %s\n      allow_http: true\n      tenant_id: %s\n      auth: {token: {file: %s}}\n",
		name, r.rcv.URL(), name, tokenFile)
}

func (r *benchReceiver) Delivered() int64 { return r.tally.Distinct() }
func (r *benchReceiver) Resent() int64    { return r.tally.Resent() }

// Refused counts the requests the fake answered other than 200 (or found
// their client gone).
func (r *benchReceiver) Refused() int64 {
	var n int64
	for _, req := range r.rcv.Requests() {
		if req.Status != http.StatusOK {
			n++
		}
	}
	return n
}

// Failed is 0: a counting fake takes or refuses a request whole.
func (r *benchReceiver) Failed() int64 { return 0 }

func (r *benchReceiver) ReportMetrics(b *testing.B) {
	var wire int64
	for _, req := range r.rcv.Requests() {
		wire += int64(req.WireBytes)
	}
	b.ReportMetric(float64(wire)/float64(b.N), "wire-B")
}

// benchAdapter runs the shared forwarder and latency benchmarks against
// the fake (max_connection_bytes a quarter of max_inflight_bytes, at most
// its default).
var benchAdapter = sinkconformance.BenchAdapter{
	Spec:    Spec,
	NewFake: newBenchFake,
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

// newBenchSink is a connection's Sink whose requests benchLocalHTTP
// answers, counting them and their bytes.
func newBenchSink(b *testing.B, requests, wire *atomic.Int64) *otlp.Sink {
	s, err := otlp.New(otlp.Config{Endpoint: "https://otlp.invalid", Auth: otlp.Auth{}},
		otlp.Options{HTTPClient: &http.Client{Transport: benchLocalHTTP{requests, wire}}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
