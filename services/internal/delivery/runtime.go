package delivery

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
)

// EntrySink is what a forwarder supplies for one connection
// (NewEntrySink): its encoder, which turns an event into the destination's
// own entry, and its sink, which sends batches of those entries under the
// sink.Sink contract. An encoding error classified Permanent (for example
// an entry over the destination's size limit) dead-letters the event for
// that connection.
//
// The runtime keeps entries typed (a worker per connection, generic over
// the entry type); Encode and Send are for senders off the hot path
// (auditctl), to which an entry is opaque.
type EntrySink interface {
	// Encode turns ev into the sink's entry.
	Encode(ev *auditlogv1.AuditEvent) (Encoded, error)
	// Send delivers entries made by Encode through the sink under b's
	// rules (see Send).
	Send(ctx context.Context, b BatchSender, entries []Encoded, result func(i int, err error)) (left []int, why Left, lastErr error)
	newWorker(r *Runtime, name string, policy *eventfilter.Policy, fingerprint string) connWorker
}

// Encoded is an entry of an EntrySink, opaque to its holder.
type Encoded struct {
	entry any
	// Size is what the entry counts for batching.
	Size int
}

// NewEntrySink is the EntrySink of a connection whose encoder makes
// entries of type E and whose sink sends them.
func NewEntrySink[E any](enc sink.Encoder[E], s sink.Sink[E]) EntrySink {
	return entrySink[E]{enc: enc, s: s}
}

type entrySink[E any] struct {
	enc sink.Encoder[E]
	s   sink.Sink[E]
}

func (es entrySink[E]) Encode(ev *auditlogv1.AuditEvent) (Encoded, error) {
	e, err := es.enc.EncodeEntry(ev)
	if err != nil {
		return Encoded{}, err
	}
	return Encoded{entry: e, Size: e.Size}, nil
}

func (es entrySink[E]) Send(ctx context.Context, b BatchSender, entries []Encoded, result func(i int, err error)) ([]int, Left, error) {
	typed := make([]sink.Entry[E], 0, len(entries))
	at := make([]int, 0, len(entries)) // entries' indexes in typed
	for i, e := range entries {
		v, ok := e.entry.(sink.Entry[E])
		if !ok {
			// made by another EntrySink: no attempt can deliver it
			result(i, &sink.SendError{Class: sink.Permanent, Err: fmt.Errorf("entry %d (%T) is not one of sink %T", i, e.entry, es.s)})
			continue
		}
		typed, at = append(typed, v), append(at, i)
	}
	left, why, lastErr := Send(ctx, b, es.s, typed, func(k int, err error) { result(at[k], err) })
	for k, i := range left {
		left[k] = at[i]
	}
	return left, why, lastErr
}

func (es entrySink[E]) newWorker(r *Runtime, name string, policy *eventfilter.Policy, fingerprint string) connWorker {
	return newWorker(r, name, es, policy, fingerprint)
}

// Router maps an account to the connections its events go to. It is read
// for every record, so it must be cheap and safe for concurrent use;
// *destinations.Table and WatchRouter qualify.
type Router interface {
	Route(account string) []*destinations.Connection
}

// WatchRouter routes through the current table of a destinations watcher,
// seeing only connections of one type, so a reload applies to the next
// record without a restart.
func WatchRouter(w *destinations.Watcher, typ string) Router { return watchRouter{w, typ} }

type watchRouter struct {
	w   *destinations.Watcher
	typ string
}

func (wr watchRouter) Route(account string) []*destinations.Connection {
	return wr.w.Current().ForType(wr.typ).Route(account)
}

// SinkFactory builds the sink for a connection.
type SinkFactory func(c *destinations.Connection) (EntrySink, error)

// Headers the runtime writes on dead-lettered and parked records. The
// original record's key, value and headers are kept.
const (
	reasonDecode             = "decode_failed"
	reasonAccountMismatch    = "account_mismatch"
	reasonMaxAge             = "max_age_exceeded"
	reasonPermanent          = "rejected"
	reasonEncode             = "encode_failed"
	parkReasonBudget         = "retry_budget_exhausted"
	parkReasonUnhealthy      = "connection_unhealthy"
	parkReasonBacklog        = "connection_backlog"
	parkReasonRetryNotHealed = "still_failing"
)

