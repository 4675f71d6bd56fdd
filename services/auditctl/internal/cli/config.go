package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/auditctl/internal/replay"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/server"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Config is what auditctl reads from --config and AUDITSTREAM_* variables:
// the sections it shares with the forwarders and the archiver, so a
// forwarder's or the archiver's own file can be given as it is. log and http
// are accepted for that reason and unused; of the archive section, the
// archive commands use the filing rules and the signing key.
type Config struct {
	Log          logging.Config      `yaml:"log"`
	HTTP         server.Config       `yaml:"http"`
	Kafka        kafka.Config        `yaml:"kafka"`
	Delivery     delivery.Config     `yaml:"delivery"`
	Destinations destinations.Config `yaml:"destinations"`
	Archive      archive.Config      `yaml:"archive"`
}

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig() Config {
	k := kafka.Default("auditctl")
	k.Brokers = []string{DefaultBrokers}
	return Config{
		Log:          logging.Default(),
		HTTP:         server.Default("127.0.0.1:0"),
		Kafka:        k,
		Delivery:     delivery.DefaultConfig("auditctl"),
		Destinations: destinations.DefaultConfig(),
		Archive:      archive.DefaultConfig(),
	}
}

// Validate checks the sections auditctl uses. The destinations file is
// checked when a command needs it, and so is the archive section's signing
// key (an archiver's key file need not be readable where auditctl runs).
func (c *Config) Validate() error {
	var errs config.Errors
	errs.Add("log", c.Log.Validate())
	errs.Add("kafka", c.Kafka.Validate())
	errs.Add("delivery", c.Delivery.Validate())
	errs.Add("archive", c.Archive.ValidateRules())
	return errs.Err()
}

// globals are the flags every command has.
type globals struct {
	env        Env
	configPath string
	brokers    string
	timeout    time.Duration
}

// load reads the configuration: defaults, --config, AUDITSTREAM_*, then
// --brokers.
// loadWithDefaults is load, then fills an empty *topic with the events
// topic and an empty *destinations (when not nil) with the destinations
// file the configuration names: the defaults of the commands' --topic and
// --destinations flags.
func (g *globals) loadWithDefaults(topic, destinations *string) (*Config, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	if *topic == "" {
		*topic = cfg.Kafka.Topics.Events.Name
	}
	if destinations != nil && *destinations == "" {
		*destinations = cfg.Destinations.File
	}
	return cfg, nil
}

func (g *globals) load() (*Config, error) {
	if g.timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive, not %s", g.timeout)
	}
	var brokers []string
	if g.brokers != "" {
		brokers = splitList(g.brokers)
		if len(brokers) == 0 {
			return nil, errors.New("--brokers must name at least one host:port")
		}
		for _, b := range brokers {
			if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
				return nil, fmt.Errorf("--brokers: %q is not host:port", b)
			}
		}
	}
	cfg := DefaultConfig()
	if err := config.Load(g.configPath, g.env.Environ(), &cfg); err != nil {
		if g.configPath != "" {
			return nil, fmt.Errorf("config %s: %w", g.configPath, err)
		}
		return nil, err
	}
	if brokers != nil {
		cfg.Kafka.Brokers = brokers
	}
	// The first contact must not outwait --timeout.
	cfg.Kafka.DialTimeout = min(cfg.Kafka.DialTimeout, g.timeout)
	return &cfg, nil
}

// connect returns a client to the configured brokers after checking that
// one of them answers within --timeout.
func (g *globals) connect(ctx context.Context, cfg *Config, opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kafka.NewClient(cfg.Kafka, zap.NewNop(), nil, opts...)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := cl.Ping(pingCtx); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s", g.timeout)
		}
		return nil, fmt.Errorf("cannot reach Kafka at %s: %w", strings.Join(cfg.Kafka.Brokers, ","), err)
	}
	return cl, nil
}

// requestContext bounds one admin request by --timeout.
func (g *globals) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.timeout)
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// apiManaged reports whether name is a connection an account configured
// through the destinations API: <account>/<name>, or
// <account>/storage-profiles/<name> for a storage profile.
func apiManaged(name string) bool { return strings.Contains(name, "/") }

// apiTable reads the destinations topic (and the configured file) once,
// with the key ring of destinations.encryption, for a connection an account
// configured through the API.
func (g *globals) apiTable(ctx context.Context, cfg *Config) (*destinations.Table, error) {
	ctx, cancel := context.WithTimeout(ctx, max(g.timeout, time.Minute))
	defer cancel()
	t, err := destinations.Snapshot(ctx, cfg.Destinations, cfg.Kafka, zap.NewNop())
	if err != nil {
		return nil, fmt.Errorf("read the destinations topic %s: %w", cfg.Kafka.Topics.Destinations.Name, err)
	}
	return t, nil
}

// openDestination finds a replay's destination: in the destinations file,
// or, for <account>/<name>, in the destinations topic.
func (g *globals) openDestination(ctx context.Context, cfg *Config, file, name string) (*replay.Destination, error) {
	if !apiManaged(name) {
		return replay.OpenDestination(file, name)
	}
	t, err := g.apiTable(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return replay.OpenDestinationIn(t, "the destinations topic", name)
}

// storageConnections finds the archive's storage connections: in the
// destinations file, or, for <account>/storage-profiles/<name>, in the
// destinations topic.
func (g *globals) storageConnections(ctx context.Context, cfg *Config, file, name string) ([]*destinations.Connection, error) {
	if !apiManaged(name) {
		return storageConnections(file, name)
	}
	t, err := g.apiTable(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return storageConnectionsIn(t, "the destinations topic", name)
}
