package otlp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
	"github.com/auditstream/auditstream/services/testsupport/sinktest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// fixture is a fake receiver and a sink pointing at it.
type fixture struct {
	fake *otlpfake.Server
	sink *Sink
	enc  *Encoder
}

func newFixture(t *testing.T, change func(*Config)) *fixture {
	t.Helper()
	fake := otlpfake.New()
	t.Cleanup(fake.Close)
	cfg := Config{Endpoint: fake.URL(), AllowHTTP: true, TenantID: "tenant-a", Timeout: 5 * time.Second}
	if change != nil {
		change(&cfg)
	}
	s, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{fake: fake, sink: s, enc: NewEncoder(func() time.Time { return t0.Add(time.Hour) })}
}

// entries encodes n small events (evt-000000 ...), of accounts acc-0 and
// acc-1 in turn.
func (f *fixture) entries(t *testing.T, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range n {
		ev := sinktest.Event(i, t0.Add(time.Duration(i)*time.Second))
		ev.Target.Context.Account.Id = fmt.Sprintf("acc-%d", i%2)
		out[i] = f.encode(t, ev)
	}
	return out
}

func (f *fixture) encode(t *testing.T, ev *auditlogv1.AuditEvent) []byte {
	t.Helper()
	b, err := f.enc.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func eventID(i int) string { return fmt.Sprintf("evt-%06d", i) }

func idSet(ids ...int) func(otlpfake.Record) bool {
	return func(r otlpfake.Record) bool {
		for _, i := range ids {
			if r.EventID == eventID(i) {
				return true
			}
		}
		return false
	}
}

func sendError(t *testing.T, err error) *sink.SendError {
	t.Helper()
	var se *sink.SendError
	if !errors.As(err, &se) {
		t.Fatalf("want a *sink.SendError, got %T %v", err, err)
	}
	return se
}

func TestDeliversEveryEncoding(t *testing.T) {
	for _, enc := range []string{EncodingProtobuf, EncodingJSON} {
		for _, comp := range []string{CompressionGzip, CompressionNone} {
			t.Run(enc+"/"+comp, func(t *testing.T) {
				f := newFixture(t, func(c *Config) { c.Encoding, c.Compression = enc, comp })
				if err := f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 10))); err != nil {
					t.Fatal(err)
				}
				reqs := f.fake.Requests()
				if len(reqs) != 1 || reqs[0].Status != 200 || reqs[0].Records != 10 {
					t.Fatalf("requests %+v", reqs)
				}
				wantType := map[string]string{EncodingProtobuf: "application/x-protobuf", EncodingJSON: "application/json"}[enc]
				wantEnc := map[string]string{CompressionGzip: "gzip", CompressionNone: ""}[comp]
				if reqs[0].ContentType != wantType || reqs[0].ContentEncoding != wantEnc {
					t.Errorf("content type %q encoding %q", reqs[0].ContentType, reqs[0].ContentEncoding)
				}
				if comp == CompressionGzip && reqs[0].WireBytes >= reqs[0].Bytes {
					t.Errorf("gzip: %d bytes on the wire for %d", reqs[0].WireBytes, reqs[0].Bytes)
				}
				seen := map[string]bool{}
				for _, r := range f.fake.Records("tenant-a") {
					var n int
					if _, err := fmt.Sscanf(r.EventID, "evt-%d", &n); err != nil || seen[r.EventID] {
						t.Errorf("record %q: %v, or seen twice", r.EventID, err)
					}
					seen[r.EventID] = true
					if want := fmt.Sprintf("acc-%d", n%2); r.Resource[AttrAccountID] != want || r.Resource[AttrServiceNamespace] != want {
						t.Errorf("record %s resource %v", r.EventID, r.Resource)
					}
				}
				if len(seen) != 10 {
					t.Errorf("%d records", len(seen))
				}
			})
		}
	}
}

