// Package e2eharness runs the real Datadog forwarder as a process against a
// test's broker and key ring, and publishes events as a backend does: what
// the API's and the console's end-to-end tests share.
package e2eharness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
)

// TestDelivery are delivery settings that make faults and retries quick.
const TestDelivery = `delivery:
  retry_topic: {partitions: 1}
  batch: {count: 100, period: 20ms, idle: 10ms}
  backoff: {initial: 20ms, max: 200ms}
  retry_budget: 2s
  park_delay: 300ms
  unhealthy_probe: 300ms
  commit_interval: 100ms
  session_timeout: 6s
`

// Kafka is the test's broker and topics, as the API was configured.
type Kafka struct {
	Brokers                []string
	EventsTopic            string
	EventsPartitions       int32
	DestinationsPartitions int32
}

// forwarderDir is the Datadog forwarder's source, found from this file.
func forwarderDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "datadog-forwarder")
}

// StartDatadogForwarder builds the real Datadog forwarder and runs it as a
// process against k and the key ring, following the destinations topic
// only, with the delivery section given. It is stopped with SIGTERM when
// the test ends; its log is returned.
func StartDatadogForwarder(t testing.TB, k Kafka, keyring, delivery string) *Log {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the end-to-end test builds the forwarder and needs the go tool: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "datadog-forwarder")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Dir = forwarderDir()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build datadog-forwarder: %v\n%s", err, out)
	}
	cfg := fmt.Sprintf(`log: {level: info}
http: {addr: "127.0.0.1:0"}
kafka:
  brokers: [%s]
  topics:
    events: {partitions: %d}
    destinations: {partitions: %d}
%sdestinations:
  topic: true
  encryption: {keyring_file: %s}
`, strings.Join(k.Brokers, ", "), k.EventsPartitions, k.DestinationsPartitions, delivery, keyring)
	cfgFile := filepath.Join(dir, "forwarder.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &Log{}
	cmd := exec.Command(bin, "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the forwarder did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("forwarder log:\n%s", log.String())
		}
	})
	return log
}

// Log is a process's output, safe to read while it writes.
type Log struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// PublishEvent writes one event of account through the producer package
// and returns its id.
func PublishEvent(t testing.TB, k Kafka, account, action string) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ev := &auditlogv1.AuditEvent{
		Actor:   &auditlogv1.Actor{Id: "user-e2e", Type: "user"},
		Request: &auditlogv1.Request{Action: action, Source: "ui"},
		Service: "audit-log",
		Outcome: &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 200},
		Target: &auditlogv1.Target{Id: "run-1", Type: "runs",
			Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: account}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := producer.New(cl, k.EventsTopic).Publish(ctx, []*auditlogv1.AuditEvent{ev})
	if err == nil {
		err = res.FirstError()
	}
	if err != nil {
		t.Fatal(err)
	}
	return ev.Id
}
