// Package archiver is the archiver service: it consumes the events topic in
// its own consumer group, cuts each partition's events into groups by window
// of event time, and writes each group as one immutable object per account,
// with a signed manifest chain, into the account's storage connections.
package archiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/consumer"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/logging"
	"github.com/auditstream/auditstream/services/internal/objstore"
	_ "github.com/auditstream/auditstream/services/internal/objstore/all" // every store kind
	"github.com/auditstream/auditstream/services/internal/server"
	"github.com/auditstream/auditstream/services/internal/version"
)

// StorageType is the destinations connection type the archiver writes to.
const StorageType = "storage"

// CheckStorage validates one storage connection's settings.
func CheckStorage(c *destinations.Connection) error {
	_, err := destinations.DecodeSettings[objstore.Settings](c)
	return err
}

// Service is a running archiver.
type Service struct {
	cfg     Config
	log     *zap.Logger
	metrics *metrics
	watcher *destinations.Watcher
	dests   *destinations.Following
	writer  *archive.Writer
	// digester writes day digests while this instance owns partition 0.
	digester *archive.Digester
	stores   *storeCache
	cl       *kgo.Client
	adm      *kadm.Client
	// clientSet is closed once cl and adm are set: the group may assign
	// partitions, and call back, before NewClient has even returned.
	clientSet chan struct{}

	// filed counts records taken off the topic (archived, skipped or
	// dead-lettered); archived counts events in objects created or
	// confirmed. For status and benchmarks.
	filed    atomic.Int64
	archived atomic.Int64
	// health is each storage connection's status, for the status topic.
	health *connstatus.Tracker

	// uploads bounds the objects being built and written at once across
	// all partitions: each holds a compressor and buffers.
	uploads chan struct{}

	mu      sync.Mutex
	workers map[int32]*worker
	fatal   chan error
	now     func() time.Time
}

// Run archives until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log, err := logging.New(cfg.Log, "archiver")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	srv := server.New(cfg.HTTP, log)
	s, err := New(ctx, cfg, log, srv.Registry)
	if err != nil {
		return err
	}
	srv.AddCheck("kafka", func(ctx context.Context) error { return s.cl.Ping(ctx) })
	srv.AddCheck("spool", func(context.Context) error { return checkWritable(cfg.Archive.SpoolDir) })
	srv.Handle("GET /status", http.HandlerFunc(s.serveStatus))
	if err := srv.Listen(); err != nil {
		s.cl.Close()
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	srv.AddCheck("destinations", s.dests.Ready)
	wait := consumer.ServeAndWatch(ctx, log, srv, s.dests)
	log.Info("archiver started", zap.String("version", version.Version), zap.String("addr", srv.Addr()),
		zap.Strings("brokers", cfg.Kafka.Brokers), zap.String("group", cfg.Archive.Group),
		zap.Duration("window", cfg.Archive.Window), zap.Duration("grace", cfg.Archive.Grace),
		zap.String("spool_dir", cfg.Archive.SpoolDir), zap.Bool("signed", cfg.Archive.SigningKey.IsSet()))
	stopPublishing := func() {}
	if cfg.Status.Publish {
		pub, err := connstatus.NewPublisher(ctx, connstatus.PublisherOptions{
			Kafka: cfg.Kafka, Consumer: Name, Interval: cfg.Status.Interval, Logger: log, Registry: srv.Registry,
			Source: s.health.Snapshot,
		})
		if err != nil {
			stop()
			wait()
			s.dests.Close()
			return err
		}
		defer pub.Close()
		s.health.OnChange = pub.Kick
		stopPublishing = consumer.RunPublisher(ctx, pub)
	}
	err = s.Consume(ctx)
	stopPublishing()
	stop()
	wait()
	s.dests.Close()
	log.Info("archiver stopped")
	return err
}

// New builds the service: destinations, stores, Kafka client.
func New(ctx context.Context, cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Service, error) {
	return newService(ctx, cfg, log, reg, time.Now)
}

// newService is New with the clock that decides when windows close; it is
// set before the client exists, since partitions may be assigned, and
// their workers read it, from then on.
func newService(ctx context.Context, cfg Config, log *zap.Logger, reg prometheus.Registerer, now func() time.Time) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Archive.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("archive.spool_dir: %w", err)
	}
	if err := checkWritable(cfg.Archive.SpoolDir); err != nil {
		return nil, fmt.Errorf("archive.spool_dir: %w", err)
	}
	signer, err := cfg.Archive.signer()
	if err != nil {
		return nil, err
	}
	if signer == nil {
		log.Warn("archive.signing_key is not set: manifests are written unsigned (hashes and chain links are still checked)")
	}
	dests, err := destinations.Follow(ctx, cfg.Destinations, cfg.Kafka, []string{StorageType}, destinations.CheckType(StorageType, CheckStorage), log, reg)
	if err != nil {
		return nil, err
	}
	watcher := dests.Watcher
	if n := len(watcher.Current().ForType(StorageType).Routes()); n == 0 && dests.Store == nil {
		log.Warn("no route to a storage connection is configured: events are read and committed but archived nowhere until the destinations file names one",
			zap.String("destinations_file", cfg.Destinations.File))
	}
	s := &Service{
		cfg: cfg, log: log, metrics: newMetrics(reg), watcher: watcher, dests: dests,
		writer: archive.NewWriter(signer), digester: archive.NewDigester(signer), stores: newStoreCache(log),
		workers: map[int32]*worker{}, fatal: make(chan error, 1), clientSet: make(chan struct{}), now: now, health: connstatus.NewTracker(),
		uploads: make(chan struct{}, cfg.Archive.UploadConcurrency),
	}
	cl, err := kafka.NewClient(cfg.Kafka, log, reg,
		kgo.ConsumerGroup(cfg.Archive.Group),
		kgo.ConsumeTopics(cfg.Kafka.Topics.Events.Name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Fetched records wait in memory until their partition files them;
		// small fetches keep that bounded while the spool does the holding.
		kgo.FetchMaxBytes(8<<20),
		kgo.FetchMaxPartitionBytes(1<<20),
		kgo.SessionTimeout(cfg.Archive.SessionTimeout),
		kgo.RebalanceTimeout(cfg.Archive.RebalanceTimeout),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	)
	if err != nil {
		return nil, err
	}
	s.cl, s.adm = cl, kadm.NewClient(cl)
	close(s.clientSet)
	if cfg.Kafka.Topics.Bootstrap {
		if err := kafka.BootstrapTopics(ctx, cl, log, cfg.Kafka.Topics.Events, cfg.Kafka.Topics.DeadLetter); err != nil {
			cl.Close()
			return nil, err
		}
	}
	return s, nil
}

