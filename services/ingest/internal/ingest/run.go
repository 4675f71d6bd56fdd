package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/auditstream/auditstream/services/internal/cmdline"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/server"
	"github.com/auditstream/auditstream/services/internal/version"
	"go.uber.org/zap"
)

// CommandLine is the ingest binary's command line: --config, --check-config
// and Run.
var CommandLine = cmdline.Service[Config, *Config]{
	Use:   "ingest",
	Short: "Accept audit events over HTTP and Connect/gRPC and write them to Kafka",
	Long: `ingest accepts audit events (POST /v1/events, or the Connect/gRPC
auditlog.v1.IngestService) and answers 202 only once Kafka acknowledged every
event. Settings come from --config (YAML) and AUDITSTREAM_* environment
variables, e.g. AUDITSTREAM_KAFKA_BROKERS=kafka:9092.`,
	Defaults: DefaultConfig,
	Run:      Run,
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	return CommandLine.Execute(ctx, args, env, stdout, stderr)
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
