package forwarder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// The sink conformance suite against the Datadog intake fake.
func TestConformance(t *testing.T) {
	sinkconformance.Run(t, sinkconformance.Adapter{
		Spec:          Spec,
		DefaultConfig: DefaultConfig(),
		NewFake: func(t *testing.T) sinkconformance.Fake {
			f := &intakeFake{Server: ddfake.New(), t: t}
			t.Cleanup(f.Close)
			return f
		},
		// The intake refuses the request holding the entry with 400; the
		// sink finds the entry by splitting.
		RejectedError: "400",
		Binary:        "../..",
		// An encoded test record is ~450 bytes; a request is a batch.
		DuplicateWindow: sinkconformance.BatchRequestWindow(450, DefaultConfig().Delivery.RequestsInFlight),
		// The intake answers 429 with Retry-After, and the sink honours it.
		RetryAfter: true,
	})
}

var _ sinkconformance.RetryAfterFake = (*intakeFake)(nil)

// intakeFake is the Datadog intake fake as the suite drives it: a
// connection's name is its API key.
type intakeFake struct {
	*ddfake.Server
	t *testing.T
}

func (f *intakeFake) Connection(name, dir string, timeout time.Duration) string {
	f.AddKey(name)
	keyFile := filepath.Join(dir, name+".key")
	if err := os.WriteFile(keyFile, []byte(name+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return fmt.Sprintf("  %s:\n    type: datadog\n    settings:\n      base_url: %s\n      api_key: {file: %s}\n      tag_prefix: scalr\n      timeout: %s\n",
		name, f.URL(), keyFile, timeout)
}

func (f *intakeFake) AcceptedCount(name string) int { return f.Count(name) }

func (f *intakeFake) Accepted(name string) []sinkconformance.Entry {
	var out []sinkconformance.Entry
	for _, raw := range f.Entries(name) {
		var log struct {
			ID     string         `json:"audit-id"`
			Actor  map[string]any `json:"actor"`
			Req    map[string]any `json:"request"`
			Target struct {
				Context struct {
					Account struct {
						ID string `json:"id"`
					} `json:"account"`
				} `json:"context"`
			} `json:"target"`
		}
		if err := json.Unmarshal(raw, &log); err != nil {
			f.t.Fatalf("accepted log does not decode: %v", err)
		}
		out = append(out, sinkconformance.Entry{ID: log.ID, Account: log.Target.Context.Account.ID,
			Email: log.Actor["email"], IP: log.Req["ip-address"], Raw: string(raw)})
	}
	return out
}

func (f *intakeFake) ServerErrors(n int) { f.FailNext(n, http.StatusInternalServerError, nil) }

// Throttle answers 429 without a Retry-After: the sink backs off on its
// own schedule.
func (f *intakeFake) Throttle(n int) { f.FailNext(n, http.StatusTooManyRequests, nil) }

func (f *intakeFake) ThrottleRetryAfter(n int, d time.Duration) {
	f.FailNext(n, http.StatusTooManyRequests, sinkconformance.RetryAfterHeader(d))
}

func (f *intakeFake) Answers() []sinkconformance.Answer {
	return sinkconformance.StatusAnswers(f.Requests(), func(r ddfake.Request) int { return r.Status },
		func(r ddfake.Request) time.Time { return r.At }, http.StatusAccepted)
}

// Refuse answers 403, as for a revoked API key.
func (f *intakeFake) Refuse(name string) { f.Always(name, http.StatusForbidden, nil) }

func (f *intakeFake) Allow(name string) { f.Recover(name) }

func (f *intakeFake) RejectAction(action string) {
	needle := []byte(`"action":"` + action + `"`)
	f.RejectEntries(func(entry []byte) bool { return bytes.Contains(entry, needle) })
}

func (f *intakeFake) Failures() sinkconformance.Failures {
	return sinkconformance.StatusFailures(f.Requests(), func(r ddfake.Request) int { return r.Status },
		http.StatusInternalServerError, http.StatusAccepted)
}

// CheckRequests: every request the intake took was gzipped, as the
// default connection is.
func (f *intakeFake) CheckRequests(t *testing.T) {
	t.Helper()
	for _, r := range f.Requests() {
		if r.Status == http.StatusAccepted && r.ContentEncoding != "gzip" {
			t.Fatalf("a request with Content-Encoding %q; the default is gzip", r.ContentEncoding)
		}
	}
}
