package replay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/sink"
	"golang.org/x/time/rate"
)

// Item is one event to deliver.
type Item struct {
	Event   *auditlogv1.AuditEvent
	Account string
	// Time is the event's time.
	Time time.Time
	// Position names where the event came from, for reports.
	Position string
}

// Outcome is what became of an Item: delivered when Err is nil, else
// rejected for good by the destination (or its encoder).
type Outcome struct {
	Item
	Err error
}

// SenderOptions configure a Sender. Batch, Backoff, SendTimeout and
// InFlight are the delivery runtime's settings (the delivery section of a
// forwarder's config).
type SenderOptions struct {
	// Connection names the destination in errors.
	Connection string
	Sink       delivery.EntrySink
	Batch      sink.BatchPolicy
	Backoff    sink.Backoff
	// RetryBudget is how long one batch is retried before the Sender gives
	// up: a forwarder parks events then, and a replay has nowhere to park.
	RetryBudget time.Duration
	SendTimeout time.Duration
	// InFlight is how many batches may be out at once (at least 1).
	InFlight int
	// Rate caps events a second; 0 is no cap.
	Rate float64
	// DryRun encodes every event but sends none; each counts as delivered.
	DryRun bool
}

// Sender delivers Items through a sink: it encodes each, batches them under
// the BatchPolicy, and writes batches with up to InFlight out at once,
// retrying the retryable failures of each batch with Backoff (a batch too
// large for the destination is retried, which the sink splits). A
// permanent failure of an event (the destination rejects it, or it is too
// large alone) is reported and the rest go on. A connection that turns out unhealthy
// (credentials refused) or that keeps failing past RetryBudget stops the
// Sender: Send and Close then return why.
type Sender struct {
	o       SenderOptions
	report  func(Outcome)
	limiter *rate.Limiter
	in      chan Item
	ctx     context.Context
	cancel  context.CancelCauseFunc
	loop    chan struct{}
	sending chan struct{}
	sends   sync.WaitGroup
	mu      sync.Mutex // serialises report
}

// errStopped is the cause when the caller's context ended.
var errStopped = errors.New("stopped")

// Start starts a Sender; report is called once for every Item sent, from
// any goroutine but never concurrently.
func Start(ctx context.Context, o SenderOptions, report func(Outcome)) *Sender {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &Sender{o: o, report: report, in: make(chan Item, max(o.Batch.Count, 64)), ctx: ctx, cancel: cancel,
		loop: make(chan struct{}), sending: make(chan struct{}, max(o.InFlight, 1))}
	if o.Rate > 0 {
		// A tenth of a second's worth may go at once, so a high rate is
		// not held back by timer granularity.
		s.limiter = rate.NewLimiter(rate.Limit(o.Rate), max(1, int(math.Ceil(o.Rate/10))))
	}
	go s.run()
	return s
}

// Send queues an item, waiting for the rate limit and for room. It returns
// an error only when the Sender has stopped.
func (s *Sender) Send(it Item) error {
	if s.limiter != nil {
		if err := s.limiter.Wait(s.ctx); err != nil {
			return s.err()
		}
	}
	select {
	case s.in <- it:
		return nil
	case <-s.ctx.Done():
		return s.err()
	}
}

// Close sends what is queued, waits for every batch, and returns the error
// that stopped the Sender, if any.
func (s *Sender) Close() error {
	close(s.in)
	<-s.loop
	s.sends.Wait()
	err := s.err()
	s.cancel(errStopped)
	return err
}

func (s *Sender) err() error {
	if s.ctx.Err() == nil {
		return nil
	}
	cause := context.Cause(s.ctx)
	if errors.Is(cause, errStopped) {
		return nil
	}
	return cause
}

func (s *Sender) run() {
	defer close(s.loop)
	batcher := sink.NewBatcher[pending](s.o.Batch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var timerC <-chan time.Time
		if d, ok := batcher.Deadline(); ok {
			timer.Reset(time.Until(d))
			timerC = timer.C
		}
		select {
		case it, ok := <-s.in:
			timer.Stop()
			if !ok {
				s.dispatch(batcher.Flush())
				return
			}
			entry, err := s.o.Sink.Encode(it.Event)
			if err != nil {
				s.done(Outcome{Item: it, Err: fmt.Errorf("encode: %w", err)})
				continue
			}
			if batcher.Add(pending{it, entry}, entry.Size) {
				s.dispatch(batcher.Flush())
			}
		case <-timerC:
			s.dispatch(batcher.Flush())
		case <-s.ctx.Done():
			timer.Stop()
			// stopped: what is queued is not sent; drain so Send never
			// blocks on a full queue
			for range s.in {
			}
			return
		}
	}
}

type pending struct {
	Item
	entry delivery.Encoded
}

func (s *Sender) done(o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report(o)
}

// dispatch sends a batch while up to InFlight others are out.
func (s *Sender) dispatch(batch []pending) {
	if len(batch) == 0 {
		return
	}
	select {
	case s.sending <- struct{}{}:
	case <-s.ctx.Done():
		return
	}
	s.sends.Add(1)
	go func() {
		defer func() {
			<-s.sending
			s.sends.Done()
		}()
		if err := s.send(batch); err != nil {
			s.cancel(err)
		}
	}()
}

// send delivers one batch through the runtime's delivery.BatchSender:
// delivered and rejected events are reported, retryable failures retried
// with backoff within RetryBudget. It returns an error that must stop the
// replay: retries spent. A connection that refuses us (Unhealthy) stops the
// Sender at once, with why.
func (s *Sender) send(batch []pending) error {
	if s.o.DryRun {
		for _, p := range batch {
			s.done(Outcome{Item: p.Item})
		}
		return nil
	}
	start := time.Now()
	entries := make([]delivery.Encoded, len(batch))
	for i, p := range batch {
		entries[i] = p.entry
	}
	attempts := 0
	bs := delivery.BatchSender{Backoff: s.o.Backoff, RetryBudget: s.o.RetryBudget, SendTimeout: s.o.SendTimeout,
		Attempted: func(int, time.Duration, error) { attempts++ }}
	_, why, lastErr := s.o.Sink.Send(s.ctx, bs, entries, func(i int, err error) {
		p := batch[i]
		if err == nil {
			s.done(Outcome{Item: p.Item})
			return
		}
		switch sink.Classify(err) {
		case sink.Permanent:
			s.done(Outcome{Item: p.Item, Err: err})
		case sink.Unhealthy:
			s.cancel(fmt.Errorf("connection %s refuses us (fix its settings, then run again): %w", s.o.Connection, err))
		}
	})
	if why == delivery.Exhausted {
		return fmt.Errorf("connection %s still failing after %s (%d attempts): %w", s.o.Connection, time.Since(start).Round(time.Second), attempts, lastErr)
	}
	return nil // done, or stopped: nothing more is reported
}