// TestOneResourcePerAccount: a request groups its records by account, so a
// Loki stream is per account.
func TestOneResourcePerAccount(t *testing.T) {
	f := newFixture(t, nil)
	entries := f.entries(t, 6)
	var idx []int
	for i := range entries {
		idx = append(idx, i)
	}
	body, err := f.sink.encode(batchOf(t, entries), idx)
	if err != nil {
		t.Fatal(err)
	}
	req := exportRequest(t, body)
	if n := req.Logs().ResourceLogs().Len(); n != 2 {
		t.Fatalf("%d ResourceLogs for 2 accounts", n)
	}
	for i := range 2 {
		rl := req.Logs().ResourceLogs().At(i)
		if n := rl.ScopeLogs().At(0).LogRecords().Len(); n != 3 {
			t.Errorf("resource %d holds %d records", i, n)
		}
	}
}

func TestAuthTenantAndHeaders(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("123456:glc_s3cret"))
	for name, tc := range map[string]struct {
		auth Auth
		want string
	}{
		"basic":  {Auth{Username: "123456", Password: config.SecretLiteral("glc_s3cret")}, basic},
		"bearer": {Auth{Token: config.SecretLiteral("tok-s3cret")}, "Bearer tok-s3cret"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) {
				c.Auth = tc.auth
				c.Headers = map[string]string{"X-Team": "platform"}
			})
			f.fake.RequireAuthorization(tc.want)
			f.fake.RequireTenant(true)
			if err := f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 3))); err != nil {
				t.Fatal(err)
			}
			r := f.fake.Requests()[0]
			if r.Tenant != "tenant-a" || r.Header.Get("X-Team") != "platform" || !strings.HasPrefix(r.UserAgent, "auditstream-otlp-forwarder/") {
				t.Errorf("request %+v", r)
			}
			if got := len(f.fake.Records("tenant-a")); got != 3 {
				t.Errorf("%d records", got)
			}
		})
	}
}

// TestUnauthorizedIsUnhealthy: 401 and 403 park the events (Unhealthy)
// and the error never holds the secret, even when the receiver echoes it.
func TestUnauthorizedIsUnhealthy(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		f := newFixture(t, func(c *Config) { c.Auth = Auth{Token: config.SecretLiteral("tok-s3cret")} })
		if status == http.StatusUnauthorized {
			f.fake.RequireAuthorization("Bearer another")
		} else {
			f.fake.Always("tenant-a", status, nil)
		}
		err := f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 4)))
		se := sendError(t, err)
		if se.Class != sink.Unhealthy || se.Status != status {
			t.Errorf("%d: %v", status, err)
		}
		if strings.Contains(err.Error(), "tok-s3cret") {
			t.Errorf("secret in %v", err)
		}
	}
}

// TestMissingTenant: a multi-tenant Loki refuses a request without
// X-Scope-OrgID; the connection is unhealthy, nothing is dropped.
func TestMissingTenant(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TenantID = "" })
	f.fake.RequireTenant(true)
	se := sendError(t, f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 2))))
	if se.Class != sink.Unhealthy || !strings.Contains(se.Error(), "no org id") {
		t.Errorf("got %v", se)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, status := range []int{429, 502, 503, 504} {
		f := newFixture(t, nil)
		f.fake.FailNext(1, status, http.Header{"Retry-After": {"7"}})
		se := sendError(t, f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 5))))
		if se.Class != sink.Retryable || se.RetryAfter != 7*time.Second || se.Status != status {
			t.Errorf("%d: %v", status, se)
		}
		if n := len(f.fake.Requests()); n != 1 {
			t.Errorf("%d: %d requests after a %d", status, n, status)
		}
	}
}

// TestStormThenRecovery: every call in a 503 storm fails retryable without
// delivering, and the first call after it delivers everything once.
func TestStormThenRecovery(t *testing.T) {
	f := newFixture(t, nil)
	entries := f.entries(t, 20)
	f.fake.FailNext(5, http.StatusServiceUnavailable, nil)
	for i := range 5 {
		se := sendError(t, f.sink.WriteBatch(context.Background(), batchOf(t, entries)))
		if se.Class != sink.Retryable {
			t.Fatalf("call %d: %v", i, se)
		}
	}
	if err := f.sink.WriteBatch(context.Background(), batchOf(t, entries)); err != nil {
		t.Fatal(err)
	}
	ids := f.fake.EventIDs("tenant-a")
	if len(ids) != 20 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 20 {
		t.Errorf("received %d records: %v", len(ids), ids)
	}
}

