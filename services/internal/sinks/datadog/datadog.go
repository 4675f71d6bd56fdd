// Package datadog registers the Datadog connection type with sinks: import
// it for its side effect.
package datadog

import (
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/sink"
	dd "github.com/auditstream/auditstream/services/internal/sink/datadog"
	"github.com/auditstream/auditstream/services/internal/sinks"
	"go.uber.org/zap"
)

func init() { sinks.Register(destinations.TypeDatadog, Kind(dd.Options{})) }

// Kind is the Datadog Kind whose sinks are built with opts: the registered
// one has none; the forwarder's counts the events at risk (opts.AtRisk).
func Kind(opts dd.Options) sinks.Kind {
	k := sinks.Of(func(c dd.Config) (sink.Encoder[[]byte], sink.Sink[[]byte], error) {
		s, err := dd.New(c, opts)
		return c.Encoder(), s, err
	})
	// Datadog may not index logs older than this.
	k.MaxAge = dd.MaxLogAge
	// The intake URL holds no secret (Validate refuses credentials in
	// base_url).
	k.Describe = sinks.Describe(func(c dd.Config) []zap.Field {
		return []zap.Field{zap.String("intake_url", c.IntakeURL()), zap.String("compression", c.Compression)}
	})
	return k
}
