package datadog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
)

const testKey = "dd0123456789abcdef0123456789abcd"

// newSink returns a sink for the fake intake at url using key.
func newSink(t *testing.T, url string, key string, mutate func(*Config), opts Options) *Sink {
	t.Helper()
	cfg := Config{BaseURL: url, APIKey: config.SecretLiteral(key), TagPrefix: "scalr", Timeout: 5 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startFake(t *testing.T, keys ...string) *ddfake.Server {
	t.Helper()
	f := ddfake.New(keys...)
	t.Cleanup(f.Close)
	return f
}

// entries returns n encoded events, each naming its index.
func entries(t testing.TB, n int) [][]byte {
	t.Helper()
	enc := NewEncoder("scalr", "")
	now := time.Now()
	out := make([][]byte, n)
	for i := range out {
		e, err := enc.Encode(event(i, now))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

// padded returns an entry of exactly size bytes.
func padded(t testing.TB, i, size int) []byte {
	t.Helper()
	head := fmt.Sprintf(`{"message":"m%d","audit-id":"evt-%06d","pad":"`, i, i)
	e := []byte(head + strings.Repeat("x", size-len(head)-2) + `"}`)
	if len(e) != size {
		t.Fatalf("padded entry is %d bytes", len(e))
	}
	return e
}

// ids returns the audit-id of every entry the fake accepted for key.
func ids(f *ddfake.Server, key string) []string {
	var out []string
	for _, l := range f.Logs(key) {
		id, _ := l["audit-id"].(string)
		out = append(out, id)
	}
	return out
}

func wantIDs(n int, skip ...int) []string {
	var out []string
	for i := range n {
		if !slices.Contains(skip, i) {
			out = append(out, fmt.Sprintf("evt-%06d", i))
		}
	}
	return out
}

func asSendError(t *testing.T, err error) *sink.SendError {
	t.Helper()
	var be *sink.BatchError
	if errors.As(err, &be) {
		t.Fatalf("want a whole-batch error, got %v", err)
	}
	var se *sink.SendError
	if !errors.As(err, &se) {
		t.Fatalf("want a *sink.SendError, got %T %v", err, err)
	}
	return se
}

func asBatchError(t *testing.T, err error) *sink.BatchError {
	t.Helper()
	var be *sink.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("want a *sink.BatchError, got %T %v", err, err)
	}
	return be
}

func failedIndexes(be *sink.BatchError) []int {
	var out []int
	be.Walk(func(i int, _ error) { out = append(out, i) })
	return out
}

// TestGoldenThroughIntake: the seed's event, sent through a real socket,
// arrives as the seed's log.
func TestGoldenThroughIntake(t *testing.T) {
	f := startFake(t, testKey)
	var atRisk atomic.Int64
	s := newSink(t, f.URL(), testKey, nil, Options{AtRisk: func(n int) { atRisk.Add(int64(n)) }})
	entry, err := Config{TagPrefix: "scalr"}.Encoder().EncodeEntry(seedEvent(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(context.Background(), []sink.Entry[[]byte]{entry}); err != nil {
		t.Fatal(err)
	}
	got := f.Entries(testKey)
	if len(got) != 1 {
		t.Fatalf("intake got %d entries", len(got))
	}
	jsonEqual(t, got[0], readFile(t, goldenPath))
	checkAgainstSeed(t, got[0])

	req := f.Requests()[0]
	if req.ContentEncoding != "gzip" || req.WireBytes >= req.Bytes {
		t.Errorf("not compressed: %+v", req)
	}
	if !strings.Contains(req.UserAgent, "auditstream-datadog-forwarder") || !strings.Contains(req.UserAgent, "datadog-api-client-go/") {
		t.Errorf("User-Agent %q", req.UserAgent)
	}
	// The seed's event is from 2024: far outside Datadog's 18 h window.
	if atRisk.Load() != 1 {
		t.Errorf("at risk = %d, want 1", atRisk.Load())
	}
}

func TestEmptyBatch(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	if err := s.WriteBatch(context.Background(), sink.Values[[]byte](nil)); err != nil {
		t.Fatal(err)
	}
	if len(f.Requests()) != 0 {
		t.Error("an empty batch made a request")
	}
}

func TestSplitsByCount(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	batch := entries(t, 2500)
	if err := s.WriteBatch(context.Background(), sink.Values(batch)); err != nil {
		t.Fatal(err)
	}
	var counts []int
	for _, r := range f.Requests() {
		counts = append(counts, r.Entries)
	}
	if !slices.Equal(counts, []int{1000, 1000, 500}) {
		t.Errorf("requests of %v entries", counts)
	}
	if !slices.Equal(ids(f, testKey), wantIDs(2500)) {
		t.Error("entries lost or out of order")
	}
}

func TestSplitsByBytes(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	// 900 KB entries: five make 4.5 MB, six would pass 5 MB.
	var batch [][]byte
	for i := range 12 {
		batch = append(batch, padded(t, i, 900_000))
	}
	// Exactly 5,000,000 bytes of array fits in one request.
	exact := [][]byte{padded(t, 100, 999_999), padded(t, 101, 999_999), padded(t, 102, 999_999), padded(t, 103, 999_999), padded(t, 104, 999_998)}
	if err := s.WriteBatch(context.Background(), sink.Values(batch)); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(context.Background(), sink.Values(exact)); err != nil {
		t.Fatal(err)
	}
	var counts []int
	for _, r := range f.Requests() {
		counts = append(counts, r.Entries)
		if r.Bytes > MaxRequestBytes {
			t.Errorf("request of %d bytes", r.Bytes)
		}
	}
	if !slices.Equal(counts, []int{5, 5, 2, 5}) {
		t.Errorf("requests of %v entries", counts)
	}
	if got := f.Requests()[3].Bytes; got != MaxRequestBytes {
		t.Errorf("last request is %d bytes, want exactly the limit", got)
	}
	if f.Count(testKey) != 17 {
		t.Errorf("Count = %d", f.Count(testKey))
	}
}

func TestTooLargeSplitsInHalves(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	f.FailNext(2, http.StatusRequestEntityTooLarge, nil) // the batch, then its first half
	if err := s.WriteBatch(context.Background(), sink.Values(entries(t, 8))); err != nil {
		t.Fatal(err)
	}
	var counts []int
	for _, r := range f.Requests() {
		counts = append(counts, r.Entries)
	}
	// 8 → 413; 4 → 413; 2, 2, 4 delivered.
	if len(counts) != 5 || !slices.Equal(ids(f, testKey), wantIDs(8)) {
		t.Errorf("requests %v, delivered %v", counts, ids(f, testKey))
	}
}

func TestTooLargeSingleEntry(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	f.FailNext(1, http.StatusRequestEntityTooLarge, nil)
	err := s.WriteBatch(context.Background(), sink.Values(entries(t, 1)))
	se := asSendError(t, err)
	var re *RejectError
	if se.Class != sink.Permanent || se.Status != 413 || !errors.As(err, &re) || re.Reason != ReasonEntryTooLarge {
		t.Errorf("err = %v", err)
	}
}

// TestBadRequestBisection: a 400 is bisected down to the rejected entries;
// exactly they fail, Permanent, and every other entry is delivered.
func TestBadRequestBisection(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	bad := []int{0, 3, 50, 51, 99}
	batch := entries(t, 100)
	for _, i := range bad {
		batch[i] = bytes.Replace(batch[i], []byte(`"ddsource":"scalr"`), []byte(`"ddsource":"scalr","poison":true`), 1)
	}
	f.RejectEntries(func(e []byte) bool { return bytes.Contains(e, []byte(`"poison"`)) })

	be := asBatchError(t, s.WriteBatch(context.Background(), sink.Values(batch)))
	if got := failedIndexes(be); !slices.Equal(got, bad) {
		t.Fatalf("failed %v, want %v", got, bad)
	}
	be.Walk(func(i int, err error) {
		var se *sink.SendError
		var re *RejectError
		if !errors.As(err, &se) || se.Class != sink.Permanent || se.Status != 400 || !errors.As(err, &re) || re.Reason != ReasonRejected {
			t.Errorf("item %d: %v", i, err)
		}
	})
	if got := ids(f, testKey); !slices.Equal(got, wantIDs(100, bad...)) {
		t.Errorf("delivered %d entries, want the %d good ones", len(got), 100-len(bad))
	}
	if n := len(f.Requests()); n > 60 {
		t.Errorf("%d requests to isolate %d entries", n, len(bad))
	}
}

func TestBadRequestEveryEntry(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	f.RejectEntries(func([]byte) bool { return true })
	be := asBatchError(t, s.WriteBatch(context.Background(), sink.Values(entries(t, 8))))
	if be.Len() != 8 {
		t.Errorf("%d failed", be.Len())
	}
	if len(f.Requests()) != 15 { // a full bisection tree of 8 leaves
		t.Errorf("%d requests", len(f.Requests()))
	}
}

// TestBisectionBudget: when the budget runs out, the entries not yet
// isolated fail Retryable; nothing is reported both delivered and failed,
// and nothing is lost.
func TestBisectionBudget(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{MaxBisectRequests: 6})
	batch := entries(t, 64)
	bad := []int{1, 9, 17, 25, 33, 41, 49, 57}
	for _, i := range bad {
		batch[i] = bytes.Replace(batch[i], []byte(`"ddsource":"scalr"`), []byte(`"ddsource":"scalr","poison":true`), 1)
	}
	f.RejectEntries(func(e []byte) bool { return bytes.Contains(e, []byte(`"poison"`)) })
	be := asBatchError(t, s.WriteBatch(context.Background(), sink.Values(batch)))
	if len(f.Requests()) > 7 {
		t.Errorf("%d requests with a budget of 6", len(f.Requests()))
	}
	delivered := ids(f, testKey)
	retryable := 0
	for i := range batch {
		id := fmt.Sprintf("evt-%06d", i)
		err := be.Failed(i)
		if (err == nil) != slices.Contains(delivered, id) {
			t.Errorf("item %d: failed %v, delivered %v", i, err, slices.Contains(delivered, id))
		}
		if slices.Contains(bad, i) && err == nil {
			t.Errorf("bad item %d reported delivered", i)
		}
		if err != nil && sink.Classify(err) == sink.Retryable {
			retryable++
		}
	}
	if retryable == 0 {
		t.Error("no entry left for a retry")
	}
}

func TestUnauthorized(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusUnauthorized} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := startFake(t, testKey)
			s := newSink(t, f.URL(), "not-the-key", nil, Options{})
			if status == http.StatusUnauthorized {
				f.FailNext(1, status, nil)
			}
			err := s.WriteBatch(context.Background(), sink.Values(entries(t, 2500)))
			se := asSendError(t, err)
			if se.Class != sink.Unhealthy || se.Status != status || sink.Classify(err) != sink.Unhealthy {
				t.Errorf("err = %v", err)
			}
			if len(f.Requests()) != 1 {
				t.Errorf("%d requests after the key was refused", len(f.Requests()))
			}
		})
	}
}

