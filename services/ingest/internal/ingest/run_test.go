package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestMetrics(t *testing.T) {
	h := newHarness(t, withTokens)
	before := h.scrape()
	if v, ok := before["auditstream_ingest_kafka_available"]; !ok || v != 1 {
		t.Errorf("auditstream_ingest_kafka_available = %v (present %v)", v, ok)
	}
	for _, series := range []string{"auditstream_ingest_events_accepted_total", "auditstream_ingest_inflight_bytes", "auditstream_ingest_events_unconfirmed_total", "go_goroutines"} {
		if _, ok := before[series]; !ok {
			t.Errorf("%s is missing", series)
		}
	}

	auth := "Bearer " + tokenAll
	ok := jsonReq(jsonArray(newEvent("acc-1"), newEvent("acc-2")))
	ok.auth = auth
	if a := h.post(ok); a.status != 202 {
		t.Fatal(a)
	}
	bad := jsonReq(jsonArray(newEvent("acc-1"), newEvent("acc-1").with("timestamp", "soon"), newEvent("acc-1")))
	bad.auth = auth
	if a := h.post(bad); a.status != 400 {
		t.Fatal(a)
	}
	if a := h.post(jsonReq(newEvent("acc-1").JSON())); a.status != 401 {
		t.Fatal(a)
	}
	tooBig := request{contentType: "application/json", auth: auth, body: []byte(newEvent("acc-1").with("hostname", strings.Repeat("x", 300<<10)).JSON())}
	if a := h.post(tooBig); a.status != 413 {
		t.Fatal(a)
	}

	after := h.scrape()
	moved := func(series string, want float64) {
		t.Helper()
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	moved("auditstream_ingest_events_accepted_total", 2)
	moved(`auditstream_ingest_events_rejected_total{reason="bad_timestamp"}`, 1)
	moved(`auditstream_ingest_events_rejected_total{reason="batch_rejected"}`, 2)
	moved(`auditstream_ingest_events_rejected_total{reason="unauthorized"}`, 1)
	moved(`auditstream_ingest_events_rejected_total{reason="too_large"}`, 1)
	moved(`auditstream_ingest_requests_total{code="202",protocol="http"}`, 1)
	moved(`auditstream_ingest_requests_total{code="400",protocol="http"}`, 1)
	moved(`auditstream_ingest_requests_total{code="401",protocol="http"}`, 1)
	moved(`auditstream_ingest_requests_total{code="413",protocol="http"}`, 1)
	moved("auditstream_ingest_produce_duration_seconds_count", 1)
	moved(`auditstream_ingest_request_duration_seconds_count{protocol="http"}`, 4)
	if after["auditstream_ingest_produce_duration_seconds_sum"] <= 0 {
		t.Error("produce latency sum did not move")
	}
	if after["auditstream_ingest_inflight_bytes"] != 0 {
		t.Errorf("in-flight bytes %v with nothing in flight", after["auditstream_ingest_inflight_bytes"])
	}
	kafkaSeries := 0
	for series, v := range after {
		if strings.HasPrefix(series, "auditstream_kafka_") && v > 0 {
			kafkaSeries++
		}
	}
	if kafkaSeries == 0 {
		t.Error("no auditstream_kafka_* series moved")
	}
	_, page := h.get("/metrics")
	if bytes.Contains(page, []byte(tokenAll)) || bytes.Contains(page, []byte(hashToken(tokenAll))) {
		t.Error("/metrics shows a token or its hash")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t)
	if code, body := h.get("/healthz"); code != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("healthz %d %q", code, body)
	}
	code, detail := h.readyz()
	if code != 200 || detail["status"] != "ready" {
		t.Errorf("readyz %d %v", code, detail)
	}
	if c, _ := detail["checks"].(map[string]any)["kafka"].(map[string]any); c["status"] != "ok" {
		t.Errorf("kafka check %v", detail)
	}
}

