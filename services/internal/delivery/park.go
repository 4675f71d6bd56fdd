package delivery

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// parkState is what a parked record carries in its headers.
type parkState struct {
	connection  string
	attempt     int
	due         time.Time
	firstFailed time.Time
	// sourceTime is the timestamp of the record on its source topic: when
	// the event entered the pipeline (zero for records parked by a version
	// that did not write it).
	sourceTime time.Time
	srcTopic   string
	srcPart    int32
	srcOffset  int64
	// policy is the version of the connection policy the record's value
	// was put in the form of ("" for the record as it came)
	policy string
}

// since is when the parked event entered the pipeline, as far as known.
func (ps *parkState) since() time.Time {
	if !ps.sourceTime.IsZero() {
		return ps.sourceTime
	}
	return ps.firstFailed
}

// source returns where the record first entered the pipeline.
func source(t *tracked, ps *parkState) (string, int32, int64) {
	if ps != nil {
		return ps.srcTopic, ps.srcPart, ps.srcOffset
	}
	return t.rec.Topic, t.rec.Partition, t.rec.Offset
}

// sourceView is the record as it was on its source topic, so that an event
// without an id gets the same derived id however often it is parked.
func sourceView(t *tracked, ps *parkState) *kgo.Record {
	if ps == nil {
		return t.rec
	}
	v := *t.rec
	v.Topic, v.Partition, v.Offset = ps.srcTopic, ps.srcPart, ps.srcOffset
	return &v
}

// park writes the job's record to the retry topic, due after ParkDelay, and
// finishes the job once Kafka has it. Past MaxAge it is dead-lettered.
func (r *Runtime) park(j *job, reason string) {
	if s := j.shared; s != nil {
		// Not decoded yet: a record that never will goes to the dead-letter
		// topic now, once for all its connections, rather than round the
		// retry topic to be dead-lettered again when it comes back.
		j.shared = nil
		_, err := s.event(sourceView(j.t, j.parked))
		s.encoded()
		if err != nil {
			r.undecodable(j, s, err)
			return
		}
	}
	src, version, keep := r.connectionRecord(j.t, j.parked, j.policy)
	if !keep {
		r.filteredOut(j)
		return
	}
	now := r.now()
	st := parkState{connection: j.conn, attempt: 1, firstFailed: now}
	st.srcTopic, st.srcPart, st.srcOffset = source(j.t, j.parked)
	st.sourceTime = j.t.rec.Timestamp
	if j.parked != nil {
		st.attempt = j.parked.attempt + 1
		st.firstFailed = j.parked.firstFailed
		st.sourceTime = j.parked.sourceTime
	}
	if now.Sub(st.firstFailed) > r.cfg.MaxAge {
		r.deadLetterParked(j.t, j.parked, j.conn, reasonMaxAge, fmt.Errorf("still failing after %d attempts since %s", st.attempt-1, st.firstFailed.UTC().Format(time.RFC3339)))
		return
	}
	st.due = now.Add(r.cfg.ParkDelay)
	rec := &kgo.Record{
		Topic: r.cfg.RetryTopic.Name,
		Key:   src.Key,
		Value: src.Value,
		Headers: append(deadletter.SourceHeaders(src, 9),
			deadletter.Header(deadletter.HeaderConnection, st.connection),
			deadletter.Header(deadletter.HeaderAttempt, strconv.Itoa(st.attempt)),
			deadletter.Header(deadletter.HeaderDue, st.due.UTC().Format(time.RFC3339Nano)),
			deadletter.Header(deadletter.HeaderFirstFailed, st.firstFailed.UTC().Format(time.RFC3339Nano)),
			deadletter.Header(deadletter.HeaderSourceTopic, st.srcTopic),
			deadletter.Header(deadletter.HeaderSourcePartition, strconv.Itoa(int(st.srcPart))),
			deadletter.Header(deadletter.HeaderSourceOffset, strconv.FormatInt(st.srcOffset, 10)),
			deadletter.Header(deadletter.HeaderForwarder, r.name),
		),
	}
	if version != "" {
		rec.Headers = append(rec.Headers, deadletter.Header(deadletter.HeaderPolicy, version))
	}
	if !st.sourceTime.IsZero() {
		rec.Headers = append(rec.Headers, deadletter.Header(deadletter.HeaderSourceTime, st.sourceTime.UTC().Format(time.RFC3339Nano)))
	}
	// until read back, the event is still the connection's undelivered
	id := r.transit.startWrite(j.conn, st.since())
	r.produceUntilDone(rec, func(written *kgo.Record) {
		r.transit.written(j.conn, id, written.Partition, written.Offset, true)
		r.metrics.parked.WithLabelValues(j.conn, reason).Inc()
		if j.parked == nil {
			// each event once, however often it goes round again
			r.counters(j.conn).parked.Add(1)
		}
		j.t.complete()
	})
}