// Consume runs the poll loop until ctx ends or a partition fails for good.
// It starts once the destinations topic has been read: archiving before
// every account's storage is known would commit events it archived nowhere.
// The caller runs the destinations (ServeAndWatch).
func (s *Service) Consume(ctx context.Context) error {
	defer s.stores.closeAll()
	if err := s.dests.WaitReady(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var runErr error
	for {
		fetches := s.cl.PollRecords(ctx, 10_000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			break
		}
		select {
		case runErr = <-s.fatal:
		default:
		}
		if runErr != nil {
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.log.Warn("fetch", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
			}
		})
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			s.mu.Lock()
			w := s.workers[fp.Partition]
			s.mu.Unlock()
			if w == nil {
				return
			}
			last := fp.Records[len(fp.Records)-1].Offset
			s.metrics.lag.WithLabelValues(strconv.Itoa(int(fp.Partition))).Set(float64(max(0, fp.HighWatermark-last-1)))
			select {
			case w.recs <- fp.Records:
			case <-w.quit:
			case <-w.done: // it stopped on an error: Consume ends below
			case <-ctx.Done():
			}
		})
		s.cl.AllowRebalance()
	}
	s.stopAll(true)
	// Polling blocked rebalances; leaving the group is one.
	s.cl.AllowRebalance()
	s.cl.Close()
	if runErr == nil {
		select {
		case runErr = <-s.fatal:
		default:
		}
	}
	return runErr
}

func (s *Service) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	parts := assigned[s.cfg.Kafka.Topics.Events.Name]
	if len(parts) == 0 {
		return
	}
	select {
	case <-s.clientSet:
	case <-ctx.Done():
		return
	}
	var committed kadm.OffsetResponses
	for attempt := 0; ; attempt++ {
		var err error
		committed, err = s.adm.FetchOffsets(ctx, s.cfg.Archive.Group)
		if err == nil {
			err = committed.Error()
		}
		if err == nil || ctx.Err() != nil {
			break
		}
		s.log.Warn("fetch committed offsets", zap.Int("attempt", attempt), zap.Error(err))
		time.Sleep(min(time.Duration(attempt+1)*200*time.Millisecond, 2*time.Second))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		offset, meta := int64(-1), ""
		if r, ok := committed.Lookup(s.cfg.Kafka.Topics.Events.Name, p); ok && r.Err == nil && r.At >= 0 {
			offset, meta = r.At, r.Metadata
		}
		st, err := archive.NewPartition(s.cfg.Archive.partitionConfig(), p, offset, meta)
		if err != nil {
			// Metadata not written by this archiver: start clean from the
			// committed offset, which is all it can tell.
			s.log.Error("ignoring committed metadata", zap.Int32("partition", p), zap.Error(err))
			st, _ = archive.NewPartition(s.cfg.Archive.partitionConfig(), p, offset, "")
		}
		w := newWorker(s, p, st)
		s.workers[p] = w
		if p == 0 {
			// One digest writer per group: the owner of partition 0, for as
			// long as it owns it.
			w.digestsDone = make(chan struct{})
			go func() {
				defer close(w.digestsDone)
				s.runDigests(w.ctx)
			}()
		}
		go w.run()
		s.log.Info("partition assigned", zap.Int32("partition", p), zap.Int64("committed", offset), zap.String("checkpoint", meta))
	}
}

func (s *Service) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.stop(revoked[s.cfg.Kafka.Topics.Events.Name], true)
}

func (s *Service) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.stop(lost[s.cfg.Kafka.Topics.Events.Name], false)
}

func (s *Service) stop(parts []int32, commit bool) {
	s.mu.Lock()
	var ws []*worker
	for _, p := range parts {
		if w := s.workers[p]; w != nil {
			ws = append(ws, w)
			delete(s.workers, p)
		}
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.stop(commit)
	}
	for _, w := range ws {
		<-w.done
		s.metrics.lag.DeleteLabelValues(strconv.Itoa(int(w.part)))
		s.log.Info("partition released", zap.Int32("partition", w.part))
	}
}

func (s *Service) stopAll(commit bool) {
	s.mu.Lock()
	parts := make([]int32, 0, len(s.workers))
	for p := range s.workers {
		parts = append(parts, p)
	}
	s.mu.Unlock()
	s.stop(parts, commit)
}

func (s *Service) fail(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

// targets are the stores an account's events are archived to now.
func (s *Service) targets(account string) []archive.Target {
	conns := s.watcher.Current().ForType(StorageType).Route(account)
	if len(conns) == 0 {
		return nil
	}
	out := make([]archive.Target, 0, len(conns))
	for _, c := range conns {
		t := archive.Target{Name: c.Name, Store: s.stores.get(c)}
		t.Policy, t.PolicyErr = c.Policy()
		out = append(out, t)
	}
	return out
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("spool directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}
