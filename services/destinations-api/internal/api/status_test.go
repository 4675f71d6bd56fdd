package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
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
// API's status reader between reads; each, when given, runs before every
// read.
func (h *harness) waitStatus(path, token string, cond func(statusView) bool, each ...func()) statusView {
	h.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for _, fn := range each {
			fn()
		}
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

// The whole chain: the real Datadog forwarder, run as a process, publishes
// the status of a connection an admin made through the API; the API
// answers healthy with the delivered event, failed when the intake refuses
// the key (the key nowhere in the answer or the topic), and healthy again
// once the admin puts the right key back.
func TestEndToEndStatusFollowsARefusedKey(t *testing.T) {
	const key, badKey = "dd-status-key-good-0123456789", "dd-status-key-bad-0123456789"
	intake := ddfake.New(key)
	t.Cleanup(intake.Close)
	h := newHarness(t, func(c *Config) { c.API.AllowCustomEndpoints = true })
	startForwarder(t, h, testDelivery+"status: {interval: 300ms}\n")
	conn := func(k string) map[string]any {
		return map[string]any{"type": "datadog", "settings": map[string]any{"base_url": intake.URL(), "api_key": k, "timeout": "2s"}}
	}
	path := connPath(accountA, "dd") + "/status"
	mustStatus(t, h.do("PUT", connPath(accountA, "dd"), tokenA, conn(key)), http.StatusCreated)
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"streaming": true, "connections": []string{"dd"}}), http.StatusOK)

	// Every change through the API is also an audit event of the account,
	// which the forwarder delivers too: counts are compared, not fixed.
	publishEvent(t, h, accountA, "status-first")
	v := h.waitStatus(path, tokenA, func(v statusView) bool { return v.Delivered >= 1 })
	if v.State != connstatus.StateHealthy || !v.Routed || v.LastSuccess == nil || v.DeliveredToday != v.Delivered ||
		len(v.Consumers) != 1 || v.Consumers[0].Consumer != "datadog" {
		t.Fatalf("after the first delivery: %+v", v)
	}

	// The forwarder applies the new key within moments, and routes by the
	// configuration it has when it reads an event: publish until one goes
	// with the refused key.
	mustStatus(t, h.do("PUT", connPath(accountA, "dd"), tokenA, conn(badKey)), http.StatusOK)
	v = h.waitStatus(path, tokenA, func(v statusView) bool { return v.State == connstatus.StateFailed },
		func() { publishEvent(t, h, accountA, "status-refused") })
	if v.FailedSince == nil || !strings.Contains(v.LastError, "403") {
		t.Fatalf("refused key: %+v", v)
	}
	failed := v

	mustStatus(t, h.do("PUT", connPath(accountA, "dd"), tokenA, conn(key)), http.StatusOK)
	v = h.waitStatus(path, tokenA, func(v statusView) bool {
		return v.State == connstatus.StateHealthy && v.Delivered > failed.Delivered && v.OldestUndelivered == nil
	})
	if v.Parked < 1 || v.FailedSince != nil || !v.LastSuccess.After(*failed.FailedSince) {
		t.Fatalf("after the key was put back: want the refused events parked, then delivered; got %+v", v)
	}
	r := h.do("GET", path, tokenA, nil)
	raw := h.readTopic(h.cfg.Kafka.Topics.Status.Name)
	for _, k := range []string{key, badKey} {
		if contains(r.body, k) || contains(raw, k) {
			t.Fatal("an API key reached the status answer or topic")
		}
	}
}
