package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	saslaws "github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/version"
)

// SASL mechanisms, as written in kafka.sasl.mechanism.
const (
	MechanismPlain       = "plain"
	MechanismScram256    = "scram-sha-256"
	MechanismScram512    = "scram-sha-512"
	MechanismMSKIAM      = "aws_msk_iam"
	MechanismOAuthBearer = "oauthbearer"
)

func (s MSKIAMConfig) isZero() bool {
	c := s.Credentials
	return s.UserAgent == "" && !c.AccessKeyID.IsSet() && !c.SecretAccessKey.IsSet() && !c.SessionToken.IsSet() &&
		c.RoleARN == "" && !c.ExternalID.IsSet() && c.RoleSessionName == "" && c.Duration == 0 && c.STSRegion == "" && c.STSEndpoint == ""
}

func (o OAuthConfig) isZero() bool {
	return !o.Token.IsSet() && o.TokenURL == "" && o.ClientID == "" && !o.ClientSecret.IsSet() &&
		len(o.Scopes) == 0 && len(o.Params) == 0 && len(o.Extensions) == 0 && !o.Google && o.GooglePrincipal == ""
}

func (c Config) validateSASL(errs *config.Errors) {
	s := c.SASL
	mech := strings.ToLower(s.Mechanism)
	switch mech {
	case "", MechanismPlain, MechanismScram256, MechanismScram512:
	default:
		if s.Username != "" {
			errs.Addf("sasl.username", "does not apply to %s", s.Mechanism)
		}
		if s.Password.IsSet() {
			errs.Addf("sasl.password", "does not apply to %s", s.Mechanism)
		}
	}
	if mech != MechanismMSKIAM && !s.AWS.isZero() {
		errs.Addf("sasl.aws", "only applies with sasl.mechanism %s", MechanismMSKIAM)
	}
	if mech != MechanismOAuthBearer && !s.OAuth.isZero() {
		errs.Addf("sasl.oauth", "only applies with sasl.mechanism %s", MechanismOAuthBearer)
	}
	switch mech {
	case "":
		if s.Username != "" || s.Password.IsSet() {
			errs.Addf("sasl.mechanism", "is required when a username or password is set")
		}
	case MechanismPlain, MechanismScram256, MechanismScram512:
		if s.Username == "" {
			errs.Addf("sasl.username", "is required for %s", s.Mechanism)
		}
		if !s.Password.IsSet() {
			errs.Addf("sasl.password", "is required for %s", s.Mechanism)
		}
	case MechanismMSKIAM:
		if !c.TLS.Enabled {
			errs.Addf("tls.enabled", "must be true with sasl.mechanism %s: MSK's IAM listeners (port 9098, 9198 public) accept TLS only", MechanismMSKIAM)
		}
		region := c.mskRegion()
		if region == "" && len(c.Brokers) > 0 {
			errs.Addf("brokers", "%s signs for the region in the broker hostname (b-1.<cluster>.<id>.c2.kafka.<region>.amazonaws.com) and none names one: use the MSK bootstrap brokers, or set sasl.aws.region", MechanismMSKIAM)
		}
		errs.Add("sasl.aws.credentials", s.AWS.Credentials.WithDefaults(region, DefaultMSKRoleSessionName).Validate())
		if ua := s.AWS.UserAgent; len(ua) > 256 || strings.IndexFunc(ua, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			errs.Addf("sasl.aws.user_agent", "must be at most 256 printable ASCII characters")
		}
	case MechanismOAuthBearer:
		if !c.TLS.Enabled {
			errs.Addf("tls.enabled", "must be true with sasl.mechanism %s: a bearer token must not cross the network in the clear", MechanismOAuthBearer)
		}
		s.OAuth.validate(errs)
	default:
		errs.Addf("sasl.mechanism", "%q is not plain, scram-sha-256, scram-sha-512, aws_msk_iam or oauthbearer", s.Mechanism)
	}
}

var extensionKeyRe = regexp.MustCompile(`^[a-zA-Z]+$`)

