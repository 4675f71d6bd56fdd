package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/secretbox"
	"github.com/auditstream/auditstream/services/internal/sinks"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
	"github.com/auditstream/auditstream/services/testsupport/s3fake"
)

func customEndpoints(c *Config) { c.API.AllowCustomEndpoints = true }

func ddBody(baseURL, key string) map[string]any {
	return map[string]any{"type": "datadog", "settings": map[string]any{"base_url": baseURL, "api_key": key}}
}

// testOf runs a test of path (a connection or storage profile) and
// decodes its verdict.
func (h *harness) testOf(path, token string) (response, verdict) {
	h.t.Helper()
	r := h.do("POST", path+"/test", token, nil)
	var v verdict
	if r.status == http.StatusOK {
		r.json(h.t, &v)
	}
	return r, v
}

func mustVerdict(t *testing.T, v verdict, result, code, class string) {
	t.Helper()
	if v.Result != result || v.Code != code || v.Class != class {
		t.Fatalf("verdict %s/%s/%s, want %s/%s/%s: %+v", v.Result, v.Code, v.Class, result, code, class, v)
	}
}

// testEvents are the audit events of tests on the events topic, by the
// test event id their verdict names.
func testEvents(t *testing.T, h *harness, n int) map[string]*auditlogv1.AuditEvent {
	t.Helper()
	out := map[string]*auditlogv1.AuditEvent{}
	for _, rec := range kafkatest.ReadAll(t, h.cluster.Brokers(), h.cfg.Kafka.Topics.Events.Name, n, 10*time.Second) {
		ev, err := auditevent.DecodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.Request.GetAction(); a != ActionTestConnection && a != ActionTestStorageProfile {
			continue
		}
		var v verdict
		if err := json.Unmarshal([]byte(ev.Extra["verdict"]), &v); err != nil {
			t.Fatalf("test event without a verdict: %v", ev.Extra)
		}
		out[v.EventID] = ev
	}
	return out
}

