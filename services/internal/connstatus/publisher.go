package connstatus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/kafka"
)

// DefaultInterval is how often a consumer publishes its connections'
// status by default.
const DefaultInterval = 10 * time.Second

// staleAfter is how many publish intervals a record stays fresh: a replica
// misses two publications before readers stop believing it.
const staleAfter = 3

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	// Kafka is the client configuration; Topics.Status is the topic.
	Kafka kafka.Config
	// Consumer names the publishing service ("datadog", "archiver").
	Consumer string
	// Instance names this replica; empty takes the host name and a random
	// suffix, so a restarted replica never reuses a dead one's records.
	Instance string
	// Interval is how often every connection's status is published.
	Interval time.Duration
	// Source returns the status of every connection the consumer has in
	// use; the publisher fills in the schema, consumer, instance, times
	// and redacts LastError.
	Source   func() []Status
	Logger   *zap.Logger
	Registry prometheus.Registerer
}

// Publisher writes a consumer's connection statuses to the status topic.
type Publisher struct {
	o       PublisherOptions
	cl      *kgo.Client
	started time.Time
	kick    chan struct{}
	keys    map[string]bool // published and not tombstoned
	failed  prometheus.Counter
}

// NewPublisher connects to the brokers and, when bootstrap is on, creates
// the status topic if it is missing. Run publishes.
func NewPublisher(ctx context.Context, o PublisherOptions) (*Publisher, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Instance == "" {
		o.Instance = newInstanceID()
	}
	topic := o.Kafka.Topics.Status
	cl, err := kafka.NewClient(o.Kafka, o.Logger, nil, kgo.DefaultProduceTopic(topic.Name), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	if o.Kafka.Topics.Bootstrap {
		// Status is secondary to delivery: a consumer that cannot create
		// the topic still delivers, and says why its status is missing.
		if err := kafka.EnsureTopics(ctx, cl, topic); err != nil {
			o.Logger.Warn("create the status topic; connection status may not be published", zap.Error(err))
		}
	}
	p := &Publisher{o: o, cl: cl, started: time.Now().UTC(), kick: make(chan struct{}, 1), keys: map[string]bool{},
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "auditstream_connection_status_publish_failures_total",
			Help:        "Connection status records that could not be written to the status topic.",
			ConstLabels: prometheus.Labels{"consumer": o.Consumer},
		})}
	if o.Registry != nil {
		if err := o.Registry.Register(p.failed); err != nil {
			cl.Close()
			return nil, fmt.Errorf("register status metrics: %w", err)
		}
	}
	return p, nil
}

func newInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "consumer"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// Instance is this replica's name in the records' keys.
func (p *Publisher) Instance() string { return p.o.Instance }

// Kick asks for a publication now, as when a connection turned unhealthy
// or recovered. It never blocks.
func (p *Publisher) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run publishes every Interval and on Kick until ctx ends, then writes a
// tombstone for every record it published, so readers forget this replica
// at once. Close after Run returned.
func (p *Publisher) Run(ctx context.Context) error {
	tick := time.NewTicker(p.o.Interval)
	defer tick.Stop()
	for {
		p.publish(ctx)
		select {
		case <-ctx.Done():
			p.tombstones()
			return nil
		case <-tick.C:
		case <-p.kick:
		}
	}
}

// Close releases the Kafka client.
func (p *Publisher) Close() { p.cl.Close() }

func (p *Publisher) publish(ctx context.Context) {
	now := time.Now().UTC()
	statuses := p.o.Source()
	seen := make(map[string]bool, len(statuses))
	recs := make([]*kgo.Record, 0, len(statuses))
	for i := range statuses {
		s := &statuses[i]
		s.Schema, s.Consumer, s.Instance, s.StartedAt = Schema, p.o.Consumer, p.o.Instance, p.started
		s.PublishedAt, s.FreshUntil = now, now.Add(staleAfter*p.o.Interval)
		s.LastError = Redact(s.LastError)
		if s.Day == "" {
			s.Day = now.Format(time.DateOnly)
		}
		v, err := json.Marshal(s)
		if err != nil {
			p.o.Logger.Error("encode connection status", zap.String("connection", s.Connection), zap.Error(err))
			continue
		}
		k := s.Key()
		seen[k] = true
		recs = append(recs, &kgo.Record{Key: []byte(k), Value: v})
	}
	// A connection the consumer no longer has in use is forgotten.
	for k := range p.keys {
		if !seen[k] {
			recs = append(recs, &kgo.Record{Key: []byte(k)})
		}
	}
	p.keys = seen
	if len(recs) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, p.o.Interval)
	defer cancel()
	if err := p.cl.ProduceSync(pctx, recs...).FirstErr(); err != nil && ctx.Err() == nil {
		p.failed.Add(float64(len(recs)))
		p.o.Logger.Warn("publish connection status", zap.String("topic", p.o.Kafka.Topics.Status.Name), zap.Error(err))
	}
}

func (p *Publisher) tombstones() {
	if len(p.keys) == 0 {
		return
	}
	recs := make([]*kgo.Record, 0, len(p.keys))
	for k := range p.keys {
		recs = append(recs, &kgo.Record{Key: []byte(k)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		p.o.Logger.Warn("withdraw connection status on shutdown; readers drop it once stale", zap.Error(err))
	}
	p.keys = map[string]bool{}
}
