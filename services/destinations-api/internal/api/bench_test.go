package api

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
)

// BenchmarkPropagation measures how long a change made through the API
// takes to apply: from the answer to the PUT that turns an account's
// streaming on until the first of its events reaches Datadog, through the
// real forwarder process. The account's events are published every 5 ms
// from before the PUT, so the time is the propagation plus at most one
// event's delivery; the delivery alone is what DatadogEndToEndLatency
// measures (p99 about 200 ms, most of it the batch linger).
func BenchmarkPropagation(b *testing.B) {
	intake := ddfake.New()
	b.Cleanup(intake.Close)
	h := newHarness(b, func(c *Config) {
		c.API.AllowCustomEndpoints = true
		c.Auth.Tokens[0].Accounts = []string{"*"}
	})
	// The forwarder's own delivery defaults: the batch linger is part of
	// what an admin waits for.
	startForwarder(b, h, "delivery: {retry_topic: {partitions: 1}}\n")
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cluster.Brokers()...), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	events := producer.New(cl, h.cfg.Kafka.Topics.Events.Name)

	lat := benchutil.NewLatencies(b.N)
	i := 0
	for b.Loop() {
		i++
		account, key := fmt.Sprintf("acc-prop-%d", i), fmt.Sprintf("dd-prop-key-%04d-0123456789", i)
		intake.AddKey(key)
		mustStatus(b, h.do("PUT", connPath(account, "dd"), tokenOperator, map[string]any{"type": "datadog",
			"settings": map[string]any{"base_url": intake.URL(), "api_key": key}}), http.StatusCreated)

		ctx, stop := context.WithCancel(context.Background())
		var published atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				ev := &auditlogv1.AuditEvent{Request: &auditlogv1.Request{Action: "propagation"}, Service: "audit-log",
					Target: &auditlogv1.Target{Id: "run-1", Type: "runs", Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: account}}}}
				if _, err := events.Publish(ctx, []*auditlogv1.AuditEvent{ev}); err == nil {
					published.Add(1)
				}
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		}()
		for published.Load() == 0 {
			time.Sleep(time.Millisecond) // until the account's events flow
		}
		mustStatus(b, h.do("PUT", "/v1/accounts/"+account+"/audit-logs", tokenOperator,
			map[string]any{"streaming": true, "connections": []string{"dd"}}), http.StatusOK)
		applied := time.Now()
		deadline := applied.Add(time.Minute)
		for intake.Count(key) == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("account %s: no event delivered a minute after streaming was turned on", account)
			}
			time.Sleep(time.Millisecond) // polling the fake at 1 ms resolution
		}
		lat.Record(time.Since(applied))
		stop()
		<-done
	}
	b.ReportMetric(benchutil.Millis(lat.Percentile(50)), "p50-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(99)), "p99-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(100)), "max-ms")
}