func TestDatadogConnectionTest(t *testing.T) {
	const refused = "dd-key-the-intake-refuses-0000RFSD"
	fake := ddfake.New(keyA)
	defer fake.Close()
	h := newHarness(t, customEndpoints)
	good, bad := connPath(accountA, "dd-good"), connPath(accountA, "dd-bad")
	mustStatus(t, h.do("PUT", good, tokenA, ddBody(fake.URL(), keyA)), http.StatusCreated)
	mustStatus(t, h.do("PUT", bad, tokenA, ddBody(fake.URL(), refused)), http.StatusCreated)

	// An accepted key: ok, and the intake received exactly one log, marked
	// as a test of this account.
	r, ok := h.testOf(good, tokenA)
	mustStatus(t, r, http.StatusOK)
	mustVerdict(t, ok, "ok", "ok", "")
	if ok.Name != "dd-good" || ok.Type != "datadog" || ok.EventID == "" {
		t.Fatalf("verdict: %+v", ok)
	}
	logs := fake.Logs(keyA)
	if len(logs) != 1 {
		t.Fatalf("the intake received %d logs, want 1", len(logs))
	}
	log := logs[0]
	extra, _ := log["extra"].(map[string]any)
	target, _ := log["target"].(map[string]any)
	ctx, _ := target["context"].(map[string]any)
	account, _ := ctx["account"].(map[string]any)
	request, _ := log["request"].(map[string]any)
	if extra[TestMarker] != "true" || account["id"] != accountA || request["action"] != ActionTestConnection ||
		log["audit-id"] != ok.EventID || !strings.Contains(target["display-name"].(string), "test") {
		t.Fatalf("the log is not a marked test event of %s: %v", accountA, log)
	}

	// A refused key: the intake's 403, which the runtime treats as an
	// unhealthy connection.
	r, refusedV := h.testOf(bad, tokenA)
	mustStatus(t, r, http.StatusOK)
	mustVerdict(t, refusedV, "failed", "bad_credentials", "unhealthy")
	if refusedV.DestinationStatus != http.StatusForbidden {
		t.Fatalf("destination status %d, want 403", refusedV.DestinationStatus)
	}

	if ok.Attempts != 1 || refusedV.Attempts != 1 {
		t.Fatalf("attempts %d and %d, want 1 each: an accepted or refused event is not sent again", ok.Attempts, refusedV.Attempts)
	}

	// 500s that go on: retried as delivery would, at most maxTestAttempts
	// times, and the verdict is the runtime's: retryable.
	fake.FailNext(maxTestAttempts, http.StatusInternalServerError, nil)
	_, v500 := h.testOf(good, tokenA)
	mustVerdict(t, v500, "failed", "destination_error", "retryable")
	if v500.Attempts != maxTestAttempts || v500.DestinationStatus != http.StatusInternalServerError {
		t.Fatalf("a 500 storm: %d attempts, status %d; want %d, 500", v500.Attempts, v500.DestinationStatus, maxTestAttempts)
	}
	if n := len(fake.Logs(keyA)); n != 1 {
		t.Fatalf("the intake holds %d logs after failed tests, want 1", n)
	}

	// 429, then 200: the test is sent again after the backoff, as delivery
	// would, and passes.
	fake.FailNext(1, http.StatusTooManyRequests, nil)
	_, v429 := h.testOf(good, tokenA)
	mustVerdict(t, v429, "ok", "ok", "")
	if v429.Attempts != 2 || !strings.Contains(v429.Message, "attempt 2") {
		t.Fatalf("429 then 200: %d attempts (%s), want 2", v429.Attempts, v429.Message)
	}
	if n := len(fake.Logs(keyA)); n != 2 {
		t.Fatalf("the intake holds %d logs after a retried test, want 2", n)
	}

	// Each test is an audit event of the account with its verdict.
	events := testEvents(t, h, 6)
	for _, c := range []struct {
		v      verdict
		result string
	}{{ok, "SUCCESS"}, {refusedV, "FAILURE"}, {v500, "FAILURE"}, {v429, "SUCCESS"}} {
		ev := events[c.v.EventID]
		if ev == nil {
			t.Fatalf("no audit event for test %s (%s)", c.v.EventID, c.v.Code)
		}
		if ev.Outcome.GetResult() != c.result || auditevent.AccountID(ev) != accountA || ev.Actor.GetId() != "admin-a" ||
			ev.Request.GetAction() != ActionTestConnection || !strings.Contains(ev.Extra["verdict"], `"code":"`+c.v.Code+`"`) {
			t.Fatalf("audit event of test %s: %v", c.v.Code, ev)
		}
	}

	// No secret in answers, the log or the events topic.
	recs := kafkatest.ReadAll(t, h.cluster.Brokers(), h.cfg.Kafka.Topics.Events.Name, 6, 10*time.Second)
	for _, secret := range []string{keyA, refused, tokenA} {
		for _, v := range []verdict{ok, refusedV, v500, v429} {
			if b, _ := json.Marshal(v); contains(b, secret) {
				t.Fatal("a verdict holds a secret")
			}
		}
		for _, rec := range recs {
			if contains(rec.Value, secret) {
				t.Fatal("the events topic holds a secret")
			}
		}
		if strings.Contains(h.logs.String(), secret) {
			t.Fatal("the log holds a secret")
		}
	}
	if !strings.Contains(h.logs.String(), `"code":"bad_credentials"`) {
		t.Fatal("the log does not record the verdicts")
	}
}

func TestDatadogTestTimeoutAndUnreachable(t *testing.T) {
	fake := ddfake.New(keyA)
	defer fake.Close()
	h := newHarness(t, customEndpoints, func(c *Config) { c.API.TestTimeout = 300 * time.Millisecond })
	path := connPath(accountA, "dd-slow")
	mustStatus(t, h.do("PUT", path, tokenA, ddBody(fake.URL(), keyA)), http.StatusCreated)
	fake.Slow(time.Minute)
	_, v := h.testOf(path, tokenA)
	mustVerdict(t, v, "failed", "timeout", "retryable")
	if v.DurationMS > 2000 || !strings.Contains(v.Message, "api.test_timeout") {
		t.Fatalf("the test took %d ms, over its 300ms bound: %s", v.DurationMS, v.Message)
	}
	fake.Slow(0)

	// A Retry-After beyond what is left of the test is not waited for:
	// the verdict is the throttling, at once.
	fake.FailNext(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"3"}})
	_, v = h.testOf(path, tokenA)
	mustVerdict(t, v, "failed", "throttled", "retryable")
	if v.Attempts != 1 || v.DurationMS > 2000 {
		t.Fatalf("a 429 with Retry-After 3 under a 300ms test: %d attempts in %d ms, want 1 at once", v.Attempts, v.DurationMS)
	}

	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	gone := connPath(accountA, "dd-gone")
	mustStatus(t, h.do("PUT", gone, tokenA, ddBody(closed, keyA)), http.StatusCreated)
	_, v = h.testOf(gone, tokenA)
	mustVerdict(t, v, "failed", "unreachable", "retryable")
}

