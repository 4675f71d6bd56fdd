// Package forwarder is the OTLP forwarder: the shared forwarding service
// with an OTLP/HTTP logs receiver as its sink.
package forwarder

import (
	"context"
	"io"

	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	// its sinks, built as the registry says
	_ "github.com/auditstream/auditstream/services/internal/sinks/otlp"
)

// Name names this forwarder in metrics, headers, its consumer group
// (auditstream-otlp) and its retry topic (audit.events.retry.otlp).
const Name = "otlp"

// DefaultRequestsInFlight is the OTLP forwarder's default
// delivery.requests_in_flight: like Datadog's, one request carries a
// whole batch to a receiver a WAN round trip away.
const DefaultRequestsInFlight = 4

// Spec is the OTLP forwarder.
var Spec = forwarding.Spec{
	Name:        Name,
	Binary:      "otlp-forwarder",
	Type:        destinations.TypeOTLP,
	DefaultAddr: "127.0.0.1:8085",
	Short:       "Stream audit events from Kafka to each account's OpenTelemetry (OTLP) logs receivers",
	Long: `otlp-forwarder reads audit events from Kafka and sends each one, as an
OpenTelemetry log record, to the OTLP/HTTP receivers its account routes to
(see the destinations file): Grafana Cloud, Grafana Loki, an OpenTelemetry
Collector or any backend that takes OTLP. Settings come from --config (YAML)
and AUDITSTREAM_* environment variables. SIGHUP reloads the destinations file
at once (it is also polled for changes).`,
	DeliveryDefaults: func(c *delivery.Config) { c.RequestsInFlight = DefaultRequestsInFlight },
}

// Config is the forwarder's configuration file.
type Config = forwarding.Config

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig() Config { return forwarding.DefaultConfig(Spec) }

// Run forwards until ctx ends.
func Run(ctx context.Context, cfg Config) error { return forwarding.Run(ctx, Spec, cfg) }

// Execute runs the command line and returns the exit code.
func Execute(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	return forwarding.Execute(ctx, Spec, args, env, stdout, stderr)
}
