package delivery

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// job is one event bound for one connection.
type job struct {
	t        *tracked
	conn     string
	ev       *auditlogv1.AuditEvent // decoded by the poll loop, until encoded; shared, read-only
	shared   *sharedEvent           // or decoded by the first worker to encode it
	queuedAt time.Time
	parked   *parkState // set when read back from the retry topic
	// policy is the connection's policy when the job was routed: what a
	// parked copy of the event is put in the form of
	policy    *eventfilter.Policy
	eventTime time.Time
}

// held is what the job holds of MaxInflightBytes, which queues are capped by.
func (j *job) held() int { return int(j.t.size) }

// sinkBox is what the worker sends with: the connection's encoder and
// sink and its policy (filter and redaction; nil for none), swapped
// together when the connection changes.
type sinkBox[E any] struct {
	sink   entrySink[E]
	policy *eventfilter.Policy
}

// connWorker is a connection's worker as the runtime sees it, whatever
// its sink's entry type.
type connWorker interface {
	offer(j *job)
	flush()
	stop()
	shed()
	run()
	isUnhealthy() bool
	connection() string
	status(now time.Time) ConnectionStatus
	oldestUndelivered() *time.Time
	currentPolicy() *eventfilter.Policy
	currentFingerprint() string
	setSink(s EntrySink, policy *eventfilter.Policy, fingerprint string) error
}

// pending is a job encoded for the sink: the entry travels beside the job,
// by value, so batching an event allocates nothing of its own.
type pending[E any] struct {
	j     *job
	entry sink.Entry[E]
}

// worker batches and sends one connection's events. Each connection has its
// own, so a slow or failing destination only ever delays itself; past its
// queue cap its events are parked instead of filling shared memory.
type worker[E any] struct {
	r    *Runtime
	name string
	sink atomic.Pointer[sinkBox[E]]
	// the connection's metric series, looked up once rather than per event
	deliveredC  prometheus.Counter
	endToEnd    prometheus.Observer
	batchSize   prometheus.Observer
	sendLatency prometheus.Observer
	fingerprint atomic.Value // string

	mu          sync.Mutex
	queue       []*job
	queuedBytes int
	lastTake    time.Time // when the worker last took a job: its progress
	wake        chan struct{}
	flushReq    chan struct{}
	sending     chan struct{} // one token per batch being sent
	sends       sync.WaitGroup
	done        chan struct{}
	stopOnce    sync.Once

	healthMu       sync.Mutex
	unhealthySince time.Time
	lastProbe      time.Time
	lastSuccess    time.Time
	lastError      string
	lastErrorAt    time.Time

	// for the status: events delivered since start and today, and when
	// the oldest event of each batch being sent entered the pipeline
	deliveredN atomic.Int64
	today      todayCounter
	sendingAt  map[uint64]time.Time // guarded by mu
	nextSend   uint64
}

func newWorker[E any](r *Runtime, name string, sink entrySink[E], policy *eventfilter.Policy, fingerprint string) *worker[E] {
	w := &worker[E]{r: r, name: name, wake: make(chan struct{}, 1), flushReq: make(chan struct{}, 1), done: make(chan struct{}),
		sendingAt:  map[uint64]time.Time{},
		sending:    make(chan struct{}, r.cfg.RequestsInFlight),
		deliveredC: r.metrics.delivered.WithLabelValues(name), endToEnd: r.metrics.endToEnd.WithLabelValues(name),
		batchSize: r.metrics.batchSize.WithLabelValues(name), sendLatency: r.metrics.sendLatency.WithLabelValues(name)}
	w.sink.Store(&sinkBox[E]{sink: sink, policy: policy})
	w.fingerprint.Store(fingerprint)
	r.metrics.healthy.WithLabelValues(name).Set(1)
	return w
}

