package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
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
	addr     string
	producer *kgo.Client
}

func newTestKafka(t *testing.T) *testKafka {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addr := cluster.ListenAddrs()[0]
	producer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	return &testKafka{addr: addr, producer: producer}
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
	ev := &auditlogv1.AuditEvent{
		Id:      id,
		Actor:   &auditlogv1.Actor{Id: "user-1", Type: "user", AccessToken: &auditlogv1.AccessToken{Type: "session", Token: "secret-token-value-B6wifA"}},
		Request: &auditlogv1.Request{Action: "discard-run", Source: "ui"},
		Target: &auditlogv1.Target{Id: "run-1", Type: "runs", Context: &auditlogv1.Context{
			Account: &auditlogv1.Ref{Id: account, DisplayName: "docs"},
		}},
	}
	if err := auditevent.Prepare(ev, time.Date(2024, 2, 16, 12, 58, 38, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	rec, err := auditevent.NewRecord(topic, ev)
	if err != nil {
		t.Fatal(err)
	}
	rec.Partition = partition
	return ev, rec
}

func malformed(partition int32) *kgo.Record {
	return &kgo.Record{
		Topic: topic, Partition: partition, Key: []byte("acc-a"), Value: []byte{0xff, 0xff, 0xff},
		Headers: []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeProtobuf)}},
	}
}

// run executes auditctl with args and no environment.
func run(ctx context.Context, stdout, stderr *lockedBuffer, args ...string) error {
	cmd := NewRootCommand(Env{Stdout: stdout, Stderr: stderr, Getenv: func(string) string { return "" }})
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
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

func TestTailFromBeginningSkipsMalformedRecords(t *testing.T) {
	k := newTestKafka(t)
	ev1, r1 := event(t, "acc-a", "ev-1", 0)
	_, r2 := event(t, "acc-b", "ev-2", 0)
	_, r3 := event(t, "acc-a", "ev-3", 1)
	_, r4 := event(t, "acc-b", "ev-4", 2)
	// The bad record sits before ev-2 in partition 0, so reading all four
	// events means reading past it.
	k.produce(t, r1, malformed(0), r2, r3, r4)

	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, &stdout, &stderr, "tail", "--brokers", k.addr, "--from-beginning", "--max", "4"); err != nil {
		t.Fatalf("tail: %v\nstderr: %s", err, stderr.String())
	}
	if got, want := printedIDs(t, stdout.String()), []string{"ev-1", "ev-2", "ev-3", "ev-4"}; !slices.Equal(got, want) {
		t.Errorf("printed ids %v, want %v", got, want)
	}
	// Each line is exactly the codec's JSON for the event.
	if want := string(auditevent.EncodeJSON(ev1)) + "\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout lacks ev-1 as %s\nstdout:\n%s", want, stdout.String())
	}
	if strings.Contains(stdout.String(), "secret-token-value") {
		t.Error("an unmasked access token was printed")
	}
	errOut := stderr.String()
	if want := "auditctl: warning: skipping record at partition 0 offset 1: " + auditevent.ReasonBadProtobuf + ": "; !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
	if n := strings.Count(errOut, "\n"); n != 1 {
		t.Errorf("stderr has %d lines, want the one warning:\n%s", n, errOut)
	}
}

func TestTailAccountFilter(t *testing.T) {
	k := newTestKafka(t)
	var recs []*kgo.Record
	for i, acc := range []string{"acc-a", "acc-b", "acc-a", "acc-b", "acc-a"} {
		_, r := event(t, acc, fmt.Sprintf("ev-%d", i), int32(i%3))
		recs = append(recs, r)
	}
	k.produce(t, recs...)

	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, &stdout, &stderr, "tail", "--brokers", k.addr, "--from-beginning", "--account", "acc-b", "--max", "2"); err != nil {
		t.Fatalf("tail: %v\nstderr: %s", err, stderr.String())
	}
	if got, want := printedIDs(t, stdout.String()), []string{"ev-1", "ev-3"}; !slices.Equal(got, want) {
		t.Errorf("printed ids %v, want %v", got, want)
	}
	if stderr.String() != "" {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestTailStartsAtTheEndByDefault(t *testing.T) {
	k := newTestKafka(t)
	var old []string
	for i := range 3 {
		id := fmt.Sprintf("old-%d", i)
		_, r := event(t, "acc-a", id, int32(i))
		k.produce(t, r)
		old = append(old, id)
	}

	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, &stdout, &stderr, "tail", "--brokers", k.addr, "--max", "1") }()
	// tail picks its start offsets a moment after it starts: keep writing
	// new events until it prints one.
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tail: %v\nstderr: %s", err, stderr.String())
			}
			ids := printedIDs(t, stdout.String())
			if len(ids) != 1 || slices.Contains(old, ids[0]) || !strings.HasPrefix(ids[0], "new-") {
				t.Errorf("printed %v, want one new event", ids)
			}
			return
		case <-time.After(50 * time.Millisecond):
			_, r := event(t, "acc-a", fmt.Sprintf("new-%d", i), int32(i%3))
			k.produce(t, r)
		}
	}
}

func TestTailInterruptExitsCleanly(t *testing.T) {
	k := newTestKafka(t)
	_, r := event(t, "acc-a", "ev-1", 0)
	k.produce(t, r)

	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, &stdout, &stderr, "tail", "--brokers", k.addr, "--from-beginning") }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), `"id":"ev-1"`) {
		if time.Now().After(deadline) {
			t.Fatalf("tail printed nothing; stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel() // what Ctrl-C does in main
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tail after interrupt = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop after the interrupt")
	}
}

func TestTailUnreachableBroker(t *testing.T) {
	defer func(d time.Duration) { pingTimeout = d }(pingTimeout)
	pingTimeout = time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens here now

	var stdout, stderr lockedBuffer
	err = run(context.Background(), &stdout, &stderr, "tail", "--brokers", addr)
	if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka at ["+addr+"]") {
		t.Errorf("tail against a closed port = %v", err)
	}
}

func TestTailFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tail", "--max", "ten"}, `invalid argument "ten" for "--max"`},
		{[]string{"tail", "--max", "-1"}, "--max must be 0 (no limit) or more, not -1"},
		{[]string{"tail", "--follow"}, "unknown flag: --follow (see 'auditctl tail --help')"},
		{[]string{"tail", "extra"}, `unknown command "extra" for "auditctl tail"`},
		{[]string{"tail", "--brokers", " , "}, "--brokers must name at least one host:port"},
		{[]string{"tail", "--topic", ""}, "--topic must not be empty"},
		{[]string{"tali"}, `unknown command "tali" for "auditctl"`},
	} {
		var stdout, stderr lockedBuffer
		err := run(context.Background(), &stdout, &stderr, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("auditctl %v = %v, want an error containing %q", c.args, err, c.want)
		}
		if stdout.String() != "" {
			t.Errorf("auditctl %v printed to stdout: %s", c.args, stdout.String())
		}
	}
}

func TestBrokersDefaultFromEnvironment(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"", DefaultBrokers},
		{"k1:9092,k2:9092", "k1:9092,k2:9092"},
	} {
		root := NewRootCommand(Env{Getenv: func(k string) string {
			if k == EnvBrokers {
				return c.env
			}
			return ""
		}})
		tail, _, err := root.Find([]string{"tail"})
		if err != nil {
			t.Fatal(err)
		}
		if got := tail.Flags().Lookup("brokers").DefValue; got != c.want {
			t.Errorf("with %s=%q the --brokers default is %q, want %q", EnvBrokers, c.env, got, c.want)
		}
	}
}