func ebBody(endpoint, bus, keyID, secret string) map[string]any {
	return map[string]any{"type": "eventbridge", "settings": map[string]any{
		"region": "eu-west-1", "event_bus": bus, "endpoint": endpoint,
		"credentials": map[string]any{"access_key_id": keyID, "secret_access_key": secret}}}
}

func TestEventBridgeConnectionTest(t *testing.T) {
	const keyID, secret = "AKIDTESTCALL00000001", "eb-secret-access-key-never-shown-Q7Z9"
	fake := ebfake.New()
	defer fake.Close()
	fake.AddKey(ebfake.Key{AccessKeyID: keyID, SecretAccessKey: secret})
	fake.RequireKnownKeys(true)
	h := newHarness(t, customEndpoints)
	path := connPath(accountA, "eb-main")
	mustStatus(t, h.do("PUT", path, tokenA, ebBody(fake.URL(), "audit-bus", keyID, secret)), http.StatusCreated)

	_, v := h.testOf(path, tokenA)
	mustVerdict(t, v, "ok", "ok", "")
	events := fake.Events("audit-bus")
	if len(events) != 1 {
		t.Fatalf("the bus received %d events, want 1", len(events))
	}
	detail, _ := events[0]["detail"].(map[string]any)
	extra, _ := detail["extra"].(map[string]any)
	if extra[TestMarker] != "true" || detail["id"] != v.EventID {
		t.Fatalf("the event is not the marked test event: %v", events[0])
	}

	// A bus the credentials may not write: AccessDeniedException.
	fake.DenyBus("audit-bus")
	_, v = h.testOf(path, tokenA)
	mustVerdict(t, v, "failed", "permission_denied", "unhealthy")
	fake.AllowBus("audit-bus")

	// An unknown bus: EventBridge fails the entry with
	// ResourceNotFoundException.
	fake.FailEntries(func(_, _ int, e ebfake.Entry) string { return "ResourceNotFoundException" })
	_, v = h.testOf(path, tokenA)
	mustVerdict(t, v, "failed", "not_found", "unhealthy")
	fake.FailEntries(nil)

	// Throttled on every attempt.
	fake.Throttle(maxTestAttempts)
	_, v = h.testOf(path, tokenA)
	mustVerdict(t, v, "failed", "throttled", "retryable")
	if v.Attempts != maxTestAttempts {
		t.Fatalf("throttled: %d attempts, want %d", v.Attempts, maxTestAttempts)
	}

	// A wrong secret key: the signature does not verify.
	wrong := connPath(accountA, "eb-wrong")
	mustStatus(t, h.do("PUT", wrong, tokenA, ebBody(fake.URL(), "audit-bus", keyID, "not-the-secret-0000WRNG")), http.StatusCreated)
	_, v = h.testOf(wrong, tokenA)
	mustVerdict(t, v, "failed", "bad_credentials", "unhealthy")
	if strings.Contains(v.Message, "not-the-secret") || strings.Contains(h.logs.String(), secret) || strings.Contains(h.logs.String(), "not-the-secret") {
		t.Fatal("a secret leaked into a verdict or the log")
	}
	if n := fake.Count("audit-bus"); n != 1 {
		t.Fatalf("the bus holds %d events after failed tests, want 1", n)
	}
}

func otlpBody(endpoint, token, tenant string) map[string]any {
	return map[string]any{"type": "otlp", "settings": map[string]any{"endpoint": endpoint, "allow_http": true,
		"tenant_id": tenant, "auth": map[string]any{"token": token}}}
}

