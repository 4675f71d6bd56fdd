package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/server"
	"github.com/auditstream/auditstream/services/internal/version"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// Command is the ingest binary's command line.
func Command(env []string) *cobra.Command {
	var configPath string
	var checkOnly bool
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Accept audit events over HTTP and Connect/gRPC and write them to Kafka",
		Long: `ingest accepts audit events (POST /v1/events, or the Connect/gRPC
auditlog.v1.IngestService) and answers 202 only once Kafka acknowledged every
event. Settings come from --config (YAML) and AUDITSTREAM_* environment
variables, e.g. AUDITSTREAM_KAFKA_BROKERS=kafka:9092.`,
		Version:       version.Version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := DefaultConfig()
			if err := config.Load(configPath, env, &cfg); err != nil {
				return err
			}
			if checkOnly {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "config is valid")
				return err
			}
			return Run(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "path to the YAML config file (defaults apply when empty)")
	cmd.Flags().BoolVar(&checkOnly, "check-config", false, "validate the configuration and exit")
	return cmd
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	cmd := Command(env)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "ingest:", err)
		return 1
	}
	return 0
}

// Run serves until ctx ends, then drains in-flight requests and flushes the
// producer before returning.
func Run(ctx context.Context, cfg Config) error {
	log, err := logging.New(cfg.Log, "ingest")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	srv := server.New(cfg.HTTP, log)
	client, err := kafka.NewClient(cfg.Kafka, log, srv.Registry, ProducerOpts(cfg)...)
	if err != nil {
		return err
	}
	defer client.Close()
	svc := NewService(cfg, client, log, srv.Registry)
	srv.Handle("/", svc.Handler())
	srv.AddCheck("kafka", svc.Ready)
	if err := srv.Listen(); err != nil {
		return err
	}

	probeCtx, stopProbe := context.WithCancel(context.Background())
	defer stopProbe()
	go svc.Run(probeCtx)

	log.Info("ingest started", zap.String("version", version.Version), zap.String("addr", srv.Addr()), zap.Strings("brokers", cfg.Kafka.Brokers),
		zap.String("topic", cfg.Kafka.Topics.Events.Name), zap.Bool("auth_disabled", cfg.Ingest.Auth.Disabled))
	// Serve returns after in-flight requests finished (each waits for its own
	// acknowledgements), so nothing is left unanswered.
	serveErr := srv.Serve(ctx)
	flushCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := client.Flush(flushCtx); err != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("flush producer: %w", err))
	}
	log.Info("ingest stopped")
	return serveErr
}