// setSink swaps the connection's sink for s, which a forwarder builds
// with the same entry type for every connection.
func (w *worker[E]) setSink(s EntrySink, policy *eventfilter.Policy, fingerprint string) error {
	typed, ok := s.(entrySink[E])
	if !ok {
		return fmt.Errorf("connection %s: sink %T does not take the entries of the connection's worker", w.name, s)
	}
	w.sink.Store(&sinkBox[E]{sink: typed, policy: policy})
	w.fingerprint.Store(fingerprint)
	return nil
}

func (w *worker[E]) connection() string { return w.name }

func (w *worker[E]) currentFingerprint() string { return w.fingerprint.Load().(string) }

func (w *worker[E]) currentPolicy() *eventfilter.Policy { return w.sink.Load().policy }

// offer queues a job. Past MaxConnectionBytes it parks the job instead, but
// only when the connection is unhealthy or has stopped draining (its oldest
// queued event waited longer than BacklogMaxWait): a healthy connection that
// is merely busy slows fetching rather than sending its events round the
// retry topic.
func (w *worker[E]) offer(j *job) {
	now := time.Now()
	w.mu.Lock()
	if w.queuedBytes+j.held() > int(w.r.cfg.MaxConnectionBytes) && (w.stalledLocked(now) || w.isUnhealthy()) {
		w.mu.Unlock()
		w.r.park(j, parkReasonBacklog)
		return
	}
	j.queuedAt = now
	w.queue = append(w.queue, j)
	w.queuedBytes += j.held()
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stalledLocked reports whether the connection stopped draining: its oldest
// queued event and its last progress are both older than BacklogMaxWait. A
// busy connection keeps taking jobs and is never stalled.
func (w *worker[E]) stalledLocked(now time.Time) bool {
	wait := w.r.cfg.BacklogMaxWait
	return len(w.queue) > 0 && now.Sub(w.queue[0].queuedAt) > wait && now.Sub(w.lastTake) > wait
}

// shed parks queued events beyond MaxConnectionBytes when the connection
// has stopped draining, so a stuck connection gives back the in-flight bytes
// the others need (new events are parked by offer from then on).
func (w *worker[E]) shed() {
	now := time.Now()
	w.mu.Lock()
	if w.queuedBytes <= int(w.r.cfg.MaxConnectionBytes) || !(w.stalledLocked(now) || (len(w.queue) > 0 && w.isUnhealthy())) {
		w.mu.Unlock()
		return
	}
	var shed []*job
	for len(w.queue) > 1 && w.queuedBytes > int(w.r.cfg.MaxConnectionBytes) {
		j := w.queue[len(w.queue)-1]
		w.queue[len(w.queue)-1] = nil
		w.queue = w.queue[:len(w.queue)-1]
		w.queuedBytes -= j.held()
		shed = append(shed, j)
	}
	w.mu.Unlock()
	for i := len(shed) - 1; i >= 0; i-- {
		w.r.park(shed[i], parkReasonBacklog)
	}
}

// flush asks the worker to send what it has without waiting for the batch
// policy.
func (w *worker[E]) flush() {
	select {
	case w.flushReq <- struct{}{}:
	default:
	}
}

func (w *worker[E]) stop() { w.stopOnce.Do(func() { close(w.done) }) }

// takeChunk is how many jobs take moves out of the queue at once: one lock
// and one clock reading per chunk rather than per event, while a worker
// blocked on a full set of requests in flight holds few events the queue's
// cap no longer sees.
const takeChunk = 64

// take appends up to takeChunk queued jobs to dst.
func (w *worker[E]) take(dst []*job) []*job {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(w.queue), takeChunk)
	if n == 0 {
		return dst
	}
	for i, j := range w.queue[:n] {
		dst = append(dst, j)
		w.queuedBytes -= j.held()
		w.queue[i] = nil
	}
	w.queue = w.queue[n:]
	w.lastTake = time.Now()
	return dst
}

func (w *worker[E]) queued() (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue), w.queuedBytes
}

