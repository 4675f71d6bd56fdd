// Package kafka builds franz-go clients from configuration (brokers, TLS,
// SASL, client id), plugs zap logging and Prometheus metrics into them, and
// creates the auditstream topics when they are missing.
package kafka

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/config"
)

// Config is the `kafka` section shared by every service.
type Config struct {
	// Brokers are seed brokers as host:port.
	Brokers  []string   `yaml:"brokers"`
	ClientID string     `yaml:"client_id"`
	TLS      TLSConfig  `yaml:"tls"`
	SASL     SASLConfig `yaml:"sasl"`
	// DialTimeout bounds each connection attempt.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// RequestTimeout bounds how long a produce waits for acknowledgement
	// before the write is reported failed.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	Topics         Topics        `yaml:"topics"`
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the brokers; empty uses the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile enable mutual TLS.
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig authenticates to the brokers.
type SASLConfig struct {
	// Mechanism is "", plain, scram-sha-256, scram-sha-512, aws_msk_iam
	// or oauthbearer.
	Mechanism string `yaml:"mechanism"`
	// Username and Password are for plain and scram-*.
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	// AWS signs in to Amazon MSK with IAM access control (aws_msk_iam).
	AWS MSKIAMConfig `yaml:"aws"`
	// OAuth is where oauthbearer's tokens come from.
	OAuth OAuthConfig `yaml:"oauth"`
}

// MSKIAMConfig is aws_msk_iam: every authentication is a SigV4 signature
// of kafka-cluster:Connect for the broker's host, made with credentials
// from the AWS code the sinks use. The region is the one in the broker's
// hostname (b-1.<cluster>.<id>.c2.kafka.<region>.amazonaws.com), else
// Region, else AWS_REGION or AWS_DEFAULT_REGION.
type MSKIAMConfig struct {
	// Region signs for brokers whose hostnames name none (a VPC endpoint's
	// or private DNS name). The signer reads it from AWS_REGION, so a
	// service sets AWS_REGION to it at start; the sinks' AWS clients name
	// their regions themselves and are not affected.
	Region string `yaml:"region"`
	// Credentials: the AWS default chain (IRSA and EKS Pod Identity
	// included), static keys from secrets, or an assumed role.
	Credentials awsauth.Credentials `yaml:"credentials"`
	// UserAgent is sent with each authentication (IAM policies may match
	// aws:UserAgent); default auditstream/<version>/<client_id>.
	UserAgent string `yaml:"user_agent"`
}

// OAuthConfig is oauthbearer: a token read from Token at every
// authentication (a file a workload-identity agent keeps fresh), one
// obtained with the OAuth 2 client-credentials flow from TokenURL and
// renewed OAuthRefreshEarly before it expires, or one made from Google
// credentials (Google).
type OAuthConfig struct {
	// Token is the bearer token, normally {file: /path} rewritten by an
	// agent before the token expires; it is read at every authentication.
	Token config.Secret `yaml:"token"`
	// TokenURL is the client-credentials token endpoint, e.g.
	// https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token.
	TokenURL     string        `yaml:"token_url"`
	ClientID     string        `yaml:"client_id"`
	ClientSecret config.Secret `yaml:"client_secret"`
	// Scopes requested, e.g. https://<namespace>.servicebus.windows.net/.default.
	Scopes []string `yaml:"scopes"`
	// Params are extra form values of the token request (audience, resource).
	Params map[string]string `yaml:"params"`
	// Google makes each token from Google Application Default Credentials
	// (GKE Workload Identity, a service account key file), in the form
	// Google Cloud Managed Service for Apache Kafka takes: its
	// GOOG_OAUTH2_TOKEN envelope around the access token.
	Google bool `yaml:"google"`
	// GooglePrincipal is the envelope's subject, the service account's
	// email; default the credentials' own.
	GooglePrincipal string `yaml:"google_principal"`
	// Extensions are SASL extensions sent with the token (RFC 7628), e.g.
	// logicalCluster and identityPoolId on Confluent Cloud.
	Extensions map[string]string `yaml:"extensions"`
}

// OAuthRefreshEarly is how long before its expiry a client-credentials
// token is replaced. Brokers end a session when its token expires and
// franz-go re-authenticates at 95-98% of the session's lifetime (3 minutes
// before for a one-hour token), so the token it then sends must be fresh.
const OAuthRefreshEarly = 5 * time.Minute

// DefaultMSKRoleSessionName names assumed-role sessions of aws_msk_iam.
const DefaultMSKRoleSessionName = "auditstream-kafka"

// Topics names the topics and how bootstrap creates them.
type Topics struct {
	Events     TopicSpec `yaml:"events"`
	DeadLetter TopicSpec `yaml:"dead_letter"`
	// Destinations is the compacted topic the destinations API keeps every
	// account's configuration in (key = account id); every consumer reads
	// it. Bootstrap creates it with cleanup.policy=compact.
	Destinations TopicSpec `yaml:"destinations"`
	// Status is the compacted topic the consumers publish each connection's
	// health to (key = connection, consumer and replica) and the
	// destinations API reads for the status routes. Records older than its
	// Retention are deleted too (cleanup.policy=compact,delete), so a
	// replica that vanished without a word leaves nothing behind for good.
	Status TopicSpec `yaml:"status"`
	// Bootstrap creates missing topics at start-up. Turn it off where the
	// service's credentials may not create topics.
	Bootstrap bool `yaml:"bootstrap"`
}

// TopicSpec is one topic and the settings bootstrap creates it with.
type TopicSpec struct {
	Name       string `yaml:"name"`
	Partitions int32  `yaml:"partitions"`
	// ReplicationFactor -1 takes the broker default.
	ReplicationFactor int16 `yaml:"replication_factor"`
	// Retention is retention.ms; 0 takes the broker default.
	Retention time.Duration `yaml:"retention"`
	// Compacted topics keep the latest record of each key
	// (cleanup.policy=compact); with Retention set as well, records older
	// than it are deleted too (cleanup.policy=compact,delete).
	Compacted bool `yaml:"-"`
}

// Default returns settings for a local broker and production topic sizes.
func Default(clientID string) Config {
	return Config{
		Brokers:        []string{"127.0.0.1:9092"},
		ClientID:       clientID,
		DialTimeout:    10 * time.Second,
		RequestTimeout: 10 * time.Second,
		Topics: Topics{
			Events:       TopicSpec{Name: "audit.events", Partitions: 12, ReplicationFactor: -1, Retention: 7 * 24 * time.Hour},
			DeadLetter:   TopicSpec{Name: "audit.events.dlq", Partitions: 3, ReplicationFactor: -1, Retention: 30 * 24 * time.Hour},
			Destinations: TopicSpec{Name: "audit.destinations", Partitions: 6, ReplicationFactor: -1, Compacted: true},
			Status:       TopicSpec{Name: "audit.destinations.status", Partitions: 3, ReplicationFactor: -1, Retention: 24 * time.Hour, Compacted: true},
			Bootstrap:    true,
		},
	}
}

// Validate reports every problem in the section.
func (c Config) Validate() error {
	var errs config.Errors
	if len(c.Brokers) == 0 {
		errs.Addf("brokers", "at least one broker is required")
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			errs.Addf("brokers", "%q is not host:port", b)
		}
	}
	if c.ClientID == "" {
		errs.Addf("client_id", "must not be empty")
	}
	if c.DialTimeout <= 0 {
		errs.Addf("dial_timeout", "must be positive")
	}
	if c.RequestTimeout <= 0 {
		errs.Addf("request_timeout", "must be positive")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs.Addf("tls", "cert_file and key_file go together")
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "") {
		errs.Addf("tls.enabled", "must be true when TLS files are set")
	}
	c.validateSASL(&errs)
	errs.Add("topics.events", c.Topics.Events.Validate())
	errs.Add("topics.dead_letter", c.Topics.DeadLetter.Validate())
	errs.Add("topics.destinations", c.Topics.Destinations.Validate())
	errs.Add("topics.status", c.Topics.Status.Validate())
	if c.Topics.Events.Name != "" && c.Topics.Events.Name == c.Topics.DeadLetter.Name {
		errs.Addf("topics.dead_letter.name", "must differ from topics.events.name")
	}
	if d := c.Topics.Destinations.Name; d != "" && (d == c.Topics.Events.Name || d == c.Topics.DeadLetter.Name) {
		errs.Addf("topics.destinations.name", "must differ from the events and dead-letter topics")
	}
	if st := c.Topics.Status.Name; st != "" && (st == c.Topics.Events.Name || st == c.Topics.DeadLetter.Name || st == c.Topics.Destinations.Name) {
		errs.Addf("topics.status.name", "must differ from the events, dead-letter and destinations topics")
	}
	return errs.Err()
}