// deadLetter writes the record to the dead-letter topic with the reason and
// its source in headers, and finishes one of its deliveries once Kafka has it.
func (r *Runtime) deadLetter(t *tracked, conn, reason string, cause error) {
	r.deadLetterParked(t, nil, conn, reason, cause)
}

func (r *Runtime) deadLetterParked(t *tracked, ps *parkState, conn, reason string, cause error) {
	src, version := t.rec, ""
	if conn != "" {
		var keep bool
		if src, version, keep = r.connectionRecord(t, ps, r.policyOf(conn)); !keep {
			r.filteredOut(&job{t: t, conn: conn})
			return
		}
	}
	srcTopic, srcPart, srcOffset := source(t, ps)
	dl := deadletter.Letter{
		Topic: r.kcfg.Topics.DeadLetter.Name, Source: src, Policy: version,
		SourceTopic: srcTopic, SourcePartition: srcPart, SourceOffset: srcOffset,
		Consumer: r.name, Connection: conn, Reason: reason, Cause: cause,
	}
	r.log.Warn("dead-lettering record", zap.String("reason", reason), zap.String("connection", conn),
		zap.String("source_topic", srcTopic), zap.Int32("source_partition", srcPart), zap.Int64("source_offset", srcOffset), zap.String("error", dl.ErrorText()))
	r.produceUntilDone(dl.Record(), func(*kgo.Record) {
		r.metrics.deadLettered.WithLabelValues(reason).Inc()
		if conn != "" {
			r.counters(conn).deadLettered.Add(1)
		}
		t.complete()
	})
}

// produceUntilDone writes rec, retrying until Kafka takes it or the runtime
// stops: a record is never finished before its copy is safe.
func (r *Runtime) produceUntilDone(rec *kgo.Record, done func(written *kgo.Record)) {
	attempt := 0
	var try func()
	try = func() {
		r.client.Produce(r.ctx, rec, func(written *kgo.Record, err error) {
			if err == nil {
				done(written)
				return
			}
			if r.ctx.Err() != nil {
				return
			}
			attempt++
			r.log.Warn("write to topic failed; retrying", zap.String("topic", rec.Topic), zap.Int("attempt", attempt), zap.Error(err))
			time.AfterFunc(r.cfg.Backoff.Delay(attempt, 0), try)
		})
	}
	try()
}

var errBadRetryRecord = errors.New("retry record lacks valid auditstream headers")

func parseParkState(rec *kgo.Record) (*parkState, error) {
	var st parkState
	var err error
	seen := 0
	for _, h := range rec.Headers {
		v := string(h.Value)
		switch h.Key {
		case deadletter.HeaderConnection:
			st.connection = v
			seen++
		case deadletter.HeaderAttempt:
			st.attempt, err = strconv.Atoi(v)
			seen++
		case deadletter.HeaderDue:
			st.due, err = time.Parse(time.RFC3339Nano, v)
			seen++
		case deadletter.HeaderFirstFailed:
			st.firstFailed, err = time.Parse(time.RFC3339Nano, v)
			seen++
		case deadletter.HeaderSourceTopic:
			st.srcTopic = v
			seen++
		case deadletter.HeaderSourcePartition:
			var p int
			p, err = strconv.Atoi(v)
			st.srcPart = int32(p)
			seen++
		case deadletter.HeaderSourceOffset:
			st.srcOffset, err = strconv.ParseInt(v, 10, 64)
			seen++
		case deadletter.HeaderSourceTime:
			st.sourceTime, err = time.Parse(time.RFC3339Nano, v)
		case deadletter.HeaderPolicy:
			st.policy = v
		}
		if err != nil {
			return nil, fmt.Errorf("%w: header %s: %v", errBadRetryRecord, h.Key, err)
		}
	}
	if seen < 7 || st.connection == "" || st.attempt < 1 {
		return nil, errBadRetryRecord
	}
	return &st, nil
}

