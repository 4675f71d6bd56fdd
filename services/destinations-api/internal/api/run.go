package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/destinations-api/internal/console"
	"github.com/auditstream/auditstream/services/internal/bearer"
	"github.com/auditstream/auditstream/services/internal/cmdline"
	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/secretbox"
	"github.com/auditstream/auditstream/services/internal/server"
	"github.com/auditstream/auditstream/services/internal/version"
)

// CommandLine is the service's command line: --config, --check-config and
// Run.
var CommandLine = cmdline.Service[Config, *Config]{
	Use:   Name,
	Short: "Let account admins manage their audit-log destinations through a REST API",
	Long: `destinations-api serves /v1: each account's connections (Datadog,
EventBridge), storage profiles (S3, GCS, Azure Blob) and audit-log settings.
What it is told is written to the compacted destinations topic, which every
consumer reads; secrets are sealed with envelope encryption and never
returned. Settings come from --config (YAML) and AUDITSTREAM_* environment
variables.`,
	Defaults: DefaultConfig,
	Run:      Run,
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	return CommandLine.Execute(ctx, args, env, stdout, stderr)
}

// Service is a running API: its store, key ring and event producer.
type Service struct {
	API   *API
	store *destinations.Store
	file  *destinations.Watcher
	close func()
}

// New builds the service; Start runs its store.
func New(ctx context.Context, cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, err := loadArchiveKeys(cfg.Archive.PublicKeys)
	if err != nil {
		return nil, err
	}
	kek, err := secretbox.NewKEK(ctx, cfg.Encryption, log)
	if err != nil {
		return nil, fmt.Errorf("encryption: %w", err)
	}
	store, err := destinations.NewStore(ctx, destinations.StoreOptions{Kafka: cfg.Kafka, Logger: log, Registerer: reg, Writer: true})
	if err != nil {
		return nil, err
	}
	client, err := kafka.NewClient(cfg.Kafka, log, reg)
	if err != nil {
		store.Close()
		return nil, err
	}
	status, err := connstatus.NewReader(ctx, cfg.Kafka, log)
	if err != nil {
		client.Close()
		store.Close()
		return nil, err
	}
	s := &Service{store: store, close: func() { client.Close(); store.Close(); status.Close() }}
	if cfg.Kafka.Topics.Bootstrap {
		// Changes are recorded as audit events of the account.
		if err := kafka.EnsureTopics(ctx, client, cfg.Kafka.Topics.Events); err != nil {
			s.close()
			return nil, err
		}
	}
	file := func() *destinations.Table { return nil }
	if cfg.API.DestinationsFile != "" {
		w, err := destinations.NewWatcher(destinations.Options{Path: cfg.API.DestinationsFile, Logger: log})
		if err != nil {
			s.close()
			return nil, err
		}
		s.file, file = w, w.Current
	}
	s.API = &API{
		cfg: cfg, store: store, status: status, sealer: sealer{secretbox.New(kek)}, auth: bearer.New(cfg.Auth),
		events: producer.New(client, cfg.Kafka.Topics.Events.Name), file: file, log: log,
		metrics: newAPIMetrics(reg), now: time.Now, archiveKeys: keys,
	}
	if cfg.Auth.Disabled {
		log.Warn("auth.disabled is set: every request may manage every account's destinations")
	}
	return s, nil
}

// Start runs the store (and the destinations file's watcher) until ctx
// ends; wait returns once they stopped.
func (s *Service) Start(ctx context.Context, log *zap.Logger) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.store.Run(ctx); err != nil {
			log.Error("destinations topic", zap.Error(err))
		}
	})
	wg.Go(func() {
		if err := s.API.status.Run(ctx); err != nil {
			log.Error("status topic", zap.Error(err))
		}
	})
	if s.file != nil {
		wg.Go(func() { _ = s.file.Run(ctx) })
	}
	return wg.Wait
}

// WaitReady waits until the store has read the destinations topic, or ctx
// ends.
func (s *Service) WaitReady(ctx context.Context) error { return s.store.WaitReady(ctx) }

// Ready reports whether the store has read the destinations topic.
func (s *Service) Ready(context.Context) error { return s.store.IsReady() }

// Close releases the Kafka clients; call it after wait returned.
func (s *Service) Close() { s.close() }

// Run serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log, err := logging.New(cfg.Log, Name)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	srv := server.New(cfg.HTTP, log)
	svc, err := New(ctx, cfg, log, srv.Registry)
	if err != nil {
		return err
	}
	defer svc.Close()
	srv.Handle("/v1/", svc.API.Handler())
	con, err := console.New(cfg.Console, svc.API, log)
	if err != nil {
		return err
	}
	srv.Handle(console.Prefix, con.Handler())
	srv.Handle("/console", con.Handler())
	srv.AddCheck("destinations-topic", svc.Ready)
	if err := srv.Listen(); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	wait := svc.Start(runCtx, log)
	log.Info(Name+" started", zap.String("version", version.Version), zap.String("addr", srv.Addr()),
		zap.Strings("brokers", cfg.Kafka.Brokers), zap.String("topic", cfg.Kafka.Topics.Destinations.Name))
	serveErr := srv.Serve(ctx)
	stop()
	wait()
	log.Info(Name + " stopped")
	if errors.Is(serveErr, context.Canceled) {
		return nil
	}
	return serveErr
}
