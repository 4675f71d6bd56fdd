package connstatus

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

func testKafka(t *testing.T) kafka.Config {
	c := kafkatest.New(t)
	k := kafka.Default("connstatus-test")
	k.Brokers = c.Brokers()
	k.Topics.Status.Partitions = 2
	return k
}

func startReader(t *testing.T, k kafka.Config) *Reader {
	t.Helper()
	r, err := NewReader(context.Background(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	return r
}

// source is a consumer's connection statuses, changed by the test.
type source struct {
	mu sync.Mutex
	s  []Status
}

func (s *source) set(st ...Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s = st
}

func (s *source) get() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.s...)
}

func startPublisher(t *testing.T, k kafka.Config, instance string, src *source) (*Publisher, func()) {
	t.Helper()
	p, err := NewPublisher(context.Background(), PublisherOptions{Kafka: k, Consumer: "datadog", Instance: instance, Interval: time.Hour, Source: src.get})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() { stop(); p.Close() })
	return p, stop
}

// waitView waits, on the reader's changes, until the connection's view
// satisfies cond.
func waitView(t *testing.T, r *Reader, conn string, cond func(View) bool) View {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		ch := r.Changed()
		if v := r.Connection(conn); cond(v) {
			return v
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting on the status of %s; last %+v", conn, r.Connection(conn))
		}
	}
}

func ptr(t time.Time) *time.Time { return &t }

func TestPublishedStatusesMergeAcrossReplicas(t *testing.T) {
	k := testKafka(t)
	r := startReader(t, k)
	conn := "acc-a/dd"
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

	var a, b source
	a.set(Status{Connection: conn, Healthy: true, Delivered: 10, DeliveredToday: 7, LastSuccess: ptr(base.Add(2 * time.Minute)),
		Parked: 1, OldestUndelivered: ptr(base.Add(5 * time.Minute))})
	pa, _ := startPublisher(t, k, "a", &a)
	v := waitView(t, r, conn, func(v View) bool { return len(v.Consumers) == 1 })
	if v.State != StateHealthy || v.Delivered != 10 || v.DeliveredToday != 7 || v.Parked != 1 {
		t.Fatalf("one healthy replica: %+v", v)
	}

	b.set(Status{Connection: conn, Healthy: false, FailedSince: ptr(base.Add(3 * time.Minute)), LastError: "datadog: 403 Forbidden",
		LastErrorAt: ptr(base.Add(4 * time.Minute)), Delivered: 5, DeliveredToday: 5, LastSuccess: ptr(base.Add(time.Minute)),
		DeadLettered: 2, OldestUndelivered: ptr(base.Add(time.Minute))})
	startPublisher(t, k, "b", &b)
	v = waitView(t, r, conn, func(v View) bool { return len(v.Consumers) == 2 })
	if v.State != StateFailed || !v.FailedSince.Equal(base.Add(3*time.Minute)) || v.LastError != "datadog: 403 Forbidden" {
		t.Fatalf("one replica failed: want failed since it with its error, got %+v", v)
	}
	if v.Delivered != 15 || v.DeliveredToday != 12 || v.Parked != 1 || v.DeadLettered != 2 {
		t.Fatalf("counters are not summed: %+v", v)
	}
	if !v.LastSuccess.Equal(base.Add(2*time.Minute)) || !v.OldestUndelivered.Equal(base.Add(time.Minute)) {
		t.Fatalf("last success must be the latest, oldest undelivered the earliest: %+v", v)
	}

	// replica a recovers, b is gone from a's view: a kick publishes at once
	a.set(Status{Connection: conn, Healthy: true, Delivered: 11})
	pa.Kick()
	waitView(t, r, conn, func(v View) bool { return v.Delivered == 16 })
}

