package connstatus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/kafka"
)

// Reader is the status topic read into memory: the latest record of every
// connection, consumer and replica. It reads the topic from its beginning
// (Ready once it reached the end it had at start) and follows it.
type Reader struct {
	cl    *kgo.Client
	topic string
	log   *zap.Logger
	now   func() time.Time

	mu      sync.Mutex
	byConn  map[string]map[string]*Status // connection -> key -> status
	changed chan struct{}                 // closed and replaced after each fetch applied

	ready   chan struct{}
	isReady atomic.Bool
}

// NewReader connects to the brokers and, when bootstrap is on, creates the
// status topic if it is missing. Run reads it.
func NewReader(ctx context.Context, kcfg kafka.Config, log *zap.Logger) (*Reader, error) {
	if log == nil {
		log = zap.NewNop()
	}
	topic := kcfg.Topics.Status
	cl, err := kafka.NewClient(kcfg, log, nil,
		kgo.ConsumeTopics(topic.Name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return nil, err
	}
	if kcfg.Topics.Bootstrap {
		// Run waits for the topic: the API serves everything else meanwhile.
		if err := kafka.EnsureTopics(ctx, cl, topic); err != nil {
			log.Warn("create the status topic", zap.Error(err))
		}
	}
	return &Reader{cl: cl, topic: topic.Name, log: log, now: time.Now,
		byConn: map[string]map[string]*Status{}, changed: make(chan struct{}), ready: make(chan struct{})}, nil
}

// Close releases the Kafka client; call it after Run returned.
func (r *Reader) Close() { r.cl.Close() }

// IsReady reports whether the topic has been read up to the end it had
// when Run started.
func (r *Reader) IsReady() error {
	if r.isReady.Load() {
		return nil
	}
	return errors.New("status topic not read up to its end yet")
}

// Changed is closed the next time records are applied.
func (r *Reader) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Run reads the topic until ctx ends.
func (r *Reader) Run(ctx context.Context) error {
	var ends map[int32]int64
	for {
		var err error
		if ends, err = kafka.EndOffsets(ctx, r.cl, r.topic, "status topic", r.log); err == nil {
			break
		}
		// Until the topic exists every status reads unknown.
		r.log.Warn("status topic not readable; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
	applied := map[int32]int64{}
	checkReady := func() {
		if !r.isReady.Load() && reached(applied, ends) {
			r.isReady.Store(true)
			close(r.ready)
		}
	}
	checkReady()
	for {
		fetches := r.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			r.log.Warn("fetch status topic", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		r.mu.Lock()
		fetches.EachRecord(func(rec *kgo.Record) {
			applied[rec.Partition] = rec.Offset + 1
			r.applyLocked(rec)
		})
		ch := r.changed
		r.changed = make(chan struct{})
		r.mu.Unlock()
		// ready before the change is announced: who sees it sees readiness
		checkReady()
		close(ch)
	}
}

func reached(applied, ends map[int32]int64) bool {
	for p, end := range ends {
		if applied[p] < end {
			return false
		}
	}
	return true
}

func (r *Reader) applyLocked(rec *kgo.Record) {
	key := string(rec.Key)
	conn, _, ok := strings.Cut(key, "|")
	if !ok {
		r.log.Warn("status record refused: key is not connection|consumer|instance", zap.Int32("partition", rec.Partition), zap.Int64("offset", rec.Offset))
		return
	}
	if rec.Value == nil {
		if m := r.byConn[conn]; m != nil {
			delete(m, key)
			if len(m) == 0 {
				delete(r.byConn, conn)
			}
		}
		return
	}
	s, err := Decode(rec.Value)
	if err == nil && s.Key() != key {
		err = fmt.Errorf("the record's key %q does not match its value", key)
	}
	if err != nil {
		r.log.Warn("status record refused", zap.Int32("partition", rec.Partition), zap.Int64("offset", rec.Offset), zap.Error(err))
		return
	}
	m := r.byConn[conn]
	if m == nil {
		m = map[string]*Status{}
		r.byConn[conn] = m
	}
	m[key] = s
}

// Replica is one consumer replica's report in a merged View.
type Replica struct {
	Consumer    string    `json:"consumer"`
	Instance    string    `json:"instance"`
	Healthy     bool      `json:"healthy"`
	PublishedAt time.Time `json:"published_at"`
}

// View is a connection's health merged over the fresh reports of every
// consumer replica that has it in use.
type View struct {
	// State is "healthy", "failed" (a fresh report says so) or "unknown"
	// (no fresh report: no consumer has delivered to the connection since
	// it started, or none is running).
	State             string     `json:"state"`
	FailedSince       *time.Time `json:"failed_since,omitempty"`
	LastSuccess       *time.Time `json:"last_success,omitempty"`
	LastError         string     `json:"last_error,omitempty"`
	LastErrorAt       *time.Time `json:"last_error_at,omitempty"`
	DeliveredToday    int64      `json:"delivered_today"`
	Delivered         int64      `json:"delivered"`
	Parked            int64      `json:"parked"`
	DeadLettered      int64      `json:"dead_lettered"`
	Filtered          int64      `json:"filtered"`
	FilterErrors      int64      `json:"filter_errors"`
	OldestUndelivered *time.Time `json:"oldest_undelivered,omitempty"`
	UpdatedAt         *time.Time `json:"updated_at,omitempty"`
	Consumers         []Replica  `json:"consumers"`
}

// States of a View.
const (
	StateHealthy = "healthy"
	StateFailed  = "failed"
	StateUnknown = "unknown"
)

// Connection merges the fresh reports on connection (its qualified name):
// failed if any replica reports it failed (since the earliest), counters
// summed (delivered today only over reports of today, UTC), the latest
// success and error, the oldest undelivered event of all.
func (r *Reader) Connection(connection string) View {
	now := r.now()
	today := now.UTC().Format(time.DateOnly)
	r.mu.Lock()
	var fresh []*Status
	for _, s := range r.byConn[connection] {
		if now.Before(s.FreshUntil) {
			fresh = append(fresh, s)
		}
	}
	r.mu.Unlock()
	return merge(fresh, today)
}

func merge(fresh []*Status, today string) View {
	v := View{State: StateUnknown, Consumers: []Replica{}}
	if len(fresh) == 0 {
		return v
	}
	v.State = StateHealthy
	slices.SortFunc(fresh, func(a, b *Status) int {
		return cmp.Or(cmp.Compare(a.Consumer, b.Consumer), cmp.Compare(a.Instance, b.Instance))
	})
	for _, s := range fresh {
		v.Consumers = append(v.Consumers, Replica{Consumer: s.Consumer, Instance: s.Instance, Healthy: s.Healthy, PublishedAt: s.PublishedAt})
		if !s.Healthy {
			v.State = StateFailed
			v.FailedSince = earliest(v.FailedSince, s.FailedSince)
		}
		v.LastSuccess = latest(v.LastSuccess, s.LastSuccess)
		if s.LastErrorAt != nil && (v.LastErrorAt == nil || s.LastErrorAt.After(*v.LastErrorAt)) {
			// redacted by the publisher; again here, whoever published it
			v.LastError, v.LastErrorAt = Redact(s.LastError), s.LastErrorAt
		}
		v.Delivered += s.Delivered
		if s.Day == today {
			v.DeliveredToday += s.DeliveredToday
		}
		v.Parked += s.Parked
		v.DeadLettered += s.DeadLettered
		v.Filtered += s.Filtered
		v.FilterErrors += s.FilterErrors
		v.OldestUndelivered = earliest(v.OldestUndelivered, s.OldestUndelivered)
		at := s.PublishedAt
		v.UpdatedAt = latest(v.UpdatedAt, &at)
	}
	return v
}

func earliest(a, b *time.Time) *time.Time {
	if b == nil || (a != nil && !b.Before(*a)) {
		return a
	}
	t := *b
	return &t
}

func latest(a, b *time.Time) *time.Time {
	if b == nil || (a != nil && !b.After(*a)) {
		return a
	}
	t := *b
	return &t
}
