// Package forwarder is the EventBridge forwarder: the shared forwarding
// service with EventBridge as its sink.
package forwarder

import (
	"context"
	"io"

	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	// its sinks, built as the registry says
	_ "github.com/auditstream/auditstream/services/internal/sinks/eventbridge"
)

// Name names this forwarder in metrics, headers, its consumer group
// (auditstream-eventbridge) and its retry topic
// (audit.events.retry.eventbridge).
const Name = "eventbridge"

// Spec is the EventBridge forwarder.
var Spec = forwarding.Spec{
	Name:        Name,
	Binary:      "eventbridge-forwarder",
	Type:        destinations.TypeEventBridge,
	DefaultAddr: "127.0.0.1:8082",
	Short:       "Stream audit events from Kafka to each account's Amazon EventBridge connections",
	Long: `eventbridge-forwarder reads audit events from Kafka and puts each one on the
EventBridge event buses its account routes to (see the destinations file),
with PutEvents: Detail is the event's JSON, Source and DetailType are set per
connection. Settings come from --config (YAML) and AUDITSTREAM_* environment
variables. SIGHUP reloads the destinations file at once (it is also polled
for changes).`,
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