func TestOTLPConnectionTest(t *testing.T) {
	const token, wrongToken = "otlp-token-never-shown-0000OTLP", "otlp-token-refused-0000WRNG"
	fake := otlpfake.New()
	defer fake.Close()
	fake.RequireAuthorization("Bearer " + token)
	fake.RequireTenant(true)
	h := newHarness(t, customEndpoints)
	good, bad := connPath(accountA, "otlp-good"), connPath(accountA, "otlp-bad")
	mustStatus(t, h.do("PUT", good, tokenA, otlpBody(fake.URL(), token, "tenant-a")), http.StatusCreated)
	mustStatus(t, h.do("PUT", bad, tokenA, otlpBody(fake.URL(), wrongToken, "tenant-a")), http.StatusCreated)

	// Accepted: the receiver holds exactly the marked test event of the
	// account, under the account's resource.
	r, ok := h.testOf(good, tokenA)
	mustStatus(t, r, http.StatusOK)
	mustVerdict(t, ok, "ok", "ok", "")
	recs := fake.Records("tenant-a")
	if ok.Type != "otlp" || len(recs) != 1 {
		t.Fatalf("verdict %+v; the receiver holds %d records, want 1", ok, len(recs))
	}
	rec := recs[0]
	if rec.EventID != ok.EventID || rec.Resource["audit.account.id"] != accountA || rec.Attrs["event.name"] != ActionTestConnection ||
		!strings.Contains(rec.Body, `"`+TestMarker+`":"true"`) {
		t.Fatalf("the record is not the marked test event of %s: %+v", accountA, rec)
	}

	// A refused token: 401, an unhealthy connection.
	_, v := h.testOf(bad, tokenA)
	mustVerdict(t, v, "failed", "bad_credentials", "unhealthy")
	if v.DestinationStatus != http.StatusUnauthorized {
		t.Fatalf("destination status %d, want 401", v.DestinationStatus)
	}

	// 503 on every attempt: retryable; 429 on every attempt: throttled.
	fake.FailNext(maxTestAttempts, http.StatusServiceUnavailable, nil)
	_, v = h.testOf(good, tokenA)
	mustVerdict(t, v, "failed", "destination_error", "retryable")
	fake.FailNext(maxTestAttempts, http.StatusTooManyRequests, nil)
	_, v = h.testOf(good, tokenA)
	mustVerdict(t, v, "failed", "throttled", "retryable")

	// The receiver refuses the record in a partial success: rejected, for
	// good, with its message.
	fake.Reject(func(otlpfake.Record) bool { return true }, otlpfake.PartialSuccess)
	_, v = h.testOf(good, tokenA)
	mustVerdict(t, v, "failed", "rejected", "permanent")
	if !strings.Contains(v.Message, "timestamp too old") {
		t.Fatalf("verdict message %q lacks the receiver's", v.Message)
	}
	fake.Reject(nil, 0)

	if n := fake.Accepted("tenant-a"); n != 1 {
		t.Fatalf("the receiver holds %d records after failed tests, want 1", n)
	}
	if strings.Contains(h.logs.String(), token) || strings.Contains(h.logs.String(), wrongToken) {
		t.Fatal("a token leaked into the log")
	}
}

// A connection type known to the registry alone, with no test function or
// switch case of its own, gets the test call: testSink builds its sink by
// type, reaches its destination and keeps its secret out of messages.
func TestRegisteredTypeIsTestedThroughTheRegistry(t *testing.T) {
	const typ, token = "otlp-registered-by-test", "registry-token-never-shown-0000REG"
	otlpKind, ok := sinks.Lookup(destinations.TypeOTLP)
	if !ok {
		t.Fatal("otlp is not registered")
	}
	sinks.Register(typ, otlpKind)
	fake := otlpfake.New()
	defer fake.Close()
	fake.RequireAuthorization("Bearer " + token)
	settings, err := json.Marshal(otlpBody(fake.URL(), token, "tenant-r")["settings"])
	if err != nil {
		t.Fatal(err)
	}
	conn := destinations.NewAPIConnection(accountA, destinations.CollectionConnections, "reg", typ, settings, nil)
	now := time.Now()
	ev := &auditlogv1.AuditEvent{Service: "audit-log", Request: &auditlogv1.Request{Action: ActionTestConnection},
		Target:    &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: accountA}}},
		Timestamp: timestamppb.New(now), Extra: map[string]string{TestMarker: "true"}}
	if err := auditevent.Prepare(ev, now); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := testSink(ctx, conn, ev)
	if err != nil {
		t.Fatalf("test of a %s connection: %v", typ, err)
	}
	if recs := fake.Records("tenant-r"); len(recs) != 1 || recs[0].EventID != ev.GetId() || out.attempts != 1 {
		t.Fatalf("after %d attempts the receiver holds %+v, want the one test event %s", out.attempts, recs, ev.GetId())
	}
	if !slices.Contains(out.secrets, token) {
		t.Fatalf("the secrets kept out of messages are %d values without the token", len(out.secrets))
	}

	// A type the registry does not know is not tested.
	conn = destinations.NewAPIConnection(accountA, destinations.CollectionConnections, "unreg", "no-such-type", settings, nil)
	if _, err := testSink(ctx, conn, ev); err == nil || !strings.Contains(err.Error(), "no-such-type") {
		t.Fatalf("test of an unregistered type: %v, want an error naming it", err)
	}
}

