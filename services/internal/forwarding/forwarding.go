// Package forwarding is the whole of a real-time forwarder but its sink: the
// command line, configuration, the destinations watcher, the delivery
// runtime, the status endpoint and signal handling. A forwarder service
// (Datadog, EventBridge, OTLP) is a Spec and a thin main; its sinks are
// built as the registry (sinks) says for its connection type.
package forwarding

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/auditstream/auditstream/services/internal/cmdline"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/consumer"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/server"
	"github.com/auditstream/auditstream/services/internal/sinks"
	"github.com/auditstream/auditstream/services/internal/version"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Spec is what makes a forwarder particular.
type Spec struct {
	// Name names the forwarder in metrics and headers, its consumer group
	// (auditstream-<name>) and its retry topic (audit.events.retry.<name>).
	Name string
	// Binary is the command's name, e.g. "datadog-forwarder".
	Binary string
	// Type is the destinations connection type it delivers to; its sinks
	// are built as sinks.Lookup(Type) says (the forwarder imports the
	// type's registration, sinks/<type>).
	Type string
	// DefaultAddr is the default HTTP listen address.
	DefaultAddr string
	// Short and Long describe the command.
	Short, Long string
	// Check, when set, replaces the registered Kind's Check, which
	// validates one connection's settings; a destinations file with a
	// connection that fails it is refused as a whole (at start and reload).
	Check func(c *destinations.Connection) error
	// Setup, when set, runs once at start and returns the factory of
	// per-connection sinks, for a forwarder with more to do than the
	// registered Kind's New (see NewSinkFactory). Work it starts must end
	// with ctx.
	Setup func(ctx context.Context, env Env) (delivery.SinkFactory, error)
	// DeliveryDefaults, when set, adjusts the runtime's defaults for this
	// destination before the file and environment apply.
	DeliveryDefaults func(c *delivery.Config)
}

// kind is the registered Kind of the spec's type.
func (spec Spec) kind() (sinks.Kind, error) {
	k, ok := sinks.Lookup(spec.Type)
	if !ok {
		return sinks.Kind{}, fmt.Errorf("%s: no sink is registered for connection type %q (import its registration, sinks/%s)", spec.Binary, spec.Type, spec.Type)
	}
	return k, nil
}

// check is the spec's Check, or its Kind's.
func (spec Spec) check() (func(c *destinations.Connection) error, error) {
	if spec.Check != nil {
		return spec.Check, nil
	}
	k, err := spec.kind()
	if err != nil {
		return nil, err
	}
	return k.Check, nil
}

// setup is the spec's Setup, or a factory of its Kind's sinks.
func (spec Spec) setup(ctx context.Context, env Env) (delivery.SinkFactory, error) {
	if spec.Setup != nil {
		return spec.Setup(ctx, env)
	}
	k, err := spec.kind()
	if err != nil {
		return nil, err
	}
	return NewSinkFactory(env, spec.Type, k), nil
}

// NewSinkFactory builds connections' sinks with k.New and logs each one
// built ("<typ> connection ready") with the fields k.Describe gives, which
// hold no secret.
func NewSinkFactory(env Env, typ string, k sinks.Kind) delivery.SinkFactory {
	return func(c *destinations.Connection) (delivery.EntrySink, error) {
		s, err := k.New(c)
		if err != nil {
			return nil, err
		}
		fields := []zap.Field{zap.String("connection", c.Name)}
		if k.Describe != nil {
			fields = append(fields, k.Describe(c)...)
		}
		env.Logger.Info(typ+" connection ready", fields...)
		return s, nil
	}
}

// Env is what Setup may use.
type Env struct {
	Logger   *zap.Logger
	Registry prometheus.Registerer
}

// Config is a forwarder's configuration file.
type Config struct {
	Log          logging.Config      `yaml:"log"`
	HTTP         server.Config       `yaml:"http"`
	Kafka        kafka.Config        `yaml:"kafka"`
	Delivery     delivery.Config     `yaml:"delivery"`
	Destinations destinations.Config `yaml:"destinations"`
	// Status is how the forwarder publishes its connections' health to
	// the status topic (kafka.topics.status) the destinations API reads.
	Status connstatus.Config `yaml:"status"`
}

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig(spec Spec) Config {
	c := Config{
		Log:          logging.Default(),
		HTTP:         server.Default(spec.DefaultAddr),
		Kafka:        kafka.Default("auditstream-" + spec.Binary),
		Delivery:     delivery.DefaultConfig(spec.Name),
		Destinations: destinations.DefaultConfig(),
		Status:       connstatus.DefaultConfig(),
	}
	if spec.DeliveryDefaults != nil {
		spec.DeliveryDefaults(&c.Delivery)
	}
	return c
}

// Validate reports every problem in the configuration.
func (c *Config) Validate() error {
	var errs config.Errors
	errs.Add("log", c.Log.Validate())
	errs.Add("http", c.HTTP.Validate())
	errs.Add("kafka", c.Kafka.Validate())
	errs.Add("delivery", c.Delivery.Validate())
	errs.Add("destinations", c.Destinations.Validate())
	errs.Add("status", c.Status.Validate())
	return errs.Err()
}

