// Package ingest is the HTTP and Connect/gRPC front door for audit events:
// it validates whole requests, writes the events to Kafka and answers success
// only once Kafka acknowledged every one.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/internal/bearer"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
)

// Service handles ingest requests.
type Service struct {
	cfg      Settings
	kcfg     kafka.Config
	log      *zap.Logger
	client   *kgo.Client
	producer *producer.Producer
	auth     *bearer.Authenticator
	metrics  *metrics
	inflight *semaphore.Weighted
	now      func() time.Time

	// available is false until the topics exist and Kafka answered, and again
	// after a produce failed for a reason that says Kafka is unreachable.
	// While false, requests are refused at once with 503 instead of each one
	// waiting out the produce timeout.
	available atomic.Bool
	probeWake chan struct{}
}

// NewService builds the service on a Kafka client it does not own.
func NewService(cfg Config, client *kgo.Client, log *zap.Logger, reg prometheus.Registerer) *Service {
	s := &Service{
		cfg:       cfg.Ingest,
		kcfg:      cfg.Kafka,
		log:       log,
		client:    client,
		producer:  producer.New(client, cfg.Kafka.Topics.Events.Name),
		auth:      bearer.New(cfg.Ingest.Auth),
		metrics:   newMetrics(reg),
		inflight:  semaphore.NewWeighted(int64(cfg.Ingest.MaxInflightBytes)),
		now:       time.Now,
		probeWake: make(chan struct{}, 1),
	}
	if cfg.Ingest.Auth.Disabled {
		log.Warn("authentication is disabled: every request is accepted without a token; never run like this outside development")
	}
	return s
}

// ProducerOpts are the client options ingest needs on top of the shared ones:
// acknowledgement by every in-sync replica, idempotent writes, and a buffer
// bounded like the requests feeding it.
//
// By default franz-go never fails an idempotent record once its produce
// request was sent, however long the broker stays silent, so a broker that
// dies mid-request would hold the request (and its in-flight bytes) until it
// comes back. Ingest lets the produce timeout fail such records instead: the
// request is answered 503 with the ids as failed, the producer retries them
// with the same ids, and consumers drop the repeat if the first write did
// land (counted in auditstream_ingest_events_unconfirmed_total).
func ProducerOpts(cfg Config) []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AllowIdempotentProduceCancellation(),
		kgo.MaxBufferedBytes(int(cfg.Ingest.MaxInflightBytes) * 2),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
	}
}

// Handler returns the HTTP routes: POST /v1/events and the Connect/gRPC
// IngestService.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", s.handleEvents)
	mux.HandleFunc("/v1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: "use POST /v1/events"})
	})
	path, h := s.connectHandler()
	mux.Handle(path, h)
	return mux
}

// Ready reports whether requests can be accepted now.
func (s *Service) Ready(ctx context.Context) error {
	if !s.available.Load() {
		return errors.New("kafka is not reachable or topics are not ready")
	}
	if err := s.client.Ping(ctx); err != nil {
		return fmt.Errorf("ping kafka: %w", err)
	}
	return nil
}

