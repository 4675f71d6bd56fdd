package delivery

import (
	"context"
	"errors"
	"time"

	"github.com/auditstream/auditstream/services/internal/sink"
)

// BatchSender sends batches of encoded entries through a connection's sink
// under the one set of rules every path that sends keeps (live delivery,
// auditctl replay and dlq redrive): each attempt writes what is pending
// with SendTimeout; an item delivered, rejected for good (Permanent) or
// refused with the connection (Unhealthy) is done; the rest (Retryable,
// and TooLarge, which the sink splits on the next attempt) are sent again
// after Backoff, honouring the destination's hint, until RetryBudget would
// be passed.
type BatchSender struct {
	Backoff     sink.Backoff
	RetryBudget time.Duration
	SendTimeout time.Duration
	// Hold, when set, is asked before each attempt; true stops sending
	// (the runtime parks the batch of a connection found unhealthy).
	Hold func() bool
	// Attempted, when set, is called after each attempt's results were
	// reported, with the attempt's size, its duration and WriteBatch's
	// error.
	Attempted func(n int, took time.Duration, err error)
	// Retrying, when set, is called with the number of items about to be
	// sent again, before the wait.
	Retrying func(n int)
}

// Left says why Send returned with items not done.
type Left int

const (
	// AllDone: every item was reported done.
	AllDone Left = iota
	// Held: Hold stopped the sending.
	Held
	// Exhausted: retrying the rest would pass RetryBudget.
	Exhausted
	// Stopped: ctx ended; what is left may or may not have been delivered.
	Stopped
)

// Send delivers entries through s under b's rules. result is called for every item of
// every attempt with its outcome (nil: delivered); the items it is called
// for with a Permanent or Unhealthy error, or nil, are done. Send returns
// the indexes of entries not done, why, and the last error they failed
// with.
func Send[E any](ctx context.Context, b BatchSender, s sink.Sink[E], entries []sink.Entry[E], result func(i int, err error)) (left []int, why Left, lastErr error) {
	start := time.Now()
	pending := make([]int, len(entries))
	for i := range pending {
		pending[i] = i
	}
	batch := make([]sink.Entry[E], 0, len(entries))
	for attempt := 1; len(pending) > 0; attempt++ {
		if ctx.Err() != nil {
			return pending, Stopped, ctx.Err()
		}
		if b.Hold != nil && b.Hold() {
			return pending, Held, lastErr
		}
		batch = batch[:0]
		for _, i := range pending {
			batch = append(batch, entries[i])
		}
		sendCtx, cancel := context.WithTimeout(ctx, b.SendTimeout)
		t0 := time.Now()
		err := s.WriteBatch(sendCtx, batch)
		cancel()
		took := time.Since(t0)
		if ctx.Err() != nil {
			return pending, Stopped, ctx.Err()
		}
		var retry []int
		var hint time.Duration
		handle := func(i int, err error) {
			result(i, err)
			if err == nil {
				return
			}
			var se *sink.SendError
			if errors.As(err, &se) && se.RetryAfter > hint {
				hint = se.RetryAfter
			}
			switch sink.Classify(err) {
			case sink.Permanent, sink.Unhealthy:
			default:
				retry, lastErr = append(retry, i), err
			}
		}
		var be *sink.BatchError
		switch {
		case err == nil:
			for _, i := range pending {
				handle(i, nil)
			}
		case errors.As(err, &be):
			for k, i := range pending {
				handle(i, be.Failed(k))
			}
		default:
			for _, i := range pending {
				handle(i, err)
			}
		}
		if b.Attempted != nil {
			b.Attempted(len(pending), took, err)
		}
		if len(retry) == 0 {
			return nil, AllDone, nil
		}
		delay := b.Backoff.Delay(attempt, hint)
		if time.Since(start)+delay > b.RetryBudget {
			return retry, Exhausted, lastErr
		}
		if b.Retrying != nil {
			b.Retrying(len(retry))
		}
		select {
		case <-ctx.Done():
			return retry, Stopped, ctx.Err()
		case <-time.After(delay):
		}
		pending = retry
	}
	return nil, AllDone, nil
}
