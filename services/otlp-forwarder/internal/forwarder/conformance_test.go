package forwarder

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// conformanceMaxRequestBytes is every connection's max_request_bytes in
// the suite, and the receiver's limit: small enough that the suite's
// oversized event is over it, large enough for a default batch.
const conformanceMaxRequestBytes = 1 << 20

// The sink conformance suite against the OTLP receiver fake.
func TestConformance(t *testing.T) {
	sinkconformance.Run(t, sinkconformance.Adapter{
		Spec:          Spec,
		DefaultConfig: DefaultConfig(),
		NewFake: func(t *testing.T) sinkconformance.Fake {
			f := &receiverFake{Server: otlpfake.New(), t: t}
			t.Cleanup(f.Close)
			f.RequireTenant(true)
			f.SetMaxRequestBytes(conformanceMaxRequestBytes)
			return f
		},
		RejectedError:  "log records are invalid",
		OversizeReason: "rejected",
		OversizeError:  "over max_request_bytes",
		Binary:         "../..",
		// An encoded test record is ~450 bytes; a request is a batch.
		DuplicateWindow: sinkconformance.BatchRequestWindow(450, DefaultConfig().Delivery.RequestsInFlight),
		// OTLP/HTTP receivers answer 429 with Retry-After, and the sink
		// honours it.
		RetryAfter: true,
	})
}

var _ sinkconformance.RetryAfterFake = (*receiverFake)(nil)

// receiverFake is the OTLP receiver fake as the suite drives it: each
// connection is a tenant of its own (tenant_id = its name) with a bearer
// token of its own.
type receiverFake struct {
	*otlpfake.Server
	t      *testing.T
	mu     sync.Mutex
	tokens []string
}

func (f *receiverFake) Connection(name, dir string, timeout time.Duration) string {
	tokenFile := filepath.Join(dir, name+".token")
	if err := os.WriteFile(tokenFile, []byte("token-"+name+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	if !slices.Contains(f.tokens, "Bearer token-"+name) {
		f.tokens = append(f.tokens, "Bearer token-"+name)
	}
	f.RequireAuthorization(f.tokens...)
	f.mu.Unlock()
	return fmt.Sprintf("  %s:\n    type: otlp\n    settings:\n      endpoint: %s\n      allow_http: true\n      tenant_id: %s\n      auth: {token: {file: %s}}\n      timeout: %s\n      max_request_bytes: %d\n",
		name, f.URL(), name, tokenFile, timeout, conformanceMaxRequestBytes)
}

func (f *receiverFake) AcceptedCount(name string) int { return f.Server.Accepted(name) }

func (f *receiverFake) Accepted(name string) []sinkconformance.Entry {
	var out []sinkconformance.Entry
	for _, r := range f.Records(name) {
		acc, _ := r.Resource["audit.account.id"].(string)
		out = append(out, sinkconformance.Entry{ID: r.EventID, Account: acc, Email: r.Attrs["user.email"], IP: r.Attrs["client.address"],
			Raw: fmt.Sprint(r.Body, r.Attrs, r.Resource)})
	}
	return out
}

// ServerErrors answers 503, which OTLP/HTTP clients retry.
func (f *receiverFake) ServerErrors(n int) { f.FailNext(n, http.StatusServiceUnavailable, nil) }

func (f *receiverFake) Throttle(n int) { f.FailNext(n, http.StatusTooManyRequests, nil) }

func (f *receiverFake) ThrottleRetryAfter(n int, d time.Duration) {
	f.FailNext(n, http.StatusTooManyRequests, sinkconformance.RetryAfterHeader(d))
}

func (f *receiverFake) Answers() []sinkconformance.Answer {
	return sinkconformance.StatusAnswers(f.Requests(), func(r otlpfake.Request) int { return r.Status },
		func(r otlpfake.Request) time.Time { return r.At }, http.StatusOK)
}

// Refuse answers 401, as for a revoked token.
func (f *receiverFake) Refuse(name string) { f.Always(name, http.StatusUnauthorized, nil) }

func (f *receiverFake) Allow(name string) { f.Always(name, 0, nil) }

// RejectAction answers 400 for a request holding a record of action: the
// sink isolates them by bisecting.
func (f *receiverFake) RejectAction(action string) {
	f.Reject(func(r otlpfake.Record) bool { return r.Attrs["event.name"] == action }, otlpfake.BadRequest)
}

// Failures: 503 is the suite's server error.
func (f *receiverFake) Failures() sinkconformance.Failures {
	return sinkconformance.StatusFailures(f.Requests(), func(r otlpfake.Request) int { return r.Status },
		http.StatusServiceUnavailable, http.StatusOK)
}

// CheckRequests: every request was within the limit and carried its
// tenant's token.
func (f *receiverFake) CheckRequests(t *testing.T) {
	t.Helper()
	for _, r := range f.Requests() {
		if r.Bytes > conformanceMaxRequestBytes {
			t.Fatalf("a request of %d bytes; the limit is %d", r.Bytes, conformanceMaxRequestBytes)
		}
		if r.Authorization != "Bearer token-"+r.Tenant {
			t.Fatalf("a request of tenant %s with another tenant's token", r.Tenant)
		}
	}
}