// TestForbiddenMidBatch: a key revoked between two requests of a batch
// fails the rest Unhealthy and reports the first part delivered.
func TestForbiddenMidBatch(t *testing.T) {
	f := startFake(t, testKey)
	var calls atomic.Int64
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if calls.Add(1) == 2 {
			f.RemoveKey(testKey)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	s := newSink(t, f.URL(), testKey, nil, Options{HTTPClient: client})
	be := asBatchError(t, s.WriteBatch(context.Background(), sink.Values(entries(t, 1500))))
	failed := failedIndexes(be)
	if len(failed) != 500 || failed[0] != 1000 {
		t.Fatalf("failed %d items from %v", len(failed), failed[:1])
	}
	if sink.Classify(be.Failed(1000)) != sink.Unhealthy || f.Count(testKey) != 1000 {
		t.Errorf("err %v, delivered %d", be.Failed(1000), f.Count(testKey))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRetryableStatuses(t *testing.T) {
	for _, status := range []int{408, 429, 500, 502, 503, 504} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := startFake(t, testKey)
			s := newSink(t, f.URL(), testKey, nil, Options{})
			f.FailNext(1, status, nil)
			err := s.WriteBatch(context.Background(), sink.Values(entries(t, 2500)))
			se := asSendError(t, err)
			if se.Class != sink.Retryable || se.Status != status {
				t.Errorf("err = %v", err)
			}
			if len(f.Requests()) != 1 || f.Count(testKey) != 0 {
				t.Errorf("%d requests, %d delivered: the batch should stop at the first failure", len(f.Requests()), f.Count(testKey))
			}
			// The next attempt goes through.
			if err := s.WriteBatch(context.Background(), sink.Values(entries(t, 3))); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRateLimitHeaders(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	f.FailNext(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}})
	se := asSendError(t, s.WriteBatch(context.Background(), sink.Values(entries(t, 3))))
	if se.RetryAfter != 7*time.Second {
		t.Errorf("RetryAfter = %s, want 7s (%v)", se.RetryAfter, se)
	}
	f.FailNext(1, http.StatusTooManyRequests, http.Header{"X-Ratelimit-Reset": {"12"}, "X-Ratelimit-Remaining": {"0"}})
	se = asSendError(t, s.WriteBatch(context.Background(), sink.Values(entries(t, 3))))
	if se.RetryAfter != 12*time.Second || se.Class != sink.Retryable {
		t.Errorf("RetryAfter = %s, want 12s (%v)", se.RetryAfter, se)
	}
}

func TestTimeout(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, func(c *Config) { c.Timeout = 100 * time.Millisecond }, Options{})
	f.Slow(5 * time.Second)
	begin := time.Now()
	err := s.WriteBatch(context.Background(), sink.Values(entries(t, 3)))
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
	se := asSendError(t, err)
	if se.Class != sink.Retryable || !strings.Contains(err.Error(), "no answer within 100ms") {
		t.Errorf("err = %v", err)
	}
	f.Slow(0)
}

func TestContextEnded(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.WriteBatch(ctx, sink.Values(entries(t, 3)))
	if !errors.Is(err, context.Canceled) || len(f.Requests()) != 0 {
		t.Errorf("err = %v, %d requests", err, len(f.Requests()))
	}

	// Ended while a request waits: the error is ctx's, not a timeout.
	f.Slow(5 * time.Second)
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = s.WriteBatch(ctx, sink.Values(entries(t, 3)))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
}

func TestNetworkError(t *testing.T) {
	f := ddfake.New(testKey)
	url := f.URL()
	f.Close()
	s := newSink(t, url, testKey, nil, Options{})
	se := asSendError(t, s.WriteBatch(context.Background(), sink.Values(entries(t, 3))))
	if se.Class != sink.Retryable || se.Status != 0 {
		t.Errorf("err = %v", se)
	}
}

// TestRejectsUnsendableEntries: an entry over 1 MB, or empty, is
// dead-lettered without being sent; the rest of the batch goes through.
func TestRejectsUnsendableEntries(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	batch := entries(t, 4)
	batch[1] = padded(t, 1, MaxEntryBytes+1)
	batch[2] = nil
	be := asBatchError(t, s.WriteBatch(context.Background(), sink.Values(batch)))
	if got := failedIndexes(be); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("failed %v", got)
	}
	for i, reason := range map[int]string{1: ReasonEntryTooLarge, 2: ReasonEmptyEntry} {
		var re *RejectError
		if sink.Classify(be.Failed(i)) != sink.Permanent || !errors.As(be.Failed(i), &re) || re.Reason != reason {
			t.Errorf("item %d: %v", i, be.Failed(i))
		}
	}
	if !slices.Equal(ids(f, testKey), wantIDs(4, 1, 2)) {
		t.Errorf("delivered %v", ids(f, testKey))
	}
	// Exactly 1 MB is fine.
	if err := s.WriteBatch(context.Background(), sink.Values([][]byte{padded(t, 7, MaxEntryBytes)})); err != nil {
		t.Error(err)
	}
}

