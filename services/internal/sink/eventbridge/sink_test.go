package eventbridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
)

// A batch of 500 entries, some large, is cut into calls of at most 10
// entries and 256 KiB (the fake refuses more), several in flight, and every
// entry arrives exactly once.
func TestWriteBatchCutsCallsToTheLimits(t *testing.T) {
	f, cfg := fakeBus(t)
	cfg.MaxConcurrentCalls = 6
	f.Slow(20 * time.Millisecond) // keep calls in flight together
	enc := cfg.Encoder()
	entries := encodeN(t, cfg, 500)
	for i := 0; i < len(entries); i += 37 { // every 37th about 60 KB: the byte limit cuts too
		ev := event(i, time.Now())
		ev.Extra = map[string]string{"pad": strings.Repeat("p", 60_000+i)}
		b, err := enc.EncodeEntry(ev)
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = b
	}
	if err := newSink(t, cfg).WriteBatch(t.Context(), entries); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	for i, c := range calls {
		if c.Status != http.StatusOK || len(c.Entries) > MaxEntries || c.Bytes > MaxCallBytes {
			t.Fatalf("call %d: status %d, %d entries, %d bytes", i, c.Status, len(c.Entries), c.Bytes)
		}
	}
	wantCalls := len(sink.Split(entries, enc.EntrySize, MaxEntries, MaxCallBytes))
	if len(calls) != wantCalls {
		t.Errorf("%d calls, want %d", len(calls), wantCalls)
	}
	ids := detailIDs(t, f.Entries("audit"))
	if len(ids) != 500 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 500 {
		t.Fatalf("%d entries arrived, want 500 distinct", len(ids))
	}
	// About 55 calls of 20ms each, 6 at a time: the sink keeps all 6 out.
	if m := f.MaxInFlight(); m != cfg.MaxConcurrentCalls {
		t.Errorf("at most %d calls in flight, want max_concurrent_calls (%d)", m, cfg.MaxConcurrentCalls)
	}
}

// Entries 3 and 7 of a call fail with throttling: WriteBatch reports
// exactly those two, Retryable; sending just them again delivers them, and
// every entry arrives exactly once.
func TestPartialFailureReportsOnlyFailedEntries(t *testing.T) {
	f, cfg := fakeBus(t)
	f.FailEntries(func(call, i int, _ ebfake.Entry) string {
		if call == 0 && (i == 3 || i == 7) {
			return "ThrottlingException"
		}
		return ""
	})
	s := newSink(t, cfg)
	entries := encodeN(t, cfg, 10)
	err := s.WriteBatch(t.Context(), entries)
	var be *sink.BatchError
	if !errors.As(err, &be) || be.Len() != 2 {
		t.Fatalf("want a BatchError of 2, got %v", err)
	}
	var failed []int
	be.Walk(func(i int, err error) {
		failed = append(failed, i)
		var ee *EntryError
		if sink.Classify(err) != sink.Retryable || !errors.As(err, &ee) || ee.Code != "ThrottlingException" {
			t.Errorf("entry %d: %v", i, err)
		}
	})
	if !slices.Equal(failed, []int{3, 7}) {
		t.Fatalf("failed %v, want [3 7]", failed)
	}
	if err := s.WriteBatch(t.Context(), []sink.Entry[Entry]{entries[3], entries[7]}); err != nil {
		t.Fatal(err)
	}
	ids := detailIDs(t, f.Entries("audit"))
	if len(ids) != 10 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 10 {
		t.Fatalf("accepted %v, want each of 10 once", ids)
	}
	calls := f.Calls()
	if len(calls) != 2 || len(calls[1].Entries) != 2 {
		t.Fatalf("calls %d, second with %d entries; want the retry to carry only the 2 failed", len(calls), len(calls[len(calls)-1].Entries))
	}
}

// Each entry error code maps to the runtime's class.
func TestEntryErrorCodes(t *testing.T) {
	for code, want := range map[string]sink.Class{
		"ThrottlingException":                 sink.Retryable,
		"InternalFailure":                     sink.Retryable,
		"SomethingNew":                        sink.Retryable,
		"InvalidArgument":                     sink.Permanent,
		"MalformedDetail":                     sink.Permanent,
		"RedactionFailure":                    sink.Permanent,
		"AccessDeniedException":               sink.Unhealthy,
		"NotAuthorizedForSourceException":     sink.Unhealthy,
		"NotAuthorizedForDetailTypeException": sink.Unhealthy,
		"InvalidAccountIdException":           sink.Unhealthy,
	} {
		t.Run(code, func(t *testing.T) {
			f, cfg := fakeBus(t)
			f.FailEntries(func(_, i int, _ ebfake.Entry) string {
				if i == 1 {
					return code
				}
				return ""
			})
			err := newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 3))
			var be *sink.BatchError
			if !errors.As(err, &be) || be.Len() != 1 || be.Failed(1) == nil {
				t.Fatalf("want entry 1 failed alone, got %v", err)
			}
			if got := sink.Classify(be.Failed(1)); got != want {
				t.Errorf("class %s, want %s (%v)", got, want, be.Failed(1))
			}
			if f.Count("audit") != 2 {
				t.Errorf("%d delivered, want 2", f.Count("audit"))
			}
		})
	}
}