// CommandLine is the forwarder's command line: --config, --check-config (which
// also checks every connection of the forwarder's type in the destinations
// file) and Run.
func CommandLine(spec Spec) cmdline.Service[Config, *Config] {
	return cmdline.Service[Config, *Config]{
		Use:      spec.Binary,
		Short:    spec.Short,
		Long:     spec.Long,
		Defaults: func() Config { return DefaultConfig(spec) },
		Check: func(cfg Config) error {
			if cfg.Destinations.File == "" {
				return nil
			}
			check, err := spec.check()
			if err != nil {
				return err
			}
			table, err := destinations.Load(cfg.Destinations.File)
			if err != nil {
				return err
			}
			return destinations.CheckType(spec.Type, check)(table)
		},
		Run: func(ctx context.Context, cfg Config) error { return Run(ctx, spec, cfg) },
	}
}

// Execute runs the command line and returns the exit code.
func Execute(ctx context.Context, spec Spec, args, env []string, stdout, stderr io.Writer) int {
	return CommandLine(spec).Execute(ctx, args, env, stdout, stderr)
}

// Main is a forwarder's whole main: signals, command line, exit code.
func Main(spec Spec) { CommandLine(spec).Main() }

// Run forwards until ctx ends, then flushes what it holds and commits.
func Run(ctx context.Context, spec Spec, cfg Config) error {
	log, err := logging.New(cfg.Log, spec.Binary)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	srv := server.New(cfg.HTTP, log)

	check, err := spec.check()
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	dests, err := destinations.Follow(ctx, cfg.Destinations, cfg.Kafka, []string{spec.Type}, destinations.CheckType(spec.Type, check), log, srv.Registry)
	if err != nil {
		return err
	}
	defer dests.Close()
	watcher := dests.Watcher
	if n := len(watcher.Current().ForType(spec.Type).Routes()); n == 0 && dests.Store == nil {
		log.Warn("no route to a "+spec.Type+" connection is configured: events are read and committed but sent nowhere until the destinations file names one",
			zap.String("destinations_file", cfg.Destinations.File))
	}

	newSink, err := spec.setup(ctx, Env{Logger: log, Registry: srv.Registry})
	if err != nil {
		return err
	}
	var rt *delivery.Runtime
	var pub *connstatus.Publisher
	if cfg.Status.Publish {
		pub, err = connstatus.NewPublisher(ctx, connstatus.PublisherOptions{
			Kafka: cfg.Kafka, Consumer: spec.Name, Interval: cfg.Status.Interval, Logger: log, Registry: srv.Registry,
			Source: func() []connstatus.Status { return PublishedStatus(rt.Status()) },
		})
		if err != nil {
			return err
		}
		defer pub.Close()
	}
	rt, err = delivery.New(delivery.Options{
		Name:     spec.Name,
		Config:   cfg.Delivery,
		Kafka:    cfg.Kafka,
		Logger:   log,
		Registry: srv.Registry,
		Router:   delivery.WatchRouter(watcher, spec.Type),
		NewSink:  newSink,
	})
	if err != nil {
		return err
	}
	if pub != nil {
		rt.OnStatusChange(pub.Kick)
	}
	srv.AddCheck("kafka", rt.Ready)
	srv.AddCheck("destinations", dests.Ready)
	srv.Handle("GET /status", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Connections []delivery.ConnectionStatus `json:"connections"`
			Routes      string                      `json:"destinations_version"`
		}{rt.Status(), watcher.Current().ForType(spec.Type).Version()})
	}))
	if err := srv.Listen(); err != nil {
		return err
	}

	wait := consumer.ServeAndWatch(ctx, log, srv, dests)
	log.Info(spec.Binary+" started", zap.String("version", version.Version), zap.String("addr", srv.Addr()), zap.Strings("brokers", cfg.Kafka.Brokers),
		zap.String("group", cfg.Delivery.Group), zap.String("destinations_file", cfg.Destinations.File), zap.Bool("destinations_topic", cfg.Destinations.Topic))
	// Routing before every account's configuration is read would commit
	// events of the accounts not read yet without delivering them.
	if err = dests.WaitReady(ctx); err == nil {
		stopPublishing := func() {}
		if pub != nil {
			stopPublishing = consumer.RunPublisher(ctx, pub)
		}
		err = rt.Run(ctx)
		// withdraws this replica's records once it delivers no more
		stopPublishing()
	} else if ctx.Err() != nil {
		err = nil
	}
	stop()
	wait()
	log.Info(spec.Binary + " stopped")
	return err
}

// PublishedStatus is the runtime's status as the status topic carries it.
func PublishedStatus(in []delivery.ConnectionStatus) []connstatus.Status {
	out := make([]connstatus.Status, 0, len(in))
	for _, c := range in {
		out = append(out, connstatus.Status{
			Connection: c.Name, Healthy: c.Healthy, FailedSince: c.UnhealthySince, LastSuccess: c.LastSuccess,
			LastError: c.LastError, LastErrorAt: c.LastErrorAt, Delivered: c.Delivered, DeliveredToday: c.DeliveredToday, Day: c.Day,
			Parked: c.Parked, DeadLettered: c.DeadLettered, Filtered: c.Filtered, FilterErrors: c.FilterErrors, OldestUndelivered: c.OldestUndelivered,
		})
	}
	return out
}
