package delivery

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// connCounters are what the runtime counts per connection for its status,
// since it started: events parked on the retry topic (each once: not again
// when it is parked anew after a retry) and dead-lettered.
type connCounters struct {
	parked, deadLettered atomic.Int64
	// events the connection's filter excluded, and filter evaluations
	// that failed (the event was delivered)
	filtered, filterErrors atomic.Int64
}

func (r *Runtime) counters(conn string) *connCounters {
	if c, ok := r.connCounters.Load(conn); ok {
		return c.(*connCounters)
	}
	c, _ := r.connCounters.LoadOrStore(conn, &connCounters{})
	return c.(*connCounters)
}

// brokenSink is a connection whose sink cannot be built (its settings or
// secret cannot be read): its events are parked until it can.
type brokenSink struct {
	since, at time.Time
	err       string
}

// sinkFailed records that conn's sink cannot be built: the connection is
// failed with err as the reason. It logs once per distinct error, not once
// per record routed to the connection.
func (r *Runtime) sinkFailed(conn string, err error) {
	now := time.Now()
	msg := err.Error()
	r.mu.Lock()
	b := r.broken[conn]
	first := b == nil
	if first {
		b = &brokenSink{since: now}
		r.broken[conn] = b
	}
	changed := b.err != msg
	b.err, b.at = msg, now
	r.mu.Unlock()
	if changed {
		r.log.Error("build sink; parking the connection's events until it can be built", zap.String("connection", conn), zap.Error(err))
	}
	if first {
		r.metrics.healthy.WithLabelValues(conn).Set(0)
		r.statusChanged()
	}
}

// sinkBuiltLocked forgets that conn's sink could not be built. r.mu is held.
func (r *Runtime) sinkBuiltLocked(conn string) bool {
	if r.broken[conn] == nil {
		return false
	}
	delete(r.broken, conn)
	if w := r.workers[conn]; w == nil || !w.isUnhealthy() {
		r.metrics.healthy.WithLabelValues(conn).Set(1)
	}
	r.log.Info("connection's sink built again", zap.String("connection", conn))
	return true
}

// statusChanged tells the status publisher a connection turned unhealthy
// or recovered.
func (r *Runtime) statusChanged() {
	if r.onStatusChange != nil {
		r.onStatusChange()
	}
}

// todayCounter counts events of the current UTC day.
type todayCounter struct {
	mu  sync.Mutex
	day string
	n   int64
}

func (c *todayCounter) add(n int, now time.Time) {
	day := now.UTC().Format(time.DateOnly)
	c.mu.Lock()
	defer c.mu.Unlock()
	if day != c.day {
		c.day, c.n = day, 0
	}
	c.n += int64(n)
}

func (c *todayCounter) get(now time.Time) (string, int64) {
	day := now.UTC().Format(time.DateOnly)
	c.mu.Lock()
	defer c.mu.Unlock()
	if day != c.day {
		return day, 0
	}
	return c.day, c.n
}

// undeliveredSince is when a job's event entered the pipeline: its source
// record's timestamp, which a parked event carries round the retry topic.
func undeliveredSince(j *job) time.Time {
	if j.parked != nil {
		return j.parked.since()
	}
	return j.t.rec.Timestamp
}

// oldestHeld is, per connection, the oldest parked event: being written to
// the retry topic, on it and not read back yet, or read back and waiting on
// the retry topic's delayers to be tried again.
func (r *Runtime) oldestHeld() map[string]time.Time {
	r.mu.Lock()
	delayers := make([]*retryDelayer, 0, len(r.delayers))
	for _, d := range r.delayers {
		delayers = append(delayers, d)
	}
	r.mu.Unlock()
	out := map[string]time.Time{}
	for _, d := range delayers {
		d.mu.Lock()
		for _, h := range d.queue {
			if cur, ok := out[h.st.connection]; !ok || h.st.since().Before(cur) {
				out[h.st.connection] = h.st.since()
			}
		}
		d.mu.Unlock()
	}
	r.transit.oldest(out)
	return out
}

func earlier(a *time.Time, b time.Time) *time.Time {
	if b.IsZero() || (a != nil && !b.Before(*a)) {
		return a
	}
	return &b
}
