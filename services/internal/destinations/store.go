package destinations

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/kafka"
)

// HeaderVersion carries an account configuration's Version on every record
// of the destinations topic, tombstones included.
const HeaderVersion = "auditstream-version"

// ErrConflict reports a write that lost to a concurrent write of the same
// account: its record is on the topic but is not in force.
var ErrConflict = errors.New("the account's configuration was changed concurrently")

// StoreOptions configure a Store.
type StoreOptions struct {
	// Kafka is the client configuration; Topics.Destinations is the topic.
	Kafka kafka.Config
	// Logger receives what the store applies and refuses; nil logs nothing.
	Logger *zap.Logger
	// Registerer receives the store's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Writer makes the store able to Update (the destinations API); readers
	// (the consumers) leave it off.
	Writer bool
	// Types, when set, keeps only resources of these types (what a
	// consumer delivers to), so its memory holds nothing of the others.
	// Only for readers.
	Types []string
}

// Store is the destinations topic read into memory: every account's
// configuration in force. Kafka is the system of record; a Store reads the
// topic from its beginning at start (Ready once it reached the end the topic
// had then) and follows it. It is safe for concurrent use.
//
// Concurrent writers (two API replicas) are made safe by the versions: a
// record is in force only if its Version follows the version in force for
// its account (or the account has none, as after compaction), so of two
// writes based on the same version the first on the topic wins and the
// other is ignored by every reader alike. The loser then writes the winner's
// configuration again as the next version, so the last record of the key,
// which is all compaction keeps, is one that was in force.
type Store struct {
	cl     *kgo.Client
	topic  string
	log    *zap.Logger
	writer bool
	types  []string
	m      storeMetrics

	mu       sync.Mutex
	accounts map[string]*storedAccount
	applied  map[int32]int64 // next offset to apply, per partition
	changed  chan struct{}   // closed and replaced after each applied batch
	hooks    []func(changes map[string]*AccountConfig)
	locks    sync.Map // account -> *sync.Mutex: one writer per account in this process

	ready     chan struct{}
	readyOnce sync.Once
	isReady   atomic.Bool
	failed    chan struct{} // closed when Run failed before ready
	runErr    atomic.Pointer[error]
}

type storedAccount struct {
	cfg    *AccountConfig // nil after a tombstone
	ver    int64
	part   int32
	offset int64
	// recent are the offsets of the account's latest records put in force,
	// newest last, kept by a writer to tell whether its own write won even
	// when later writes already followed it.
	recent []int64
}

const recentInForce = 16

// NewStore connects to the brokers and, when bootstrap is on, creates the
// destinations topic (compacted) if it is missing. Run reads it.
func NewStore(ctx context.Context, o StoreOptions) (*Store, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	topic := o.Kafka.Topics.Destinations
	opts := []kgo.Opt{
		kgo.ConsumeTopics(topic.Name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50 * time.Millisecond),
		kgo.ProducerLinger(0),
	}
	// The store's client keeps its metrics to itself: the service's main
	// client registers the Kafka client metrics.
	cl, err := kafka.NewClient(o.Kafka, o.Logger, nil, opts...)
	if err != nil {
		return nil, err
	}
	if o.Kafka.Topics.Bootstrap {
		if err := kafka.BootstrapTopics(ctx, cl, o.Logger, topic); err != nil {
			cl.Close()
			return nil, err
		}
	}
	return &Store{
		cl: cl, topic: topic.Name, log: o.Logger, writer: o.Writer, types: o.Types, m: newStoreMetrics(o.Registerer),
		accounts: map[string]*storedAccount{}, applied: map[int32]int64{},
		changed: make(chan struct{}), ready: make(chan struct{}), failed: make(chan struct{}),
	}, nil
}

// OnChange registers fn, which receives every change the store applies: the
// accounts whose configuration changed, nil for one deleted. The first call
// has every account in force once the store is ready; later calls have what
// one fetch changed. fn runs on the store's goroutine and must be quick.
// Register before Run.
func (s *Store) OnChange(fn func(changes map[string]*AccountConfig)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
}

// Ready is closed once the store has read the topic up to the end it had
// when Run started.
func (s *Store) Ready() <-chan struct{} { return s.ready }

// IsReady reports whether Ready is closed, for readiness probes.
func (s *Store) IsReady() error {
	if s.isReady.Load() {
		return nil
	}
	return errors.New("destinations topic not read up to its end yet")
}

// WaitReady waits until the store is ready or ctx ends.
func (s *Store) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-s.failed:
		return *s.runErr.Load()
	case <-ctx.Done():
		return fmt.Errorf("read destinations topic %s: %w", s.topic, context.Cause(ctx))
	}
}

// Close releases the Kafka client. Call it after Run returned.
func (s *Store) Close() { s.cl.Close() }

// Get returns the configuration in force for account, or nil. The value is
// shared: Clone it before changing it.
func (s *Store) Get(account string) *AccountConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[account]; a != nil {
		return a.cfg
	}
	return nil
}