func (o OAuthConfig) validate(errs *config.Errors) {
	sources := 0
	for _, set := range []bool{o.Token.IsSet(), o.TokenURL != "", o.Google} {
		if set {
			sources++
		}
	}
	if o.GooglePrincipal != "" && !o.Google {
		errs.Addf("sasl.oauth.google_principal", "only applies with google: true")
	}
	if o.GooglePrincipal != "" && !strings.Contains(o.GooglePrincipal, "@") {
		errs.Addf("sasl.oauth.google_principal", "%q is not a service account email", awsauth.Trunc(o.GooglePrincipal))
	}
	switch {
	case sources > 1:
		errs.Addf("sasl.oauth", "token, token_url and google exclude each other: set one")
	case sources == 0:
		errs.Addf("sasl.oauth", "set token (e.g. {file: /var/run/secrets/kafka/token}, kept fresh by an agent), token_url with client_id and client_secret, or google: true")
	case o.TokenURL != "":
		if err := checkTokenURL(o.TokenURL); err != nil {
			errs.Addf("sasl.oauth.token_url", "%v", err)
		}
		if o.ClientID == "" {
			errs.Addf("sasl.oauth.client_id", "is required with token_url")
		}
		if !o.ClientSecret.IsSet() {
			errs.Addf("sasl.oauth.client_secret", "is required with token_url")
		}
	default:
		for _, f := range []struct {
			name string
			set  bool
		}{{"client_id", o.ClientID != ""}, {"client_secret", o.ClientSecret.IsSet()}, {"scopes", len(o.Scopes) > 0}, {"params", len(o.Params) > 0}} {
			if f.set {
				errs.Addf("sasl.oauth."+f.name, "only applies with token_url")
			}
		}
	}
	for k, v := range o.Extensions {
		if !extensionKeyRe.MatchString(k) || k == "auth" {
			errs.Addf("sasl.oauth.extensions", "%q is not an extension name (letters only, not auth)", awsauth.Trunc(k))
		}
		if strings.ContainsAny(v, "\x00\x01") {
			errs.Addf("sasl.oauth.extensions."+k, "must not hold control characters \\x00 or \\x01")
		}
	}
}

// checkTokenURL allows https, and http to the loopback interface only (a
// local token server on the node); never credentials or a query in the
// URL, which errors and logs quote.
func checkTokenURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", redactURL(raw))
	}
	if u.User != nil {
		return fmt.Errorf("%s must not hold credentials: use client_id and client_secret", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s must not have a query or fragment: use params", redactURL(raw))
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%s: http only to localhost; the client secret must not cross the network in the clear", redactURL(raw))
		}
	default:
		return fmt.Errorf("%s: scheme must be https", redactURL(raw))
	}
	return nil
}

// regionLabelRe reads as an AWS region (us-east-1, us-gov-west-1, eu-central-2).
var regionLabelRe = regexp.MustCompile(`^[a-z]+(-[a-z0-9]+)+-\d+$`)

// mskRegion is the region the AWS_MSK_IAM signatures are for: as in the
// MSK client libraries, the label before amazonaws.com in a broker's
// hostname nearest to it that reads as a region (VPC endpoint hosts have
// vpce there), else AWS_REGION, else AWS_DEFAULT_REGION.
func (c Config) mskRegion() string {
	if r := c.hostRegion(); r != "" {
		return r
	}
	if r := strings.TrimSpace(c.SASL.AWS.Region); r != "" {
		return r
	}
	if r := os.Getenv("AWS_REGION"); r != "" {
		return r
	}
	return os.Getenv("AWS_DEFAULT_REGION")
}

// hostRegion is the region the first broker hostname that names one names.
func (c Config) hostRegion() string {
	for _, b := range c.Brokers {
		if r := hostRegion(b); r != "" {
			return r
		}
	}
	return ""
}

func hostRegion(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, suffix := range []string{".amazonaws.com", ".amazonaws.com.cn", ".api.aws"} {
		if prefix, ok := strings.CutSuffix(name, suffix); ok {
			labels := strings.Split(prefix, ".")
			for i := len(labels) - 1; i >= 0; i-- {
				if regionLabelRe.MatchString(labels[i]) {
					return labels[i]
				}
			}
		}
	}
	return ""
}

func saslMechanism(c Config) (sasl.Mechanism, error) {
	s := c.SASL
	mech := strings.ToLower(s.Mechanism)
	switch mech {
	case "":
		return nil, nil
	case MechanismMSKIAM:
		return mskIAM(c)
	case MechanismOAuthBearer:
		return oauthBearer(s.OAuth)
	}
	// Resolve the password per authentication so rotated secrets apply on
	// reconnect.
	password := func() (string, error) {
		p, err := s.Password.Value()
		if err != nil {
			return "", fmt.Errorf("kafka sasl password (%s): %w", s.Password.Source(), err)
		}
		return p, nil
	}
	if err := s.Password.Check(); err != nil {
		return nil, fmt.Errorf("kafka sasl password (%s): %w", s.Password.Source(), err)
	}
	switch mech {
	case MechanismPlain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			p, err := password()
			return plain.Auth{User: s.Username, Pass: p}, err
		}), nil
	case MechanismScram256, MechanismScram512:
		fn := func(context.Context) (scram.Auth, error) {
			p, err := password()
			return scram.Auth{User: s.Username, Pass: p}, err
		}
		if mech == MechanismScram256 {
			return scram.Sha256(fn), nil
		}
		return scram.Sha512(fn), nil
	}
	return nil, fmt.Errorf("kafka sasl: unknown mechanism %q", s.Mechanism)
}

