package otlp

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

// Defaults for a Config field left empty.
const (
	DefaultTimeout = 30 * time.Second
	// DefaultMaxRequestBytes bounds a request's uncompressed body: 4 MiB,
	// the default limit of the Collector's OTLP receiver (gRPC's
	// max_recv_msg_size) and of Loki's distributor.
	DefaultMaxRequestBytes = 4 << 20
	// MinMaxRequestBytes keeps a limit from being so small that no event fits.
	MinMaxRequestBytes = 64 << 10
	// DefaultService is the resource's service.name when the event names none.
	DefaultService = "audit-log"
	// LogsPath is appended to the endpoint, as OTLP/HTTP exporters do.
	LogsPath = "/v1/logs"
)

// Encodings of the request body.
const (
	EncodingProtobuf = "protobuf"
	EncodingJSON     = "json"
)

// Compression values.
const (
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// Config is one OTLP connection: where the logs go, as whom, and how.
type Config struct {
	// Endpoint is the receiver's base OTLP URL, e.g.
	// https://otlp-gateway-prod-eu-west-2.grafana.net/otlp or
	// https://loki.example.com/otlp; /v1/logs is appended. It must be
	// https unless AllowHTTP is set.
	Endpoint string `yaml:"endpoint"`
	// AllowHTTP accepts a plain http endpoint: for a receiver on the same
	// host or network (an operator's choice; tests).
	AllowHTTP bool `yaml:"allow_http"`
	// Auth says how requests authenticate; empty sends none.
	Auth Auth `yaml:"auth"`
	// Headers are sent with every request, for a receiver that wants one of
	// its own. They are not secret (they show in the configuration); use
	// Auth for credentials. Authorization, X-Scope-OrgID and the headers
	// the sink sets itself are refused.
	Headers map[string]string `yaml:"headers"`
	// TenantID is sent as X-Scope-OrgID, the tenant of a multi-tenant Loki
	// or Mimir.
	TenantID string `yaml:"tenant_id"`
	// Encoding is protobuf (default) or json.
	Encoding string `yaml:"encoding"`
	// Compression is gzip (default) or none.
	Compression string `yaml:"compression"`
	// MaxRequestBytes bounds a request's uncompressed body (default 4 MiB).
	// An event that alone is over it is dead-lettered.
	MaxRequestBytes config.ByteSize `yaml:"max_request_bytes"`
	// Timeout bounds one request, from connecting to reading the answer
	// (default 30s). A request that runs out of it is retryable.
	Timeout time.Duration `yaml:"timeout"`
}

// Auth is basic (Grafana Cloud: the instance id and an access policy token)
// or bearer; at most one of the two.
type Auth struct {
	// Username is basic auth's user (Grafana Cloud's instance id).
	Username string `yaml:"username"`
	// Password is basic auth's password (an access policy token).
	Password config.Secret `yaml:"password"`
	// Token is sent as "Authorization: Bearer <token>".
	Token config.Secret `yaml:"token"`
}

// Auth modes.
const (
	AuthNone   = "none"
	AuthBasic  = "basic"
	AuthBearer = "bearer"
)

// Mode is the auth mode the fields select.
func (a Auth) Mode() string {
	switch {
	case a.Token.IsSet():
		return AuthBearer
	case a.Username != "" || a.Password.IsSet():
		return AuthBasic
	}
	return AuthNone
}

// WithDefaults returns c with every empty field set to its default.
func (c Config) WithDefaults() Config {
	c.Endpoint = strings.TrimSpace(c.Endpoint)
	c.TenantID = strings.TrimSpace(c.TenantID)
	c.Encoding = strings.ToLower(strings.TrimSpace(c.Encoding))
	if c.Encoding == "" {
		c.Encoding = EncodingProtobuf
	}
	c.Compression = strings.ToLower(strings.TrimSpace(c.Compression))
	if c.Compression == "" {
		c.Compression = CompressionGzip
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// reservedHeaders are set by the sink or by Auth and TenantID.
var reservedHeaders = []string{"Authorization", "X-Scope-Orgid", "Content-Type", "Content-Encoding", "Content-Length", "Host", "User-Agent", "Accept-Encoding", "Transfer-Encoding", "Connection"}

// Validate reports every problem in the connection, with empty fields read
// as their defaults. Messages never hold a secret's value.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs config.Errors
	if c.Endpoint == "" {
		errs.Addf("endpoint", "must be set (the receiver's base OTLP URL, e.g. https://otlp-gateway-prod-eu-west-2.grafana.net/otlp)")
	} else if err := checkEndpoint(c.Endpoint, c.AllowHTTP); err != nil {
		errs.Addf("endpoint", "%v", err)
	}
	a := c.Auth
	if a.Token.IsSet() && (a.Username != "" || a.Password.IsSet()) {
		errs.Addf("auth", "set either token (bearer) or username and password (basic), not both")
	} else if a.Mode() == AuthBasic {
		if a.Username == "" {
			errs.Addf("auth.username", "must be set with password (Grafana Cloud: the instance id)")
		} else if strings.ContainsAny(a.Username, ":\r\n") {
			errs.Addf("auth.username", "must not hold ':' or line breaks")
		}
		if !a.Password.IsSet() {
			errs.Addf("auth.password", "must be set with username (a string, {file: path} or {env: NAME})")
		}
	}
	for name, v := range c.Headers {
		path := "headers." + name
		switch {
		case !validHeaderName(name):
			errs.Addf(path, "is not a valid HTTP header name")
		case isReserved(name):
			errs.Addf(path, "is set by the sink; use auth or tenant_id")
		case strings.ContainsAny(v, "\r\n\x00"):
			errs.Addf(path, "value must not hold line breaks")
		}
	}
	if strings.ContainsAny(c.TenantID, "\r\n\x00") {
		errs.Addf("tenant_id", "must not hold line breaks")
	}
	switch c.Encoding {
	case EncodingProtobuf, EncodingJSON:
	default:
		errs.Addf("encoding", "%q is neither %s nor %s", c.Encoding, EncodingProtobuf, EncodingJSON)
	}
	switch c.Compression {
	case CompressionGzip, CompressionNone:
	default:
		errs.Addf("compression", "%q is neither %s nor %s", c.Compression, CompressionGzip, CompressionNone)
	}
	if c.MaxRequestBytes < MinMaxRequestBytes {
		errs.Addf("max_request_bytes", "must be at least %d", MinMaxRequestBytes)
	}
	if c.Timeout < 0 {
		errs.Addf("timeout", "must not be negative")
	}
	return errs.Err()
}

// URL is where logs are posted: the endpoint with /v1/logs appended.
func (c Config) URL() string {
	return strings.TrimRight(strings.TrimSpace(c.Endpoint), "/") + LogsPath
}

func checkEndpoint(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	var problems []string
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			problems = append(problems, "must be https (allow_http accepts http)")
		}
	default:
		problems = append(problems, "scheme must be https")
	}
	if u.Host == "" {
		problems = append(problems, "host is missing")
	}
	if u.User != nil {
		// Credentials in a URL end up in error messages; use auth.
		problems = append(problems, "must not hold credentials; use auth")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		problems = append(problems, "must not have a query or fragment")
	}
	if strings.HasSuffix(strings.TrimRight(u.Path, "/"), LogsPath) {
		problems = append(problems, "is the base URL: "+LogsPath+" is appended")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", u.Redacted(), strings.Join(problems, "; "))
	}
	return nil
}

func isReserved(name string) bool {
	canon := http.CanonicalHeaderKey(name)
	for _, r := range reservedHeaders {
		if canon == r {
			return true
		}
	}
	return false
}

// validHeaderName accepts an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
