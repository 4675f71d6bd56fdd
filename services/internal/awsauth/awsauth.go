// Package awsauth is how a connection to an AWS service (an EventBridge bus,
// an S3 bucket) obtains the credentials it signs with: the AWS default chain,
// static keys read from config.Secrets, or a role assumed through STS (with
// the static keys or the default chain, and an optional external id). It
// also checks the settings every AWS connection shares: regions and
// endpoint overrides.
//
// Credentials never appear in an error or a log: Secrets are read when the
// credentials are needed and errors name their sources, never their values.
package awsauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"

	"github.com/auditstream/auditstream/services/internal/config"
)

// DefaultRoleDuration is how long assumed-role credentials last; they are
// renewed before they expire.
const DefaultRoleDuration = time.Hour

// staticKeysTTL is how long keys read from their Secrets are used before
// they are read again, so a rotated key file applies within it without a
// restart and without reading three files for every call.
const staticKeysTTL = 10 * time.Second

// Credentials are how a connection's calls are signed. With nothing set, the
// AWS default chain applies (environment, shared files, web identity, ECS or
// EC2 instance role). Static keys come from Secrets, read when credentials
// are needed, so a rotated Kubernetes Secret applies without a restart.
// With RoleARN the role is assumed, with the static keys when given or else
// the default chain: the usual cross-account pattern.
type Credentials struct {
	AccessKeyID     config.Secret `yaml:"access_key_id"`
	SecretAccessKey config.Secret `yaml:"secret_access_key"`
	SessionToken    config.Secret `yaml:"session_token"`

	// RoleARN is the role to assume, e.g.
	// arn:aws:iam::123456789012:role/auditstream-writer.
	RoleARN string `yaml:"role_arn"`
	// ExternalID is the external id the role's trust policy requires.
	ExternalID config.Secret `yaml:"external_id"`
	// RoleSessionName names the sessions in the customer's CloudTrail
	// (default set by the connection type, e.g. auditstream-eventbridge).
	RoleSessionName string `yaml:"role_session_name"`
	// Duration of the assumed credentials, 15m to 12h (default 1h).
	Duration time.Duration `yaml:"duration"`
	// STSRegion is the region whose STS endpoint is called (default the
	// connection's region).
	STSRegion string `yaml:"sts_region"`
	// STSEndpoint replaces the STS endpoint (VPC endpoints, tests).
	STSEndpoint string `yaml:"sts_endpoint"`
}

// Mode says how credentials are obtained.
type Mode string

// Credential modes.
const (
	ModeDefaultChain       Mode = "default-chain"
	ModeStatic             Mode = "static"
	ModeAssumeRole         Mode = "assume-role"
	ModeAssumeRoleFromKeys Mode = "assume-role-from-static"
)

// Mode is how the connection obtains credentials.
func (c Credentials) Mode() Mode {
	static := c.AccessKeyID.IsSet() || c.SecretAccessKey.IsSet()
	switch {
	case c.RoleARN != "" && static:
		return ModeAssumeRoleFromKeys
	case c.RoleARN != "":
		return ModeAssumeRole
	case static:
		return ModeStatic
	}
	return ModeDefaultChain
}

// UsesDefaultChain reports whether the credentials need the AWS default
// configuration: as the credentials, or as the source that assumes the role.
func (c Credentials) UsesDefaultChain() bool {
	m := c.Mode()
	return m == ModeDefaultChain || m == ModeAssumeRole
}

// WithDefaults fills the role's settings left empty: the session name
// (sessionName), the duration and the STS region (region, the
// connection's).
func (c Credentials) WithDefaults(region, sessionName string) Credentials {
	c.RoleARN = strings.TrimSpace(c.RoleARN)
	c.STSEndpoint = strings.TrimSpace(c.STSEndpoint)
	if c.RoleARN != "" {
		if c.RoleSessionName == "" {
			c.RoleSessionName = sessionName
		}
		if c.Duration == 0 {
			c.Duration = DefaultRoleDuration
		}
		if c.STSRegion == "" {
			c.STSRegion = region
		}
	}
	return c
}

var (
	regionRe      = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)
	roleARNRe     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
	sessionNameRe = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

// ValidRegion reports whether s reads as an AWS region such as eu-west-1.
func ValidRegion(s string) bool { return regionRe.MatchString(s) }