func s3Body(fake *s3fake.Fake, bucket, prefix string) map[string]any {
	return map[string]any{"settings": map[string]any{"kind": "s3", "prefix": prefix, "s3": map[string]any{
		"region": "eu-west-1", "bucket": bucket, "endpoint": fake.URL, "path_style": true,
		"credentials": map[string]any{"access_key_id": s3fake.KeyID, "secret_access_key": s3fake.Secret}}}}
}

func profilePath(account, name string) string {
	return "/v1/accounts/" + account + "/storage-profiles/" + name
}

func TestStorageProfileTest(t *testing.T) {
	fake := s3fake.New(t)
	bucket := fake.Settings(t).Bucket
	// An object of the archive that a test must leave as it is.
	if _, err := fake.Backend.PutObject(bucket, "audit/acc-a/2026/01/02/existing.json.gz", nil, strings.NewReader("archived"), 8, nil); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, customEndpoints)
	path := profilePath(accountA, "archive")
	mustStatus(t, h.do("PUT", path, tokenA, s3Body(fake, bucket, "audit")), http.StatusCreated)

	var keys []string
	for range 2 {
		r, v := h.testOf(path, tokenA)
		mustStatus(t, r, http.StatusOK)
		mustVerdict(t, v, "ok", "ok", "")
		if !strings.HasPrefix(v.MarkerKey, "audit/"+MarkerPrefix) || !strings.HasSuffix(v.MarkerKey, ".json") {
			t.Fatalf("marker key %q is not under audit/%s", v.MarkerKey, MarkerPrefix)
		}
		obj, err := fake.Backend.GetObject(bucket, v.MarkerKey, nil)
		if err != nil {
			t.Fatalf("marker %s: %v", v.MarkerKey, err)
		}
		var body map[string]any
		err = json.NewDecoder(obj.Contents).Decode(&body)
		obj.Contents.Close()
		if err != nil {
			t.Fatal(err)
		}
		if body["id"] != v.EventID || body["extra"].(map[string]any)[TestMarker] != "true" {
			t.Fatalf("marker body: %v", body)
		}
		keys = append(keys, v.MarkerKey)
	}
	if keys[0] == keys[1] {
		t.Fatalf("two tests wrote the same key %s", keys[0])
	}
	list, err := fake.Backend.ListBucket(bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, o := range list.Contents {
		all = append(all, o.Key)
	}
	slices.Sort(all)
	want := append([]string{"audit/acc-a/2026/01/02/existing.json.gz"}, keys...)
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Fatalf("bucket holds %v, want %v", all, want)
	}
	existing, err := fake.Backend.GetObject(bucket, "audit/acc-a/2026/01/02/existing.json.gz", nil)
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := io.ReadAll(existing.Contents)
	existing.Contents.Close()
	if string(kept) != "archived" {
		t.Fatalf("the archived object changed: %q", kept)
	}
	if fake.RefusedPuts.Load() != 0 {
		t.Fatalf("%d writes were refused as overwrites", fake.RefusedPuts.Load())
	}

	// A missing bucket: not found, unhealthy as the archiver would mark it.
	missing := profilePath(accountA, "missing")
	mustStatus(t, h.do("PUT", missing, tokenA, s3Body(fake, "no-such-bucket", "")), http.StatusCreated)
	_, v := h.testOf(missing, tokenA)
	mustVerdict(t, v, "failed", "not_found", "unhealthy")
	if v.DestinationStatus != http.StatusNotFound || strings.Contains(v.Message, s3fake.Secret) {
		t.Fatalf("verdict: %+v", v)
	}

	// Access denied.
	fake.FailNext("put", http.StatusForbidden, "AccessDenied")
	_, v = h.testOf(path, tokenA)
	mustVerdict(t, v, "failed", "permission_denied", "unhealthy")

	// The tests are audit events of the account.
	events := testEvents(t, h, 6)
	if len(events) != 4 {
		t.Fatalf("%d test events, want 4", len(events))
	}
	for _, ev := range events {
		if ev.Request.GetAction() != ActionTestStorageProfile || ev.Target.GetType() != TargetStorageProfile {
			t.Fatalf("event: %v", ev)
		}
	}
	if strings.Contains(h.logs.String(), s3fake.Secret) {
		t.Fatal("the log holds the secret access key")
	}
}