// Validate reports every problem in one topic's settings.
func (t TopicSpec) Validate() error {
	var errs config.Errors
	if !validTopicName(t.Name) {
		errs.Addf("name", "%q is not a Kafka topic name (1-249 of [a-zA-Z0-9._-])", t.Name)
	}
	if t.Partitions < 1 {
		errs.Addf("partitions", "must be at least 1")
	}
	if t.ReplicationFactor == 0 || t.ReplicationFactor < -1 {
		errs.Addf("replication_factor", "must be -1 (broker default) or at least 1")
	}
	if t.Retention < 0 {
		errs.Addf("retention", "must not be negative")
	}
	return errs.Err()
}

func validTopicName(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (s SASLConfig) String() string {
	switch strings.ToLower(s.Mechanism) {
	case MechanismMSKIAM:
		return fmt.Sprintf("sasl(%s credentials=%s)", s.Mechanism, s.AWS.Credentials.Mode())
	case MechanismOAuthBearer:
		if s.OAuth.Google {
			return fmt.Sprintf("sasl(%s google principal=%s)", s.Mechanism, s.OAuth.GooglePrincipal)
		}
		if s.OAuth.TokenURL != "" {
			return fmt.Sprintf("sasl(%s token_url=%s client_id=%s client_secret=%s)", s.Mechanism, redactURL(s.OAuth.TokenURL), s.OAuth.ClientID, s.OAuth.ClientSecret.Source())
		}
		return fmt.Sprintf("sasl(%s token=%s)", s.Mechanism, s.OAuth.Token.Source())
	}
	return fmt.Sprintf("sasl(%s user=%s password=%s)", s.Mechanism, s.Username, s.Password.Source())
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.Redacted()
}
