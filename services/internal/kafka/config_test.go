package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*kafka.Config)
		want   []string // paths at fault; nil: valid
	}{
		{"defaults", func(*kafka.Config) {}, nil},
		{"several brokers", func(c *kafka.Config) { c.Brokers = []string{"k1:9092", "[::1]:9093", "kafka.example.com:9094"} }, nil},
		{"no brokers", func(c *kafka.Config) { c.Brokers = nil }, []string{"brokers"}},
		{"broker without port", func(c *kafka.Config) { c.Brokers = []string{"k1:9092", "k2"} }, []string{"brokers"}},
		{"broker with empty port", func(c *kafka.Config) { c.Brokers = []string{"k1:"} }, []string{"brokers"}},
		{"no client id", func(c *kafka.Config) { c.ClientID = "" }, []string{"client_id"}},
		{"zero timeouts", func(c *kafka.Config) { c.DialTimeout, c.RequestTimeout = 0, -time.Second }, []string{"dial_timeout", "request_timeout"}},
		{"tls enabled", func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CAFile: ca, ServerName: "kafka"} }, nil},
		{"mutual tls", func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CertFile: "c.pem", KeyFile: "k.pem"} }, nil},
		{"cert without key", func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CertFile: "c.pem"} }, []string{"tls"}},
		{"key without cert", func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, KeyFile: "k.pem"} }, []string{"tls"}},
		{"tls files without tls", func(c *kafka.Config) { c.TLS = kafka.TLSConfig{CAFile: ca} }, []string{"tls.enabled"}},
		{"sasl plain", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "plain", Username: "u", Password: config.SecretLiteral("p")}
		}, nil},
		{"sasl scram upper case", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u", Password: config.SecretEnv("PW")}
		}, nil},
		{"sasl scram-sha-512", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: config.SecretFile("/pw")}
		}, nil},
		{"sasl without username and password", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "plain"} }, []string{"sasl.username", "sasl.password"}},
		{"sasl unknown mechanism", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "gssapi", Username: "u", Password: config.SecretLiteral("p")}
		}, []string{"sasl.mechanism"}},
		{"username without mechanism", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Username: "u"} }, []string{"sasl.mechanism"}},
		{"password without mechanism", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Password: config.SecretLiteral("p")} }, []string{"sasl.mechanism"}},
		{"msk iam, default chain", func(c *kafka.Config) { *c = mskConfig(*c) }, nil},
		{"msk iam, vpc endpoint host", func(c *kafka.Config) {
			*c = mskConfig(*c)
			c.Brokers = []string{"vpce-0abc-1234.kafka.us-east-1.vpce.amazonaws.com:14001"}
		}, nil},
		{"msk iam, static keys from files", func(c *kafka.Config) {
			*c = mskConfig(*c)
			c.SASL.AWS.Credentials.AccessKeyID = config.SecretFile("/var/run/secrets/aws/id")
			c.SASL.AWS.Credentials.SecretAccessKey = config.SecretFile("/var/run/secrets/aws/secret")
		}, nil},
		{"msk iam, assumed role with external id", func(c *kafka.Config) {
			*c = mskConfig(*c)
			c.SASL.AWS.Credentials.RoleARN = "arn:aws:iam::123456789012:role/auditstream-msk"
			c.SASL.AWS.Credentials.ExternalID = config.SecretFile("/var/run/secrets/aws/external-id")
		}, nil},
		{"msk iam without tls", func(c *kafka.Config) { *c = mskConfig(*c); c.TLS.Enabled = false }, []string{"tls.enabled"}},
		{"msk iam, brokers name no region", func(c *kafka.Config) { *c = mskConfig(*c); c.Brokers = []string{"kafka.internal:9098"} }, []string{"brokers"}},
		{"msk iam, bad credentials", func(c *kafka.Config) {
			*c = mskConfig(*c)
			c.SASL.AWS.Credentials.AccessKeyID = config.SecretFile("/id")
			c.SASL.AWS.Credentials.RoleARN = "arn:aws:iam::1:role/x"
		}, []string{"sasl.aws.credentials.access_key_id", "sasl.aws.credentials.role_arn"}},
		{"msk iam with a username", func(c *kafka.Config) { *c = mskConfig(*c); c.SASL.Username = "u" }, []string{"sasl.username"}},
		{"msk iam, user agent with a newline", func(c *kafka.Config) { *c = mskConfig(*c); c.SASL.AWS.UserAgent = "a\nb" }, []string{"sasl.aws.user_agent"}},
		{"aws settings with scram", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: config.SecretLiteral("p"), AWS: kafka.MSKIAMConfig{UserAgent: "x"}}
		}, []string{"sasl.aws"}},
		{"oauthbearer token file", func(c *kafka.Config) {
			c.TLS.Enabled = true
			c.SASL = kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{Token: config.SecretFile("/var/run/secrets/kafka/token")}}
		}, nil},
		{"oauthbearer client credentials", func(c *kafka.Config) { *c = ccConfig(*c) }, nil},
		{"oauthbearer, google credentials", func(c *kafka.Config) {
			c.TLS.Enabled = true
			c.SASL = kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{Google: true, GooglePrincipal: "sa@p.iam.gserviceaccount.com"}}
		}, nil},
		{"oauthbearer, google and a token file", func(c *kafka.Config) {
			c.TLS.Enabled = true
			c.SASL = kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{Google: true, Token: config.SecretFile("/t")}}
		}, []string{"sasl.oauth"}},
		{"oauthbearer, google principal without google", func(c *kafka.Config) {
			c.TLS.Enabled = true
			c.SASL = kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{Token: config.SecretFile("/t"), GooglePrincipal: "not-an-email"}}
		}, []string{"sasl.oauth.google_principal"}},
		{"oauthbearer, local token server over http", func(c *kafka.Config) { *c = ccConfig(*c); c.SASL.OAuth.TokenURL = "http://localhost:14293/" }, nil},
		{"oauthbearer without tls", func(c *kafka.Config) { *c = ccConfig(*c); c.TLS.Enabled = false }, []string{"tls.enabled"}},
		{"oauthbearer, no token source", func(c *kafka.Config) {
			c.TLS.Enabled = true
			c.SASL = kafka.SASLConfig{Mechanism: "OAUTHBEARER"}
		}, []string{"sasl.oauth"}},
		{"oauthbearer, token and token url", func(c *kafka.Config) {
			*c = ccConfig(*c)
			c.SASL.OAuth.Token = config.SecretFile("/t")
		}, []string{"sasl.oauth"}},
		{"oauthbearer, token url over plain http", func(c *kafka.Config) { *c = ccConfig(*c); c.SASL.OAuth.TokenURL = "http://idp.example.com/token" }, []string{"sasl.oauth.token_url"}},
		{"oauthbearer, token url with credentials", func(c *kafka.Config) {
			*c = ccConfig(*c)
			c.SASL.OAuth.TokenURL = "https://id:pw@idp.example.com/token"
		}, []string{"sasl.oauth.token_url"}},
		{"oauthbearer, token url with a query", func(c *kafka.Config) {
			*c = ccConfig(*c)
			c.SASL.OAuth.TokenURL = "https://idp.example.com/token?key=x"
		}, []string{"sasl.oauth.token_url"}},
		{"oauthbearer, token url not absolute", func(c *kafka.Config) { *c = ccConfig(*c); c.SASL.OAuth.TokenURL = "/token" }, []string{"sasl.oauth.token_url"}},
		{"oauthbearer, client without id or secret", func(c *kafka.Config) {
			*c = ccConfig(*c)
			c.SASL.OAuth.ClientID, c.SASL.OAuth.ClientSecret = "", config.Secret{}
		}, []string{"sasl.oauth.client_id", "sasl.oauth.client_secret"}},
		{"oauthbearer, client settings with a token file", func(c *kafka.Config) {
			c.TLS.Enabled = true
			c.SASL = kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{Token: config.SecretFile("/t"), ClientID: "c", Scopes: []string{"s"}}}
		}, []string{"sasl.oauth.client_id", "sasl.oauth.scopes"}},
		{"oauthbearer, bad extensions", func(c *kafka.Config) {
			*c = ccConfig(*c)
			c.SASL.OAuth.Extensions = map[string]string{"auth": "x", "ok": "a\x01b"}
		}, []string{"sasl.oauth.extensions", "sasl.oauth.extensions.ok"}},
		{"oauth settings with plain", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "plain", Username: "u", Password: config.SecretLiteral("p"), OAuth: kafka.OAuthConfig{ClientID: "c"}}
		}, []string{"sasl.oauth"}},
		{"empty topic name", func(c *kafka.Config) { c.Topics.Events.Name = "" }, []string{"topics.events.name"}},
		{"topic name with a space", func(c *kafka.Config) { c.Topics.Events.Name = "audit events" }, []string{"topics.events.name"}},
		{"topic name dot", func(c *kafka.Config) { c.Topics.DeadLetter.Name = "." }, []string{"topics.dead_letter.name"}},
		{"topic name dot dot", func(c *kafka.Config) { c.Topics.DeadLetter.Name = ".." }, []string{"topics.dead_letter.name"}},
		{"topic name too long", func(c *kafka.Config) { c.Topics.Events.Name = strings.Repeat("a", 250) }, []string{"topics.events.name"}},
		{"topic name of 249", func(c *kafka.Config) { c.Topics.Events.Name = strings.Repeat("a", 249) }, nil},
		{"topic name not ASCII", func(c *kafka.Config) { c.Topics.Events.Name = "audit.événements" }, []string{"topics.events.name"}},
		{"no partitions", func(c *kafka.Config) { c.Topics.Events.Partitions = 0 }, []string{"topics.events.partitions"}},
		{"replication zero", func(c *kafka.Config) { c.Topics.Events.ReplicationFactor = 0 }, []string{"topics.events.replication_factor"}},
		{"replication below -1", func(c *kafka.Config) { c.Topics.DeadLetter.ReplicationFactor = -2 }, []string{"topics.dead_letter.replication_factor"}},
		{"replication three", func(c *kafka.Config) { c.Topics.Events.ReplicationFactor = 3 }, nil},
		{"negative retention", func(c *kafka.Config) { c.Topics.Events.Retention = -time.Hour }, []string{"topics.events.retention"}},
		{"zero retention is the broker default", func(c *kafka.Config) { c.Topics.Events.Retention = 0 }, nil},
		{"dead letter same as events", func(c *kafka.Config) { c.Topics.DeadLetter.Name = c.Topics.Events.Name }, []string{"topics.dead_letter.name"}},
		{"status same as destinations", func(c *kafka.Config) { c.Topics.Status.Name = c.Topics.Destinations.Name }, []string{"topics.status.name"}},
		{"status without partitions", func(c *kafka.Config) { c.Topics.Status.Partitions = 0 }, []string{"topics.status.partitions"}},
		{"everything wrong at once", func(c *kafka.Config) {
			*c = kafka.Config{SASL: kafka.SASLConfig{Mechanism: "x"}, TLS: kafka.TLSConfig{CertFile: "c"}}
		}, []string{"brokers", "client_id", "dial_timeout", "request_timeout", "tls", "tls.enabled", "sasl.mechanism", "topics.events.name", "topics.events.partitions", "topics.dead_letter.name"}},
	}
	// The region of aws_msk_iam comes from the brokers' hostnames here.
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := kafka.Default("test-client")
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("invalid: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid")
			}
			var paths []string
			for line := range strings.SplitSeq(err.Error(), "\n") {
				path, _, _ := strings.Cut(line, ": ")
				paths = append(paths, path)
			}
			for _, w := range tc.want {
				found := false
				for _, p := range paths {
					found = found || p == w
				}
				if !found {
					t.Errorf("no problem at %s in %q", w, err)
				}
			}
		})
	}
}