func TestLocalStorageProfileTest(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, func(c *Config) { c.API.AllowLocalStorage = true })
	path := profilePath(accountA, "local")
	mustStatus(t, h.do("PUT", path, tokenA, map[string]any{"settings": map[string]any{"kind": "local", "local": map[string]any{"dir": dir}}}), http.StatusCreated)
	_, v := h.testOf(path, tokenA)
	mustVerdict(t, v, "ok", "ok", "")
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(v.MarkerKey)))
	if err != nil || !strings.Contains(string(b), v.EventID) {
		t.Fatalf("marker %s: %v %s", v.MarkerKey, err, b)
	}
	// The archive's verifier finds nothing wrong with a bucket holding
	// markers: they are no account's data or manifests.
	st, err := objstore.Open(context.Background(), objstore.Settings{Kind: objstore.KindLocal, Local: &objstore.LocalSettings{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := archive.Verify(context.Background(), st, archive.VerifyOptions{})
	if err != nil || len(rep.Problems) != 0 || rep.Objects != 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// blockingIntake answers the Datadog logs path only when released, and
// says when a request arrived.
func blockingIntake(t *testing.T) (url string, arrived <-chan struct{}, release func()) {
	in := make(chan struct{}, 8)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		select {
		case <-done:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("{}"))
	}))
	var once sync.Once
	rel := func() { once.Do(func() { close(done) }) }
	t.Cleanup(func() { rel(); srv.Close() })
	return srv.URL, in, rel
}

func TestTestAccessAndLimits(t *testing.T) {
	fake := ddfake.New(keyA)
	defer fake.Close()
	h := newHarness(t, customEndpoints, func(c *Config) { c.API.TestsPerMinute = 3 })
	path := connPath(accountA, "dd-main")
	mustStatus(t, h.do("PUT", path, tokenA, ddBody(fake.URL(), keyA)), http.StatusCreated)

	// Another account's token learns nothing; a missing resource is 404.
	mustStatus(t, h.do("POST", path+"/test", tokenB, nil), http.StatusNotFound)
	mustStatus(t, h.do("POST", connPath(accountA, "nope")+"/test", tokenA, nil), http.StatusNotFound)
	mustStatus(t, h.do("POST", profilePath(accountA, "dd-main")+"/test", tokenA, nil), http.StatusNotFound)
	mustStatus(t, h.do("POST", path+"/test", "", nil), http.StatusUnauthorized)
	if n := len(fake.Logs(keyA)); n != 0 {
		t.Fatalf("refused calls sent %d logs", n)
	}

	// One test at a time per resource.
	url, arrived, release := blockingIntake(t)
	slow := connPath(accountA, "dd-slow")
	mustStatus(t, h.do("PUT", slow, tokenA, ddBody(url, keyA)), http.StatusCreated)
	first := make(chan response, 1)
	go func() { first <- h.do("POST", slow+"/test", tokenA, nil) }()
	<-arrived
	busy := h.do("POST", slow+"/test", tokenA, nil)
	mustStatus(t, busy, http.StatusConflict)
	if !contains(busy.body, "test_in_progress") {
		t.Fatalf("answer: %s", busy.body)
	}
	release()
	r := <-first
	mustStatus(t, r, http.StatusOK)

	// At most 3 tests a minute per account (the busy one was not counted),
	// whichever resource; another account is not affected.
	mustStatus(t, h.do("POST", path+"/test", tokenA, nil), http.StatusOK)
	mustStatus(t, h.do("POST", path+"/test", tokenA, nil), http.StatusOK)
	limited := h.do("POST", path+"/test", tokenA, nil)
	mustStatus(t, limited, http.StatusTooManyRequests)
	if s, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After %q", limited.header.Get("Retry-After"))
	}
	pathB := connPath(accountB, "dd-b")
	mustStatus(t, h.do("PUT", pathB, tokenB, ddBody(fake.URL(), keyA)), http.StatusCreated)
	mustStatus(t, h.do("POST", pathB+"/test", tokenB, nil), http.StatusOK)
	if n := len(fake.Logs(keyA)); n != 3 {
		t.Fatalf("the intake received %d logs, want 3", n)
	}
}

