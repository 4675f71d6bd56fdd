// Package api is the destinations API: account admins manage their own
// audit-log destinations (connections, storage profiles, audit-log
// settings) through a JSON REST API under /v1. The configuration lives in
// the compacted destinations topic, which every consumer reads; secrets are
// sealed with envelope encryption and never returned.
package api

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/auditstream/auditstream/services/destinations-api/internal/console"
	"github.com/auditstream/auditstream/services/internal/bearer"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/secretbox"
	"github.com/auditstream/auditstream/services/internal/server"
)

// Name is the service's binary and the source of the audit events it
// writes about configuration changes.
const Name = "destinations-api"

// Config is the service's configuration file.
type Config struct {
	Log   logging.Config `yaml:"log"`
	HTTP  server.Config  `yaml:"http"`
	Kafka kafka.Config   `yaml:"kafka"`
	// Auth: every token must list the accounts it may manage, or "*" for
	// an operator token that manages every account.
	Auth bearer.Config `yaml:"auth"`
	// Encryption is the key-encryption key secrets are sealed under.
	Encryption secretbox.Config `yaml:"encryption"`
	API        Settings         `yaml:"api"`
	// Archive is how the account's archive days are verified
	// (GET /v1/accounts/{account}/archive/days).
	Archive ArchiveSettings `yaml:"archive"`
	// Console is the account admins' web console under /console/
	// (docs/console.md).
	Console console.Config `yaml:"console"`
}

// Settings are the API's own settings.
type Settings struct {
	// DestinationsFile is the destinations file the consumers also read,
	// if any: a connection name it defines is refused through the API, so
	// a name never means two things.
	DestinationsFile string `yaml:"destinations_file"`
	// AllowCustomEndpoints lets a connection set base_url, endpoint,
	// sts_endpoint or an Azure account URL outside Azure's own domains.
	// Off by default: an account admin could otherwise make the platform
	// send requests, and test calls, to any address it can reach.
	AllowCustomEndpoints bool `yaml:"allow_custom_endpoints"`
	// AllowLocalStorage lets a storage profile be of kind local: a
	// directory on the archiver's own disk. Only for development.
	AllowLocalStorage bool `yaml:"allow_local_storage"`
	// AllowPlatformCredentials lets a connection leave out its own cloud
	// credentials and use the platform's (the archiver's or forwarder's
	// default AWS, GCS or Azure identity). Off by default: an account
	// admin could otherwise write with the platform's identity.
	AllowPlatformCredentials bool `yaml:"allow_platform_credentials"`
	// TrustedProxies are the addresses (CIDRs) of the proxies in front of
	// the API, e.g. the ingress: for a request from one of them, the
	// audit event records the client from X-Forwarded-For instead of the
	// proxy. Empty trusts no header.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MaxPageSize bounds page_size in lists (default 100).
	MaxPageSize int `yaml:"max_page_size"`
	// WriteTimeout bounds one write: producing the account's record and
	// reading it back (default 15s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// TestTimeout bounds one test call to a destination (default 20s).
	TestTimeout time.Duration `yaml:"test_timeout"`
	// TestsPerMinute bounds the tests one account may start in a minute
	// (default 10): a test calls a third party, which the endpoint must
	// not be usable to hammer.
	TestsPerMinute int `yaml:"tests_per_minute"`
}

// ArchiveSettings are the verification of accounts' archive days.
type ArchiveSettings struct {
	// PublicKeys are files of the Ed25519 public keys (PEM) the archiver
	// signs digests and manifests with, one per key across a rotation.
	// None: days are verified without checking signatures, and say so.
	PublicKeys []string `yaml:"public_keys"`
	// DigestDue is how long after a day's end its digest is expected
	// (default 3h, more than the archiver's grace); a later day without one
	// is reported missing.
	DigestDue time.Duration `yaml:"digest_due"`
	// Timeout bounds one verification: listing and reading the account's
	// digests and manifests, hashing the range's objects (default 60s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxDays bounds the range one request may ask for (default 92).
	MaxDays int `yaml:"max_days"`
}

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig() Config {
	return Config{
		Log:   logging.Default(),
		HTTP:  server.Default("127.0.0.1:8084"),
		Kafka: kafka.Default("auditstream-" + Name),
		API: Settings{
			MaxPageSize:    100,
			WriteTimeout:   15 * time.Second,
			TestTimeout:    20 * time.Second,
			TestsPerMinute: 10,
		},
		Archive: ArchiveSettings{DigestDue: 3 * time.Hour, Timeout: time.Minute, MaxDays: 92},
	}
}

// Validate reports every problem in the configuration.
func (c *Config) Validate() error {
	var errs config.Errors
	errs.Add("log", c.Log.Validate())
	errs.Add("http", c.HTTP.Validate())
	errs.Add("kafka", c.Kafka.Validate())
	errs.Add("auth", c.Auth.Validate(true))
	errs.Add("encryption", c.Encryption.Validate())
	errs.Add("console", c.Console.Validate())
	for i, p := range c.API.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			errs.Addf(fmt.Sprintf("api.trusted_proxies[%d]", i), "%q is not a CIDR such as 10.0.0.0/8", p)
		}
	}
	if c.API.MaxPageSize < 1 || c.API.MaxPageSize > 1000 {
		errs.Addf("api.max_page_size", "must be between 1 and 1000")
	}
	if c.API.WriteTimeout <= 0 {
		errs.Addf("api.write_timeout", "must be positive")
	}
	if c.API.TestTimeout <= 0 {
		errs.Addf("api.test_timeout", "must be positive")
	}
	if c.API.TestsPerMinute < 1 || c.API.TestsPerMinute > 600 {
		errs.Addf("api.tests_per_minute", "must be between 1 and 600")
	}
	for i, f := range c.Archive.PublicKeys {
		if f == "" {
			errs.Addf(fmt.Sprintf("archive.public_keys[%d]", i), "must be a file name")
		}
	}
	if c.Archive.DigestDue <= 0 {
		errs.Addf("archive.digest_due", "must be positive")
	}
	if c.Archive.Timeout <= 0 {
		errs.Addf("archive.timeout", "must be positive")
	}
	if c.Archive.MaxDays < 1 || c.Archive.MaxDays > 366 {
		errs.Addf("archive.max_days", "must be between 1 and 366")
	}
	return errs.Err()
}