// Runtime consumes the events topic and this forwarder's retry topic with one
// consumer group, routes each event to its account's connections, batches
// and sends per connection, and commits an offset only when every record
// before it is delivered, parked or dead-lettered.
type Runtime struct {
	name      string
	cfg       Config
	kcfg      kafka.Config
	log       *zap.Logger
	router    Router
	newSink   SinkFactory
	metrics   *metrics
	registry  prometheus.Registerer
	client    *kgo.Client
	inflight  *semaphore.Weighted
	held      atomic.Int64 // bytes taken from inflight, for the metric
	now       func() time.Time
	ctx       context.Context
	unhealthy func(string) // test hook: called when a connection turns unhealthy
	// onStatusChange is told when a connection turns unhealthy or recovers.
	onStatusChange func()
	connCounters   sync.Map // connection -> *connCounters
	transit        *parkedTransit

	mu       sync.Mutex
	trackers map[string]map[int32]*partitionTracker
	workers  map[string]connWorker
	delayers map[int32]*retryDelayer
	broken   map[string]*brokenSink // connections whose sink cannot be built
	workerWG sync.WaitGroup

	closing atomic.Bool
	// commitMu keeps a periodic commit from interleaving with a revoke, which
	// would commit a partition after it was handed to another member.
	commitMu      sync.Mutex
	retryHeld     atomic.Int64
	retryPaused   atomic.Bool
	lastCommitted map[string]map[int32]int64
}

// Options are the parts of a runtime a forwarder provides.
type Options struct {
	// Name of the forwarder ("datadog"), used in metrics and headers.
	Name     string
	Config   Config
	Kafka    kafka.Config
	Logger   *zap.Logger
	Registry prometheus.Registerer
	Router   Router
	NewSink  SinkFactory
}

// New builds a runtime; Run starts it.
func New(o Options) (*Runtime, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("delivery config: %w", err)
	}
	r := &Runtime{
		name:          o.Name,
		cfg:           o.Config,
		kcfg:          o.Kafka,
		log:           o.Logger,
		router:        o.Router,
		newSink:       o.NewSink,
		registry:      o.Registry,
		inflight:      semaphore.NewWeighted(int64(o.Config.MaxInflightBytes)),
		now:           time.Now,
		trackers:      map[string]map[int32]*partitionTracker{},
		workers:       map[string]connWorker{},
		delayers:      map[int32]*retryDelayer{},
		broken:        map[string]*brokenSink{},
		lastCommitted: map[string]map[int32]int64{},
		transit:       newParkedTransit(),
	}
	r.metrics = newMetrics(o.Registry, o.Name, func() float64 { return float64(r.held.Load()) })
	o.Registry.MustRegister(newUndeliveredCollector(r, prometheus.Labels{"forwarder": o.Name}))
	return r, nil
}

// OnStatusChange has fn called when a connection turns unhealthy or
// recovers, for the status publisher to publish at once. fn must not
// block. Call it before Run.
func (r *Runtime) OnStatusChange(fn func()) { r.onStatusChange = fn }

// FetchMaxBytes is the most one fetch of the runtime asks for: half of
// MaxInflightBytes (so a fetch never waits for more than half the cap to
// free up), at most 50 MB.
func FetchMaxBytes(cfg Config) int32 {
	return int32(min(int64(cfg.MaxInflightBytes)/2, 50<<20))
}

