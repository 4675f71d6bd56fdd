package archive

import (
	"fmt"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

// Config is the `archive` section of the archiver's configuration file. It
// lives here, beside the rules it feeds, so every program that files
// records as the archiver does (auditctl's archive rebuild) reads the
// archiver's own file, with the same keys, defaults and checks.
type Config struct {
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
	// OffsetMetadataMaxBytes is the brokers' offset.metadata.max.bytes
	// (4096 unless changed). Each commit carries which windows are archived
	// past its offset; the archiver cuts a long-open group early rather
	// than let that outgrow what the brokers accept.
	OffsetMetadataMaxBytes config.ByteSize `yaml:"offset_metadata_max_bytes"`
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
	// DigestInterval is how often the owner of partition 0 looks for days
	// that every partition has closed, and for late objects of digested
	// days, to write the accounts' day digests and addenda.
	DigestInterval time.Duration `yaml:"digest_interval"`
	// SigningKey signs manifests and digests: an Ed25519 private key in PKCS #8 PEM. Left
	// out, manifests are unsigned (hashes and chain are still checked).
	SigningKey config.Secret `yaml:"signing_key"`
}

// DefaultConfig is the section before the file and environment apply.
func DefaultConfig() Config {
	return Config{
		Group:          "auditstream-archiver",
		Window:         24 * time.Hour,
		Grace:          time.Hour,
		LateFlushAfter: 15 * time.Minute,
		SpoolDir:       "/var/lib/auditstream/spool",
		MaxGroupBytes:  1 << 30,
		MaxOpenGroups:  16,
		// Kafka's default offset.metadata.max.bytes.
		OffsetMetadataMaxBytes: 4096,
		MaxFutureSkew:          time.Hour,
		UploadConcurrency:      8,
		StorageRetryFor:        10 * time.Minute,
		CommitInterval:         5 * time.Second,
		SessionTimeout:         45 * time.Second,
		RebalanceTimeout:       60 * time.Second,
		DigestInterval:         time.Minute,
	}
}

// Validate reports every problem in the section.
func (a Config) Validate() error {
	var errs config.Errors
	a.validateRules(&errs)
	if a.Group == "" {
		errs.Addf("group", "must not be empty")
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
	} else if need := MinMetadataBytes(a.MaxOpenGroups); int64(a.OffsetMetadataMaxBytes) < int64(need) {
		errs.Addf("offset_metadata_max_bytes", "%d leaves no room for the commits of %d open groups (max_open_groups), which need %d; lower max_open_groups, or raise the brokers' offset.metadata.max.bytes and this setting with it",
			a.OffsetMetadataMaxBytes, a.MaxOpenGroups, need)
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
	if a.DigestInterval < 10*time.Millisecond || a.DigestInterval > 24*time.Hour {
		errs.Addf("digest_interval", "%s is outside 10ms..24h", a.DigestInterval)
	}
	if a.SigningKey.IsSet() {
		if pemBytes, err := a.SigningKey.Value(); err != nil {
			errs.Addf("signing_key", "%v", err)
		} else if _, err := ParseSigningKey([]byte(pemBytes)); err != nil {
			errs.Addf("signing_key", "%v", err)
		}
	}
	return errs.Err()
}

// ValidateRules reports problems in the settings that decide where a record
// is filed (window, max_future_skew): all a program that files records
// without running the archiver needs.
func (a Config) ValidateRules() error {
	var errs config.Errors
	a.validateRules(&errs)
	return errs.Err()
}

func (a Config) validateRules(errs *config.Errors) {
	switch {
	case a.Window < time.Minute:
		errs.Addf("window", "%s is shorter than the minimum 1m", a.Window)
	case a.Window > 24*time.Hour || (24*time.Hour)%a.Window != 0 || a.Window%time.Second != 0:
		errs.Addf("window", "%s must divide 24h into whole seconds (1m, 5m, 1h, 24h, ...)", a.Window)
	}
	if a.MaxFutureSkew < 0 {
		errs.Addf("max_future_skew", "must not be negative")
	}
}

// PartitionConfig is how the section cuts a partition's records.
func (a Config) PartitionConfig() PartitionConfig {
	return PartitionConfig{
		Window: a.Window, Grace: a.Grace, LateFlushAfter: a.LateFlushAfter,
		MaxGroupBytes: int64(a.MaxGroupBytes), MaxOpenGroups: a.MaxOpenGroups,
		MaxMetadataBytes: int(a.OffsetMetadataMaxBytes),
		MaxFutureSkew:    a.MaxFutureSkew, SpoolDir: a.SpoolDir,
	}
}

// Signer returns the manifest signer, or nil when no signing key is set.
func (a Config) Signer() (*Signer, error) {
	if !a.SigningKey.IsSet() {
		return nil, nil
	}
	pemBytes, err := a.SigningKey.Value()
	if err != nil {
		return nil, fmt.Errorf("archive.signing_key: %w", err)
	}
	return ParseSigningKey([]byte(pemBytes))
}
