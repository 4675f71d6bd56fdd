package archiver

import (
	"fmt"
	"time"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/config"
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
}

// ArchiveConfig is the `archive` section.
type ArchiveConfig struct {
	// Group is the consumer group.
	Group string `yaml:"group"`
	// Window is the length of a window of event time (24h: daily files).
	// It must divide a day; one minute is the shortest.
	Window time.Duration `yaml:"window"`
	// Grace is how long after its end a window still takes late arrivals
	// into its main objects.
	Grace time.Duration `yaml:"grace"`
	// LateFlushAfter is how long events of an already closed window collect
	// before they are written as a new object of that day.
	LateFlushAfter time.Duration `yaml:"late_flush_after"`
	// SpoolDir holds groups on local disk until they are cut. It needs room
	// for the open windows' events of the partitions this instance owns.
	SpoolDir string `yaml:"spool_dir"`
	// MaxGroupBytes cuts a group early at this spooled size; with it the
	// memory per partition is bounded (about 40 bytes per spooled event).
	MaxGroupBytes config.ByteSize `yaml:"max_group_bytes"`
	// MaxOpenGroups bounds the windows one partition collects at once.
	MaxOpenGroups int `yaml:"max_open_groups"`
	// MaxFutureSkew: an event stamped further ahead of its record's time is
	// filed under the record's time.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// UploadConcurrency is how many objects one partition writes at once.
	UploadConcurrency int `yaml:"upload_concurrency"`
	// StorageRetryFor is how long a store may keep failing for one account
	// before that account's events of the group go to the dead-letter topic
	// (reason storage-failed), so one broken bucket cannot hold up other
	// accounts for longer.
	StorageRetryFor time.Duration `yaml:"storage_retry_for"`
	// CommitInterval is how often progress is committed when no group is
	// being written.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (a killed pod) before its partitions move.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout bounds how long members may take to hand partitions
	// over; a group being written when its partition is revoked is abandoned
	// and written again by the next owner.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// SigningKey signs manifests: an Ed25519 private key in PKCS #8 PEM. Left
	// out, manifests are unsigned (hashes and chain are still checked).
	SigningKey config.Secret `yaml:"signing_key"`
}

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig() Config {
	return Config{
		Log:          logging.Default(),
		HTTP:         server.Default("127.0.0.1:8083"),
		Kafka:        kafka.Default("auditstream-archiver"),
		Destinations: destinations.DefaultConfig(),
		Archive: ArchiveConfig{
			Group:             "auditstream-archiver",
			Window:            24 * time.Hour,
			Grace:             time.Hour,
			LateFlushAfter:    15 * time.Minute,
			SpoolDir:          "/var/lib/auditstream/spool",
			MaxGroupBytes:     1 << 30,
			MaxOpenGroups:     16,
			MaxFutureSkew:     time.Hour,
			UploadConcurrency: 8,
			StorageRetryFor:   10 * time.Minute,
			CommitInterval:    5 * time.Second,
			SessionTimeout:    45 * time.Second,
			RebalanceTimeout:  60 * time.Second,
		},
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
	return errs.Err()
}

// Validate reports every problem in the archive section.
func (a ArchiveConfig) Validate() error {
	var errs config.Errors
	if a.Group == "" {
		errs.Addf("group", "must not be empty")
	}
	switch {
	case a.Window < time.Minute:
		errs.Addf("window", "%s is shorter than the minimum 1m", a.Window)
	case a.Window > 24*time.Hour || (24*time.Hour)%a.Window != 0 || a.Window%time.Second != 0:
		errs.Addf("window", "%s must divide 24h into whole seconds (1m, 5m, 1h, 24h, ...)", a.Window)
	}
	if a.Grace < 0 || a.Grace > 7*24*time.Hour {
		errs.Addf("grace", "%s is outside 0..168h", a.Grace)
	}
	if a.LateFlushAfter < time.Second {
		errs.Addf("late_flush_after", "must be at least 1s")
	}
	if a.SpoolDir == "" {
		errs.Addf("spool_dir", "is required: a writable directory for open windows")
	}
	if a.MaxGroupBytes < 1<<20 {
		errs.Addf("max_group_bytes", "must be at least 1MiB")
	}
	if a.MaxOpenGroups < 2 || a.MaxOpenGroups > 1024 {
		errs.Addf("max_open_groups", "%d is outside 2..1024", a.MaxOpenGroups)
	}
	if a.MaxFutureSkew < 0 {
		errs.Addf("max_future_skew", "must not be negative")
	}
	if a.UploadConcurrency < 1 || a.UploadConcurrency > 256 {
		errs.Addf("upload_concurrency", "%d is outside 1..256", a.UploadConcurrency)
	}
	if a.StorageRetryFor < time.Second {
		errs.Addf("storage_retry_for", "must be at least 1s")
	}
	if a.CommitInterval < 10*time.Millisecond {
		errs.Addf("commit_interval", "must be at least 10ms")
	}
	if a.SessionTimeout < time.Second || a.SessionTimeout > 30*time.Minute {
		errs.Addf("session_timeout", "%s is outside 1s..30m", a.SessionTimeout)
	}
	if a.RebalanceTimeout < time.Second || a.RebalanceTimeout > 30*time.Minute {
		errs.Addf("rebalance_timeout", "%s is outside 1s..30m", a.RebalanceTimeout)
	}
	if a.SigningKey.IsSet() {
		if pemBytes, err := a.SigningKey.Value(); err != nil {
			errs.Addf("signing_key", "%v", err)
		} else if _, err := archive.ParseSigningKey([]byte(pemBytes)); err != nil {
			errs.Addf("signing_key", "%v", err)
		}
	}
	return errs.Err()
}

func (a ArchiveConfig) partitionConfig() archive.PartitionConfig {
	return archive.PartitionConfig{
		Window: a.Window, Grace: a.Grace, LateFlushAfter: a.LateFlushAfter,
		MaxGroupBytes: int64(a.MaxGroupBytes), MaxOpenGroups: a.MaxOpenGroups,
		MaxFutureSkew: a.MaxFutureSkew, SpoolDir: a.SpoolDir,
	}
}

func (a ArchiveConfig) signer() (*archive.Signer, error) {
	if !a.SigningKey.IsSet() {
		return nil, nil
	}
	pemBytes, err := a.SigningKey.Value()
	if err != nil {
		return nil, fmt.Errorf("archive.signing_key: %w", err)
	}
	return archive.ParseSigningKey([]byte(pemBytes))
}