// Run consumes until ctx ends. On the way out it stops fetching, lets the
// workers finish what they hold (bounded by RevokeTimeout) and commits.
func (r *Runtime) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.ctx = runCtx
	cl, err := kafka.NewClient(r.kcfg, r.log, r.registry,
		kgo.ConsumerGroup(r.cfg.Group),
		kgo.ConsumeTopics(r.kcfg.Topics.Events.Name, r.cfg.RetryTopic.Name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(r.cfg.SessionTimeout),
		kgo.RebalanceTimeout(r.cfg.RebalanceTimeout),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onLost),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.FetchMaxBytes(FetchMaxBytes(r.cfg)),
	)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.client = cl
	r.mu.Unlock()
	defer cl.Close()
	if r.kcfg.Topics.Bootstrap {
		if err := r.bootstrap(ctx); err != nil {
			return err
		}
	}

	commitDone := make(chan struct{})
	go func() {
		defer close(commitDone)
		r.commitLoop(ctx)
	}()
	go r.shedLoop(ctx)

	r.log.Info("delivery runtime started", zap.String("group", r.cfg.Group),
		zap.String("topic", r.kcfg.Topics.Events.Name), zap.String("retry_topic", r.cfg.RetryTopic.Name))
	for {
		fetches := cl.PollRecords(ctx, 10000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.log.Warn("fetch failed", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			tr := r.tracker(p.Topic, p.Partition)
			for _, rec := range p.Records {
				if !r.dispatch(ctx, tr, rec) {
					return
				}
			}
			last := p.Records[len(p.Records)-1].Offset
			r.metrics.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-last-1, 0)))
		})
		cl.AllowRebalance()
	}
	<-commitDone
	r.shutdown()
	// Work still out after the bounded flush is not committed; stopping the
	// workers now makes it resend after a restart rather than hang here.
	r.closing.Store(true)
	cancel()
	r.workerWG.Wait()
	cl.AllowRebalance()
	return nil
}

