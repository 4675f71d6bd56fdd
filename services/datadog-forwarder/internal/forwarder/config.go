// Package forwarder runs the Datadog forwarder: the shared delivery runtime
// with Datadog as its sink.
package forwarder

import (
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/server"
)

// Name names this forwarder in metrics, headers, its consumer group
// (auditstream-datadog) and its retry topic (audit.events.retry.datadog).
const Name = "datadog"

// Config is the forwarder's configuration file.
type Config struct {
	Log          logging.Config      `yaml:"log"`
	HTTP         server.Config       `yaml:"http"`
	Kafka        kafka.Config        `yaml:"kafka"`
	Delivery     delivery.Config     `yaml:"delivery"`
	Destinations destinations.Config `yaml:"destinations"`
}

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig() Config {
	return Config{
		Log:          logging.Default(),
		HTTP:         server.Default("127.0.0.1:8081"),
		Kafka:        kafka.Default("auditstream-datadog-forwarder"),
		Delivery:     delivery.DefaultConfig(Name),
		Destinations: destinations.DefaultConfig(),
	}
}

// Validate reports every problem in the configuration.
func (c *Config) Validate() error {
	var errs config.Errors
	errs.Add("log", c.Log.Validate())
	errs.Add("http", c.HTTP.Validate())
	errs.Add("kafka", c.Kafka.Validate())
	errs.Add("delivery", c.Delivery.Validate())
	errs.Add("destinations", c.Destinations.Validate())
	return errs.Err()
}