// Validate reports every problem in the credentials, read after
// WithDefaults. Messages name settings, never secret values.
func (c Credentials) Validate() error {
	var errs config.Errors
	if c.AccessKeyID.IsSet() != c.SecretAccessKey.IsSet() {
		errs.Addf("access_key_id", "access_key_id and secret_access_key go together: set both or neither")
	}
	if c.SessionToken.IsSet() && !c.AccessKeyID.IsSet() {
		errs.Addf("session_token", "needs access_key_id and secret_access_key")
	}
	if c.RoleARN == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"external_id", c.ExternalID.IsSet()}, {"role_session_name", c.RoleSessionName != ""},
			{"duration", c.Duration != 0}, {"sts_region", c.STSRegion != ""}, {"sts_endpoint", c.STSEndpoint != ""},
		} {
			if f.set {
				errs.Addf(f.name, "only applies with role_arn")
			}
		}
		return errs.Err()
	}
	if !roleARNRe.MatchString(c.RoleARN) {
		errs.Addf("role_arn", "%q is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)", Trunc(c.RoleARN))
	}
	if !sessionNameRe.MatchString(c.RoleSessionName) {
		errs.Addf("role_session_name", "must be 2 to 64 of A-Z a-z 0-9 _ + = , . @ -")
	}
	if c.Duration < 15*time.Minute || c.Duration > 12*time.Hour {
		errs.Addf("duration", "must be between 15m and 12h")
	}
	if c.STSRegion != "" && !ValidRegion(c.STSRegion) {
		errs.Addf("sts_region", "%q is not an AWS region such as eu-west-1", Trunc(c.STSRegion))
	}
	if c.STSEndpoint != "" {
		if err := CheckEndpoint(c.STSEndpoint); err != nil {
			errs.Addf("sts_endpoint", "%v", err)
		}
	}
	return errs.Err()
}

// CheckEndpoint checks an endpoint override: an http or https URL with a
// host, without credentials, query or fragment.
func CheckEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", Trunc(raw))
	}
	var problems []string
	if u.Scheme != "http" && u.Scheme != "https" {
		problems = append(problems, "scheme must be http or https")
	}
	if u.Host == "" {
		problems = append(problems, "host is missing")
	}
	if u.User != nil {
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

// Trunc shortens a setting's value quoted in an error.
func Trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// DefaultChain loads the AWS default configuration (environment, shared
// config and credential files, web identity, container and instance roles)
// once, the first time a connection needs it, and shares its credential
// cache between connections. Connections with static keys never load it.
type DefaultChain struct {
	load func() (aws.Config, error)
}

// NewDefaultChain returns a DefaultChain that loads lazily.
func NewDefaultChain() *DefaultChain {
	return &DefaultChain{load: sync.OnceValues(func() (aws.Config, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return awsconfig.LoadDefaultConfig(ctx, awsconfig.WithLogger(logging.Nop{}), awsconfig.WithClientLogMode(0))
	})}
}

// Config returns the loaded default configuration.
func (d *DefaultChain) Config() (aws.Config, error) {
	if d == nil || d.load == nil {
		return NewDefaultChain().Config()
	}
	cfg, err := d.load()
	if err != nil {
		return aws.Config{}, fmt.Errorf("load the AWS default configuration: %w", err)
	}
	return cfg, nil
}

// BaseConfig is the aws.Config a connection's client starts from: a copy of
// the default configuration when the credentials use the default chain,
// else an empty one (so nothing of the environment leaks into a connection
// with its own keys). The logger is off either way.
func BaseConfig(c Credentials, chain *DefaultChain) (aws.Config, error) {
	var base aws.Config
	if c.UsesDefaultChain() {
		loaded, err := chain.Config()
		if err != nil {
			return aws.Config{}, err
		}
		base = loaded.Copy()
	}
	base.Logger = logging.Nop{}
	base.ClientLogMode = 0
	return base, nil
}

// secretKeys is a credentials provider that reads static keys from their
// Secrets at each retrieval. Its errors name the Secrets' sources, never
// their values.
type secretKeys struct {
	id, secret, token config.Secret
	now               func() time.Time
}

func (p secretKeys) Retrieve(context.Context) (aws.Credentials, error) {
	id, err := resolve("access_key_id", p.id)
	if err != nil {
		return aws.Credentials{}, err
	}
	secret, err := resolve("secret_access_key", p.secret)
	if err != nil {
		return aws.Credentials{}, err
	}
	var token string
	if p.token.IsSet() {
		if token, err = resolve("session_token", p.token); err != nil {
			return aws.Credentials{}, err
		}
	}
	creds, err := credentials.NewStaticCredentialsProvider(id, secret, token).Retrieve(context.Background())
	if err != nil {
		return aws.Credentials{}, err
	}
	creds.Source = "auditstream static keys"
	creds.CanExpire = true
	creds.Expires = p.now().Add(staticKeysTTL)
	return creds, nil
}

// SecretError is a credential Secret that could not be read: the
// connection is misconfigured until an operator fixes it.
type SecretError struct {
	Name string
	Err  error
}

func (e *SecretError) Error() string { return "credentials." + e.Name + ": " + e.Err.Error() }
func (e *SecretError) Unwrap() error { return e.Err }

func resolve(name string, s config.Secret) (string, error) {
	v, err := s.Value()
	if err == nil && v == "" {
		err = fmt.Errorf("%s is empty", s.Source())
	}
	if err != nil {
		return "", &SecretError{Name: name, Err: err}
	}
	return v, nil
}

// assumeRole is a credentials provider that assumes a role with an
// external id read from its Secret at each retrieval.
type assumeRole struct {
	client *sts.Client
	cfg    Credentials
}

func (p *assumeRole) Retrieve(ctx context.Context) (aws.Credentials, error) {
	var ext *string
	if p.cfg.ExternalID.IsSet() {
		v, err := resolve("external_id", p.cfg.ExternalID)
		if err != nil {
			return aws.Credentials{}, err
		}
		ext = aws.String(v)
	}
	return stscreds.NewAssumeRoleProvider(p.client, p.cfg.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = p.cfg.RoleSessionName
		o.Duration = p.cfg.Duration
		o.ExternalID = ext
	}).Retrieve(ctx)
}