func (r *Runtime) bootstrap(ctx context.Context) error {
	for {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := kafka.EnsureTopics(bctx, r.client, r.kcfg.Topics.Events, r.kcfg.Topics.DeadLetter, r.cfg.RetryTopic)
		cancel()
		if err == nil {
			return nil
		}
		r.log.Warn("topic bootstrap failed; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// shutdown flushes every worker and waits for outstanding work (bounded),
// then commits what finished.
func (r *Runtime) shutdown() {
	r.mu.Lock()
	workers := make([]connWorker, 0, len(r.workers))
	for _, w := range r.workers {
		workers = append(workers, w)
	}
	trackers := r.allTrackersLocked()
	r.mu.Unlock()
	for _, w := range workers {
		w.flush()
	}
	r.waitIdle(trackers, r.cfg.RevokeTimeout)
	r.commit(context.Background(), trackers)
	for _, w := range workers {
		w.stop()
	}
}

func (r *Runtime) tracker(topic string, partition int32) *partitionTracker {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.trackers[topic]
	if ps == nil {
		ps = map[int32]*partitionTracker{}
		r.trackers[topic] = ps
	}
	t := ps[partition]
	if t == nil {
		t = newPartitionTracker(topic, partition)
		ps[partition] = t
	}
	return t
}

func (r *Runtime) allTrackersLocked() []*partitionTracker {
	var out []*partitionTracker
	for _, ps := range r.trackers {
		for _, t := range ps {
			out = append(out, t)
		}
	}
	return out
}

// dispatch hands one polled record on. It blocks while MaxInflightBytes are
// taken, which stops polling: that is the back-pressure. It returns false
// when ctx ended first.
func (r *Runtime) dispatch(ctx context.Context, tr *partitionTracker, rec *kgo.Record) bool {
	size := int64(len(rec.Value) + len(rec.Key) + 64)
	size = min(size, int64(r.cfg.MaxInflightBytes))
	if err := r.inflight.Acquire(ctx, size); err != nil {
		return false
	}
	r.held.Add(size)
	tr.add(rec)
	t := &tracked{rec: rec, tracker: tr, size: size, r: r}
	if rec.Topic == r.cfg.RetryTopic.Name {
		r.holdRetry(t)
		return true
	}
	r.route(t, nil)
	return true
}

// route hands the record to its account's connections. parked is the
// parking state of a record read back from the retry topic (nil otherwise):
// such a record goes only to the connection it was parked for.
//
// A protobuf record is routed by its account alone (auditevent.
// RecordAccount) and decoded by the connections' workers, just before they
// encode it: queues then hold raw records, which the collector need not
// scan, and this loop only reads. A worker checks the decoded event's
// account against the one it was routed by. Other records are decoded
// here, as is a record no connection wants, so that one which does not
// decode is dead-lettered all the same.
func (r *Runtime) route(t *tracked, parked *parkState) {
	view := sourceView(t, parked)
	account, scanned := auditevent.RecordAccount(view)
	var ev *auditlogv1.AuditEvent
	if !scanned {
		var err error
		if ev, err = auditevent.DecodeRecord(view); err != nil {
			t.remaining.Store(1)
			r.deadLetterParked(t, parked, "", reasonFor(err), err)
			return
		}
		account = auditevent.AccountID(ev)
	}
	targets := r.router.Route(account)
	if parked != nil {
		targets = pickTarget(targets, parked.connection)
		if len(targets) == 0 {
			// the route was removed or disabled while the event was parked:
			// the account no longer wants it there
			r.metrics.dropped.WithLabelValues(parked.connection).Inc()
			t.remaining.Store(1)
			t.complete()
			return
		}
	}
	t.remaining.Store(int32(max(len(targets), 1)))
	if len(targets) == 0 {
		if ev == nil {
			if _, err := auditevent.DecodeRecord(view); err != nil {
				r.deadLetterParked(t, parked, "", reasonFor(err), err)
				return
			}
		}
		t.complete()
		return
	}
	var shared *sharedEvent
	var eventTime time.Time
	if ev != nil {
		eventTime = auditevent.EventTime(ev, t.rec)
	} else {
		shared = &sharedEvent{account: account}
		shared.encoders.Store(int32(len(targets)))
	}
	for _, target := range targets {
		w, err := r.worker(target)
		if err != nil {
			// a connection whose sink cannot be built is broken until fixed:
			// park, never drop, and say so in its status
			r.sinkFailed(target.Name, err)
			// parked in the form the policy gives it, when the policy
			// builds; when its key cannot be read, as it came
			policy, _ := target.Policy()
			r.park(&job{t: t, conn: target.Name, shared: shared, parked: parked, eventTime: eventTime, policy: policy}, parkReasonUnhealthy)
			continue
		}
		// decoding (when not done above) and encoding happen in the
		// connection's worker, off this loop
		w.offer(&job{t: t, conn: target.Name, ev: ev, shared: shared, parked: parked, eventTime: eventTime, policy: w.currentPolicy()})
	}
}

// sharedEvent decodes a record once for all the connections it is routed
// to, in whichever worker gets to it first.
type sharedEvent struct {
	account string // what the record was routed by
	once    sync.Once
	ev      *auditlogv1.AuditEvent
	err     error
	// encoders counts the jobs yet to encode the event; the last one lets
	// it go, so batches waiting to be sent hold only entries.
	encoders atomic.Int32
	// deadLettered is claimed by the one job that dead-letters a record
	// that does not decode; the others only finish their share.
	deadLettered atomic.Bool
}

// errAccountMismatch is a decoded event whose account is not the one the
// record was routed by. RecordAccount reads the account as the decoder
// does, so this is not expected; were it to happen, the event would have
// been routed to another account's connections, and is dead-lettered.
var errAccountMismatch = errors.New("the decoded event's account is not the one the record was routed by")

func (s *sharedEvent) event(rec *kgo.Record) (*auditlogv1.AuditEvent, error) {
	s.once.Do(func() {
		ev, err := auditevent.DecodeProtobufRecord(rec) // RecordAccount read it as protobuf
		if err == nil && auditevent.AccountID(ev) != s.account {
			err = fmt.Errorf("%w (routed by %q, decoded %q)", errAccountMismatch, s.account, auditevent.AccountID(ev))
		}
		if err != nil {
			ev = nil
		}
		s.ev, s.err = ev, err
	})
	return s.ev, s.err
}

// undecodable finishes job j, whose record does not decode (err): the
// first of the record's jobs to find out dead-letters it, the others only
// finish their share.
func (r *Runtime) undecodable(j *job, s *sharedEvent, err error) {
	if s.deadLettered.CompareAndSwap(false, true) {
		r.deadLetterParked(j.t, j.parked, "", reasonFor(err), err)
		return
	}
	j.t.complete()
}

// encoded is called by each job once done with the event.
func (s *sharedEvent) encoded() {
	if s.encoders.Add(-1) == 0 {
		s.ev = nil
	}
}

func pickTarget(targets []*destinations.Connection, name string) []*destinations.Connection {
	for _, t := range targets {
		if t.Name == name {
			return []*destinations.Connection{t}
		}
	}
	return nil
}

func reasonFor(err error) string {
	var fe *auditevent.FieldError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	if errors.Is(err, errAccountMismatch) {
		return reasonAccountMismatch
	}
	return reasonDecode
}

// worker returns the connection's worker, creating it or swapping its sink
// when the connection's definition changed.
func (r *Runtime) worker(t *destinations.Connection) (connWorker, error) {
	r.mu.Lock()
	w := r.workers[t.Name]
	r.mu.Unlock()
	if w != nil && w.currentFingerprint() == t.Fingerprint {
		return w, nil
	}
	policy, err := t.Policy()
	if err != nil {
		return nil, err
	}
	sink, err := r.newSink(t)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	recovered := r.sinkBuiltLocked(t.Name)
	if w = r.workers[t.Name]; w != nil {
		if err := w.setSink(sink, policy, t.Fingerprint); err != nil {
			r.mu.Unlock()
			return nil, err
		}
	} else {
		w = sink.newWorker(r, t.Name, policy, t.Fingerprint)
		r.workers[t.Name] = w
		r.workerWG.Add(1)
		go func() {
			defer r.workerWG.Done()
			w.run()
		}()
	}
	r.mu.Unlock()
	if recovered {
		r.statusChanged()
	}
	return w, nil
}

// shedLoop has stuck connections give back their queued bytes.
func (r *Runtime) shedLoop(ctx context.Context) {
	tick := time.NewTicker(max(r.cfg.BacklogMaxWait/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		workers := make([]connWorker, 0, len(r.workers))
		for _, w := range r.workers {
			workers = append(workers, w)
		}
		r.mu.Unlock()
		for _, w := range workers {
			w.shed()
		}
	}
}

// commitLoop commits finished offsets every CommitInterval.
func (r *Runtime) commitLoop(ctx context.Context) {
	tick := time.NewTicker(r.cfg.CommitInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.commitMu.Lock()
		r.mu.Lock()
		trackers := r.allTrackersLocked()
		r.mu.Unlock()
		r.commit(ctx, trackers)
		r.commitMu.Unlock()
	}
}

// commit writes the committable offsets of trackers that moved.
func (r *Runtime) commit(ctx context.Context, trackers []*partitionTracker) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	r.mu.Lock()
	for _, t := range trackers {
		if t.revoked.Load() {
			continue // no longer ours to commit
		}
		eo, ok := t.committable()
		if !ok || r.lastCommitted[t.topic][t.partition] >= eo.Offset {
			continue
		}
		if offsets[t.topic] == nil {
			offsets[t.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[t.topic][t.partition] = eo
	}
	r.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	r.client.CommitOffsetsSync(cctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			r.log.Warn("commit offsets", zap.Error(err))
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					continue
				}
				if r.lastCommitted[t.Topic] == nil {
					r.lastCommitted[t.Topic] = map[int32]int64{}
				}
				r.lastCommitted[t.Topic][p.Partition] = offsets[t.Topic][p.Partition].Offset
			}
		}
	})
}

func (r *Runtime) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	r.transit.assign(assigned[r.cfg.RetryTopic.Name])
	r.log.Info("partitions assigned", zap.Any("partitions", assigned))
}