// Whole-call failures: every entry fails with the call's class, reported as
// one error (nothing was delivered), after exactly one call: the SDK's own
// retries are off.
func TestCallErrors(t *testing.T) {
	cases := []struct {
		name   string
		script func(f *ebfake.Server)
		want   sink.Class
		status int
		text   string
	}{
		{"500", func(f *ebfake.Server) { f.FailNext(1, 500, "", "") }, sink.Retryable, 500, "InternalException"},
		{"503", func(f *ebfake.Server) { f.FailNext(1, 503, "", "") }, sink.Retryable, 503, "ServiceUnavailable"},
		{"throttled", func(f *ebfake.Server) { f.Throttle(1) }, sink.Retryable, 400, "ThrottlingException"},
		{"bus denied", func(f *ebfake.Server) { f.DenyBus("audit") }, sink.Unhealthy, 400, "AccessDeniedException"},
		{"unknown key", func(f *ebfake.Server) { f.RemoveKey(testKeyID) }, sink.Unhealthy, 400, "UnrecognizedClientException"},
		{"no such bus", func(f *ebfake.Server) {
			f.FailNext(1, 400, "ResourceNotFoundException", "Event bus audit does not exist.")
		}, sink.Unhealthy, 400, "does not exist"},
		{"not an endpoint", func(f *ebfake.Server) { f.FailNext(1, 404, "NotFound", "") }, sink.Unhealthy, 404, "check the connection's region and endpoint"},
		{"proxy auth", func(f *ebfake.Server) { f.FailNext(1, 407, "", "") }, sink.Unhealthy, 407, ""},
		{"unknown 400", func(f *ebfake.Server) { f.FailNext(1, 400, "SomethingNewException", "") }, sink.Unhealthy, 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, cfg := fakeBus(t)
			c.script(f)
			err := newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 5))
			var se *sink.SendError
			if !errors.As(err, &se) {
				t.Fatalf("want a SendError for the whole batch, got %T %v", err, err)
			}
			if se.Class != c.want || se.Status != c.status || !strings.Contains(err.Error(), c.text) {
				t.Errorf("got %s HTTP %d %q; want %s HTTP %d containing %q", se.Class, se.Status, err, c.want, c.status, c.text)
			}
			if n := len(f.Calls()); n != 1 {
				t.Errorf("%d calls; the SDK must not retry", n)
			}
			if f.Total() != 0 {
				t.Errorf("%d entries accepted", f.Total())
			}
		})
	}
}

// After a call fails Retryable or Unhealthy, calls not yet started are not
// made: their entries fail with the same error.
func TestFailedCallStopsTheRest(t *testing.T) {
	f, cfg := fakeBus(t)
	cfg.MaxConcurrentCalls = 1
	f.FailNext(1, 500, "", "")
	err := newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 50))
	if sink.Classify(err) != sink.Retryable {
		t.Fatalf("got %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Fatalf("%d calls after the first failed, want 1", n)
	}
}

// A validation error for a call makes the sink send its entries one a call:
// those accepted alone are delivered, one refused alone is Permanent.
func TestValidationErrorIsolatesEntries(t *testing.T) {
	f, cfg := fakeBus(t)
	f.FailNext(1, 400, "ValidationException", "1 validation error detected")
	err := newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 4))
	if err != nil {
		t.Fatalf("entries fine alone: %v", err)
	}
	if f.Count("audit") != 4 || len(f.Calls()) != 5 {
		t.Fatalf("%d delivered in %d calls, want 4 in 1+4", f.Count("audit"), len(f.Calls()))
	}

	f.Reset()
	f.FailNext(3, 400, "ValidationException", "1 validation error detected")
	err = newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 3))
	var be *sink.BatchError
	if !errors.As(err, &be) || be.Len() != 2 {
		t.Fatalf("want 2 failed, got %v", err)
	}
	be.Walk(func(i int, err error) {
		var re *RejectError
		if sink.Classify(err) != sink.Permanent || !errors.As(err, &re) || re.Reason != ReasonRejected || re.Code != "ValidationException" {
			t.Errorf("entry %d: %v", i, err)
		}
	})
	if f.Count("audit") != 1 {
		t.Errorf("%d delivered, want 1", f.Count("audit"))
	}
}