func mskConfig(c kafka.Config) kafka.Config {
	c.Brokers = []string{"b-1.audit.abc123.c2.kafka.eu-west-1.amazonaws.com:9098", "b-2.audit.abc123.c2.kafka.eu-west-1.amazonaws.com:9098"}
	c.TLS.Enabled = true
	c.SASL = kafka.SASLConfig{Mechanism: "aws_msk_iam"}
	return c
}

func ccConfig(c kafka.Config) kafka.Config {
	c.TLS.Enabled = true
	c.SASL = kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{
		TokenURL: "https://login.microsoftonline.com/tenant/oauth2/v2.0/token", ClientID: "app",
		ClientSecret: config.SecretFile("/var/run/secrets/kafka/client-secret"), Scopes: []string{"https://ns.servicebus.windows.net/.default"},
	}}
	return c
}

func TestMSKIAMRegionFromTheEnvironment(t *testing.T) {
	c := mskConfig(kafka.Default("x"))
	c.Brokers = []string{"kafka.internal:9098"}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "brokers: aws_msk_iam signs for the region in the broker hostname") {
		t.Fatalf("no region: %v", err)
	}
	t.Setenv("AWS_DEFAULT_REGION", "eu-central-1")
	if err := c.Validate(); err != nil {
		t.Fatalf("AWS_DEFAULT_REGION: %v", err)
	}
	// An assumed role needs the region for STS: the brokers', here.
	c = mskConfig(kafka.Default("x"))
	c.SASL.AWS.Credentials.RoleARN = "arn:aws:iam::123456789012:role/r"
	t.Setenv("AWS_DEFAULT_REGION", "")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSASLConfigFromYAML(t *testing.T) {
	var c struct {
		Kafka kafka.Config `yaml:"kafka"`
	}
	c.Kafka = kafka.Default("x")
	err := config.Parse([]byte(`
kafka:
  brokers: [b-1.audit.abc123.c2.kafka.eu-west-1.amazonaws.com:9098]
  tls: {enabled: true}
  sasl:
    mechanism: aws_msk_iam
    aws:
      user_agent: audit-team
      credentials:
        role_arn: arn:aws:iam::123456789012:role/auditstream-msk
        external_id: {file: /var/run/secrets/aws/external-id}
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kafka.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Kafka.SASL.AWS; got.UserAgent != "audit-team" || got.Credentials.RoleARN != "arn:aws:iam::123456789012:role/auditstream-msk" || got.Credentials.ExternalID.Source() != "file /var/run/secrets/aws/external-id" {
		t.Errorf("%+v", got)
	}
	c.Kafka = kafka.Default("x")
	err = config.Parse([]byte(`
kafka:
  tls: {enabled: true}
  sasl:
    mechanism: oauthbearer
    oauth:
      token_url: https://login.microsoftonline.com/tenant/oauth2/v2.0/token
      client_id: app
      client_secret: {file: /var/run/secrets/kafka/client-secret}
      scopes: [https://ns.servicebus.windows.net/.default]
      params: {resource: x}
      extensions: {logicalCluster: lkc-1}
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kafka.Validate(); err != nil {
		t.Fatal(err)
	}
	o := c.Kafka.SASL.OAuth
	if o.ClientSecret.Source() != "file /var/run/secrets/kafka/client-secret" || o.Scopes[0] != "https://ns.servicebus.windows.net/.default" || o.Params["resource"] != "x" || o.Extensions["logicalCluster"] != "lkc-1" {
		t.Errorf("%+v", o)
	}
}

func TestDefault(t *testing.T) {
	c := kafka.Default("svc")
	if c.ClientID != "svc" || c.Topics.Events.Name != "audit.events" || c.Topics.DeadLetter.Name != "audit.events.dlq" || !c.Topics.Bootstrap {
		t.Errorf("%+v", c)
	}
	if c.Topics.Events.Retention != 7*24*time.Hour || c.Topics.DeadLetter.Retention != 30*24*time.Hour {
		t.Errorf("retention %v %v", c.Topics.Events.Retention, c.Topics.DeadLetter.Retention)
	}
}

func TestSASLConfigNeverPrintsThePassword(t *testing.T) {
	const pw = "sasl-password-value"
	s := kafka.SASLConfig{Mechanism: "plain", Username: "u", Password: config.SecretLiteral(pw)}
	c := kafka.Default("x")
	c.SASL = s
	for _, out := range []string{s.String(), fmt.Sprintf("%v", s), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c)} {
		if strings.Contains(out, pw) {
			t.Errorf("password printed: %s", out)
		}
	}
	if !strings.Contains(s.String(), "inline") || !strings.Contains(s.String(), "user=u") {
		t.Errorf("String %q", s.String())
	}
}

func TestOptsErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*kafka.Config)
		want   string
	}{
		{"missing ca file", func(c *kafka.Config) {
			c.TLS = kafka.TLSConfig{Enabled: true, CAFile: filepath.Join(dir, "absent.pem")}
		}, "read ca_file"},
		{"ca file without certificate", func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CAFile: notPEM} }, "holds no PEM certificate"},
		{"missing client cert", func(c *kafka.Config) {
			c.TLS = kafka.TLSConfig{Enabled: true, CertFile: filepath.Join(dir, "c"), KeyFile: filepath.Join(dir, "k")}
		}, "cert_file/key_file"},
		{"password file missing", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "plain", Username: "u", Password: config.SecretFile(filepath.Join(dir, "pw"))}
		}, "kafka sasl password (file " + filepath.Join(dir, "pw") + ")"},
		{"password env unset", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "scram-sha-256", Username: "u", Password: config.SecretEnv("KAFKATEST_UNSET_PW")}
		}, "env KAFKATEST_UNSET_PW"},
		{"unknown mechanism", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "gssapi", Username: "u", Password: config.SecretLiteral("p")}
		}, "unknown mechanism"},
		{"oauthbearer token file missing", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{Token: config.SecretFile(filepath.Join(dir, "token"))}}
		}, "kafka sasl oauthbearer token (file " + filepath.Join(dir, "token") + ")"},
		{"oauthbearer client secret unset", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{TokenURL: "https://idp.example/token", ClientID: "c", ClientSecret: config.SecretEnv("KAFKATEST_UNSET_SECRET")}}
		}, "client_secret (env KAFKATEST_UNSET_SECRET)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := kafka.Default("x")
			tc.mutate(&c)
			_, err := kafka.Opts(c, zap.NewNop(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if _, err := kafka.NewClient(c, zap.NewNop(), nil); err == nil {
				t.Error("NewClient built a client")
			}
		})
	}
}

