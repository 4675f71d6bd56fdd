package delivery

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// parkedTransit keeps the events this runtime parked and has not read back
// from the retry topic yet: those being written to it, and those written
// to a retry partition it reads but not fetched yet (its fetching of the
// retry topic may be paused for a long while). Without it a parked event
// would vanish from the connection's oldest undelivered event between
// parking and reading back. Events parked to a partition another replica
// reads are that replica's to report once it reads them.
type parkedTransit struct {
	mu      sync.Mutex
	nextID  uint64
	writing map[string]map[uint64]time.Time // connection → id → since
	owned   map[int32]bool                  // retry partitions assigned here
	parts   map[int32]*transitPart
}

// transitPart is one retry partition's parked events not read back yet, per
// connection, in offset order. Events parked within a second of the last
// entry's time (or earlier) are merged into it: it keeps the earliest time
// and the highest offset, so the oldest is never understated and a long
// outage costs an entry per second, not per event.
type transitPart struct {
	lastRead int64
	conns    map[string][]transitEntry
}

type transitEntry struct {
	offset int64
	since  time.Time
}

func newParkedTransit() *parkedTransit {
	return &parkedTransit{writing: map[string]map[uint64]time.Time{}, owned: map[int32]bool{}, parts: map[int32]*transitPart{}}
}

// startWrite notes an event of conn being parked; the returned id ends it.
func (p *parkedTransit) startWrite(conn string, since time.Time) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	m := p.writing[conn]
	if m == nil {
		m = map[uint64]time.Time{}
		p.writing[conn] = m
	}
	m[p.nextID] = since
	return p.nextID
}

// written moves the event id to the retry partition and offset Kafka put
// it at; ok is false when it was not written (the runtime is stopping).
func (p *parkedTransit) written(conn string, id uint64, partition int32, offset int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	since := p.writing[conn][id]
	delete(p.writing[conn], id)
	if len(p.writing[conn]) == 0 {
		delete(p.writing, conn)
	}
	if !ok || !p.owned[partition] {
		return
	}
	part := p.parts[partition]
	if part == nil {
		part = &transitPart{lastRead: -1, conns: map[string][]transitEntry{}}
		p.parts[partition] = part
	}
	if offset <= part.lastRead {
		return // read back before Kafka's answer came
	}
	q := part.conns[conn]
	if n := len(q); n > 0 && since.Sub(q[n-1].since) < time.Second {
		q[n-1].offset = max(q[n-1].offset, offset)
		if since.Before(q[n-1].since) {
			q[n-1].since = since
		}
		return
	}
	part.conns[conn] = append(q, transitEntry{offset: offset, since: since})
}

// read notes that the retry partition was read up to offset.
func (p *parkedTransit) read(partition int32, offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	part := p.parts[partition]
	if part == nil {
		if !p.owned[partition] {
			return
		}
		part = &transitPart{lastRead: -1, conns: map[string][]transitEntry{}}
		p.parts[partition] = part
	}
	part.lastRead = max(part.lastRead, offset)
	for conn, q := range part.conns {
		i := 0
		for i < len(q) && q[i].offset <= offset {
			i++
		}
		if i == len(q) {
			delete(part.conns, conn)
		} else if i > 0 {
			part.conns[conn] = append(q[:0], q[i:]...)
		}
	}
}

func (p *parkedTransit) assign(partitions []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range partitions {
		p.owned[n] = true
	}
}

// release forgets a retry partition taken away: its new owner reports what
// it holds.
func (p *parkedTransit) release(partition int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.owned, partition)
	delete(p.parts, partition)
}

// oldest adds to out, per connection, the oldest parked event not read back.
func (p *parkedTransit) oldest(out map[string]time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	note := func(conn string, t time.Time) {
		if cur, ok := out[conn]; !ok || t.Before(cur) {
			out[conn] = t
		}
	}
	for conn, m := range p.writing {
		for _, t := range m {
			note(conn, t)
		}
	}
	for _, part := range p.parts {
		for conn, q := range part.conns {
			for _, e := range q {
				note(conn, e.since)
			}
		}
	}
}

// undeliveredCollector computes, at scrape time, how long the oldest event
// routed to each connection has waited, so the age rises while a
// connection refuses without anything ticking.
type undeliveredCollector struct {
	r            *Runtime
	age          *prometheus.Desc
	deadLettered *prometheus.Desc
}

func newUndeliveredCollector(r *Runtime, constLabels prometheus.Labels) *undeliveredCollector {
	return &undeliveredCollector{r: r,
		age: prometheus.NewDesc("auditstream_delivery_oldest_undelivered_seconds",
			"Age of the oldest event routed to the connection and not yet delivered (queued, being sent or parked); 0 when everything routed to it is delivered. Dead-lettered events are not counted.",
			[]string{"connection"}, constLabels),
		deadLettered: prometheus.NewDesc("auditstream_delivery_connection_dead_lettered_total",
			"Events routed to the connection and dead-lettered instead of delivered, since the forwarder started.",
			[]string{"connection"}, constLabels),
	}
}

func (c *undeliveredCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.age
	ch <- c.deadLettered
}

func (c *undeliveredCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.r.now()
	for conn, oldest := range c.r.oldestUndelivered() {
		age := 0.0
		if !oldest.IsZero() {
			age = max(now.Sub(oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age, conn)
	}
	c.r.connCounters.Range(func(k, v any) bool {
		ch <- prometheus.MustNewConstMetric(c.deadLettered, prometheus.CounterValue, float64(v.(*connCounters).deadLettered.Load()), k.(string))
		return true
	})
}

// oldestUndelivered is, for every connection the runtime has routed to,
// when its oldest undelivered event entered the pipeline; the zero time
// when everything routed to it is delivered (or dead-lettered).
func (r *Runtime) oldestUndelivered() map[string]time.Time {
	r.mu.Lock()
	workers := make([]connWorker, 0, len(r.workers))
	for _, w := range r.workers {
		workers = append(workers, w)
	}
	out := make(map[string]time.Time, len(r.workers)+len(r.broken))
	for name := range r.broken {
		out[name] = time.Time{}
	}
	r.mu.Unlock()
	r.connCounters.Range(func(k, _ any) bool {
		out[k.(string)] = time.Time{}
		return true
	})
	for name, t := range r.oldestHeld() {
		out[name] = t
	}
	for _, w := range workers {
		t, ok := out[w.connection()]
		if o := w.oldestUndelivered(); o != nil && (!ok || t.IsZero() || o.Before(t)) {
			t = *o
		}
		out[w.connection()] = t
	}
	return out
}