// CredentialsError is a failure to obtain credentials, before any call to
// the service was made.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string { return "credentials: " + e.Err.Error() }
func (e *CredentialsError) Unwrap() error { return e.Err }

// typed marks a provider's errors as CredentialsErrors, so a failed call
// can tell them from the service's answers.
type typed struct{ p aws.CredentialsProvider }

func (t typed) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := t.p.Retrieve(ctx)
	if err != nil {
		return c, &CredentialsError{Err: err}
	}
	return c, nil
}

// Provider returns the provider a connection signs with. c must have
// passed WithDefaults and Validate; base is what BaseConfig returned (its
// HTTP client is used for STS too). now is the clock (nil is time.Now).
func Provider(c Credentials, base aws.Config, now func() time.Time) (aws.CredentialsProvider, error) {
	if now == nil {
		now = time.Now
	}
	var source aws.CredentialsProvider
	switch c.Mode() {
	case ModeDefaultChain:
		if base.Credentials == nil {
			return nil, errors.New("the AWS default chain found no credentials")
		}
		return typed{base.Credentials}, nil
	case ModeStatic:
		return typed{aws.NewCredentialsCache(secretKeys{c.AccessKeyID, c.SecretAccessKey, c.SessionToken, now})}, nil
	case ModeAssumeRoleFromKeys:
		source = aws.NewCredentialsCache(secretKeys{c.AccessKeyID, c.SecretAccessKey, c.SessionToken, now})
	case ModeAssumeRole:
		source = base.Credentials
		if source == nil {
			return nil, errors.New("the AWS default chain found no credentials to assume the role with")
		}
	}
	stsCfg := base.Copy()
	stsCfg.Credentials = source
	stsCfg.Region = c.STSRegion
	client := sts.NewFromConfig(stsCfg, func(o *sts.Options) {
		if c.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(c.STSEndpoint)
		}
		// A few quick tries of STS itself; callers retry their own work.
		o.RetryMaxAttempts = 2
	})
	// Renewed five minutes before they expire, so no call is signed with
	// credentials about to lapse.
	return typed{aws.NewCredentialsCache(&assumeRole{client: client, cfg: c}, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = 5 * time.Minute
		o.ExpiryWindowJitterFrac = 0.2
	})}, nil
}
