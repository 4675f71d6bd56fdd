package ingest

import (
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/server"
)

// Config is the ingest service's whole configuration file.
type Config struct {
	Log    logging.Config `yaml:"log"`
	HTTP   server.Config  `yaml:"http"`
	Kafka  kafka.Config   `yaml:"kafka"`
	Ingest Settings       `yaml:"ingest"`
}

// Settings is the `ingest` section.
type Settings struct {
	Limits Limits `yaml:"limits"`
	Auth   Auth   `yaml:"auth"`
	// ProduceTimeout bounds how long a request waits for Kafka to acknowledge
	// its events before it is answered 503.
	ProduceTimeout time.Duration `yaml:"produce_timeout"`
	// MaxInflightBytes caps the request bodies being handled at once; past it
	// requests are answered 503 with Retry-After, so memory stays bounded
	// under a flood.
	MaxInflightBytes config.ByteSize `yaml:"max_inflight_bytes"`
}

// Limits bound one request.
type Limits struct {
	MaxBodyBytes  config.ByteSize `yaml:"max_body_bytes"`
	MaxEvents     int             `yaml:"max_events"`
	MaxEventBytes config.ByteSize `yaml:"max_event_bytes"`
}

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig() Config {
	return Config{
		Log:   logging.Default(),
		HTTP:  server.Default("127.0.0.1:8080"),
		Kafka: kafka.Default("auditstream-ingest"),
		Ingest: Settings{
			Limits: Limits{
				MaxBodyBytes:  5 << 20,
				MaxEvents:     1000,
				MaxEventBytes: 256 << 10,
			},
			ProduceTimeout:   10 * time.Second,
			MaxInflightBytes: 64 << 20,
		},
	}
}

// Validate reports every problem in the configuration.
func (c *Config) Validate() error {
	var errs config.Errors
	errs.Add("log", c.Log.Validate())
	errs.Add("http", c.HTTP.Validate())
	errs.Add("kafka", c.Kafka.Validate())
	errs.Add("ingest", c.Ingest.Validate())
	return errs.Err()
}

// Validate reports every problem in the ingest section.
func (s Settings) Validate() error {
	var errs config.Errors
	l := s.Limits
	if l.MaxBodyBytes <= 0 {
		errs.Addf("limits.max_body_bytes", "must be positive")
	}
	if l.MaxEvents <= 0 {
		errs.Addf("limits.max_events", "must be positive")
	}
	if l.MaxEventBytes <= 0 {
		errs.Addf("limits.max_event_bytes", "must be positive")
	}
	if l.MaxEventBytes > l.MaxBodyBytes {
		errs.Addf("limits.max_event_bytes", "must not exceed max_body_bytes")
	}
	if s.ProduceTimeout <= 0 {
		errs.Addf("produce_timeout", "must be positive")
	}
	if s.MaxInflightBytes < l.MaxBodyBytes {
		errs.Addf("max_inflight_bytes", "must be at least max_body_bytes (%d)", l.MaxBodyBytes)
	}
	errs.Add("auth", s.Auth.Validate(false))
	return errs.Err()
}
