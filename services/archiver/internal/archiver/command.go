package archiver

import (
	"github.com/auditstream/auditstream/services/internal/cmdline"
	"github.com/auditstream/auditstream/services/internal/destinations"
)

// CommandLine is the archiver's command line: --config, --check-config (which
// also checks every storage connection in the destinations file) and Run.
var CommandLine = cmdline.Service[Config, *Config]{
	Use:   "archiver",
	Short: "Archive audit events into daily, immutable objects in S3, GCS, Azure Blob or a directory",
	Long: `archiver consumes the events topic in its own consumer group and writes each
account's events as gzip-compressed JSON lines into the account's storage
connections, one object per window of event time (a UTC day by default), with
a signed manifest chain per account. Objects are created with conditional
creates and never overwritten; offsets are committed only after the objects
covering them exist.`,
	Defaults: DefaultConfig,
	Check: func(cfg Config) error {
		if cfg.Destinations.File == "" {
			return nil
		}
		table, err := destinations.Load(cfg.Destinations.File)
		if err != nil {
			return err
		}
		return destinations.CheckType(StorageType, CheckStorage)(table)
	},
	Run: Run,
}