// encode turns the job's event into the sink's entry; an event the sink
// cannot take (over its size limit) is dead-lettered for this connection.
// The connection's policy applies first, to a copy: an event its filter
// excludes is finished here, and a redacted field never reaches the
// entry, so neither the destination nor a retry of the entry sees it.
// A record that does not decode is dead-lettered once, by whichever of its
// connections' workers finds out first.
func (w *worker[E]) encode(j *job) (sink.Entry[E], bool) {
	var none sink.Entry[E]
	ev := j.ev
	if shared := j.shared; shared != nil {
		var err error
		ev, err = shared.event(sourceView(j.t, j.parked))
		if err != nil {
			shared.encoded()
			j.shared = nil
			w.r.undecodable(j, shared, err)
			return none, false
		}
		j.eventTime = auditevent.EventTime(ev, j.t.rec)
	}
	box := w.sink.Load()
	form := "" // a record parked under this very policy is already in its form
	if j.parked != nil {
		form = j.parked.policy
	}
	ev, keep, ferr := box.policy.ApplyTo(ev, form)
	if ferr != nil {
		w.r.metrics.filterErrors.WithLabelValues(w.name).Inc()
		w.r.counters(w.name).filterErrors.Add(1)
	}
	if !keep {
		j.ev = nil
		if j.shared != nil {
			j.shared.encoded()
			j.shared = nil
		}
		w.r.filteredOut(j)
		return none, false
	}
	entry, err := box.sink.enc.EncodeEntry(ev)
	j.ev = nil
	if j.shared != nil {
		j.shared.encoded()
		j.shared = nil
	}
	if err != nil {
		w.r.metrics.failed.WithLabelValues(w.name, sink.Classify(err).String()).Inc()
		w.r.deadLetterParked(j.t, j.parked, w.name, reasonEncode, err)
		return none, false
	}
	return entry, true
}

