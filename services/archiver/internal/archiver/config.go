package archiver

import (
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/server"
)

// Name names the archiver in metrics, headers and its consumer group.
const Name = "archiver"

// Config is the archiver's configuration file.
type Config struct {
	Log          logging.Config      `yaml:"log"`
	HTTP         server.Config       `yaml:"http"`
	Kafka        kafka.Config        `yaml:"kafka"`
	Destinations destinations.Config `yaml:"destinations"`
	Archive      ArchiveConfig       `yaml:"archive"`
	// Status is how the archiver publishes its storage connections' health
	// to the status topic (kafka.topics.status) the destinations API reads.
	Status connstatus.Config `yaml:"status"`
}

// ArchiveConfig is the `archive` section, defined in the archive package so
// that auditctl's archive commands read this very file with the same keys,
// defaults and checks.
type ArchiveConfig archive.Config

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig() Config {
	return Config{
		Log:          logging.Default(),
		HTTP:         server.Default("127.0.0.1:8083"),
		Kafka:        kafka.Default("auditstream-archiver"),
		Destinations: destinations.DefaultConfig(),
		Archive:      ArchiveConfig(archive.DefaultConfig()),
		Status:       connstatus.DefaultConfig(),
	}
}

// Validate reports every problem in the configuration.
func (c *Config) Validate() error {
	var errs config.Errors
	errs.Add("log", c.Log.Validate())
	errs.Add("http", c.HTTP.Validate())
	errs.Add("kafka", c.Kafka.Validate())
	errs.Add("destinations", c.Destinations.Validate())
	errs.Add("archive", c.Archive.Validate())
	errs.Add("status", c.Status.Validate())
	return errs.Err()
}

// Validate reports every problem in the archive section.
func (a ArchiveConfig) Validate() error { return archive.Config(a).Validate() }

func (a ArchiveConfig) partitionConfig() archive.PartitionConfig {
	return archive.Config(a).PartitionConfig()
}

func (a ArchiveConfig) signer() (*archive.Signer, error) { return archive.Config(a).Signer() }
