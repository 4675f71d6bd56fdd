package forwarder

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/sink/eventbridge"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// The sink conformance suite against the EventBridge fake, every
// signature verified with the test's keys.
func TestConformance(t *testing.T) {
	sinkconformance.Run(t, sinkconformance.Adapter{
		Spec:          Spec,
		DefaultConfig: DefaultConfig(),
		NewFake:       newBusFake,
		RejectedError: "MalformedDetail",
		Binary:        "../..",
		// A test record is ~300 bytes, and with 20 ms calls of 10 entries,
		// 8 in flight, about 200 entries finish per 50 ms commit interval;
		// allow twice that.
		DuplicateWindow: func(inflightBytes int) int { return inflightBytes/300 + 2*200 },
		// RetryAfter unset: EventBridge throttles with a
		// ThrottlingException that says nothing of when to come back (no
		// Retry-After), and the sink sets no SendError.RetryAfter, so the
		// runtime backs off on its own schedule; busFake is no
		// RetryAfterFake.
	})
}

// busFake is the EventBridge fake as the suite drives it: a connection
// writes to the bus of its own name.
type busFake struct {
	*ebfake.Server
	t *testing.T
}

func newBusFake(t *testing.T) sinkconformance.Fake {
	f := &busFake{Server: ebfake.New(), t: t}
	t.Cleanup(f.Close)
	f.AddKey(ebfake.Key{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: testSessionToken})
	f.RequireKnownKeys(true)
	return f
}

func (f *busFake) Connection(name, dir string, timeout time.Duration) string {
	for file, value := range map[string]string{"key-id": testKeyID, "secret-key": testSecret, "session-token": testSessionToken} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value+"\n"), 0o600); err != nil {
			f.t.Fatal(err)
		}
	}
	return fmt.Sprintf(`  %s:
    type: eventbridge
    settings:
      region: eu-west-1
      event_bus: %s
      endpoint: %s
      prefix: scalr
      timeout: %s
      credentials:
        access_key_id: {file: %s}
        secret_access_key: {file: %s}
        session_token: {file: %s}
`, name, name, f.URL(), timeout, filepath.Join(dir, "key-id"), filepath.Join(dir, "secret-key"), filepath.Join(dir, "session-token"))
}

func (f *busFake) AcceptedCount(name string) int { return f.Count(name) }

func (f *busFake) Accepted(name string) []sinkconformance.Entry {
	var out []sinkconformance.Entry
	for _, e := range f.Entries(name) {
		d := parseDetail(f.t, e.Detail)
		ip := d.Request.IP
		if ip == nil {
			ip = d.Request.IPUnderscore
		}
		out = append(out, sinkconformance.Entry{ID: d.ID, Account: d.Target.Context.Account.ID,
			Email: d.Actor["email"], IP: ip, Raw: e.Detail})
	}
	return out
}

func (f *busFake) ServerErrors(n int) { f.FailNext(n, http.StatusInternalServerError, "", "") }

// Refuse denies PutEvents on the bus (AccessDeniedException), as a bus
// policy without the forwarder's role does.
func (f *busFake) Refuse(name string) { f.DenyBus(name) }

func (f *busFake) Allow(name string) { f.AllowBus(name) }

// RejectAction fails the entries with MalformedDetail, in a 200 answer
// that accepts the rest of the call.
func (f *busFake) RejectAction(action string) {
	needle := `"action":"` + action + `"`
	f.FailEntries(func(_, _ int, e ebfake.Entry) string {
		if strings.Contains(e.Detail, needle) {
			return "MalformedDetail"
		}
		return ""
	})
}

func (f *busFake) Failures() sinkconformance.Failures {
	var out sinkconformance.Failures
	for _, c := range f.Calls() {
		switch {
		case c.Status == 0:
			out.Abandoned++
		case c.ErrorType == "InternalException":
			out.ServerErrors++
		case c.ErrorType == "ThrottlingException":
			out.Throttled++
		case c.Status != http.StatusOK:
			out.Other++
		}
	}
	return out
}

// CheckRequests: every call was within PutEvents' limits and signed with
// the connection's key.
func (f *busFake) CheckRequests(t *testing.T) {
	t.Helper()
	for _, c := range f.Calls() {
		if len(c.Entries) > eventbridge.MaxEntries || c.Bytes > eventbridge.MaxCallBytes {
			t.Fatalf("a call of %d entries and %d bytes", len(c.Entries), c.Bytes)
		}
		if c.AccessKeyID != testKeyID {
			t.Fatalf("a call signed with %q", c.AccessKeyID)
		}
	}
}

// detail is the part of an entry's Detail the tests read.
type detail struct {
	ID      string         `json:"id"`
	Actor   map[string]any `json:"actor"`
	Request struct {
		Action       string `json:"action"`
		IP           any    `json:"ip-address"`
		IPUnderscore any    `json:"ip_address"`
	} `json:"request"`
	Target struct {
		Context struct {
			Account struct {
				ID string `json:"id"`
			} `json:"account"`
		} `json:"context"`
	} `json:"target"`
}

func parseDetail(t *testing.T, s string) detail {
	t.Helper()
	var d detail
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("detail does not decode: %v", err)
	}
	return d
}