// TestBadRequestBisects: a 400 caused by one record dead-letters that
// record alone, with the receiver's message, and delivers the rest once.
func TestBadRequestBisects(t *testing.T) {
	for _, enc := range []string{EncodingProtobuf, EncodingJSON} {
		f := newFixture(t, func(c *Config) { c.Encoding = enc })
		f.fake.Reject(idSet(13), otlpfake.BadRequest)
		err := f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 32)))
		var be *sink.BatchError
		if !errors.As(err, &be) || be.Len() != 1 {
			t.Fatalf("%s: %v", enc, err)
		}
		se := sendError(t, be.Failed(13))
		var re *RejectError
		if se.Class != sink.Permanent || se.Status != 400 || !errors.As(se, &re) || re.Reason != ReasonRejected ||
			!strings.Contains(re.Message, "1 log records are invalid") {
			t.Errorf("%s: item 13: %v", enc, se)
		}
		ids := f.fake.EventIDs("tenant-a")
		if len(ids) != 31 || slices.Contains(ids, eventID(13)) {
			t.Errorf("%s: delivered %d: %v", enc, len(ids), ids)
		}
	}
}

// TestPartialSuccess: a 200 counting rejected records, without saying
// which, is bisected until each rejected record stands alone; those are
// dead-lettered with the receiver's message, the rest are delivered (some
// twice: the receiver had kept them the first time).
func TestPartialSuccess(t *testing.T) {
	for _, enc := range []string{EncodingProtobuf, EncodingJSON} {
		f := newFixture(t, func(c *Config) { c.Encoding = enc })
		f.fake.Reject(idSet(3, 17), otlpfake.PartialSuccess)
		err := f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 20)))
		var be *sink.BatchError
		if !errors.As(err, &be) || be.Len() != 2 {
			t.Fatalf("%s: %v", enc, err)
		}
		for _, i := range []int{3, 17} {
			se := sendError(t, be.Failed(i))
			var re *RejectError
			if se.Class != sink.Permanent || !errors.As(se, &re) || re.Reason != ReasonPartialSuccess || !strings.Contains(re.Message, "timestamp too old") {
				t.Errorf("%s: item %d: %v", enc, i, se)
			}
		}
		got := map[string]bool{}
		for _, id := range f.fake.EventIDs("tenant-a") {
			got[id] = true
		}
		for i := range 20 {
			if want := i != 3 && i != 17; got[eventID(i)] != want {
				t.Errorf("%s: %s delivered %v", enc, eventID(i), got[eventID(i)])
			}
		}
	}
}

// TestPartialSuccessAll: when every record is rejected they are all
// dead-lettered from the one answer, without a resend.
func TestPartialSuccessAll(t *testing.T) {
	f := newFixture(t, nil)
	f.fake.Reject(func(otlpfake.Record) bool { return true }, otlpfake.PartialSuccess)
	se := sendError(t, f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 8))))
	if se.Class != sink.Permanent || len(f.fake.Requests()) != 1 {
		t.Errorf("%v after %d requests", se, len(f.fake.Requests()))
	}
}

// TestSlowAnswer: a receiver slower than the timeout is retryable.
func TestSlowAnswer(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	f.fake.Slow(5 * time.Second)
	se := sendError(t, f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 2))))
	if se.Class != sink.Retryable || !strings.Contains(se.Error(), "no answer within 100ms") {
		t.Errorf("got %v", se)
	}
}

