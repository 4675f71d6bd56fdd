// Package all registers every destination type with sinks: import it for
// its side effect in a program that builds sinks of any type.
//
//	import _ "github.com/auditstream/auditstream/services/internal/sinks/all"
package all

import (
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/internal/sink/datadog"
	"github.com/auditstream/auditstream/services/internal/sink/eventbridge"
	"github.com/auditstream/auditstream/services/internal/sink/otlp"
	"github.com/auditstream/auditstream/services/internal/sinks"
)

func init() {
	dd := sinks.Of(func(c datadog.Config) (sink.Encoder[[]byte], sink.Sink[[]byte], error) {
		s, err := datadog.New(c, datadog.Options{})
		return c.Encoder(), s, err
	})
	// Datadog may not index logs older than this.
	dd.MaxAge = datadog.MaxLogAge
	sinks.Register(destinations.TypeDatadog, dd)
	sinks.Register(destinations.TypeEventBridge, sinks.Of(func(c eventbridge.Config) (sink.Encoder[eventbridge.Entry], sink.Sink[eventbridge.Entry], error) {
		s, err := eventbridge.New(c, eventbridge.Options{})
		return c.Encoder(), s, err
	}))
	sinks.Register(destinations.TypeOTLP, sinks.Of(func(c otlp.Config) (sink.Encoder[otlp.Entry], sink.Sink[otlp.Entry], error) {
		s, err := otlp.New(c, otlp.Options{})
		return c.Encoder(), s, err
	}))
}
