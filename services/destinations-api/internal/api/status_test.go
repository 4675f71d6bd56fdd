package api

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/kafka"
)

// publisher is a consumer replica publishing statuses to the harness's
// status topic through the consumers' own publisher.
type publisher struct {
	mu  sync.Mutex
	s   []connstatus.Status
	pub *connstatus.Publisher
}

func (h *harness) publisher(consumer, instance string) *publisher {
	h.t.Helper()
	p := &publisher{}
	pub, err := connstatus.NewPublisher(context.Background(), connstatus.PublisherOptions{Kafka: h.cfg.Kafka, Consumer: consumer,
		Instance: instance, Interval: time.Hour, Source: func() []connstatus.Status {
			p.mu.Lock()
			defer p.mu.Unlock()
			return append([]connstatus.Status(nil), p.s...)
		}})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pub.Run(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done; pub.Close() })
	p.pub = pub
	return p
}

// report publishes s as the replica's whole view, at once.
func (p *publisher) report(s ...connstatus.Status) {
	p.mu.Lock()
	p.s = s
	p.mu.Unlock()
	p.pub.Kick()
}

// waitStatus reads path until its answer satisfies cond, waiting on the
// API's status reader between reads.
func (h *harness) waitStatus(path, token string, cond func(statusView) bool) statusView {
	h.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := h.svc.API.status.Changed()
		r := h.do("GET", path, token, nil)
		mustStatus(h.t, r, http.StatusOK)
		var v statusView
		r.json(h.t, &v)
		if cond(v) {
			return v
		}
		select {
		case <-ch:
		case <-deadline:
			h.t.Fatalf("timed out waiting on %s; last %s", path, r.body)
		}
	}
}

func TestConnectionStatusIsWhatTheConsumersPublish(t *testing.T) {
	h := newHarness(t)
	path := connPath(accountA, "dd") + "/status"
	mustStatus(t, h.do("GET", path, tokenA, nil), http.StatusNotFound)
	mustStatus(t, h.do("PUT", connPath(accountA, "dd"), tokenA, datadogBody(keyA)), http.StatusCreated)

	// Configured, not streamed, no consumer has reported: unknown.
	r := h.do("GET", path, tokenA, nil)
	mustStatus(t, r, http.StatusOK)
	var v statusView
	r.json(t, &v)
	if v.State != connstatus.StateUnknown || v.Routed || v.Type != "datadog" || !v.Enabled || v.Account != accountA || v.Name != "dd" {
		t.Fatalf("before any report: %s", r.body)
	}
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"streaming": true, "connections": []string{"dd"}}), http.StatusOK)

	// Two replicas of the forwarder each report their share.
	qualified := accountA + "/dd"
	since := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	one, two := h.publisher("datadog", "replica-1"), h.publisher("datadog", "replica-2")
	one.report(connstatus.Status{Connection: qualified, Healthy: true, Delivered: 40, DeliveredToday: 40, LastSuccess: &since})
	two.report(connstatus.Status{Connection: qualified, Healthy: true, Delivered: 2, DeliveredToday: 2, Parked: 3})
	v = h.waitStatus(path, tokenA, func(v statusView) bool { return len(v.Consumers) == 2 })
	if v.State != connstatus.StateHealthy || !v.Routed || v.Delivered != 42 || v.DeliveredToday != 42 || v.Parked != 3 ||
		v.LastSuccess == nil || !v.LastSuccess.Equal(since) || v.UpdatedAt == nil {
		t.Fatalf("two healthy replicas: %+v", v)
	}

	// One turns failed with an error that carries credentials: the answer
	// says failed, since when, and the error without them.
	leaky := `Post "https://user:p4ssw0rd-xyz@intake.example.com/api/v2/logs?dd-api-key=` + keyA + `": 403 Forbidden api_key=` + keyA
	two.report(connstatus.Status{Connection: qualified, Healthy: false, FailedSince: &since, LastError: leaky, LastErrorAt: &since, Delivered: 2, DeliveredToday: 2})
	v = h.waitStatus(path, tokenA, func(v statusView) bool { return v.State == connstatus.StateFailed })
	if v.FailedSince == nil || !v.FailedSince.Equal(since) || v.LastError == "" {
		t.Fatalf("failed replica: %+v", v)
	}
	r = h.do("GET", path, tokenA, nil)
	if contains(r.body, keyA) || contains(r.body, "p4ssw0rd-xyz") || !contains(r.body, "403 Forbidden") {
		t.Fatalf("the error must keep what failed and lose the credentials: %s", r.body)
	}
	raw := h.readTopic(h.cfg.Kafka.Topics.Status.Name)
	if contains(raw, keyA) || contains(raw, "p4ssw0rd-xyz") {
		t.Fatal("a credential reached the status topic")
	}

	// The account's other admin sees nothing; another account's token gets
	// 404, as for every other route; no token gets 401.
	mustStatus(t, h.do("GET", path, tokenB, nil), http.StatusNotFound)
	mustStatus(t, h.do("GET", path, "", nil), http.StatusUnauthorized)
	mustStatus(t, h.do("GET", path, tokenOperator, nil), http.StatusOK)
	mustStatus(t, h.do("GET", connPath(accountA, "nope")+"/status", tokenA, nil), http.StatusNotFound)

	// A replica that stops withdraws its report.
	two.report()
	v = h.waitStatus(path, tokenA, func(v statusView) bool { return len(v.Consumers) == 1 })
	if v.State != connstatus.StateHealthy || v.Delivered != 40 {
		t.Fatalf("after one replica withdrew: %+v", v)
	}
}

