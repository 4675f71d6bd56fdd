// Package forwarder is the Datadog forwarder: the shared forwarding service
// with Datadog as its sink.
package forwarder

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/internal/sink/datadog"
	ddkind "github.com/auditstream/auditstream/services/internal/sinks/datadog"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Name names this forwarder in metrics, headers, its consumer group
// (auditstream-datadog) and its retry topic (audit.events.retry.datadog).
const Name = "datadog"

// Spec is the Datadog forwarder.
var Spec = forwarding.Spec{
	Name:        Name,
	Binary:      "datadog-forwarder",
	Type:        destinations.TypeDatadog,
	DefaultAddr: "127.0.0.1:8081",
	Short:       "Stream audit events from Kafka to each account's Datadog connections",
	Long: `datadog-forwarder reads audit events from Kafka and sends each one to the
Datadog connections its account routes to (see the destinations file), as
logs in the shape of Scalr's audit-log example. Settings come from --config
(YAML) and AUDITSTREAM_* environment variables. SIGHUP reloads the
destinations file at once (it is also polled for changes).`,
	// Check is the registered Kind's (sinks/datadog); Setup counts the
	// events sent past Datadog's ingestion window.
	Setup: setup,
	// One Datadog request carries a whole batch and the intake is a WAN
	// round trip away: with 2 batches out, a connection at 100 ms would top
	// out at 10k events/s. EventBridge keeps the runtime's 2, since its sink
	// already runs max_concurrent_calls calls per batch.
	DeliveryDefaults: func(c *delivery.Config) { c.RequestsInFlight = DefaultRequestsInFlight },
}

// Config is the forwarder's configuration file.
type Config = forwarding.Config

// DefaultRequestsInFlight is the Datadog forwarder's default
// delivery.requests_in_flight.
const DefaultRequestsInFlight = 4

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig() Config { return forwarding.DefaultConfig(Spec) }

// Run forwards until ctx ends.
func Run(ctx context.Context, cfg Config) error { return forwarding.Run(ctx, Spec, cfg) }

// Execute runs the command line and returns the exit code.
func Execute(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	return forwarding.Execute(ctx, Spec, args, env, stdout, stderr)
}

func setup(ctx context.Context, env forwarding.Env) (delivery.SinkFactory, error) {
	atRisk := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "auditstream_datadog_at_risk_total",
		Help: "Events sent while older than Datadog's 18 h ingestion window; Datadog may drop them.",
	})
	if err := env.Registry.Register(atRisk); err != nil {
		return nil, err
	}
	var pending atomic.Int64
	go reportAtRisk(ctx, env.Logger, &pending)
	// The registered Kind, but for the at-risk count its sinks report.
	k := ddkind.Kind(datadog.Options{AtRisk: func(n int) {
		atRisk.Add(float64(n))
		pending.Add(int64(n))
	}})
	return forwarding.NewSinkFactory(env, destinations.TypeDatadog, k), nil
}

// reportAtRisk logs, at most once a minute, how many events were sent older
// than Datadog's ingestion window.
func reportAtRisk(ctx context.Context, log *zap.Logger, pending *atomic.Int64) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n := pending.Swap(0); n > 0 {
				log.Warn("sent events older than Datadog's 18h window; Datadog may not index them", zap.Int64("events", n))
			}
		}
	}
}
