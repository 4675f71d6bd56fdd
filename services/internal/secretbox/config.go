package secretbox

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/config"
)

// Defaults for a KMSConfig field left empty.
const (
	// DefaultKMSTimeout bounds one KMS call, retries included.
	DefaultKMSTimeout = 10 * time.Second
	// DefaultKMSMaxAttempts is how many times a throttled or failed KMS
	// call is tried.
	DefaultKMSMaxAttempts = 3
	// MaxKMSMaxAttempts caps max_attempts.
	MaxKMSMaxAttempts = 10
	// DefaultRoleSessionName names the assumed role's sessions in
	// CloudTrail.
	DefaultRoleSessionName = "auditstream-secretbox"
)

// Config says which key-encryption key seals the stored secrets: a local
// keyring file or an AWS KMS key, exactly one.
type Config struct {
	// KeyringFile is the path of the local keyring (see GenerateKeyring).
	KeyringFile string `yaml:"keyring_file"`
	// KMS is the AWS KMS key.
	KMS KMSConfig `yaml:"kms"`
}

// KMSConfig is an AWS KMS symmetric key wrapping the data keys.
type KMSConfig struct {
	// KeyID is the key ARN, alias ARN, alias/name or key id new data keys
	// are generated under. Values keep the ARN of the key that wrapped
	// them, so an alias moved to a new key still opens the old values.
	KeyID string `yaml:"key_id"`
	// Region is the key's region; read from KeyID when it is an ARN.
	Region string `yaml:"region"`
	// Endpoint replaces the regional endpoint (VPC endpoints, tests).
	Endpoint string `yaml:"endpoint"`
	// Credentials sign the calls, as for every AWS connection (awsauth).
	Credentials awsauth.Credentials `yaml:"credentials"`
	// Timeout bounds one call, retries included (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts is how many times a throttled or failed call is tried
	// (default 3, at most 10).
	MaxAttempts int `yaml:"max_attempts"`
}

var (
	kmsKeyARNRe   = regexp.MustCompile(`^arn:(aws[a-z-]*):kms:([a-z0-9-]+):([0-9]{12}):key/([A-Za-z0-9-]{1,64})$`)
	kmsAliasARNRe = regexp.MustCompile(`^arn:(aws[a-z-]*):kms:([a-z0-9-]+):([0-9]{12}):alias/([A-Za-z0-9/_-]{1,250})$`)
	kmsAliasRe    = regexp.MustCompile(`^alias/[A-Za-z0-9/_-]{1,250}$`)
	kmsKeyIDRe    = regexp.MustCompile(`^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)
)

// kmsARNRegion is the region of a key or alias ARN, or "".
func kmsARNRegion(id string) string {
	if m := kmsKeyARNRe.FindStringSubmatch(id); m != nil {
		return m[2]
	}
	if m := kmsAliasARNRe.FindStringSubmatch(id); m != nil {
		return m[2]
	}
	return ""
}

func (c KMSConfig) isSet() bool { return c != KMSConfig{} }

// WithDefaults returns c with empty fields set to their defaults and the
// KMS region read from an ARN when it was left out.
func (c Config) WithDefaults() Config {
	c.KeyringFile = strings.TrimSpace(c.KeyringFile)
	if !c.KMS.isSet() {
		return c
	}
	k := &c.KMS
	k.KeyID = strings.TrimSpace(k.KeyID)
	k.Region = strings.TrimSpace(k.Region)
	k.Endpoint = strings.TrimSpace(k.Endpoint)
	if k.Region == "" {
		k.Region = kmsARNRegion(k.KeyID)
	}
	if k.Timeout == 0 {
		k.Timeout = DefaultKMSTimeout
	}
	if k.MaxAttempts == 0 {
		k.MaxAttempts = DefaultKMSMaxAttempts
	}
	k.Credentials = k.Credentials.WithDefaults(k.Region, DefaultRoleSessionName)
	return c
}

// Validate reports every problem, with empty fields read as their
// defaults. Messages name settings, never secret values.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs config.Errors
	kmsSet := c.KMS.isSet()
	switch {
	case c.KeyringFile == "" && !kmsSet:
		errs.Addf("keyring_file", "set keyring_file (a local keyring) or kms.key_id (AWS KMS)")
	case c.KeyringFile != "" && kmsSet:
		errs.Addf("keyring_file", "set only one of keyring_file and kms")
	}
	if kmsSet {
		errs.Add("kms", c.KMS.validate())
	}
	return errs.Err()
}

func (k KMSConfig) validate() error {
	var errs config.Errors
	arnRegion := kmsARNRegion(k.KeyID)
	switch {
	case k.KeyID == "":
		errs.Addf("key_id", "must be set (a key ARN, alias ARN, alias/name or key id)")
	case arnRegion != "":
		if k.Region != arnRegion {
			errs.Addf("region", "%q differs from key_id's region %q", awsauth.Trunc(k.Region), arnRegion)
		}
	case !kmsAliasRe.MatchString(k.KeyID) && !kmsKeyIDRe.MatchString(k.KeyID):
		errs.Addf("key_id", "%q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), alias ARN, alias/<name> or key id", awsauth.Trunc(k.KeyID))
	}
	if arnRegion == "" {
		switch {
		case k.Region == "":
			errs.Addf("region", "must be set (for example eu-west-1), or key_id must be an ARN")
		case !awsauth.ValidRegion(k.Region):
			errs.Addf("region", "%q is not an AWS region such as eu-west-1", awsauth.Trunc(k.Region))
		}
	}
	if k.Endpoint != "" {
		if err := awsauth.CheckEndpoint(k.Endpoint); err != nil {
			errs.Addf("endpoint", "%v", err)
		}
	}
	if k.Timeout < 0 {
		errs.Addf("timeout", "must not be negative")
	}
	if k.MaxAttempts < 1 || k.MaxAttempts > MaxKMSMaxAttempts {
		errs.Addf("max_attempts", "must be between 1 and %d", MaxKMSMaxAttempts)
	}
	errs.Add("credentials", k.Credentials.Validate())
	return errs.Err()
}

// NewKEK returns the key-encryption key c configures: the keyring file,
// read now and again whenever it changes, or the KMS key, described now
// (an unknown or disabled key is an error; an unreachable KMS is logged
// and the key described at its first use).
func NewKEK(ctx context.Context, c Config, log *zap.Logger) (KEK, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("secretbox config: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	c = c.WithDefaults()
	if c.KeyringFile != "" {
		return OpenKeyring(c.KeyringFile, log)
	}
	return newKMS(ctx, c.KMS, log, kmsOptions{})
}

// IsSet reports whether a key-encryption key is configured at all.
func (c Config) IsSet() bool { return strings.TrimSpace(c.KeyringFile) != "" || c.KMS.isSet() }