// TestRequestLimit: a batch over max_request_bytes goes in requests within
// it, and an event over it alone is dead-lettered without being sent.
func TestRequestLimit(t *testing.T) {
	for _, enc := range []string{EncodingProtobuf, EncodingJSON} {
		const limit = MinMaxRequestBytes
		f := newFixture(t, func(c *Config) { c.MaxRequestBytes = limit; c.Encoding = enc })
		f.fake.SetMaxRequestBytes(limit)
		entries := f.entries(t, 400)
		big := sinktest.Event(400, t0)
		big.Extra = map[string]string{"blob": strings.Repeat("x", limit)}
		entries = append(entries, f.encode(t, big))
		err := f.sink.WriteBatch(context.Background(), batchOf(t, entries))
		var be *sink.BatchError
		if !errors.As(err, &be) || be.Len() != 1 {
			t.Fatalf("%s: %v", enc, err)
		}
		var re *RejectError
		if se := sendError(t, be.Failed(400)); se.Class != sink.Permanent || !errors.As(se, &re) || re.Reason != ReasonEntryTooLarge {
			t.Errorf("%s: %v", enc, se)
		}
		reqs := f.fake.Requests()
		if len(reqs) < 2 {
			t.Errorf("%s: %d requests", enc, len(reqs))
		}
		for _, r := range reqs {
			if r.Status != 200 || r.Bytes > limit {
				t.Errorf("%s: request %d bytes, status %d", enc, r.Bytes, r.Status)
			}
		}
		if n := len(f.fake.EventIDs("tenant-a")); n != 400 {
			t.Errorf("%s: %d delivered", enc, n)
		}
	}
}

// TestMisdirected: a redirect or a 404 says the endpoint is wrong; the
// events are parked, not bisected into the dead letters.
func TestMisdirected(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusMovedPermanently, http.StatusUnsupportedMediaType} {
		f := newFixture(t, nil)
		f.fake.Always("tenant-a", status, http.Header{"Location": {"https://elsewhere.example"}})
		se := sendError(t, f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 4))))
		if se.Class != sink.Unhealthy || len(f.fake.Requests()) != 1 {
			t.Errorf("%d: %v after %d requests", status, se, len(f.fake.Requests()))
		}
	}
}

// TestBadEntry: an entry no Encoder made fails alone, Permanent.
func TestBadEntry(t *testing.T) {
	f := newFixture(t, nil)
	entries := append(batchOf(t, f.entries(t, 3)), sink.Entry[Entry]{Size: 10, ID: "evt-x"})
	err := f.sink.WriteBatch(context.Background(), entries)
	var be *sink.BatchError
	if !errors.As(err, &be) || be.Len() != 1 || sink.Classify(be.Failed(3)) != sink.Permanent {
		t.Fatalf("got %v", err)
	}
	if n := len(f.fake.EventIDs("tenant-a")); n != 3 {
		t.Errorf("%d delivered", n)
	}
}

func TestStringHidesSecrets(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Auth = Auth{Token: config.SecretLiteral("tok-s3cret")} })
	for _, s := range []string{fmt.Sprint(f.sink), fmt.Sprintf("%#v", f.sink), fmt.Sprintf("%+v", f.sink)} {
		if strings.Contains(s, "tok-s3cret") {
			t.Errorf("secret in %s", s)
		}
	}
}

// TestPartialSuccessResendsOneHalf: counting bisection sends only the left
// half of each part again, since the count tells how many of the rejected
// are in the right half: one rejected record among 64 takes 6 resends,
// not the 12 of resending both halves.
func TestPartialSuccessResendsOneHalf(t *testing.T) {
	f := newFixture(t, nil)
	f.fake.Reject(idSet(40), otlpfake.PartialSuccess)
	err := f.sink.WriteBatch(context.Background(), batchOf(t, f.entries(t, 64)))
	var be *sink.BatchError
	if !errors.As(err, &be) || be.Len() != 1 || be.Failed(40) == nil {
		t.Fatalf("got %v", err)
	}
	if n := len(f.fake.Requests()); n != 7 {
		t.Errorf("%d requests, want 1 and 6 resends", n)
	}
	if n := f.fake.Accepted("tenant-a"); n > 63+32+16+8+4+2+1 {
		t.Errorf("%d records received for 63 good ones", n)
	}
}
