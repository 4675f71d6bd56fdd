package eventbridge

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/config"
)

// Defaults for a Config field left empty.
const (
	// DefaultPrefix starts the default Source: <prefix>.audit-log.
	DefaultPrefix = "auditstream"
	// SourceSuffix ends the default Source.
	SourceSuffix = ".audit-log"
	// DefaultDetailType is every entry's DetailType unless configured. It is
	// a stable name for rules to match; the action is in detail.request.action.
	DefaultDetailType = "Audit Event"
	// DefaultEventBus is the account's default event bus.
	DefaultEventBus = "default"
	// DefaultTimeout bounds one PutEvents call.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxConcurrentCalls is how many PutEvents calls one connection
	// has in flight at most.
	DefaultMaxConcurrentCalls = 8
	// MaxConcurrentCallsLimit caps max_concurrent_calls.
	MaxConcurrentCallsLimit = 64
	// DefaultRoleSessionName names the assumed role's sessions in the
	// customer's CloudTrail.
	DefaultRoleSessionName = "auditstream-eventbridge"
	// DefaultRoleDuration is how long assumed-role credentials last; they
	// are renewed before they expire.
	DefaultRoleDuration = awsauth.DefaultRoleDuration
)

// EventBridge's own limits on an entry's fields.
const (
	MaxSourceChars     = 256
	MaxDetailTypeChars = 128
	MaxEventBusChars   = 1600 // a name is at most 256; an ARN adds its prefix
)

// Config is one EventBridge connection: which bus, in which region, as whom,
// and how entries are labelled.
type Config struct {
	// Region is the bus's AWS region, e.g. eu-west-1. When EventBus is an
	// ARN the region may be left out and is read from it.
	Region string `yaml:"region"`
	// EventBus is the bus's name or ARN (default "default"). An ARN can name
	// a bus of another account that grants this one events:PutEvents.
	EventBus string `yaml:"event_bus"`
	// Endpoint replaces the regional endpoint (a VPC interface endpoint, a
	// proxy, tests): scheme, host and an optional port.
	Endpoint string `yaml:"endpoint"`
	// Prefix starts the default Source: <prefix>.audit-log (default
	// auditstream; Scalr's events use scalr).
	Prefix string `yaml:"prefix"`
	// Source is every entry's Source (default <prefix>.audit-log). AWS
	// reserves sources starting with "aws.".
	Source string `yaml:"source"`
	// DetailType is every entry's DetailType (default "Audit Event").
	DetailType string `yaml:"detail_type"`
	// Credentials say whom the calls are signed as.
	Credentials Credentials `yaml:"credentials"`
	// Timeout bounds one PutEvents call, from connecting to reading the
	// answer (default 10s). A call that runs out of it is retryable.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConcurrentCalls is how many PutEvents calls of at most 10 entries
	// one connection has in flight (default 8, at most 64).
	MaxConcurrentCalls int `yaml:"max_concurrent_calls"`
}

// WithDefaults returns c with every empty field set to its default and the
// region read from an event bus ARN when it was left out.
func (c Config) WithDefaults() Config {
	c.Region = strings.TrimSpace(c.Region)
	c.EventBus = strings.TrimSpace(c.EventBus)
	c.Endpoint = strings.TrimSpace(c.Endpoint)
	if c.EventBus == "" {
		c.EventBus = DefaultEventBus
	}
	if c.Region == "" {
		if a, ok := parseBusARN(c.EventBus); ok {
			c.Region = a.region
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Source == "" {
		c.Source = c.Prefix + SourceSuffix
	}
	if c.DetailType == "" {
		c.DetailType = DefaultDetailType
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConcurrentCalls == 0 {
		c.MaxConcurrentCalls = DefaultMaxConcurrentCalls
	}
	c.Credentials = c.Credentials.WithDefaults(c.Region, DefaultRoleSessionName)
	return c
}

var (
	busNameRe = regexp.MustCompile(`^[/._A-Za-z0-9-]{1,256}$`)
	busARNRe  = regexp.MustCompile(`^arn:(aws[a-z-]*):events:([a-z0-9-]+):([0-9]{12}):event-bus/([/._A-Za-z0-9-]{1,256})$`)
	prefixRe  = regexp.MustCompile(`^[a-z][a-z0-9.-]{0,99}$`)
)

type busARN struct{ partition, region, account, name string }

func parseBusARN(s string) (busARN, bool) {
	m := busARNRe.FindStringSubmatch(s)
	if m == nil {
		return busARN{}, false
	}
	return busARN{m[1], m[2], m[3], m[4]}, true
}

// Validate reports every problem in the connection, with empty fields read
// as their defaults. Messages name settings, never their values when they
// may be secret.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs config.Errors
	arn, isARN := parseBusARN(c.EventBus)
	switch {
	case isARN:
		if c.Region != "" && c.Region != arn.region {
			errs.Addf("region", "%q differs from the event bus ARN's region %q", c.Region, arn.region)
		}
	case strings.HasPrefix(c.EventBus, "arn:"):
		errs.Addf("event_bus", "%q is not an event bus ARN (arn:aws:events:<region>:<account>:event-bus/<name>)", trunc(c.EventBus))
	case !busNameRe.MatchString(c.EventBus):
		errs.Addf("event_bus", "%q is not an event bus name (1 to 256 of A-Z a-z 0-9 . _ - /) or ARN", trunc(c.EventBus))
	}
	switch {
	case c.Region == "":
		errs.Addf("region", "must be set (for example eu-west-1), or event_bus must be an ARN")
	case !awsauth.ValidRegion(c.Region):
		errs.Addf("region", "%q is not an AWS region such as eu-west-1", trunc(c.Region))
	}
	if c.Endpoint != "" {
		if err := awsauth.CheckEndpoint(c.Endpoint); err != nil {
			errs.Addf("endpoint", "%v", err)
		}
	}
	if !prefixRe.MatchString(c.Prefix) {
		errs.Addf("prefix", "%q must start with a lower-case letter and hold only a-z, 0-9, '.' and '-' (at most 100)", trunc(c.Prefix))
	}
	if err := checkLabel(c.Source, MaxSourceChars); err != nil {
		errs.Addf("source", "%v", err)
	} else if strings.HasPrefix(strings.ToLower(c.Source), "aws.") {
		errs.Addf("source", "%q: sources starting with \"aws.\" are reserved for AWS services", trunc(c.Source))
	}
	if err := checkLabel(c.DetailType, MaxDetailTypeChars); err != nil {
		errs.Addf("detail_type", "%v", err)
	}
	if c.Timeout < 0 {
		errs.Addf("timeout", "must not be negative")
	}
	if c.MaxConcurrentCalls < 1 || c.MaxConcurrentCalls > MaxConcurrentCallsLimit {
		errs.Addf("max_concurrent_calls", "must be between 1 and %d", MaxConcurrentCallsLimit)
	}
	errs.Add("credentials", c.Credentials.Validate())
	return errs.Err()
}

// checkLabel checks a Source or DetailType: non-empty valid UTF-8 of at most
// max characters, without control characters.
func checkLabel(s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case !utf8.ValidString(s):
		return fmt.Errorf("must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		return fmt.Errorf("must be at most %d characters", max)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("must not start or end with spaces")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("must not hold control characters")
		}
	}
	return nil
}

func trunc(s string) string { return awsauth.Trunc(s) }