// runCmd runs Execute and returns its exit code, stdout and stderr.
func runCmd(t *testing.T, args, env []string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), args, env, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCheckConfig(t *testing.T) {
	cases := []struct {
		name       string
		file       string
		env        []string
		code       int
		stdout     string
		stderr     []string // every one is in stderr
		notStderr  []string // none is in stderr
		extraFlags []string
	}{
		{name: "valid", file: "valid.yaml", code: 0, stdout: "config is valid"},
		{name: "defaults refuse without tokens", file: "", code: 1, stderr: []string{"ingest.auth.tokens: at least one token is required unless authentication is disabled (disabled: true)"}},
		{name: "no tokens in the file", file: "no-tokens.yaml", code: 1, stderr: []string{"ingest.auth.tokens"}},
		{name: "no tokens, auth disabled by env", file: "no-tokens.yaml", env: []string{"AUDITSTREAM_INGEST_AUTH_DISABLED=true"}, code: 0, stdout: "config is valid"},
		{name: "auth disabled in the file", file: "auth-disabled.yaml", code: 0, stdout: "config is valid"},
		{name: "every problem is reported", file: "invalid.yaml", code: 1, stderr: []string{
			"log.level:", "log.format:", "http.addr:", "http.shutdown_timeout:",
			"kafka.brokers:", "kafka.client_id:", "kafka.sasl.mechanism:",
			"kafka.topics.events.name:", "kafka.topics.events.partitions:",
			"ingest.limits.max_events:", "ingest.limits.max_event_bytes:", "ingest.produce_timeout:",
			"ingest.max_inflight_bytes:", "ingest.auth.tokens:",
		}},
		{name: "unknown key", file: "unknown-key.yaml", code: 1, stderr: []string{"max_body_size", "not found"}},
		{name: "token in plain text instead of its hash", file: "plaintext-token.yaml", code: 1,
			stderr:    []string{`token "billing-service": sha256 must be 64 hex characters`, `token "short-hex"`},
			notStderr: []string{"s3cr3t-pl41n-t0ken-v4lue"}},
		{name: "size that is not a size", file: "bad-size.yaml", code: 1, stderr: []string{"5 potatoes", "not a size"}},
		{name: "two YAML documents", file: "two-documents.yaml", code: 1, stderr: []string{"more than one YAML document"}},
		{name: "missing file", file: "does-not-exist.yaml", code: 1, stderr: []string{"does-not-exist.yaml"}},
		{name: "unknown environment variable", file: "auth-disabled.yaml", env: []string{"AUDITSTREAM_INGEST_LIMITS_MAX_BODY=1MB"}, code: 1,
			stderr: []string{"AUDITSTREAM_INGEST_LIMITS_MAX_BODY matches no config key"}},
		{name: "environment overrides the file", file: "valid.yaml", env: []string{"AUDITSTREAM_INGEST_LIMITS_MAX_EVENTS=0", "AUDITSTREAM_LOG_LEVEL=debug"}, code: 1,
			stderr: []string{"ingest.limits.max_events: must be positive"}, notStderr: []string{"log.level"}},
		{name: "bad environment value names the variable", file: "auth-disabled.yaml", env: []string{"AUDITSTREAM_INGEST_PRODUCE_TIMEOUT=soon"}, code: 1,
			stderr: []string{"AUDITSTREAM_INGEST_PRODUCE_TIMEOUT: not a duration"}},
		{name: "stray argument", file: "auth-disabled.yaml", extraFlags: []string{"extra"}, code: 1, stderr: []string{"unknown command"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--check-config"}
			if tc.file != "" {
				args = append(args, "--config", filepath.Join("testdata", tc.file))
			}
			args = append(args, tc.extraFlags...)
			code, stdout, stderr := runCmd(t, args, tc.env)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, stdout, stderr)
			}
			if tc.stdout != "" && !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout %q lacks %q", stdout, tc.stdout)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			for _, not := range tc.notStderr {
				if strings.Contains(stderr, not) {
					t.Errorf("stderr holds %q:\n%s", not, stderr)
				}
			}
		})
	}
}

// TestCheckConfigReportsEachProblemOnce counts the problems of invalid.yaml:
// one line each, none lost.
func TestCheckConfigReportsEachProblemOnce(t *testing.T) {
	code, _, stderr := runCmd(t, []string{"--check-config", "--config", "testdata/invalid.yaml"}, nil)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) < 14 {
		t.Errorf("%d problems reported, want at least 14:\n%s", len(lines), stderr)
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for code under test that binds its own listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExecuteDrainsOnShutdown runs the binary's entry point, cancels its
// context (as SIGTERM does) while a request waits for Kafka, and checks that
// the request is still answered 202, its event is on the topic, and only
// then does Execute return.
func TestExecuteDrainsOnShutdown(t *testing.T) {
	cluster := kafkatest.New(t)
	addr := freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "ingest.yaml")
	cfg := fmt.Sprintf(`
log: {level: error}
http: {addr: %q, shutdown_timeout: 10s}
kafka:
  brokers: [%q]
  request_timeout: 10s
  topics:
    events: {partitions: 3}
    dead_letter: {partitions: 1}
ingest:
  produce_timeout: 10s
  auth: {disabled: true}
`, addr, cluster.Brokers()[0])
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- Execute(ctx, []string{"--config", cfgPath}, nil, &stdout, &stderr) }()
	base := "http://" + addr
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	waitFor(t, 15*time.Second, "ingest to be ready", func() bool {
		select {
		case code := <-done:
			t.Fatalf("Execute returned %d: %s", code, stderr.String())
		default:
		}
		resp, err := fresh.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case entered <- struct{}{}:
		default:
		}
		cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})
	type result struct {
		a   answer
		err error
	}
	results := make(chan result, 1)
	go func() {
		a, err := doPost(base, jsonReq(newEvent("acc-drain").with("id", "evt-drain").JSON()))
		results <- result{a, err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached Kafka")
	}

	cancel() // SIGTERM
	select {
	case code := <-done:
		t.Fatalf("Execute returned %d while a request was in flight", code)
	case <-time.After(300 * time.Millisecond):
	}
	if resp, err := fresh.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("a new connection was served after shutdown began: %d", resp.StatusCode)
	}

	unblock()
	r := <-results
	if r.err != nil || r.a.status != http.StatusAccepted || len(r.a.ids) != 1 || r.a.ids[0] != "evt-drain" {
		t.Fatalf("in-flight request: %v %v", r.a, r.err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("Execute returned %d: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Execute did not return after the drain")
	}
	recs := kafkatest.ReadAll(t, cluster.Brokers(), testTopic, 1, 10*time.Second)
	if len(recs) != 1 || decode(t, recs[0]).GetId() != "evt-drain" {
		t.Fatalf("topic after shutdown: %d records", len(recs))
	}
}