func TestGuardForgetsOldStarts(t *testing.T) {
	var g testGuard
	now := time.Unix(1_000_000, 0)
	for i := range 2 {
		release, _, busy := g.begin("a", "a/x/"+strconv.Itoa(i), now, 2)
		if release == nil || busy {
			t.Fatalf("test %d refused", i)
		}
		release()
	}
	if release, wait, _ := g.begin("a", "a/x/0", now.Add(30*time.Second), 2); release != nil || wait != 30*time.Second {
		t.Fatalf("third test within the minute: admitted %v, wait %s", release != nil, wait)
	}
	if release, _, _ := g.begin("a", "a/x/0", now.Add(time.Minute), 2); release == nil {
		t.Fatal("a test a minute later was refused")
	}
}

// Two tests at the same instant still create two markers: the key is new
// each time, whatever the clock says.
func TestMarkerKeysNeverRepeat(t *testing.T) {
	dir := t.TempDir()
	settings, _ := json.Marshal(map[string]any{"kind": "local", "prefix": "p", "local": map[string]any{"dir": dir}})
	conn := destinations.NewAPIConnection(accountA, destinations.CollectionStorageProfiles, "local", destinations.TypeStorage, settings, nil)
	ev := &auditlogv1.AuditEvent{Id: "ev-1", Timestamp: timestamppb.New(time.Unix(1_800_000_000, 0)),
		Target: &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: accountA}}}}
	seen := map[string]bool{}
	for range 3 {
		out, err := testStorage(context.Background(), conn, ev)
		if err != nil {
			t.Fatal(err)
		}
		if seen[out.markerKey] {
			t.Fatalf("key %s used twice", out.markerKey)
		}
		seen[out.markerKey] = true
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(out.markerKey))); err != nil {
			t.Fatal(err)
		}
	}
}

// A secret the key ring cannot open is the verdict, not a 500, and the
// connection's key never reaches the destination.
func TestSecretThatCannotBeOpened(t *testing.T) {
	fake := ddfake.New(keyA)
	defer fake.Close()
	h := newHarness(t, customEndpoints)
	path := connPath(accountA, "dd-main")
	mustStatus(t, h.do("PUT", path, tokenA, ddBody(fake.URL(), keyA)), http.StatusCreated)
	hashed := connPath(accountA, "dd-hashed")
	b := ddBody(fake.URL(), keyA)
	b["redact"] = []map[string]any{{"path": "actor.id", "action": "hash"}}
	b["redaction_key"] = "a-redaction-key-of-the-account"
	mustStatus(t, h.do("PUT", hashed, tokenA, b), http.StatusCreated)
	other := filepath.Join(t.TempDir(), "other-keyring.yaml")
	if err := secretbox.GenerateKeyring(other, "k9"); err != nil {
		t.Fatal(err)
	}
	cfg := h.cfg
	cfg.Encryption.KeyringFile = other
	again := startHarness(t, h.cluster, cfg)
	_, v := again.testOf(path, tokenA)
	mustVerdict(t, v, "failed", "secret_unavailable", "unhealthy")
	if strings.Contains(v.Message, other) || !strings.Contains(again.logs.String(), "not in keyring file") {
		t.Fatalf("the key ring's detail belongs in the log, not the answer: %s", v.Message)
	}

	// A redaction key that cannot be opened fails the test the same way,
	// before anything is sent: the event's form could not be known.
	_, v = again.testOf(hashed, tokenA)
	mustVerdict(t, v, "failed", "secret_unavailable", "unhealthy")
	if !strings.Contains(again.logs.String(), "dd-hashed.redaction_key: open") {
		t.Fatalf("the log does not name the redaction key:\n%s", again.logs.String())
	}
	if len(fake.Requests()) != 0 {
		t.Fatalf("the intake saw %d requests", len(fake.Requests()))
	}
}

// The verdict's message is the last guard: a secret an error quoted is
// replaced, whatever the sink.
func TestVerdictMessageHidesSecrets(t *testing.T) {
	const secret = "sk-live-0123456789abcdef"
	v := judge(fmt.Errorf("the proxy echoed %q\x00 back", secret), destinations.TypeDatadog, false, time.Second, []string{secret})
	if strings.Contains(v.Message, secret) || !strings.Contains(v.Message, "[redacted]") || strings.ContainsRune(v.Message, 0) {
		t.Fatalf("message %q", v.Message)
	}
	long := judge(errors.New(strings.Repeat("x", 5000)), destinations.TypeDatadog, false, time.Second, nil)
	if len(long.Message) > maxVerdictMessage+3 {
		t.Fatalf("message of %d bytes", len(long.Message))
	}
}