// mskIAM signs each authentication (a new connection or a
// re-authentication when the broker's session lifetime runs out, which
// MSK bounds by the credentials' expiry) with credentials fetched then
// from the provider, which renews assumed-role credentials five minutes
// before they expire and reads rotated key files.
func mskIAM(c Config) (sasl.Mechanism, error) {
	if r := strings.TrimSpace(c.SASL.AWS.Region); r != "" && c.hostRegion() == "" {
		// franz-go's signer takes the region from the broker's hostname,
		// else only from the environment.
		if err := os.Setenv("AWS_REGION", r); err != nil {
			return nil, fmt.Errorf("kafka sasl %s: set AWS_REGION: %w", MechanismMSKIAM, err)
		}
	}
	creds := c.SASL.AWS.Credentials.WithDefaults(c.mskRegion(), DefaultMSKRoleSessionName)
	base, err := awsauth.BaseConfig(creds, awsauth.NewDefaultChain())
	if err != nil {
		return nil, fmt.Errorf("kafka sasl %s: %w", MechanismMSKIAM, err)
	}
	provider, err := awsauth.Provider(creds, base, nil)
	if err != nil {
		return nil, fmt.Errorf("kafka sasl %s: %w", MechanismMSKIAM, err)
	}
	ua := c.SASL.AWS.UserAgent
	if ua == "" {
		ua = "auditstream/" + version.Version + "/" + c.ClientID
	}
	return saslaws.ManagedStreamingIAM(func(ctx context.Context) (saslaws.Auth, error) {
		v, err := provider.Retrieve(ctx)
		if err != nil {
			return saslaws.Auth{}, fmt.Errorf("kafka sasl %s (%s): %w", MechanismMSKIAM, creds.Mode(), err)
		}
		return saslaws.Auth{AccessKey: v.AccessKeyID, SecretKey: v.SecretAccessKey, SessionToken: v.SessionToken, UserAgent: ua}, nil
	}), nil
}

func oauthBearer(o OAuthConfig) (sasl.Mechanism, error) {
	var token func(ctx context.Context) (string, error)
	if o.Google {
		g, err := newGoogleToken(o.GooglePrincipal)
		if err != nil {
			return nil, err
		}
		token = g.token
	} else if o.Token.IsSet() {
		// Checked now so a missing file fails start-up, then read at each
		// authentication: the agent rewrites it before it expires.
		if err := o.Token.Check(); err != nil {
			return nil, fmt.Errorf("kafka sasl %s token (%s): %w", MechanismOAuthBearer, o.Token.Source(), err)
		}
		token = func(context.Context) (string, error) {
			v, err := o.Token.Value()
			if err == nil && strings.TrimSpace(v) == "" {
				err = errors.New("it is empty")
			}
			if err != nil {
				return "", fmt.Errorf("kafka sasl %s token (%s): %w", MechanismOAuthBearer, o.Token.Source(), err)
			}
			return strings.TrimSpace(v), nil
		}
	} else {
		if err := o.ClientSecret.Check(); err != nil {
			return nil, fmt.Errorf("kafka sasl %s client_secret (%s): %w", MechanismOAuthBearer, o.ClientSecret.Source(), err)
		}
		src := &tokenSource{o: o}
		token = src.token
	}
	return oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
		t, err := token(ctx)
		if err != nil {
			return oauth.Auth{}, err
		}
		return oauth.Auth{Token: t, Extensions: o.Extensions}, nil
	}), nil
}

// tokenSource runs the client-credentials flow, with the client secret
// read at each request (a rotated Secret applies without a restart), and
// keeps the token until OAuthRefreshEarly before it expires.
type tokenSource struct {
	o    OAuthConfig
	once sync.Once
	ts   oauth2.TokenSource
}

// tokenTimeout bounds one token request.
const tokenTimeout = 30 * time.Second

func (s *tokenSource) token(context.Context) (string, error) {
	s.once.Do(func() { s.ts = oauth2.ReuseTokenSourceWithExpiry(nil, fetcher{s.o}, OAuthRefreshEarly) })
	t, err := s.ts.Token()
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

type fetcher struct{ o OAuthConfig }

func (f fetcher) Token() (*oauth2.Token, error) {
	where := fmt.Sprintf("kafka sasl %s: token from %s for client %s", MechanismOAuthBearer, redactURL(f.o.TokenURL), f.o.ClientID)
	secret, err := f.o.ClientSecret.Value()
	if err != nil {
		return nil, fmt.Errorf("%s: client_secret (%s): %w", where, f.o.ClientSecret.Source(), err)
	}
	cc := clientcredentials.Config{ClientID: f.o.ClientID, ClientSecret: secret, TokenURL: f.o.TokenURL, Scopes: f.o.Scopes}
	if len(f.o.Params) > 0 {
		cc.EndpointParams = url.Values{}
		for k, v := range f.o.Params {
			cc.EndpointParams.Set(k, v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: tokenTimeout})
	t, err := cc.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, scrub(err, secret))
	}
	if t.AccessToken == "" {
		return nil, fmt.Errorf("%s: the answer holds no access_token", where)
	}
	return t, nil
}

// scrub keeps a secret out of an error from the token endpoint (its
// answer is quoted in the error).
func scrub(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}