// onRevoked flushes, waits for the revoked partitions' outstanding records
// (bounded by RevokeTimeout), commits them and forgets them. Records still
// out after the wait are sent again by the new owner: duplicates, not loss.
func (r *Runtime) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	r.log.Info("partitions revoked", zap.Any("partitions", revoked))
	if r.closing.Load() {
		return // shutdown already flushed and committed
	}
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	trackers := r.takeTrackers(revoked, false)
	r.mu.Lock()
	for _, w := range r.workers {
		w.flush()
	}
	r.mu.Unlock()
	r.waitIdle(trackers, r.cfg.RevokeTimeout)
	r.commit(ctx, trackers)
	r.forget(revoked, trackers)
}

// onLost forgets lost partitions without committing: another member owns
// them already.
func (r *Runtime) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	r.log.Warn("partitions lost", zap.Any("partitions", lost))
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	trackers := r.takeTrackers(lost, true)
	r.forget(lost, trackers)
}

func (r *Runtime) takeTrackers(parts map[string][]int32, revoke bool) []*partitionTracker {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*partitionTracker
	for topic, ps := range parts {
		for _, p := range ps {
			if t := r.trackers[topic][p]; t != nil {
				if revoke {
					t.revoked.Store(true)
				}
				out = append(out, t)
			}
		}
	}
	return out
}

