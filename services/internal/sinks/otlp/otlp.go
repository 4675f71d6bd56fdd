// Package otlp registers the OTLP connection type with sinks: import it
// for its side effect.
package otlp

import (
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/sink"
	ot "github.com/auditstream/auditstream/services/internal/sink/otlp"
	"github.com/auditstream/auditstream/services/internal/sinks"
	"go.uber.org/zap"
)

func init() {
	k := sinks.Of(func(c ot.Config) (sink.Encoder[ot.Entry], sink.Sink[ot.Entry], error) {
		s, err := ot.New(c, ot.Options{})
		return c.Encoder(), s, err
	})
	k.Describe = sinks.Describe(func(c ot.Config) []zap.Field {
		// The URL holds no secret (Validate refuses credentials in it).
		return []zap.Field{zap.String("url", c.URL()), zap.String("auth", c.Auth.Mode()), zap.String("encoding", c.Encoding),
			zap.String("compression", c.Compression), zap.Bool("tenant", c.TenantID != "")}
	})
	sinks.Register(destinations.TypeOTLP, k)
}