// A caller that hangs up mid-test still leaves the test in the audit
// trail: the destination may have been called.
func TestHungUpTestIsStillAudited(t *testing.T) {
	h := newHarness(t, customEndpoints)
	url, arrived, release := blockingIntake(t)
	defer release()
	path := connPath(accountA, "dd-slow")
	mustStatus(t, h.do("PUT", path, tokenA, ddBody(url, keyA)), http.StatusCreated)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", h.url+path+"/test", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenA)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-arrived
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the request was not cancelled")
	}
	recs := kafkatest.ReadAll(t, h.cluster.Brokers(), h.cfg.Kafka.Topics.Events.Name, 2, 10*time.Second)
	var found bool
	for _, rec := range recs {
		ev, err := auditevent.DecodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Request.GetAction() == ActionTestConnection {
			found = true
			if ev.Outcome.GetResult() != "FAILURE" || !strings.Contains(ev.Extra["verdict"], "hung up") {
				t.Fatalf("event: %v", ev)
			}
		}
	}
	if !found {
		t.Fatal("no audit event of the test")
	}
}

// A test goes through the connection's policy as real events do: the
// destination receives the marker redacted, and the marker is sent even
// when the filter excludes it, with the verdict saying what the filter said.
func TestConnectionTestAppliesPolicy(t *testing.T) {
	fake := ddfake.New(keyA)
	defer fake.Close()
	h := newHarness(t, customEndpoints)
	for name, filter := range map[string]string{
		"dd-excludes": `event.target.type == "runs"`,
		"dd-matches":  `event.request.action == "` + ActionTestConnection + `"`,
		"dd-error":    `event.extra["no-such-attribute"] == "x"`,
	} {
		b := ddBody(fake.URL(), keyA)
		b["filter"] = filter
		b["redact"] = []map[string]any{{"path": "request.user_agent", "action": "drop"}, {"path": "request.ip_address", "action": "mask", "keep": 3}}
		mustStatus(t, h.do("PUT", connPath(accountA, name), tokenA, b), http.StatusCreated)
	}
	plain := connPath(accountA, "dd-plain")
	mustStatus(t, h.do("PUT", plain, tokenA, ddBody(fake.URL(), keyA)), http.StatusCreated)

	// Without a policy the marker carries the request's user agent and
	// address, and the verdict says nothing of a filter.
	_, v := h.testOf(plain, tokenA)
	mustVerdict(t, v, "ok", "ok", "")
	if v.Filter != "" || v.FilterError != "" {
		t.Fatalf("a connection without a filter: filter %q %q", v.Filter, v.FilterError)
	}
	logs := fake.Logs(keyA)
	if len(logs) != 1 {
		t.Fatalf("the intake received %d logs, want 1", len(logs))
	}
	req, _ := logs[0]["request"].(map[string]any)
	ua, _ := req["user-agent"].(string)
	ip, _ := req["ip-address"].(string)
	if ua == "" || ip != "127.0.0.1" {
		t.Fatalf("the unredacted marker lacks the user agent or address: %v", req)
	}

	for _, c := range []struct{ name, filter, says string }{
		{"dd-excludes", "excludes", ""},
		{"dd-matches", "matches", ""},
		{"dd-error", "error", "no such key"},
	} {
		_, v := h.testOf(connPath(accountA, c.name), tokenA)
		mustVerdict(t, v, "ok", "ok", "")
		if v.Filter != c.filter || !strings.Contains(v.FilterError, c.says) || (c.says == "") != (v.FilterError == "") {
			t.Fatalf("%s: filter %q %q, want %q %q", c.name, v.Filter, v.FilterError, c.filter, c.says)
		}
		// Sent whatever the filter said, in the form real events take.
		var got map[string]any
		for _, l := range fake.Logs(keyA) {
			if l["audit-id"] == v.EventID {
				got = l
			}
		}
		if got == nil {
			t.Fatalf("%s: the intake did not receive test event %s", c.name, v.EventID)
		}
		req, _ := got["request"].(map[string]any)
		if _, has := req["user-agent"]; has || req["ip-address"] != "...0.1" {
			t.Fatalf("%s: the marker was not redacted: %v", c.name, req)
		}
		if extra, _ := got["extra"].(map[string]any); extra[TestMarker] != "true" {
			t.Fatalf("%s: the marker lost its mark: %v", c.name, got)
		}
	}
}