func (r *Runtime) forget(parts map[string][]int32, trackers []*partitionTracker) {
	for _, t := range trackers {
		t.revoked.Store(true)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			delete(r.trackers[topic], p)
			delete(r.lastCommitted[topic], p)
			r.metrics.lag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
			if topic == r.cfg.RetryTopic.Name {
				r.transit.release(p)
				if d := r.delayers[p]; d != nil {
					d.stop()
					delete(r.delayers, p)
				}
			}
		}
	}
}

func (r *Runtime) waitIdle(trackers []*partitionTracker, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, t := range trackers {
		select {
		case <-t.idleCh():
		case <-deadline.C:
			r.log.Warn("flush before handing partitions over timed out; the new owner will resend what was still out",
				zap.String("topic", t.topic), zap.Int32("partition", t.partition), zap.Int("outstanding", t.outstanding()))
			return
		}
	}
}

// Status reports the health of every connection the runtime has in use
// (it routed an event to), for the status endpoint and the status topic.
func (r *Runtime) Status() []ConnectionStatus {
	r.mu.Lock()
	workers := make([]connWorker, 0, len(r.workers))
	for _, w := range r.workers {
		workers = append(workers, w)
	}
	broken := make(map[string]brokenSink, len(r.broken))
	var idle []string // broken before any worker was made for them
	for name, b := range r.broken {
		broken[name] = *b
		if r.workers[name] == nil {
			idle = append(idle, name)
		}
	}
	r.mu.Unlock()
	held := r.oldestHeld()
	now := time.Now()
	out := make([]ConnectionStatus, 0, len(workers)+len(broken))
	for _, w := range workers {
		out = append(out, w.status(now))
	}
	for _, name := range idle {
		out = append(out, ConnectionStatus{Name: name})
	}
	for i := range out {
		s := &out[i]
		if b, ok := broken[s.Name]; ok {
			// its current definition cannot be built, whatever an older
			// sink still does
			since, at := b.since, b.at
			s.Healthy, s.UnhealthySince, s.LastError, s.LastErrorAt = false, &since, "build sink: "+b.err, &at
		}
		c := r.counters(s.Name)
		s.Parked, s.DeadLettered = c.parked.Load(), c.deadLettered.Load()
		s.Filtered, s.FilterErrors = c.filtered.Load(), c.filterErrors.Load()
		s.OldestUndelivered = earlier(s.OldestUndelivered, held[s.Name])
		if s.Day == "" {
			s.Day = now.UTC().Format(time.DateOnly)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Ready reports whether the runtime reaches Kafka.
func (r *Runtime) Ready(ctx context.Context) error {
	r.mu.Lock()
	cl := r.client
	r.mu.Unlock()
	if cl == nil {
		return errors.New("starting")
	}
	return cl.Ping(ctx)
}