func (w *worker[E]) run() {
	batcher := sink.NewBatcher[pending[E]](w.r.cfg.Batch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	taken := make([]*job, 0, takeChunk)
	for {
		for taken = w.take(taken[:0]); len(taken) > 0; taken = w.take(taken[:0]) {
			for i, j := range taken {
				taken[i] = nil
				if j.t.tracker.revoked.Load() {
					// the partition moved to another member, which resends it
					j.t.complete()
					continue
				}
				e, ok := w.encode(j)
				if !ok {
					continue
				}
				if batcher.Add(pending[E]{j, e}, e.Size) {
					w.dispatch(batcher.Flush())
				}
			}
		}
		var timerC <-chan time.Time
		// The queue is drained: from now on the connection is quiet until
		// woken.
		if d, ok := batcher.FlushAt(time.Now()); ok {
			timer.Reset(time.Until(d))
			timerC = timer.C
		}
		select {
		case <-w.wake:
		case <-timerC:
			w.dispatch(batcher.Flush())
		case <-w.flushReq:
			for taken = w.take(taken[:0]); len(taken) > 0; taken = w.take(taken[:0]) {
				for i, j := range taken {
					taken[i] = nil
					if e, ok := w.encode(j); ok {
						batcher.Add(pending[E]{j, e}, e.Size)
					}
				}
			}
			if batcher.Len() > 0 {
				w.dispatch(batcher.Flush())
			}
		case <-w.done:
			// what is still queued was never sent and is not committed
			w.sends.Wait()
			return
		}
		timer.Stop()
	}
}

// dispatch sends a batch while up to RequestsInFlight others are out, so
// encoding the next batch overlaps the destination's answer to this one.
// Batches may then finish out of order; offsets are committed only below the
// first unfinished record, so that is safe.
func (w *worker[E]) dispatch(batch []pending[E]) {
	if len(batch) == 0 {
		return
	}
	w.sending <- struct{}{}
	w.sends.Add(1)
	var oldest time.Time
	for _, p := range batch {
		if t := undeliveredSince(p.j); oldest.IsZero() || (!t.IsZero() && t.Before(oldest)) {
			oldest = t
		}
	}
	w.mu.Lock()
	id := w.nextSend
	w.nextSend++
	w.sendingAt[id] = oldest
	w.mu.Unlock()
	go func() {
		defer func() {
			w.mu.Lock()
			delete(w.sendingAt, id)
			w.mu.Unlock()
			<-w.sending
			w.sends.Done()
		}()
		w.send(batch)
	}()
}

// send delivers a batch (BatchSender): delivered jobs finish, what the
// destination rejects for good is dead-lettered, and the rest is parked:
// a connection found unhealthy parks its jobs, and so do retries spent.
// Every job leaves send finished (or unfinished only when the runtime is
// stopping, in which case its offset is not committed).
func (w *worker[E]) send(batch []pending[E]) {
	if len(batch) == 0 {
		return
	}
	entries := make([]sink.Entry[E], len(batch))
	for i, p := range batch {
		entries[i] = p.entry
	}
	var unhealthy []*job
	delivered := 0
	var now time.Time
	bs := BatchSender{
		Backoff: w.r.cfg.Backoff, RetryBudget: w.r.cfg.RetryBudget, SendTimeout: w.r.cfg.SendTimeout,
		Hold: w.shouldPark,
		Attempted: func(n int, took time.Duration, err error) {
			w.batchSize.Observe(float64(n))
			w.sendLatency.Observe(took.Seconds())
			if delivered > 0 {
				w.deliveredC.Add(float64(delivered))
				w.deliveredN.Add(int64(delivered))
				w.today.add(delivered, now)
				w.markHealthy()
			}
			if err != nil {
				w.noteError(err)
			}
			if len(unhealthy) > 0 {
				w.markUnhealthy(err)
				w.parkAll(unhealthy, parkReasonUnhealthy)
			}
			delivered, unhealthy, now = 0, nil, time.Time{}
		},
		Retrying: func(n int) { w.r.metrics.retried.WithLabelValues(w.name).Add(float64(n)) },
	}
	left, why, _ := Send(w.r.ctx, bs, w.sink.Load().sink.s, entries, func(i int, err error) {
		j := batch[i].j
		if now.IsZero() {
			now = w.r.now()
		}
		if err == nil {
			delivered++
			w.delivered(j, now)
			return
		}
		class := sink.Classify(err)
		w.r.metrics.failed.WithLabelValues(w.name, class.String()).Inc()
		switch class {
		case sink.Permanent:
			w.r.deadLetterParked(j.t, j.parked, w.name, reasonPermanent, err)
		case sink.Unhealthy:
			unhealthy = append(unhealthy, j)
		}
	})
	reason := parkReasonBudget
	switch why {
	case AllDone, Stopped:
		return // stopping: unfinished jobs are resent after restart
	case Held:
		reason = parkReasonUnhealthy
	}
	for _, i := range left {
		w.r.park(batch[i].j, reason)
	}
}

// delivered finishes a job the destination accepted at now; the caller
// counts it.
func (w *worker[E]) delivered(j *job, now time.Time) {
	if !j.eventTime.IsZero() {
		w.endToEnd.Observe(now.Sub(j.eventTime).Seconds())
	}
	j.t.complete()
}

func (w *worker[E]) parkAll(jobs []*job, reason string) {
	for _, j := range jobs {
		w.r.park(j, reason)
	}
}

func (w *worker[E]) isUnhealthy() bool {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	return !w.unhealthySince.IsZero()
}

// shouldPark is true while the connection is unhealthy, except once every
// UnhealthyProbe, when a batch goes through to test whether it healed.
func (w *worker[E]) shouldPark() bool {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	if w.unhealthySince.IsZero() {
		return false
	}
	if now := time.Now(); now.Sub(w.lastProbe) >= w.r.cfg.UnhealthyProbe {
		w.lastProbe = now
		return false
	}
	return true
}

func (w *worker[E]) markUnhealthy(err error) {
	w.healthMu.Lock()
	first := w.unhealthySince.IsZero()
	if first {
		w.unhealthySince = time.Now()
		w.lastProbe = w.unhealthySince
	}
	w.healthMu.Unlock()
	if first {
		w.r.metrics.healthy.WithLabelValues(w.name).Set(0)
		w.r.log.Error("connection unhealthy; parking its events until it recovers",
			zap.String("connection", w.name), zap.Error(err))
		if w.r.unhealthy != nil {
			w.r.unhealthy(w.name)
		}
		w.r.statusChanged()
	}
}

func (w *worker[E]) markHealthy() {
	w.healthMu.Lock()
	was := !w.unhealthySince.IsZero()
	w.unhealthySince = time.Time{}
	w.lastSuccess = time.Now()
	w.healthMu.Unlock()
	if was {
		w.r.metrics.healthy.WithLabelValues(w.name).Set(1)
		w.r.log.Info("connection recovered", zap.String("connection", w.name))
		w.r.statusChanged()
	}
}

func (w *worker[E]) noteError(err error) {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	w.lastError = err.Error()
	w.lastErrorAt = time.Now()
}

// ConnectionStatus is a connection's health for the status endpoint and
// the status topic. Counters count since the runtime started.
type ConnectionStatus struct {
	Name           string     `json:"name"`
	Healthy        bool       `json:"healthy"`
	UnhealthySince *time.Time `json:"unhealthy_since,omitempty"`
	LastSuccess    *time.Time `json:"last_success,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	LastErrorAt    *time.Time `json:"last_error_at,omitempty"`
	Queued         int        `json:"queued"`
	QueuedBytes    int        `json:"queued_bytes"`
	Delivered      int64      `json:"delivered"`
	// DeliveredToday counts the events delivered on Day (UTC).
	DeliveredToday int64  `json:"delivered_today"`
	Day            string `json:"day"`
	// Parked counts events parked on the retry topic, each once however
	// often it is parked again after a retry.
	Parked       int64 `json:"parked"`
	DeadLettered int64 `json:"dead_lettered"`
	// Filtered counts events the connection's filter excluded (finished
	// without being sent), FilterErrors events it could not decide on
	// (sent all the same).
	Filtered     int64 `json:"filtered"`
	FilterErrors int64 `json:"filter_errors"`
	// OldestUndelivered is when the oldest event routed to the connection
	// and not yet delivered (queued, being sent, or parked: being written to
	// the retry topic, on it, or read back and waiting) entered the
	// pipeline: its record's timestamp on the events topic. Dead-lettered
	// events are not undelivered but counted in DeadLettered.
	OldestUndelivered *time.Time `json:"oldest_undelivered,omitempty"`
}

// oldestUndelivered is the oldest event queued or being sent.
func (w *worker[E]) oldestUndelivered() *time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var oldest *time.Time
	for _, j := range w.queue {
		oldest = earlier(oldest, undeliveredSince(j))
	}
	for _, t := range w.sendingAt {
		oldest = earlier(oldest, t)
	}
	return oldest
}

func (w *worker[E]) status(now time.Time) ConnectionStatus {
	n, b := w.queued()
	oldest := w.oldestUndelivered()
	day, today := w.today.get(now)
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	s := ConnectionStatus{Name: w.name, Healthy: w.unhealthySince.IsZero(), LastError: w.lastError, Queued: n, QueuedBytes: b,
		Delivered: w.deliveredN.Load(), DeliveredToday: today, Day: day, OldestUndelivered: oldest}
	if !w.unhealthySince.IsZero() {
		t := w.unhealthySince
		s.UnhealthySince = &t
	}
	if !w.lastSuccess.IsZero() {
		t := w.lastSuccess
		s.LastSuccess = &t
	}
	if !w.lastErrorAt.IsZero() {
		t := w.lastErrorAt
		s.LastErrorAt = &t
	}
	return s
}
