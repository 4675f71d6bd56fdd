package datadog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
	"github.com/auditstream/auditstream/services/internal/sink"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// logItems turns entries into the client's model with the entries'
// attributes as pre-encoded json.RawMessage values: the cheapest way to
// hand SubmitLog entries that are already encoded.
func logItems(t testing.TB, entries [][]byte) []datadogV2.HTTPLogItem {
	t.Helper()
	items := make([]datadogV2.HTTPLogItem, len(entries))
	for i, e := range entries {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(e, &members); err != nil {
			t.Fatal(err)
		}
		str := func(k string) *string {
			raw, ok := members[k]
			if !ok {
				return nil
			}
			delete(members, k)
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			return &s
		}
		item := datadogV2.HTTPLogItem{Ddsource: str("ddsource"), Ddtags: str("ddtags"), Hostname: str("hostname"), Service: str("service"), AdditionalProperties: map[string]any{}}
		item.Message = *str("message")
		for k, v := range members {
			item.AdditionalProperties[k] = v
		}
		items[i] = item
	}
	return items
}

func keyContext(key string) context.Context {
	return context.WithValue(context.Background(), datadog.ContextAPIKeys, map[string]datadog.APIKey{"apiKeyAuth": {Key: key}})
}

func gzipParams() datadogV2.SubmitLogOptionalParameters {
	return *datadogV2.NewSubmitLogOptionalParameters().WithContentEncoding(datadogV2.CONTENTENCODING_GZIP)
}

// TestSubmitLogEquivalence: what the sink sends is what the client's own
// SubmitLog sends for the same logs, to the same URL with the same headers.
func TestSubmitLogEquivalence(t *testing.T) {
	f := startFake(t, "raw-key", "client-key")
	s := newSink(t, f.URL(), "raw-key", nil, Options{})
	seed, err := NewEncoder("scalr", "").Encode(seedEvent(t))
	if err != nil {
		t.Fatal(err)
	}
	batch := append([][]byte{seed}, entries(t, 20)...)
	if err := s.WriteBatch(context.Background(), sink.Values(batch)); err != nil {
		t.Fatal(err)
	}
	_, resp, err := datadogV2.NewLogsApi(s.api).SubmitLog(keyContext("client-key"), logItems(t, batch), gzipParams())
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("SubmitLog: %v", err)
	}
	raw, client := f.Logs("raw-key"), f.Logs("client-key")
	if len(raw) != len(batch) || !reflect.DeepEqual(raw, client) {
		t.Errorf("the intake got different logs:\n sink %v\nclient %v", raw[0], client[0])
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	a, b := reqs[0], reqs[1]
	if a.ContentEncoding != b.ContentEncoding || a.UserAgent != b.UserAgent || a.Entries != b.Entries {
		t.Errorf("requests differ:\n sink %+v\nclient %+v", a, b)
	}
	jsonEqual(t, f.Entries("raw-key")[0], readFile(t, goldenPath))
}

// discardIntake answers 202 to everything after reading the body.
func discardIntake(b *testing.B) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "{}")
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

// benchBatch returns n ~1 KB entries that differ as real ones do: ids,
// request ids and timestamps.
func benchBatch(b *testing.B, n int) [][]byte {
	ev := benchEvent(b)
	enc := NewEncoder("scalr", "")
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Now()
	batch := make([][]byte, n)
	for i := range batch {
		ev.Id = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		ev.Request.Id = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		ev.Timestamp = timestamppb.New(at.Add(time.Duration(i) * 1733 * time.Microsecond))
		e, err := enc.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		batch[i] = e
	}
	return batch
}

// BenchmarkSubmit compares a 1000-entry request sent by the sink (raw body
// through PrepareRequest and CallAPI) with the same logs sent by
// LogsApi.SubmitLog as []HTTPLogItem holding json.RawMessage attributes,
// both gzip, both through a real socket.
func BenchmarkSubmit(b *testing.B) {
	batch := benchBatch(b, 1000)
	size := 0
	for _, e := range batch {
		size += EntrySize(e)
	}
	url := discardIntake(b)
	s := newSink(&testing.T{}, url, testKey, nil, Options{})
	b.Run("Sink.WriteBatch", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size))
		for b.Loop() {
			if err := s.WriteBatch(context.Background(), sink.Values(batch)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LogsApi.SubmitLog", func(b *testing.B) {
		items := logItems(b, batch)
		api := datadogV2.NewLogsApi(s.api)
		ctx := keyContext(testKey)
		b.ReportAllocs()
		b.SetBytes(int64(size))
		for b.Loop() {
			if _, _, err := api.SubmitLog(ctx, items, gzipParams()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRequestBody isolates building the body of a 1000-entry request:
// joining pre-encoded entries versus the client's encoding of
// []HTTPLogItem (map per item, sorted keys, RawMessage re-validated and
// compacted), without and with gzip.
func BenchmarkRequestBody(b *testing.B) {
	batch := benchBatch(b, 1000)
	items := logItems(b, batch)
	idx := make([]int, len(batch))
	size := 0
	for i, e := range batch {
		idx[i] = i
		size += EntrySize(e)
	}
	entries := sink.Values(batch)
	for _, compression := range []string{CompressionNone, CompressionGzip} {
		s := newSink(&testing.T{}, "http://127.0.0.1:1", testKey, func(c *Config) { c.Compression = compression }, Options{})
		b.Run("join/"+compression, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			var buf bytes.Buffer
			for b.Loop() {
				if err := s.encodeBody(&buf, entries, idx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("HTTPLogItem/"+compression, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			var buf, zbuf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := datadog.NewEncoder(&buf).Encode(&items); err != nil {
					b.Fatal(err)
				}
				if compression == CompressionGzip {
					zbuf.Reset()
					zw := s.gzips.Get().(interface {
						Reset(io.Writer)
						Write([]byte) (int, error)
						Close() error
					})
					zw.Reset(&zbuf)
					zw.Write(buf.Bytes())
					zw.Close()
					s.gzips.Put(zw)
				}
			}
		})
	}
}
