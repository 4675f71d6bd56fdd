package ingest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/kafkatest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// harness is one ingest service over real sockets: a kfake broker, the
// service's Kafka client, and an HTTP server on an ephemeral port.
type harness struct {
	t       *testing.T
	cluster *kafkatest.Cluster
	cfg     Config
	svc     *Service
	http    *httptest.Server
	reg     *prometheus.Registry
}

func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	cluster := kafkatest.New(t)
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = cluster.Brokers()
	cfg.Kafka.Topics.Events.Partitions = 3
	cfg.Kafka.Topics.DeadLetter.Partitions = 1
	cfg.Ingest.Auth.Disabled = true
	for _, m := range mutate {
		m(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := zaptest.NewLogger(t)
	reg := prometheus.NewRegistry()
	client, err := newTestClient(cfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	svc := NewService(cfg, client, log, reg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go svc.Run(ctx)
	h := &harness{t: t, cluster: cluster, cfg: cfg, svc: svc, reg: reg}
	h.http = httptest.NewServer(svc.Handler())
	t.Cleanup(h.http.Close)
	h.waitAvailable()
	return h
}

func (h *harness) waitAvailable() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !h.svc.available.Load() {
		if time.Now().After(deadline) {
			h.t.Fatal("ingest did not become available")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
