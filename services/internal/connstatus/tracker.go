package connstatus

import (
	"sort"
	"sync"
	"time"
)

// Tracker keeps connection health for a consumer that has no delivery
// runtime of its own (the archiver): it is told of each success and failure
// and is the Source of a Publisher. It is safe for concurrent use.
type Tracker struct {
	// OnChange, when set, is called when a connection turns failed or
	// recovers; it must not block.
	OnChange func()

	mu    sync.Mutex
	conns map[string]*tracked
	now   func() time.Time
}

type tracked struct {
	s Status
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{conns: map[string]*tracked{}, now: time.Now} }

func (t *Tracker) get(conn string) *tracked {
	c := t.conns[conn]
	if c == nil {
		c = &tracked{s: Status{Connection: conn, Healthy: true}}
		t.conns[conn] = c
	}
	return c
}

// Success records that n events reached conn.
func (t *Tracker) Success(conn string, n int64) {
	now := t.now().UTC()
	t.mu.Lock()
	c := t.get(conn)
	recovered := !c.s.Healthy
	c.s.Healthy, c.s.FailedSince, c.s.LastSuccess = true, nil, &now
	c.s.Delivered += n
	if day := now.Format(time.DateOnly); c.s.Day != day {
		c.s.Day, c.s.DeliveredToday = day, 0
	}
	c.s.DeliveredToday += n
	t.mu.Unlock()
	if recovered && t.OnChange != nil {
		t.OnChange()
	}
}

// Failure records that a write to conn failed with err; the connection is
// failed until its next success. The message is redacted when published.
func (t *Tracker) Failure(conn string, err error) {
	now := t.now().UTC()
	t.mu.Lock()
	c := t.get(conn)
	turned := c.s.Healthy
	if turned {
		c.s.Healthy, c.s.FailedSince = false, &now
	}
	c.s.LastError, c.s.LastErrorAt = err.Error(), &now
	t.mu.Unlock()
	if turned && t.OnChange != nil {
		t.OnChange()
	}
}

// DeadLettered records that n events meant for conn went to the
// dead-letter topic.
func (t *Tracker) DeadLettered(conn string, n int64) {
	t.mu.Lock()
	t.get(conn).s.DeadLettered += n
	t.mu.Unlock()
}

// Filtered records that conn's filter left n events out.
func (t *Tracker) Filtered(conn string, n int64) {
	t.mu.Lock()
	t.get(conn).s.Filtered += n
	t.mu.Unlock()
}

// Snapshot is every connection's status, for a Publisher's Source.
func (t *Tracker) Snapshot() []Status {
	today := t.now().UTC().Format(time.DateOnly)
	t.mu.Lock()
	out := make([]Status, 0, len(t.conns))
	for _, c := range t.conns {
		s := c.s
		if s.Day != today {
			s.Day, s.DeliveredToday = today, 0
		}
		out = append(out, s)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Connection < out[j].Connection })
	return out
}
