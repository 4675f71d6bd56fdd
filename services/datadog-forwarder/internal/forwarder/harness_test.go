package forwarder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/datadog-forwarder/internal/ddfake"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/kafkatest"
)

// pipeline is a broker, a Datadog intake fake and the forwarder's config
// pointing at both, over real sockets on ephemeral ports.
type pipeline struct {
	t       *testing.T
	cluster *kafkatest.Cluster
	intake  *ddfake.Server
	cfg     Config
	destDir string
}

func newPipeline(t *testing.T, keys ...string) *pipeline {
	t.Helper()
	cluster := kafkatest.New(t)
	intake := ddfake.New(keys...)
	t.Cleanup(intake.Close)
	cfg := DefaultConfig()
	cfg.Log.Level = "warn"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = cluster.Brokers()
	cfg.Kafka.Topics.Events.Partitions = 6
	cfg.Kafka.Topics.DeadLetter.Partitions = 1
	cfg.Delivery.RetryTopic.Partitions = 2
	cfg.Delivery.Batch = delivery.BatchPolicy{Count: 500, Bytes: 4 << 20, Period: 20 * time.Millisecond}
	cfg.Delivery.Backoff = delivery.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, Jitter: 0.2}
	cfg.Delivery.RetryBudget = 3 * time.Second
	cfg.Delivery.ParkDelay = 500 * time.Millisecond
	cfg.Delivery.UnhealthyProbe = 500 * time.Millisecond
	cfg.Delivery.CommitInterval = 100 * time.Millisecond
	cfg.Delivery.RevokeTimeout = 5 * time.Second
	cfg.Delivery.SendTimeout = 5 * time.Second
	p := &pipeline{t: t, cluster: cluster, intake: intake, cfg: cfg, destDir: t.TempDir()}
	cfg.Destinations.File = filepath.Join(p.destDir, "destinations.yaml")
	cfg.Destinations.PollInterval = 100 * time.Millisecond
	p.cfg = cfg
	cl := cluster.Client()
	if err := kafka.EnsureTopics(context.Background(), cl, cfg.Kafka.Topics.Events, cfg.Kafka.Topics.DeadLetter, cfg.Delivery.RetryTopic); err != nil {
		t.Fatal(err)
	}
	return p
}

// route is one route of the destinations file: account → connection names;
// each connection name is also its API key in the fake.
func (p *pipeline) writeRoutes(routes map[string][]string) {
	p.t.Helper()
	conns := map[string]bool{}
	var b strings.Builder
	b.WriteString("routes:\n")
	for acc, names := range routes {
		fmt.Fprintf(&b, "  - account: %q\n    connections: [%s]\n", acc, strings.Join(names, ", "))
		for _, n := range names {
			conns[n] = true
		}
	}
	b.WriteString("connections:\n")
	if len(conns) == 0 {
		b.Reset()
		b.WriteString("connections: {}\nroutes: []\n")
	}
	for n := range conns {
		keyFile := filepath.Join(p.destDir, n+".key")
		if err := os.WriteFile(keyFile, []byte(n+"\n"), 0o600); err != nil {
			p.t.Fatal(err)
		}
		fmt.Fprintf(&b, "  %s:\n    type: datadog\n    settings:\n      base_url: %s\n      api_key: {file: %s}\n      tag_prefix: scalr\n      timeout: 2s\n", n, p.intake.URL(), keyFile)
	}
	tmp := p.cfg.Destinations.File + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.cfg.Destinations.File); err != nil {
		p.t.Fatal(err)
	}
}

// start runs a forwarder in this process until stop.
func (p *pipeline) start() (stop func()) {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := p.cfg
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					p.t.Errorf("forwarder: %v", err)
				}
			case <-time.After(30 * time.Second):
				p.t.Error("forwarder did not stop")
			}
		})
	}
	p.t.Cleanup(stop)
	return stop
}

// publish writes n events for each account through the producer package
// (the code ingest uses) and returns their ids by account.
func (p *pipeline) publish(accounts []string, n int) map[string][]string {
	p.t.Helper()
	cl := p.cluster.Client()
	prod := producer.New(cl, p.cfg.Kafka.Topics.Events.Name)
	ids := map[string][]string{}
	const chunk = 2000
	var events []*auditlogv1.AuditEvent
	flush := func() {
		res, err := prod.Publish(context.Background(), events)
		if err != nil {
			p.t.Fatal(err)
		}
		for i, ev := range events {
			acc := auditevent.AccountID(ev)
			ids[acc] = append(ids[acc], res.IDs[i])
		}
		events = events[:0]
	}
	for i := range n {
		for _, acc := range accounts {
			events = append(events, testEvent(acc, i))
			if len(events) == chunk {
				flush()
			}
		}
	}
	if len(events) > 0 {
		flush()
	}
	return ids
}

func testEvent(account string, i int) *auditlogv1.AuditEvent {
	return &auditlogv1.AuditEvent{
		Actor:    &auditlogv1.Actor{Id: "user-1", Type: "user", Email: "someone@example.com", AccessToken: &auditlogv1.AccessToken{Type: "session", Token: "tok-abcdefghijklmnopqrstuvwxyz"}},
		Request:  &auditlogv1.Request{Action: fmt.Sprintf("action-%d", i%7), Source: "api", IpAddress: "10.0.0.1"},
		Hostname: "platform.example.com",
		Service:  "audit-log",
		Outcome:  &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 200},
		Target: &auditlogv1.Target{Id: fmt.Sprintf("ws-%d", i), Type: "workspaces", Context: &auditlogv1.Context{
			Account:     &auditlogv1.Ref{Id: account, DisplayName: account},
			Environment: &auditlogv1.Ref{Id: "env-1", DisplayName: "Prod"},
		}},
	}
}

// received returns, for an API key, the audit ids and accounts of the logs
// the intake accepted.
func (p *pipeline) received(key string) (ids []string, accounts []string) {
	for _, log := range p.intake.Logs(key) {
		id, _ := log["audit-id"].(string)
		ids = append(ids, id)
		acc := ""
		if t, ok := log["target"].(map[string]any); ok {
			if c, ok := t["context"].(map[string]any); ok {
				if a, ok := c["account"].(map[string]any); ok {
					acc, _ = a["id"].(string)
				}
			}
		}
		accounts = append(accounts, acc)
	}
	return ids, accounts
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func counts(ids []string) map[string]int {
	m := make(map[string]int, len(ids))
	for _, id := range ids {
		m[id]++
	}
	return m
}