// An entry too large for any call fails Permanent without being sent; the
// rest of the batch is delivered.
func TestOversizedEntryFailsAlone(t *testing.T) {
	f, cfg := fakeBus(t)
	entries := encodeN(t, cfg, 3)
	// as a hand-made entry, whose Size need not be right: the sink counts
	entries[1].Value.Detail = []byte(`{"pad":"` + strings.Repeat("x", MaxCallBytes) + `"}`)
	err := newSink(t, cfg).WriteBatch(t.Context(), entries)
	var be *sink.BatchError
	var re *RejectError
	if !errors.As(err, &be) || be.Len() != 1 || !errors.As(be.Failed(1), &re) || re.Reason != ReasonEntryTooLarge {
		t.Fatalf("got %v", err)
	}
	if f.Count("audit") != 2 {
		t.Fatalf("%d delivered, want 2", f.Count("audit"))
	}
	for _, c := range f.Calls() {
		if c.Bytes > MaxCallBytes {
			t.Fatalf("a call of %d bytes was sent", c.Bytes)
		}
	}
}

func TestTimeoutsAndNetworkErrorsAreRetryable(t *testing.T) {
	f, cfg := fakeBus(t)
	f.Slow(time.Second)
	cfg.Timeout = 100 * time.Millisecond
	err := newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 2))
	if sink.Classify(err) != sink.Retryable || !strings.Contains(err.Error(), "no answer within 100ms") {
		t.Fatalf("slow: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg.Endpoint = "http://" + addr
	err = newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 2))
	if sink.Classify(err) != sink.Retryable {
		t.Fatalf("refused: %v", err)
	}
}