type tempErr struct{}

func (tempErr) Error() string   { return "temporary" }
func (tempErr) Timeout() bool   { return true }
func (tempErr) Temporary() bool { return true }

func TestIsRetryable(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("boom"), false},
		{"not leader", kerr.NotLeaderForPartition, true},
		{"not enough replicas", kerr.NotEnoughReplicas, true},
		{"wrapped retriable", fmt.Errorf("write: %w", kerr.RequestTimedOut), true},
		{"invalid record", kerr.InvalidRecord, false},
		{"message too large", kerr.MessageTooLarge, false},
		{"authorization", kerr.TopicAuthorizationFailed, false},
		{"deadline", context.DeadlineExceeded, true},
		{"wrapped deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"canceled", context.Canceled, false},
		{"record timeout", kgo.ErrRecordTimeout, true},
		{"buffer full", kgo.ErrMaxBuffered, true},
		{"dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"net error", tempErr{}, true},
	}
	for _, tc := range cases {
		if got := kafka.IsRetryable(tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestManagedSASLConfigNeverPrintsSecrets(t *testing.T) {
	const secret, token, ext = "cc-secret-Hh71", "bearer-token-Tt42", "external-id-Ee19"
	for _, s := range []kafka.SASLConfig{
		{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{TokenURL: "https://idp.example/token", ClientID: "app", ClientSecret: config.SecretLiteral(secret)}},
		{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{Token: config.SecretLiteral(token)}},
		{Mechanism: "aws_msk_iam", AWS: kafka.MSKIAMConfig{Credentials: awsauth.Credentials{
			AccessKeyID: config.SecretLiteral("AKIA" + secret), SecretAccessKey: config.SecretLiteral(secret), RoleARN: "arn:aws:iam::123456789012:role/r", ExternalID: config.SecretLiteral(ext),
		}}},
	} {
		c := kafka.Default("x")
		c.SASL = s
		for _, out := range []string{s.String(), fmt.Sprintf("%v", s), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
			for _, v := range []string{secret, token, ext} {
				if strings.Contains(out, v) {
					t.Errorf("secret printed: %s", out)
				}
			}
		}
		t.Log(s.String())
	}
}
