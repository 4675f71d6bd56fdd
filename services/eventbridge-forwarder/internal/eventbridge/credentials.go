package eventbridge

import (
	"context"
	"errors"
	"fmt"
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

// staticKeysTTL is how long keys read from their Secrets are used before
// they are read again, so a rotated key file applies within it without a
// restart and without reading three files for every call.
const staticKeysTTL = 10 * time.Second

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

// CredentialsError is a failure to obtain credentials, before any call
// to EventBridge was made.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string { return "credentials: " + e.Err.Error() }
func (e *CredentialsError) Unwrap() error { return e.Err }

// typed marks a provider's errors as CredentialsErrors, so a failed call
// can tell them from EventBridge's answers.
type typed struct{ p aws.CredentialsProvider }

func (t typed) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := t.p.Retrieve(ctx)
	if err != nil {
		return c, &CredentialsError{Err: err}
	}
	return c, nil
}

// credentialsFor returns the provider the connection signs with.
func credentialsFor(c Config, base aws.Config, now func() time.Time) (aws.CredentialsProvider, error) {
	cr := c.Credentials
	var source aws.CredentialsProvider
	switch cr.Mode() {
	case ModeDefaultChain:
		if base.Credentials == nil {
			return nil, errors.New("the AWS default chain found no credentials")
		}
		return typed{base.Credentials}, nil
	case ModeStatic:
		return typed{aws.NewCredentialsCache(secretKeys{cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken, now})}, nil
	case ModeAssumeRoleFromKeys:
		source = aws.NewCredentialsCache(secretKeys{cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken, now})
	case ModeAssumeRole:
		source = base.Credentials
		if source == nil {
			return nil, errors.New("the AWS default chain found no credentials to assume the role with")
		}
	}
	stsCfg := base.Copy()
	stsCfg.Credentials = source
	stsCfg.Region = cr.STSRegion
	client := sts.NewFromConfig(stsCfg, func(o *sts.Options) {
		if cr.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(cr.STSEndpoint)
		}
		// A few quick tries of STS itself; the runtime retries the events.
		o.RetryMaxAttempts = 2
	})
	// Renewed five minutes before they expire, so no call is signed with
	// credentials about to lapse.
	return typed{aws.NewCredentialsCache(&assumeRole{client: client, cfg: cr}, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = 5 * time.Minute
		o.ExpiryWindowJitterFrac = 0.2
	})}, nil
}