// holdRetry keeps a record read back from the retry topic until it is due,
// then routes it to the connection it was parked for.
func (r *Runtime) holdRetry(t *tracked) {
	r.transit.read(t.rec.Partition, t.rec.Offset)
	st, err := parseParkState(t.rec)
	if err != nil {
		t.remaining.Store(1)
		r.deadLetter(t, "", "bad_retry_record", err)
		return
	}
	if r.now().Sub(st.firstFailed) > r.cfg.MaxAge {
		t.remaining.Store(1)
		r.deadLetterParked(t, st, st.connection, reasonMaxAge, fmt.Errorf("still failing after %d attempts since %s", st.attempt, st.firstFailed.UTC().Format(time.RFC3339)))
		return
	}
	r.mu.Lock()
	d := r.delayers[t.rec.Partition]
	if d == nil {
		d = newRetryDelayer(r)
		r.delayers[t.rec.Partition] = d
		go d.run()
	}
	r.mu.Unlock()
	size := int64(len(t.rec.Value))
	if held := r.retryHeld.Add(size); held > int64(r.cfg.MaxRetryHeldBytes) && r.retryPaused.CompareAndSwap(false, true) {
		r.client.PauseFetchTopics(r.cfg.RetryTopic.Name)
	}
	r.metrics.retryHeld.Set(float64(r.retryHeld.Load()))
	d.add(heldRetry{t: t, st: st, size: size})
}

func (r *Runtime) releaseRetryHeld(size int64) {
	held := r.retryHeld.Add(-size)
	r.metrics.retryHeld.Set(float64(held))
	if held <= int64(r.cfg.MaxRetryHeldBytes)/2 && r.retryPaused.CompareAndSwap(true, false) {
		r.client.ResumeFetchTopics(r.cfg.RetryTopic.Name)
	}
}

type heldRetry struct {
	t    *tracked
	st   *parkState
	size int64
}

// retryDelayer releases one retry partition's records in order, each at its
// due time. Parking always adds the same delay, so due times rise along a
// partition and waiting on the head holds back nothing that is due.
type retryDelayer struct {
	r       *Runtime
	mu      sync.Mutex
	queue   []heldRetry
	wake    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newRetryDelayer(r *Runtime) *retryDelayer {
	return &retryDelayer{r: r, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
}

func (d *retryDelayer) add(h heldRetry) {
	d.mu.Lock()
	d.queue = append(d.queue, h)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *retryDelayer) stop() { d.once.Do(func() { close(d.stopped) }) }

func (d *retryDelayer) run() {
	for {
		d.mu.Lock()
		var head *heldRetry
		if len(d.queue) > 0 {
			head = &d.queue[0]
		}
		d.mu.Unlock()
		if head == nil {
			select {
			case <-d.wake:
				continue
			case <-d.stopped:
				return
			case <-d.r.ctx.Done():
				return
			}
		}
		if wait := head.st.due.Sub(d.r.now()); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-d.stopped:
				timer.Stop()
				d.drop()
				return
			case <-d.r.ctx.Done():
				timer.Stop()
				return
			}
		}
		d.mu.Lock()
		h := d.queue[0]
		d.queue[0] = heldRetry{}
		d.queue = d.queue[1:]
		d.mu.Unlock()
		d.r.releaseRetryHeld(h.size)
		if h.t.tracker.revoked.Load() {
			h.t.remaining.Store(1)
			h.t.complete()
			continue
		}
		d.r.route(h.t, h.st)
	}
}

// drop releases the memory accounting of records a revoke took away.
func (d *retryDelayer) drop() {
	d.mu.Lock()
	q := d.queue
	d.queue = nil
	d.mu.Unlock()
	for _, h := range q {
		d.r.releaseRetryHeld(h.size)
		h.t.remaining.Store(1)
		h.t.complete()
	}
}
