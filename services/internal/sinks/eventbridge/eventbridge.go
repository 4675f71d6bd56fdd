// Package eventbridge registers the EventBridge connection type with
// sinks: import it for its side effect.
package eventbridge

import (
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/sink"
	eb "github.com/auditstream/auditstream/services/internal/sink/eventbridge"
	"github.com/auditstream/auditstream/services/internal/sinks"
	"go.uber.org/zap"
)

func init() {
	// Connections without static keys share the process's default chain
	// (eb.Options' nil DefaultChain), loaded once.
	k := sinks.Of(func(c eb.Config) (sink.Encoder[eb.Entry], sink.Sink[eb.Entry], error) {
		s, err := eb.New(c, eb.Options{})
		return c.Encoder(), s, err
	})
	k.Describe = sinks.Describe(func(c eb.Config) []zap.Field {
		return []zap.Field{zap.String("region", c.Region), zap.String("event_bus", c.EventBus),
			zap.String("credentials", string(c.Credentials.Mode())), zap.Int("max_concurrent_calls", c.MaxConcurrentCalls)}
	})
	sinks.Register(destinations.TypeEventBridge, k)
}