func TestStaleAndWithdrawnReportsAreIgnored(t *testing.T) {
	k := testKafka(t)
	r := startReader(t, k)
	var a, b source
	a.set(Status{Connection: "c1", Healthy: false, FailedSince: ptr(time.Now())}, Status{Connection: "c2", Healthy: true})
	b.set(Status{Connection: "c1", Healthy: true, Delivered: 3})
	_, stopA := startPublisher(t, k, "a", &a)
	startPublisher(t, k, "b", &b)
	waitView(t, r, "c1", func(v View) bool { return len(v.Consumers) == 2 && v.State == StateFailed })

	// A replica that stopped cleanly withdraws its reports at once.
	stopA()
	v := waitView(t, r, "c1", func(v View) bool { return len(v.Consumers) == 1 })
	if v.State != StateHealthy || v.Delivered != 3 {
		t.Fatalf("after a's tombstones: %+v", v)
	}
	if v := r.Connection("c2"); v.State != StateUnknown || len(v.Consumers) != 0 {
		t.Fatalf("c2 was only reported by a, which stopped: %+v", v)
	}

	// One that vanished without a word is ignored once its report is
	// past fresh_until (3 intervals: 3 h here).
	r.mu.Lock()
	r.now = func() time.Time { return time.Now().Add(3*time.Hour + time.Minute) }
	r.mu.Unlock()
	if v := r.Connection("c1"); v.State != StateUnknown {
		t.Fatalf("a stale report must not read healthy: %+v", v)
	}
}

func TestRedact(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	cases := []struct{ in, gone string }{
		{`Post "https://user:hunter2-pass@intake.example.com/v1?x=1": dial tcp: refused`, "hunter2-pass"},
		{`GET https://acct.blob.core.windows.net/c/o?sv=2022-11-02&sig=SECRETSIGNATURE%3D&se=2030: 403`, "SECRETSIGNATURE"},
		{`request failed: api_key=` + key, key},
		{`{"apiKey": "` + key + `"}`, key},
		{`header Authorization: Bearer ` + key, key},
		{`upstream said: the key ` + key + ` is invalid`, key},
	}
	for _, c := range cases {
		got := Redact(c.in, key)
		if strings.Contains(got, c.gone) {
			t.Errorf("Redact(%q) = %q still holds %q", c.in, got, c.gone)
		}
		if !strings.Contains(got, "[REDACTED]") {
			t.Errorf("Redact(%q) = %q does not say what it cut", c.in, got)
		}
	}
	if got := Redact("datadog answered 403 Forbidden"); got != "datadog answered 403 Forbidden" {
		t.Errorf("a message without secrets changed: %q", got)
	}
	long := Redact(strings.Repeat("é", MaxErrorLength))
	if len(long) > MaxErrorLength+3 || !strings.HasSuffix(long, "...") {
		t.Errorf("long message not bounded: %d bytes", len(long))
	}
}

func TestTracker(t *testing.T) {
	tr := NewTracker()
	changes := 0
	tr.OnChange = func() { changes++ }
	tr.Success("s3", 5)
	tr.Failure("s3", errors.New("put: 403"))
	tr.Failure("s3", errors.New("put: 403 again"))
	tr.DeadLettered("s3", 2)
	s := tr.Snapshot()
	if len(s) != 1 || s[0].Healthy || s[0].FailedSince == nil || s[0].LastError != "put: 403 again" || s[0].Delivered != 5 || s[0].DeadLettered != 2 {
		t.Fatalf("after failures: %+v", s)
	}
	tr.Success("s3", 1)
	s = tr.Snapshot()
	if !s[0].Healthy || s[0].FailedSince != nil || s[0].Delivered != 6 || s[0].DeliveredToday != 6 || changes != 2 {
		t.Fatalf("after recovery: %+v (changes %d)", s, changes)
	}
}

func TestReaderWaitsForTheTopic(t *testing.T) {
	k := testKafka(t)
	noBootstrap := k
	noBootstrap.Topics.Bootstrap = false
	r := startReader(t, noBootstrap)
	if r.IsReady() == nil {
		t.Fatal("ready without a topic")
	}
	// The first consumer creates the topic later.
	var a source
	a.set(Status{Connection: "c1", Healthy: true, Delivered: 1})
	startPublisher(t, k, "a", &a)
	waitView(t, r, "c1", func(v View) bool { return v.State == StateHealthy && v.Delivered == 1 })
	if err := r.IsReady(); err != nil {
		t.Fatal(err)
	}
}
