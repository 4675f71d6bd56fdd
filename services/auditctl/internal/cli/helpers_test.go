package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const topic = "audit.events"

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testKafka is a broker with audit.events (3 partitions) and a producer
// that writes to the partition each record names.
type testKafka struct {
	*kafkatest.Cluster
	addr     string
	producer *kgo.Client
}

func newTestKafka(t *testing.T, opts ...kfake.Opt) *testKafka {
	t.Helper()
	cluster := kafkatest.New(t, append([]kfake.Opt{kfake.SeedTopics(3, topic)}, opts...)...)
	producer := cluster.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	return &testKafka{Cluster: cluster, addr: cluster.Brokers()[0], producer: producer}
}

func (k *testKafka) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := k.producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// event returns a valid event of account and its record on partition.
func event(t *testing.T, account, id string, partition int32) (*auditlogv1.AuditEvent, *kgo.Record) {
	t.Helper()
	return eventAt(t, account, id, partition, time.Date(2024, 2, 16, 12, 58, 38, 0, time.UTC))
}

// eventAt is event with the event's timestamp, which is also the record's.
func eventAt(t *testing.T, account, id string, partition int32, at time.Time) (*auditlogv1.AuditEvent, *kgo.Record) {
	t.Helper()
	ev := &auditlogv1.AuditEvent{
		Id:      id,
		Actor:   &auditlogv1.Actor{Id: "user-1", Type: "user", Email: "[email protected]", AccessToken: &auditlogv1.AccessToken{Type: "session", Token: "secret-token-value-B6wifA"}},
		Request: &auditlogv1.Request{Action: "discard-run", Source: "ui"},
		Outcome: &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 202},
		Target: &auditlogv1.Target{Id: "run-1", Type: "runs", Context: &auditlogv1.Context{
			Account: &auditlogv1.Ref{Id: account, DisplayName: "docs"},
		}},
	}
	if err := auditevent.Prepare(ev, at); err != nil {
		t.Fatal(err)
	}
	rec, err := auditevent.NewRecord(topic, ev)
	if err != nil {
		t.Fatal(err)
	}
	rec.Partition = partition
	rec.Timestamp = at
	return ev, rec
}

func malformed(partition int32) *kgo.Record {
	return &kgo.Record{
		Topic: topic, Partition: partition, Key: []byte("acc-a"), Value: []byte{0xff, 0xff, 0xff},
		Headers: []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeProtobuf)}},
	}
}

// testNow is the clock of every command run by the tests.
var testNow = time.Date(2024, 2, 18, 0, 0, 0, 0, time.UTC)

// run executes auditctl with args, no environment and testNow as the clock.
func run(ctx context.Context, stdout, stderr *lockedBuffer, args ...string) error {
	return runEnv(ctx, nil, stdout, stderr, args...)
}

// runEnv is run with environment variables.
func runEnv(ctx context.Context, environ []string, stdout, stderr *lockedBuffer, args ...string) error {
	return runStdin(ctx, environ, "", stdout, stderr, args...)
}

// runStdin is runEnv with stdin. A run without a deadline gets one, so a
// hang fails the test instead of stalling it.
func runStdin(ctx context.Context, environ []string, stdin string, stdout, stderr *lockedBuffer, args ...string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	cmd := NewRootCommand(Env{
		Stdout: stdout, Stderr: stderr,
		Stdin:   strings.NewReader(stdin),
		Environ: func() []string { return environ },
		Now:     func() time.Time { return testNow },
	})
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// result is one finished run.
type result struct {
	stdout, stderr string
	err            error
}

// ctl runs auditctl to its end within a minute.
func ctl(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr lockedBuffer
	err := run(ctx, &stdout, &stderr, args...)
	return result{stdout.String(), stderr.String(), err}
}

// mustCtl is ctl that fails the test on an error.
func mustCtl(t *testing.T, args ...string) result {
	t.Helper()
	r := ctl(t, args...)
	if r.err != nil {
		t.Fatalf("auditctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// printedIDs decodes stdout's JSON lines and returns their event ids.
func printedIDs(t *testing.T, stdout string) []string {
	t.Helper()
	var ids []string
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		ev, err := auditevent.DecodeJSON([]byte(line), auditevent.DecodeOptions{DisallowUnknownFields: true})
		if err != nil {
			t.Fatalf("stdout line is not an event: %v\n%s", err, line)
		}
		ids = append(ids, ev.GetId())
	}
	slices.Sort(ids)
	return ids
}

// writeFile writes a file in the test's temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
