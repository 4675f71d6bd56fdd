package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// Opts returns the client options for c: brokers, client id, TLS, SASL,
// timeouts, zap logging through kgo's logger hook, and Prometheus metrics
// registered on reg (nil skips metrics). Add producer or consumer options
// after these.
func Opts(c Config, logger *zap.Logger, reg prometheus.Registerer) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.ProduceRequestTimeout(c.RequestTimeout),
		kgo.RecordDeliveryTimeout(c.RequestTimeout),
		kgo.WithLogger(kzap.New(logger.Named("kafka"), kzap.Level(kgo.LogLevelWarn))),
	}
	dialer := &net.Dialer{Timeout: c.DialTimeout}
	if c.TLS.Enabled {
		tc, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.Dialer((&tls.Dialer{NetDialer: dialer, Config: tc}).DialContext))
	} else {
		opts = append(opts, kgo.Dialer(dialer.DialContext))
	}
	if m, err := saslMechanism(c); err != nil {
		return nil, err
	} else if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if reg != nil {
		metrics := kprom.NewMetrics("auditstream", kprom.Subsystem("kafka"), kprom.Registerer(reg), kprom.Gatherer(prometheus.NewRegistry()))
		opts = append(opts, kgo.WithHooks(metrics))
	}
	return opts, nil
}

// NewClient builds a client from c plus extra options.
func NewClient(c Config, logger *zap.Logger, reg prometheus.Registerer, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := Opts(c, logger, reg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("create kafka client for %s: %w", strings.Join(c.Brokers, ","), err)
	}
	return cl, nil
}

func tlsConfig(c TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in for test clusters
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka tls: ca_file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: load cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// EnsureTopics creates each topic that does not exist yet with its
// partitions, replication and retention. Existing topics are left alone.
func EnsureTopics(ctx context.Context, cl *kgo.Client, specs ...TopicSpec) error {
	adm := kadm.NewClient(cl)
	var errs []error
	for _, t := range specs {
		configs := map[string]*string{}
		if t.Retention > 0 {
			ms := strconv.FormatInt(t.Retention.Milliseconds(), 10)
			configs["retention.ms"] = &ms
		}
		if t.Compacted {
			policy := "compact"
			if t.Retention > 0 {
				policy = "compact,delete"
			}
			configs["cleanup.policy"] = &policy
		}
		resp, err := adm.CreateTopic(ctx, t.Partitions, t.ReplicationFactor, configs, t.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s (partitions %d, replication %d): %w", t.Name, t.Partitions, t.ReplicationFactor, err))
		}
	}
	return errors.Join(errs...)
}

// BootstrapTopics is EnsureTopics for a service starting up: while Kafka
// cannot be reached it tries again every two seconds (each attempt bounded
// by ten) until ctx ends, so a service started during a Kafka outage waits
// for it, as the delivery runtime's bootstrap does, instead of exiting. An
// error Kafka gives for good (a bad replication factor, no permission) is
// returned at once.
func BootstrapTopics(ctx context.Context, cl *kgo.Client, log *zap.Logger, specs ...TopicSpec) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := EnsureTopics(actx, cl, specs...)
		cancel()
		if err == nil || !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		log.Warn("topic bootstrap failed; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}

// IsRetryable reports whether a produce or request error may succeed later:
// broker-side retryable errors, timeouts and connection failures.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if kerr.IsRetriable(err) || kgo.IsRetryableBrokerErr(err) {
		return true
	}
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrRecordTimeout) ||
		errors.Is(err, kgo.ErrMaxBuffered) || errors.As(err, &netErr)
}