func TestNoCompression(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, func(c *Config) { c.Compression = CompressionNone }, Options{})
	if err := s.WriteBatch(context.Background(), sink.Values(entries(t, 3))); err != nil {
		t.Fatal(err)
	}
	if r := f.Requests()[0]; r.ContentEncoding != "" || r.WireBytes != r.Bytes || f.Count(testKey) != 3 {
		t.Errorf("%+v", r)
	}
}

func TestCompressionLevels(t *testing.T) {
	f := startFake(t, testKey)
	for _, level := range []int{1, 9} {
		s := newSink(t, f.URL(), testKey, func(c *Config) { c.CompressionLevel = level }, Options{})
		if err := s.WriteBatch(context.Background(), sink.Values(entries(t, 50))); err != nil {
			t.Fatal(err)
		}
	}
	if f.Count(testKey) != 100 {
		t.Errorf("Count = %d", f.Count(testKey))
	}
}

func TestAtRisk(t *testing.T) {
	f := startFake(t, testKey)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var calls []int
	s := newSink(t, f.URL(), testKey, nil, Options{Now: func() time.Time { return now }, AtRisk: func(n int) { calls = append(calls, n) }})
	enc := NewEncoder("scalr", "")
	var batch []sink.Entry[[]byte]
	for i, at := range []time.Time{
		now.Add(-time.Hour),
		now.Add(-MaxLogAge - time.Second),
		now.Add(-MaxLogAge + time.Second),
		now.Add(-30 * 24 * time.Hour),
		now.Add(time.Hour),
		now.In(time.FixedZone("x", -10*3600)).Add(-17 * time.Hour), // zone does not matter
	} {
		e, _ := enc.EncodeEntry(event(i, at))
		batch = append(batch, e)
	}
	noTime := event(9, now)
	noTime.Timestamp = nil
	noTime.Extra = map[string]string{"timestamp": "1999-01-01T00:00:00Z"}
	e, _ := enc.EncodeEntry(noTime)
	batch = append(batch, e)
	// An extra attribute named timestamp is not the log's timestamp.
	recent, old := event(10, now), event(11, now.Add(-MaxLogAge-time.Minute))
	recent.Extra = map[string]string{"timestamp": "1999-01-01T00:00:00Z", "a": `"timestamp":"1999`}
	old.Extra = map[string]string{"timestamp": "2999-01-01T00:00:00Z", "extra": "{"}
	for _, ev := range []*auditlogv1.AuditEvent{recent, old} {
		e, _ := enc.EncodeEntry(ev)
		batch = append(batch, e)
	}
	if err := s.WriteBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(calls, []int{3}) {
		t.Errorf("AtRisk calls %v, want [3]", calls)
	}
	if f.Count(testKey) != len(batch) {
		t.Error("old entries were not sent")
	}
	if err := s.WriteBatch(context.Background(), batch[:1]); err != nil || len(calls) != 1 {
		t.Errorf("called for a batch with nothing at risk: %v", calls)
	}
}