// When ctx ends the entries not delivered fail with ctx's error.
func TestContextEndsTheBatch(t *testing.T) {
	f, cfg := fakeBus(t)
	f.Slow(time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := newSink(t, cfg).WriteBatch(ctx, encodeN(t, cfg, 30))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

// Static keys are read from their Secret files when credentials are needed,
// so a rotated key applies without a new sink; the fake verifies every
// signature with the key it knows.
func TestStaticKeysFromSecretFiles(t *testing.T) {
	f, cfg := fakeBus(t)
	dir := t.TempDir()
	idFile, keyFile := filepath.Join(dir, "id"), filepath.Join(dir, "key")
	write := func(id, secret string) {
		if err := os.WriteFile(idFile, []byte(id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(testKeyID, testSecret)
	cfg.Credentials = Credentials{AccessKeyID: config.SecretFile(idFile), SecretAccessKey: config.SecretFile(keyFile)}
	// A clock an hour behind makes every cached key already stale, so each
	// call reads the files again (in production keys live 10 s).
	s, err := New(cfg, Options{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(t.Context(), encodeN(t, cfg, 2)); err != nil {
		t.Fatal(err)
	}

	// a wrong secret: the signature does not verify. (A new sink: AWS
	// rotation always brings a new key id, and the SDK's signer keeps the
	// key it derived for a key id for the day.)
	write(testKeyID, "not-the-secret")
	err = newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 2))
	if sink.Classify(err) != sink.Unhealthy || !strings.Contains(err.Error(), "InvalidSignatureException") {
		t.Fatalf("wrong secret: %v", err)
	}
	assertNoSecrets(t, err.Error(), "not-the-secret")

	// rotated to a new key the fake knows, the old one revoked
	f.AddKey(ebfake.Key{AccessKeyID: "AKIDROTATED000000002", SecretAccessKey: "rotated-secret"})
	f.RemoveKey(testKeyID)
	write("AKIDROTATED000000002", "rotated-secret")
	if err := s.WriteBatch(t.Context(), encodeN(t, cfg, 2)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if got := f.Calls()[len(f.Calls())-1].AccessKeyID; got != "AKIDROTATED000000002" {
		t.Errorf("last call signed with %s", got)
	}

	// a missing file: the connection is misconfigured, and the error names
	// the file, not a value
	os.Remove(keyFile)
	err = s.WriteBatch(t.Context(), encodeN(t, cfg, 2))
	if sink.Classify(err) != sink.Unhealthy || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("missing key file: %v", err)
	}
	assertNoSecrets(t, err.Error(), "rotated-secret", testSecret)
}

// The cross-account pattern: the forwarder's own keys assume the
// customer's role with an external id, and the calls are signed with the
// temporary credentials STS issued.
func TestAssumeRoleWithExternalID(t *testing.T) {
	f, cfg := fakeBus(t)
	sts := ebfake.NewSTS(f)
	t.Cleanup(sts.Close)
	sts.AddKey(ebfake.Key{AccessKeyID: testKeyID, SecretAccessKey: testSecret})
	sts.RequireKnownKeys(true)
	const role = "arn:aws:iam::123456789012:role/auditstream-writer"
	sts.AllowRole(role, "ext-7f3a")
	f.RemoveKey(testKeyID) // only assumed-role keys may write the bus

	cfg.Credentials.RoleARN = role
	cfg.Credentials.ExternalID = config.SecretLiteral("ext-7f3a")
	cfg.Credentials.STSEndpoint = sts.URL()
	cfg.Credentials.Duration = 20 * time.Minute
	s := newSink(t, cfg)
	for range 3 {
		if err := s.WriteBatch(t.Context(), encodeN(t, cfg, 3)); err != nil {
			t.Fatal(err)
		}
	}
	calls := sts.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d AssumeRole calls for 3 batches; credentials must be cached", len(calls))
	}
	c := calls[0]
	if c.Status != 200 || c.RoleARN != role || c.ExternalID != "ext-7f3a" || c.RoleSessionName != DefaultRoleSessionName ||
		c.DurationSeconds != 1200 || c.AccessKeyID != testKeyID || c.Region != "eu-west-1" {
		t.Fatalf("AssumeRole call %+v", c)
	}
	for _, call := range f.Calls() {
		if call.AccessKeyID != c.Issued {
			t.Fatalf("PutEvents signed with %s, want the assumed key %s", call.AccessKeyID, c.Issued)
		}
	}

	// a wrong external id: STS refuses, the connection is unhealthy
	cfg.Credentials.ExternalID = config.SecretLiteral("ext-wrong")
	err := newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 2))
	if sink.Classify(err) != sink.Unhealthy || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("wrong external id: %v", err)
	}
	assertNoSecrets(t, err.Error(), testSecret, "ext-wrong")

	// STS throttled (both of its quick tries): retryable
	sts.FailNext(2, 400, "Throttling")
	cfg.Credentials.ExternalID = config.SecretLiteral("ext-7f3a")
	err = newSink(t, cfg).WriteBatch(t.Context(), encodeN(t, cfg, 2))
	if sink.Classify(err) != sink.Retryable {
		t.Fatalf("STS throttled: %v", err)
	}
}

// Without keys in the settings, the default chain applies; here it finds
// keys in the environment (and is kept from reaching any instance
// metadata service).
func TestDefaultChain(t *testing.T) {
	f, cfg := fakeBus(t)
	t.Setenv("AWS_ACCESS_KEY_ID", testKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg.Credentials = Credentials{}
	s, err := New(cfg, Options{DefaultChain: NewDefaultChain()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(t.Context(), encodeN(t, cfg, 2)); err != nil {
		t.Fatal(err)
	}
	if f.Calls()[0].AccessKeyID != testKeyID {
		t.Fatalf("signed with %s", f.Calls()[0].AccessKeyID)
	}
}

// No error, and no printing of a sink, holds a secret, whatever fails.
func TestSecretsNeverInErrors(t *testing.T) {
	f, cfg := fakeBus(t)
	cfg.Credentials.SessionToken = config.SecretLiteral("session-token-never-printed")
	f.AddKey(ebfake.Key{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: "session-token-never-printed"})
	s := newSink(t, cfg)
	var texts []string
	for _, script := range []func(){
		func() { f.FailNext(1, 500, "", "") },
		func() { f.DenyBus("audit") },
		func() {
			f.FailEntries(func(_, i int, _ ebfake.Entry) string { return "AccessDeniedException" })
		},
	} {
		f.Reset()
		script()
		if err := s.WriteBatch(t.Context(), encodeN(t, cfg, 2)); err != nil {
			texts = append(texts, err.Error())
		}
	}
	texts = append(texts, fmt.Sprintf("%v %+v %#v %s", s, s, s, s))
	for _, text := range texts {
		assertNoSecrets(t, text, "session-token-never-printed", testSecret)
	}
}

func assertNoSecrets(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("a secret appears in %q", text)
		}
	}
}