// Run makes the topics, then keeps the availability flag true while Kafka
// answers, probing every second while it does not. It returns when ctx ends.
func (s *Service) Run(ctx context.Context) {
	s.metrics.kafkaAvailable.Set(0)
	topicsReady := !s.kcfg.Topics.Bootstrap
	backoff := time.Second
	for {
		err := s.probe(ctx, &topicsReady)
		if err == nil {
			if !s.available.Swap(true) {
				// Partitions whose writes failed during an outage wait for
				// a metadata refresh before the client writes to them
				// again, and a refresh not forced waits out the metadata
				// min age (5 s): refresh now so that accepting again means
				// writing again.
				s.client.ForceMetadataRefresh()
				s.log.Info("kafka is reachable; accepting events", zap.Strings("brokers", s.kcfg.Brokers))
			}
			s.metrics.kafkaAvailable.Set(1)
			backoff = time.Second
			select {
			case <-ctx.Done():
				return
			case <-s.probeWake:
				continue
			}
		}
		if s.available.Swap(false) {
			s.log.Warn("kafka unreachable; answering 503 until it is back", zap.Error(err))
		} else {
			s.log.Debug("kafka still unreachable", zap.Error(err))
		}
		s.metrics.kafkaAvailable.Set(0)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Service) probe(ctx context.Context, topicsReady *bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if !*topicsReady {
		if err := kafka.EnsureTopics(ctx, s.client, s.kcfg.Topics.Events, s.kcfg.Topics.DeadLetter); err != nil {
			return err
		}
		*topicsReady = true
	}
	return s.client.Ping(ctx)
}

// markUnavailable stops accepting until the next successful probe.
func (s *Service) markUnavailable() {
	s.available.Store(false)
	s.metrics.kafkaAvailable.Set(0)
	select {
	case s.probeWake <- struct{}{}:
	default:
	}
}

// apiError is a failed request, answered as JSON.
type apiError struct {
	status     int
	code       string
	message    string
	details    []*auditevent.FieldError
	ids        []string // every id of the request, in request order
	written    []string
	failed     []string
	retryAfter time.Duration
	// batchRejected counts the valid events refused with the request's
	// invalid ones (for the rejected-events metric).
	batchRejected int
}

const maxErrorDetails = 100

// fromJSONOptions is the producer's option for events as
// auditevent.DecodeJSON returned them, allocated once.
var fromJSONOptions = []producer.Option{producer.FromJSON()}

// publish runs the rules shared by every protocol: all-or-nothing
// validation, per-account authorization, then a write that succeeds only when
// Kafka acknowledged every event. fromJSON says the events are as
// auditevent.DecodeJSON returned them, so their strings are valid UTF-8
// already.
func (s *Service) publish(ctx context.Context, p *bearer.Principal, events []*auditlogv1.AuditEvent, fromJSON bool) ([]string, *apiError) {
	if !s.available.Load() {
		s.metrics.rejected.WithLabelValues("unavailable").Add(float64(len(events)))
		return nil, &apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "Kafka is not reachable; nothing was written, retry later", retryAfter: 5 * time.Second}
	}
	var opts []producer.Option
	if fromJSON {
		opts = fromJSONOptions
	}
	if errs := producer.Prepare(events, s.now(), opts...); len(errs) > 0 {
		return nil, s.invalid(len(events), errs)
	}
	var denied []*auditevent.FieldError
	for i, ev := range events {
		if acc := auditevent.AccountID(ev); !p.MayAccess(acc) && len(denied) < maxErrorDetails {
			denied = append(denied, &auditevent.FieldError{Index: i, Field: "target.context.account.id", Reason: "forbidden", Message: fmt.Sprintf("token %q may not write events for account %q", p.Name, acc)})
		}
	}
	if len(denied) > 0 {
		s.metrics.rejected.WithLabelValues("forbidden").Add(float64(len(events)))
		return nil, &apiError{status: http.StatusForbidden, code: "forbidden", message: "the token may not write for every account in the request; nothing was written", details: denied}
	}

	// The write is bounded by the produce timeout alone, not by the
	// caller's connection: franz-go fails a whole batch when its first
	// record's context ends, so a producer that hangs up would otherwise
	// fail other requests' events batched behind its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	res, err := s.producer.PublishPrepared(ctx, events, opts...)
	s.metrics.produceLatency.Observe(time.Since(start).Seconds())
	if err == nil {
		s.metrics.accepted.Add(float64(len(events)))
		return res.IDs, nil
	}
	written, failed := res.Written(), res.Failed()
	s.metrics.accepted.Add(float64(len(written)))
	s.metrics.rejected.WithLabelValues("kafka_error").Add(float64(len(failed)))
	s.log.Warn("kafka did not acknowledge every event of a request",
		zap.Int("written", len(written)), zap.Int("failed", len(failed)), zap.Error(err))
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrRecordTimeout) {
		s.metrics.unconfirmedSent.Add(float64(len(failed)))
	}
	if kafka.IsRetryable(err) {
		s.markUnavailable()
	}
	msg := fmt.Sprintf("Kafka acknowledged %d of %d events; retry the failed ids (same ids, so nothing is stored twice)", len(written), len(events))
	return nil, &apiError{status: http.StatusServiceUnavailable, code: "kafka_write_failed", message: msg, ids: res.IDs, written: written, failed: failed, retryAfter: time.Second}
}

func (s *Service) invalid(total int, errs []error) *apiError {
	details := make([]*auditevent.FieldError, 0, min(len(errs), maxErrorDetails))
	for _, err := range errs {
		var fe *auditevent.FieldError
		if !errors.As(err, &fe) {
			// not the producer's fault (e.g. no entropy for an id)
			s.log.Error("prepare events", zap.Error(err))
			return &apiError{status: http.StatusInternalServerError, code: "internal", message: "could not prepare events; nothing was written"}
		}
		s.metrics.rejected.WithLabelValues(fe.Reason).Inc()
		if len(details) < maxErrorDetails {
			details = append(details, fe)
		}
	}
	s.metrics.rejected.WithLabelValues("batch_rejected").Add(float64(total - len(errs)))
	return &apiError{
		status:  http.StatusBadRequest,
		code:    "invalid_events",
		message: fmt.Sprintf("%d of %d events are invalid; nothing was written", len(errs), total),
		details: details,
	}
}