// TestKeyRotation: a key file rewritten between requests is used by the
// next one.
func TestKeyRotation(t *testing.T) {
	f := startFake(t, "key-one")
	path := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(path, []byte("key-one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{BaseURL: f.URL(), APIKey: config.SecretFile(path)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(context.Background(), sink.Values(entries(t, 2))); err != nil {
		t.Fatal(err)
	}
	f.AddKey("key-two")
	f.RemoveKey("key-one")
	if err := os.WriteFile(path, []byte("key-two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(context.Background(), sink.Values(entries(t, 3))); err != nil {
		t.Fatal(err)
	}
	if f.Count("key-one") != 2 || f.Count("key-two") != 3 {
		t.Errorf("counts %d, %d", f.Count("key-one"), f.Count("key-two"))
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	se := asSendError(t, s.WriteBatch(context.Background(), sink.Values(entries(t, 1))))
	if se.Class != sink.Unhealthy || !strings.Contains(se.Error(), path) {
		t.Errorf("err = %v", se)
	}
}

// TestRedirectNotFollowed: a redirect would carry DD-API-KEY to another
// host; the sink does not follow it.
func TestRedirectNotFollowed(t *testing.T) {
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("DD-API-KEY") != "" {
			leaked.Store(true)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	s := newSink(t, redirect.URL, testKey, nil, Options{})
	err := s.WriteBatch(context.Background(), sink.Values(entries(t, 1)))
	if sink.Classify(err) != sink.Unhealthy || leaked.Load() {
		t.Errorf("err = %v, key sent to the redirect target: %v", err, leaked.Load())
	}
}

// TestMisdirected: a 4xx that is about the URL, not the entries, parks the
// batch instead of bisecting it into the dead-letter topic.
func TestMisdirected(t *testing.T) {
	for _, status := range []int{404, 405, 407, 415} {
		f := startFake(t, testKey)
		s := newSink(t, f.URL(), testKey, nil, Options{})
		f.FailNext(1, status, nil)
		se := asSendError(t, s.WriteBatch(context.Background(), sink.Values(entries(t, 10))))
		if se.Class != sink.Unhealthy || se.Status != status || len(f.Requests()) != 1 {
			t.Errorf("%d: %v after %d requests", status, se, len(f.Requests()))
		}
	}
	f := startFake(t, testKey)
	s := newSink(t, f.URL()+"/wrong-prefix", testKey, nil, Options{})
	if se := asSendError(t, s.WriteBatch(context.Background(), sink.Values(entries(t, 3)))); se.Class != sink.Unhealthy || se.Status != 404 {
		t.Errorf("wrong base URL: %v", se)
	}
}

// TestAPIKeyNeverShown: the key appears in no error, whatever fails, nor
// in the printed config or sink.
func TestAPIKeyNeverShown(t *testing.T) {
	const key = "SECRET-5f4dcc3b5aa765d61d8327deb882cf99"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A misbehaving proxy that echoes the request's headers.
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"errors":["bad key %s"],"headers":%q}`, r.Header.Get("DD-API-KEY"), r.Header)
	}))
	defer echo.Close()
	f := startFake(t, testKey)
	closed := ddfake.New()
	closed.Close()

	var errs []error
	check := func(name string, url string, mutate func(*Config), script func()) {
		s := newSink(t, url, key, func(c *Config) {
			c.Timeout = 200 * time.Millisecond
			if mutate != nil {
				mutate(c)
			}
		}, Options{})
		if script != nil {
			script()
		}
		batch := entries(t, 3)
		batch[1] = padded(t, 1, MaxEntryBytes+1)
		err := s.WriteBatch(context.Background(), sink.Values(batch))
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		errs = append(errs, err)
		var be *sink.BatchError
		if errors.As(err, &be) {
			be.Walk(func(_ int, err error) { errs = append(errs, err) })
		}
		for _, v := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprintf("%#v", s.cfg), fmt.Sprintf("%+v", s.cfg)} {
			if strings.Contains(v, key) {
				t.Errorf("%s: key printed: %s", name, v)
			}
		}
	}
	check("echoed in a 400", echo.URL, nil, nil)
	check("refused", f.URL(), nil, nil)
	check("rate limited", f.URL(), nil, func() { f.FailNext(1, 429, http.Header{"Retry-After": {"1"}}) })
	check("timeout", f.URL(), nil, func() { f.Slow(time.Second) })
	check("connection refused", closed.URL(), nil, nil)
	check("uncompressed", echo.URL, func(c *Config) { c.Compression = CompressionNone }, nil)
	f.Slow(0)
	if len(errs) < 8 {
		t.Fatalf("only %d errors checked", len(errs))
	}
	for _, err := range errs {
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(text, key) || strings.Contains(text, key[7:20]) {
				t.Errorf("key in error: %s", text)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(errs[0]), "[redacted]") {
		t.Errorf("echoed key not masked: %v", errs[0])
	}
}

// TestConcurrentWriteBatch: one sink serves many goroutines.
func TestConcurrentWriteBatch(t *testing.T) {
	f := startFake(t, testKey)
	s := newSink(t, f.URL(), testKey, nil, Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := s.WriteBatch(context.Background(), sink.Values(entries(t, 100))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if f.Count(testKey) != 800 {
		t.Errorf("Count = %d", f.Count(testKey))
	}
}

var _ sink.Sink[[]byte] = (*Sink)(nil)

// TestSinkFootprint: a connection's sink stays small, since a forwarder
// may hold one for each of thousands of connections.
func TestSinkFootprint(t *testing.T) {
	const n = 200
	keep := make([]*Sink, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		s, err := New(Config{APIKey: config.SecretLiteral("k")}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, s)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	if per > 8<<10 {
		t.Errorf("a sink holds %d bytes", per)
	}
	runtime.KeepAlive(keep)
}

// TestSharedBodyReturnsBufferOnce: the request buffer goes back to the pool
// only when the sender and every body lent to the transport are done, and
// only once, however often a body is closed.
func TestSharedBodyReturnsBufferOnce(t *testing.T) {
	buf := bytes.NewBufferString("[{}]")
	b := newSharedBody(buf)
	first, _ := b.get()
	b.release() // Do returned; the transport still writes the first body
	if got := b.refs.Load(); got != 1 {
		t.Fatalf("refs after release = %d, want 1 (the lent body)", got)
	}
	data, err := io.ReadAll(first)
	if err != nil || string(data) != "[{}]" {
		t.Fatalf("body = %q, %v", data, err)
	}
	second, _ := b.get() // a resend on a fresh connection
	first.Close()
	first.Close()
	if got := b.refs.Load(); got != 1 {
		t.Fatalf("refs with the resent body open = %d, want 1", got)
	}
	if data, _ := io.ReadAll(second); string(data) != "[{}]" {
		t.Fatalf("resent body = %q", data)
	}
	second.Close()
	if got := b.refs.Load(); got != 0 {
		t.Fatalf("refs at the end = %d, want 0", got)
	}
}
