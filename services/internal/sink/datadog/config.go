package datadog

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/klauspost/compress/gzip"
)

// Defaults for a Config field left empty.
const (
	DefaultSite             = "datadoghq.com"
	DefaultTagPrefix        = "auditstream"
	DefaultTimeout          = 30 * time.Second
	DefaultCompressionLevel = gzip.DefaultCompression
	// DefaultService is the log's service when the event names none; it is
	// what the seed's logs show.
	DefaultService = "audit-log"
)

// Compression values.
const (
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// Sites are the Datadog sites whose logs intake is
// https://http-intake.logs.<site>; the list is the one datadog-api-client-go
// accepts for v2.LogsApi.SubmitLog (a test keeps the two in step).
var Sites = []string{
	"datadoghq.com",     // US1
	"us3.datadoghq.com", // US3
	"us5.datadoghq.com", // US5
	"ap1.datadoghq.com", // AP1
	"ap2.datadoghq.com", // AP2
	"uk1.datadoghq.com", // UK1
	"datadoghq.eu",      // EU1
	"ddog-gov.com",      // US1-FED
	"us2.ddog-gov.com",  // US2-FED
}

// Config is one Datadog connection: where the logs go and with which key.
type Config struct {
	// Site is the customer's Datadog site, e.g. datadoghq.eu (default
	// datadoghq.com). It must be one of Sites unless BaseURL is set.
	Site string `yaml:"site"`
	// APIKey is sent as DD-API-KEY. It is resolved at every request, so a
	// rotated key file is picked up without a restart.
	APIKey config.Secret `yaml:"api_key"`
	// BaseURL replaces the site's intake URL (scheme, host and an optional
	// path prefix), for tests and for proxies. With it, Site is not checked.
	BaseURL string `yaml:"base_url"`
	// TagPrefix starts the tag names: <prefix>-workspace, <prefix>-action...
	// (default auditstream; the seed's logs use scalr).
	TagPrefix string `yaml:"tag_prefix"`
	// Source is the log's ddsource and the source:<source> tag (default
	// TagPrefix).
	Source string `yaml:"source"`
	// Timeout bounds one HTTP request, from connecting to reading the answer
	// (default 30s). A request that runs out of it is retryable.
	Timeout time.Duration `yaml:"timeout"`
	// Compression is gzip (default) or none.
	Compression string `yaml:"compression"`
	// CompressionLevel is the gzip level, 1 (fastest) to 9 (smallest); 0
	// means the compressor's default, level 5.
	CompressionLevel int `yaml:"compression_level"`
}

// WithDefaults returns c with every empty field set to its default.
func (c Config) WithDefaults() Config {
	c.Site = strings.ToLower(strings.TrimSpace(c.Site))
	if c.Site == "" {
		c.Site = DefaultSite
	}
	c.BaseURL = strings.TrimSpace(c.BaseURL)
	if c.TagPrefix == "" {
		c.TagPrefix = DefaultTagPrefix
	}
	if c.Source == "" {
		c.Source = c.TagPrefix
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Compression == "" {
		c.Compression = CompressionGzip
	}
	if c.CompressionLevel == 0 {
		c.CompressionLevel = DefaultCompressionLevel
	}
	return c
}

// Validate reports every problem in the connection, with empty fields read
// as their defaults.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs config.Errors
	if c.BaseURL == "" {
		if !slices.Contains(Sites, c.Site) {
			errs.Addf("site", "%q is not a Datadog site; use one of %s, or set base_url", c.Site, strings.Join(Sites, ", "))
		}
	} else if err := checkBaseURL(c.BaseURL); err != nil {
		errs.Addf("base_url", "%v", err)
	}
	if !c.APIKey.IsSet() {
		errs.Addf("api_key", "must be set (a string, {file: path} or {env: NAME})")
	}
	if err := checkTagName(c.TagPrefix); err != nil {
		errs.Addf("tag_prefix", "%v", err)
	}
	if err := checkTagName(c.Source); err != nil {
		errs.Addf("source", "%v", err)
	}
	if c.Timeout < 0 {
		errs.Addf("timeout", "must not be negative")
	}
	switch c.Compression {
	case CompressionGzip, CompressionNone:
	default:
		errs.Addf("compression", "%q is neither %s nor %s", c.Compression, CompressionGzip, CompressionNone)
	}
	if c.CompressionLevel != DefaultCompressionLevel && (c.CompressionLevel < gzip.BestSpeed || c.CompressionLevel > gzip.BestCompression) {
		errs.Addf("compression_level", "must be between %d and %d", gzip.BestSpeed, gzip.BestCompression)
	}
	return errs.Err()
}

// IntakeURL is the base URL logs are posted to (the path /api/v2/logs is
// added to it): BaseURL when set, else https://http-intake.logs.<site>.
func (c Config) IntakeURL() string {
	c = c.WithDefaults()
	if c.BaseURL != "" {
		return strings.TrimRight(c.BaseURL, "/")
	}
	return "https://http-intake.logs." + c.Site
}

func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	var problems []string
	if u.Scheme != "http" && u.Scheme != "https" {
		problems = append(problems, "scheme must be http or https")
	}
	if u.Host == "" {
		problems = append(problems, "host is missing")
	}
	if u.User != nil {
		// Credentials in a URL end up in error messages; the key travels
		// in its header only.
		problems = append(problems, "must not hold credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		problems = append(problems, "must not have a query or fragment")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", u.Redacted(), strings.Join(problems, "; "))
	}
	return nil
}

// checkTagName accepts what Datadog keeps unchanged in a tag name: a
// lower-case letter first, then lower-case letters, digits, '-', '_', '.'
// and '/'; at most 100 bytes, leaving room for the value.
func checkTagName(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > 100 {
		return fmt.Errorf("must be at most 100 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/'):
		default:
			return fmt.Errorf("%q must start with a lower-case letter and hold only a-z, 0-9, '-', '_', '.' and '/'", s)
		}
	}
	return nil
}
