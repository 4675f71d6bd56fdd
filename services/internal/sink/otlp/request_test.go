package otlp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/sinktest"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// bodyReceiver is an OTLP/HTTP receiver keeping the bodies it is sent,
// or only counting them when keep is false.
type bodyReceiver struct {
	srv    *httptest.Server
	keep   bool
	mu     sync.Mutex
	bodies [][]byte
}

func newBodyReceiver(tb testing.TB, keep bool) *bodyReceiver {
	tb.Helper()
	r := &bodyReceiver{keep: keep}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body []byte
		var err error
		if r.keep {
			body, err = io.ReadAll(req.Body)
		} else {
			_, err = io.Copy(io.Discard, req.Body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.keep {
			r.mu.Lock()
			r.bodies = append(r.bodies, body)
			r.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportLogsServiceResponse
	}))
	tb.Cleanup(r.srv.Close)
	return r
}

func (r *bodyReceiver) sink(tb testing.TB, encoding string) *Sink {
	tb.Helper()
	s, err := New(Config{Endpoint: r.srv.URL, AllowHTTP: true, Encoding: encoding, Compression: CompressionNone}, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func (r *bodyReceiver) received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

// batchEvents encodes n events of 1 KB or so, of five accounts and two
// services in turn.
func batchEvents(tb testing.TB, n int) [][]byte {
	tb.Helper()
	enc := NewEncoder(func() time.Time { return t0.Add(time.Hour) })
	out := make([][]byte, n)
	for i := range n {
		ev := sinktest.Event(i, t0.Add(time.Duration(i)*time.Millisecond))
		ev.Target.Context.Account.Id = fmt.Sprintf("acc-%d", i%5)
		if i%3 == 0 {
			ev.Service = "billing"
		}
		ev.Extra = map[string]string{"detail": strings.Repeat("d", 600)}
		b, err := enc.Encode(ev)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// TestWriteBatchRequestIsPdatas: what WriteBatch puts on the wire for a
// batch of many accounts and services is byte for byte the request the
// pdata path builds, in protobuf and in JSON.
func TestWriteBatchRequestIsPdatas(t *testing.T) {
	raw := batchEvents(t, 500)
	idx := make([]int, len(raw))
	for i := range idx {
		idx[i] = i
	}
	wantProto := pdataRequest(t, raw, idx)
	wantJSON, err := exportRequest(t, wantProto).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for enc, want := range map[string][]byte{EncodingProtobuf: wantProto, EncodingJSON: wantJSON} {
		rcv := newBodyReceiver(t, true)
		if err := rcv.sink(t, enc).WriteBatch(context.Background(), batchOf(t, raw)); err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		got := rcv.received()
		if len(got) != 1 {
			t.Fatalf("%s: %d requests, want 1", enc, len(got))
		}
		if !bytes.Equal(got[0], want) {
			t.Errorf("%s: request of %d bytes differs from pdata's of %d", enc, len(got[0]), len(want))
		}
	}
	// The JSON is the Collector's own reading of it, too.
	req := plogotlp.NewExportRequest()
	if err := req.UnmarshalJSON(wantJSON); err != nil || req.Logs().LogRecordCount() != len(raw) {
		t.Fatalf("JSON request: %v, %d records", err, req.Logs().LogRecordCount())
	}
}

// BenchmarkWriteBatch: one op is a WriteBatch of 500 entries of about
// 1 KB, five accounts and two services, posted uncompressed in protobuf
// to a receiver on a local socket that reads and drops the body.
func BenchmarkWriteBatch(b *testing.B) {
	raw := batchEvents(b, 500)
	entries := batchOf(b, raw)
	s := newBodyReceiver(b, false).sink(b, EncodingProtobuf)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.WriteBatch(ctx, entries); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildRequest: one op is WriteBatch's work for 500 entries bar
// the post: the protobuf request built from the entries.
func BenchmarkBuildRequest(b *testing.B) {
	entries := batchOf(b, batchEvents(b, 500))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if len(buildRequest(b, entries)) == 0 {
			b.Fatal("empty request")
		}
	}
}

// buildRequest is the request WriteBatch builds of all of entries.
func buildRequest(tb testing.TB, entries []sink.Entry[Entry]) []byte {
	idx := make([]int, len(entries))
	for i := range idx {
		idx[i] = i
	}
	body, err := (&Sink{cfg: Config{Encoding: EncodingProtobuf}}).encode(entries, idx)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}