func TestStorageProfileStatus(t *testing.T) {
	h := newHarness(t)
	path := "/v1/accounts/" + accountA + "/storage-profiles/archive/status"
	mustStatus(t, h.do("GET", path, tokenA, nil), http.StatusNotFound)
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/storage-profiles/archive", tokenA, map[string]any{"settings": map[string]any{"kind": "s3",
		"s3": map[string]any{"bucket": "audit-archive", "region": "eu-west-1",
			"credentials": map[string]any{"access_key_id": "AKIAEXAMPLE0000000", "secret_access_key": "secret-example-0000"}}}}), http.StatusCreated)
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"storage_profile": "archive"}), http.StatusOK)

	// A connection named like the profile is another resource: its report
	// must not show here.
	failedAt := time.Now().UTC().Truncate(time.Millisecond)
	arch := h.publisher("archiver", "archiver-0")
	arch.report(
		connstatus.Status{Connection: accountA + "/storage-profiles/archive", Healthy: false, FailedSince: &failedAt,
			LastError: "put: AccessDenied", LastErrorAt: &failedAt, DeadLettered: 7},
		connstatus.Status{Connection: accountA + "/archive", Healthy: true, Delivered: 99},
	)
	v := h.waitStatus(path, tokenA, func(v statusView) bool { return v.State != connstatus.StateUnknown })
	if v.State != connstatus.StateFailed || !v.Routed || v.Type != "storage" || v.DeadLettered != 7 || v.Delivered != 0 ||
		v.LastError != "put: AccessDenied" || len(v.Consumers) != 1 || v.Consumers[0].Consumer != "archiver" {
		t.Fatalf("storage profile status: %+v", v)
	}
}

// readTopic returns the keys and values of every record of topic, read up
// to its end.
func (h *harness) readTopic(topic string) []byte {
	h.t.Helper()
	cl := h.cluster.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kafka.EndOffsets(ctx, cl, topic, "topic", zap.NewNop())
	if err != nil {
		h.t.Fatal(err)
	}
	var out []byte
	read := map[int32]int64{}
	for p, end := range ends {
		for read[p] < end {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				h.t.Fatalf("topic %s not read to its end: %v", topic, ctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) {
				read[r.Partition] = r.Offset + 1
				out = append(append(out, r.Key...), r.Value...)
			})
		}
	}
	return out
}