// Accounts returns every account with a configuration in force.
func (s *Store) Accounts() map[string]*AccountConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*AccountConfig, len(s.accounts))
	for k, a := range s.accounts {
		if a.cfg != nil {
			out[k] = a.cfg
		}
	}
	return out
}

// Run reads the topic from its beginning and follows it until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	ends, err := s.endOffsets(ctx)
	if err != nil {
		s.runErr.Store(&err)
		close(s.failed)
		return err
	}
	start := time.Now()
	pending := map[string]*AccountConfig{} // changes held back until ready
	s.checkReady(ends, pending, start)
	for {
		fetches := s.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			s.log.Warn("fetch destinations topic", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		changes := map[string]*AccountConfig{}
		decoded := s.decodeAll(fetches)
		s.mu.Lock()
		for _, d := range decoded {
			s.applyLocked(d, changes)
		}
		ch := s.changed
		s.changed = make(chan struct{})
		s.mu.Unlock()
		close(ch)
		if !s.isReady.Load() {
			maps.Copy(pending, changes)
			s.checkReady(ends, pending, start)
			continue
		}
		if len(changes) > 0 {
			s.notify(changes)
		}
	}
}

func (s *Store) checkReady(ends map[int32]int64, pending map[string]*AccountConfig, start time.Time) {
	s.mu.Lock()
	for p, end := range ends {
		if s.applied[p] < end {
			s.mu.Unlock()
			return
		}
	}
	n := 0
	for _, a := range s.accounts {
		if a.cfg != nil {
			n++
		}
	}
	all := make(map[string]*AccountConfig, len(pending))
	for k := range pending {
		all[k] = nil
		if a := s.accounts[k]; a != nil {
			all[k] = a.cfg
		}
	}
	s.mu.Unlock()
	s.readyOnce.Do(func() {
		s.notify(all)
		s.isReady.Store(true)
		close(s.ready)
		s.log.Info("destinations topic read", zap.String("topic", s.topic), zap.Int("accounts", n),
			zap.Duration("took", time.Since(start)))
	})
}

func (s *Store) notify(changes map[string]*AccountConfig) {
	s.mu.Lock()
	hooks := s.hooks
	s.mu.Unlock()
	for _, fn := range hooks {
		fn(changes)
	}
}

func (s *Store) endOffsets(ctx context.Context) (map[int32]int64, error) {
	return kafka.EndOffsets(ctx, s.cl, s.topic, "destinations topic", s.log)
}

// decodedRecord is a record of the topic read into its configuration.
type decodedRecord struct {
	r   *kgo.Record
	ver int64
	cfg *AccountConfig // nil for a tombstone
	err error
}

// decodeAll decodes the records of a fetch, on every CPU: at start-up a
// consumer reads every account's configuration, and decoding is most of
// the work.
func (s *Store) decodeAll(fetches kgo.Fetches) []decodedRecord {
	var out []decodedRecord
	fetches.EachRecord(func(r *kgo.Record) { out = append(out, decodedRecord{r: r}) })
	workers := min(runtime.GOMAXPROCS(0), 1+len(out)/64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(out); i += workers {
				out[i].ver, out[i].cfg, out[i].err = s.decode(out[i].r)
			}
		})
	}
	wg.Wait()
	return out
}

func (s *Store) decode(r *kgo.Record) (int64, *AccountConfig, error) {
	account := string(r.Key)
	ver, err := recordVersion(r)
	if err != nil {
		return 0, nil, err
	}
	if !ValidAccountID(account) {
		return 0, nil, errors.New("the key is not a valid account id")
	}
	if r.Value == nil {
		return ver, nil, nil
	}
	cfg, err := DecodeAccount(r.Value)
	if err == nil && (cfg.Account != account || cfg.Version != ver) {
		err = errors.New("the record's key or version header does not match its value")
	}
	if err != nil {
		return 0, nil, err
	}
	if s.types != nil {
		cfg.keepTypes(s.types)
	}
	return ver, cfg, nil
}

// applyLocked applies one decoded record if it is in force. s.mu is held.
func (s *Store) applyLocked(d decodedRecord, changes map[string]*AccountConfig) {
	r, ver, cfg := d.r, d.ver, d.cfg
	s.applied[r.Partition] = r.Offset + 1
	account := string(r.Key)
	at := []zap.Field{zap.String("account", account), zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset)}
	if d.err != nil {
		s.m.refused.Inc()
		s.log.Error("destinations record refused", append(at, zap.Error(d.err))...)
		return
	}
	cur := s.accounts[account]
	if cur != nil && ver != cur.ver+1 {
		// Based on a version that is no longer in force: a concurrent
		// write lost. Every reader ignores it alike.
		s.m.conflicts.Inc()
		s.log.Warn("destinations record not in force: it does not follow the version in force",
			append(at, zap.Int64("version", ver), zap.Int64("version_in_force", cur.ver))...)
		return
	}
	next := &storedAccount{cfg: cfg, ver: ver, part: r.Partition, offset: r.Offset}
	if s.writer {
		if cur != nil {
			next.recent = cur.recent[max(0, len(cur.recent)-recentInForce+1):]
		}
		next.recent = append(slices.Clip(next.recent), r.Offset)
	}
	s.accounts[account] = next
	changes[account] = cfg
	s.m.applied.Inc()
}

