package forwarder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/auditstream/auditstream/services/datadog-forwarder/internal/datadog"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// Command is the binary's command line.
func Command(env []string) *cobra.Command {
	var configPath string
	var checkOnly bool
	cmd := &cobra.Command{
		Use:   "datadog-forwarder",
		Short: "Stream audit events from Kafka to each account's Datadog connections",
		Long: `datadog-forwarder reads audit events from Kafka and sends each one to the
Datadog connections its account routes to (see the destinations file), as
logs in the shape of Scalr's audit-log example. Settings come from --config
(YAML) and AUDITSTREAM_* environment variables. SIGHUP reloads the
destinations file at once (it is also polled for changes).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := DefaultConfig()
			if err := config.Load(configPath, env, &cfg); err != nil {
				return err
			}
			if checkOnly {
				if _, err := destinations.Load(cfg.Destinations.File); err != nil {
					return err
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "config is valid")
				return err
			}
			return Run(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "path to the YAML config file")
	cmd.Flags().BoolVar(&checkOnly, "check-config", false, "validate the configuration and the destinations file, then exit")
	return cmd
}

// Execute runs the command line and returns the exit code.
func Execute(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	cmd := Command(env)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "datadog-forwarder:", err)
		return 1
	}
	return 0
}

// decodeConnection reads a Datadog connection's settings strictly.
func decodeConnection(c *destinations.Connection) (datadog.Config, error) {
	var dc datadog.Config
	if err := c.Decode(&dc); err != nil {
		return dc, err
	}
	dc = dc.WithDefaults()
	if err := dc.Validate(); err != nil {
		return dc, fmt.Errorf("%s: %w", c.SettingsPath(), err)
	}
	return dc, nil
}

// connectionSink is one connection's encoder and sink.
type connectionSink struct {
	*datadog.Encoder
	*datadog.Sink
}

// Run forwards until ctx ends, then flushes what it holds and commits.
func Run(ctx context.Context, cfg Config) error {
	log, err := logging.New(cfg.Log, "datadog-forwarder")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	srv := server.New(cfg.HTTP, log)
	reg := srv.Registry

	atRisk := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "auditstream_datadog_at_risk_total",
		Help: "Events sent while older than Datadog's 18 h ingestion window; Datadog may drop them.",
	})
	reg.MustRegister(atRisk)
	var atRiskPending atomic.Int64

	watcher, err := destinations.NewWatcher(destinations.Options{
		Path:         cfg.Destinations.File,
		PollInterval: cfg.Destinations.PollInterval,
		Check: destinations.CheckType(destinations.TypeDatadog, func(c *destinations.Connection) error {
			_, err := decodeConnection(c)
			return err
		}),
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	if n := len(watcher.Current().ForType(destinations.TypeDatadog).Routes()); n == 0 {
		log.Warn("no Datadog route is configured: events are read and committed but sent nowhere until the destinations file names one",
			zap.String("destinations_file", cfg.Destinations.File))
	}

	rt, err := delivery.New(delivery.Options{
		Name:     Name,
		Config:   cfg.Delivery,
		Kafka:    cfg.Kafka,
		Logger:   log,
		Registry: reg,
		Router:   delivery.WatchRouter(watcher, destinations.TypeDatadog),
		NewSink: func(c *destinations.Connection) (delivery.EntrySink, error) {
			dc, err := decodeConnection(c)
			if err != nil {
				return nil, err
			}
			sink, err := datadog.New(dc, datadog.Options{AtRisk: func(n int) {
				atRisk.Add(float64(n))
				atRiskPending.Add(int64(n))
			}})
			if err != nil {
				return nil, err
			}
			return connectionSink{dc.Encoder(), sink}, nil
		},
	})
	if err != nil {
		return err
	}
	srv.AddCheck("kafka", rt.Ready)
	srv.Handle("GET /status", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Connections []delivery.ConnectionStatus `json:"connections"`
			Routes      string                      `json:"destinations_version"`
		}{rt.Status(), watcher.Current().Version()})
	}))
	if err := srv.Listen(); err != nil {
		return err
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{}, 3)
	go func() { defer func() { done <- struct{}{} }(); _ = watcher.Run(ctx) }()
	go func() {
		defer func() { done <- struct{}{} }()
		if err := srv.Serve(ctx); err != nil {
			log.Error("http server", zap.Error(err))
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		reportAtRisk(ctx, log, &atRiskPending)
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := watcher.Reload(); err != nil {
					log.Error("reload destinations", zap.Error(err))
				}
			}
		}
	}()

	log.Info("datadog forwarder started", zap.String("addr", srv.Addr()), zap.Strings("brokers", cfg.Kafka.Brokers),
		zap.String("group", cfg.Delivery.Group), zap.String("destinations_file", cfg.Destinations.File))
	err = rt.Run(ctx)
	stop()
	for range 3 {
		<-done
	}
	log.Info("datadog forwarder stopped")
	return err
}

// reportAtRisk logs, at most once a minute, how many events were sent older
// than Datadog's ingestion window.
func reportAtRisk(ctx context.Context, log *zap.Logger, pending *atomic.Int64) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n := pending.Swap(0); n > 0 {
				log.Warn("sent events older than Datadog's 18h window; Datadog may not index them", zap.Int64("events", n))
			}
		}
	}
}
