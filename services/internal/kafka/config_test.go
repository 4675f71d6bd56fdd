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
		{"everything wrong at once", func(c *kafka.Config) {
			*c = kafka.Config{SASL: kafka.SASLConfig{Mechanism: "x"}, TLS: kafka.TLSConfig{CertFile: "c"}}
		}, []string{"brokers", "client_id", "dial_timeout", "request_timeout", "tls", "tls.enabled", "sasl.mechanism", "topics.events.name", "topics.events.partitions", "topics.dead_letter.name"}},
	}
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
			c.SASL = kafka.SASLConfig{Mechanism: "oauthbearer", Username: "u", Password: config.SecretLiteral("p")}
		}, "unknown mechanism"},
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