func recordVersion(r *kgo.Record) (int64, error) {
	for _, h := range r.Headers {
		if h.Key == HeaderVersion {
			v, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil || v < 1 {
				return 0, fmt.Errorf("header %s is not a positive version", HeaderVersion)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("header %s is missing", HeaderVersion)
}

// Update changes account's configuration: fn receives a copy of the one in
// force (nil if there is none) and the version the change will have (for
// resources' revisions), and returns the next configuration, nil or Empty to
// delete it, or an error to change nothing. Update writes it with acks=all
// and returns once this store has read it back and it is in force. Writes
// of one account through one Store are serialized; a write that loses to
// another writer is reported as ErrConflict after the winner's
// configuration was written again on top.
func (s *Store) Update(ctx context.Context, account string, actor string, fn func(cur *AccountConfig, next int64) (*AccountConfig, error)) (*AccountConfig, error) {
	if !s.writer {
		return nil, errors.New("destinations store opened read-only")
	}
	if err := s.WaitReady(ctx); err != nil {
		return nil, err
	}
	l, _ := s.locks.LoadOrStore(account, &sync.Mutex{})
	mu := l.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()

	s.mu.Lock()
	cur := s.accounts[account]
	s.mu.Unlock()
	var base *AccountConfig
	var ver int64
	if cur != nil {
		base, ver = cur.cfg.Clone(), cur.ver
	}
	next, err := fn(base, ver+1)
	if err != nil {
		return nil, err
	}
	won, err := s.write(ctx, account, actor, next, ver+1)
	if err != nil {
		return nil, err
	}
	if won {
		if next.Empty() {
			return nil, nil
		}
		return next, nil
	}
	// Lost: put the configuration in force on top again, so compaction
	// keeps one that was in force.
	s.mu.Lock()
	winner := s.accounts[account]
	s.mu.Unlock()
	if winner != nil {
		again := winner.cfg.Clone()
		if _, err := s.write(ctx, account, "", again, winner.ver+1); err != nil {
			s.log.Warn("write the configuration in force again after a conflict", zap.String("account", account), zap.Error(err))
		}
	}
	return nil, ErrConflict
}

// write produces cfg (a tombstone when Empty) as version ver and waits until
// this store applied it; won reports whether it is in force.
func (s *Store) write(ctx context.Context, account, actor string, cfg *AccountConfig, ver int64) (won bool, err error) {
	rec := &kgo.Record{Topic: s.topic, Key: []byte(account), Headers: []kgo.RecordHeader{{Key: HeaderVersion, Value: []byte(strconv.FormatInt(ver, 10))}}}
	if !cfg.Empty() {
		cfg.Account, cfg.Version = account, ver
		if actor != "" {
			cfg.UpdatedAt, cfg.UpdatedBy = time.Now().UTC(), actor
		}
		if err := cfg.Validate(); err != nil {
			return false, err
		}
		if rec.Value, err = cfg.Encode(); err != nil {
			return false, err
		}
	}
	res := s.cl.ProduceSync(ctx, rec)
	if err := res.FirstErr(); err != nil {
		return false, fmt.Errorf("write account %s to destinations topic %s: %w", account, s.topic, err)
	}
	r := res[0].Record
	if err := s.waitApplied(ctx, r.Partition, r.Offset); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[account]
	return a != nil && a.part == r.Partition && slices.Contains(a.recent, r.Offset), nil
}

// waitApplied waits until the store has applied partition p past offset.
func (s *Store) waitApplied(ctx context.Context, p int32, offset int64) error {
	for {
		s.mu.Lock()
		done, ch := s.applied[p] > offset, s.changed
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for destinations topic %s to read back offset %d of partition %d: %w", s.topic, offset, p, context.Cause(ctx))
		}
	}
}

type storeMetrics struct {
	applied, refused, conflicts prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer) storeMetrics {
	m := storeMetrics{
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_destinations_topic_records_applied_total",
			Help: "Records of the destinations topic put in force (account configurations and deletions).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_destinations_topic_records_refused_total",
			Help: "Records of the destinations topic that could not be read (bad key, version header or value); the configuration in force stayed.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_destinations_topic_conflicts_total",
			Help: "Records of the destinations topic not put in force because a concurrent write of the same account came first.",
		}),
	}
	if reg != nil {
		m.applied = register(reg, m.applied)
		m.refused = register(reg, m.refused)
		m.conflicts = register(reg, m.conflicts)
	}
	return m
}
