package sink

import (
	"context"
	"errors"
	"fmt"
)

// Sink delivers batches of its own entries (Entry) to one destination.
//
// WriteBatch returns once every item of batch has an outcome or ctx has
// ended. It may split the batch to fit the destination's limits (Split) and
// may issue several requests, but the retry policy across calls belongs to
// the caller, which decides from the classified errors. The result is:
//   - nil: every item was delivered;
//   - a *BatchError: exactly the listed indexes of batch failed, each with
//     its own error (a *SendError where the sink could classify it), and
//     every other item was delivered, so only the failed ones are retried;
//   - any other error: the whole batch failed with it, and none of it may
//     be assumed delivered.
//
// When ctx ends midway a sink should report the items it did deliver, as a
// *BatchError holding ctx's error for the rest, so a restart resends less.
// A sink must not keep or modify batch after WriteBatch returns; the caller
// owns it. An empty batch is a no-op that returns nil.
type Sink[T any] interface {
	WriteBatch(ctx context.Context, batch []Entry[T]) error
}

// BatchError reports which items of a batch failed, by index.
type BatchError struct {
	errs   []error // errs[i] != nil: item i failed
	failed int
	calls  int   // Fail calls so far
	shared error // the error every Fail call gave, nil once two differed
}

// NewBatchError returns an empty BatchError for a batch of n items.
func NewBatchError(n int) *BatchError {
	return &BatchError{errs: make([]error, max(n, 0))}
}

// errUnspecified stands in for a failure reported without a reason: the item
// still counts as failed, and as Retryable, rather than as delivered.
var errUnspecified = errors.New("item failed without a reason")

// Fail records that item i failed with err; a later call for the same i
// replaces the error. It panics when i is outside the batch: a sink that
// cannot map a destination's answer to its own items must fail the whole
// batch, not guess an index.
func (e *BatchError) Fail(i int, err error) {
	if i < 0 || i >= len(e.errs) {
		panic(fmt.Sprintf("delivery: BatchError.Fail index %d outside batch of %d", i, len(e.errs)))
	}
	if err == nil {
		err = errUnspecified
	}
	if e.errs[i] == nil {
		e.failed++
	}
	e.errs[i] = err
	if e.calls == 0 {
		e.shared = err
	} else if e.shared != err {
		e.shared = nil
	}
	e.calls++
}

// Shared is the one error every failure was recorded with, or nil when
// none failed or two failures differ. A sink that delivered nothing can
// return it instead of e: the batch failed as a whole, for one reason.
func (e *BatchError) Shared() error { return e.shared }

// Failed is item i's error, or nil when it was delivered (or i is outside
// the batch).
func (e *BatchError) Failed(i int) error {
	if i < 0 || i >= len(e.errs) {
		return nil
	}
	return e.errs[i]
}

// Len is the number of failed items.
func (e *BatchError) Len() int { return e.failed }

// Err is e, or nil when no item failed, so a sink can end with
// "return be.Err()" without returning a non-nil interface holding nothing.
func (e *BatchError) Err() error {
	if e == nil || e.failed == 0 {
		return nil
	}
	return e
}

// Walk calls fn for each failed item in ascending index order.
func (e *BatchError) Walk(fn func(i int, err error)) {
	for i, err := range e.errs {
		if err != nil {
			fn(i, err)
		}
	}
}

// Error summarises the failures with the first one only, so the message
// stays short however large the batch. It has no Unwrap on purpose: one
// item's class must not be mistaken for the whole batch's by errors.As.
func (e *BatchError) Error() string {
	for i, err := range e.errs {
		if err != nil {
			return fmt.Sprintf("delivery: %d of %d items failed; first, item %d: %s",
				e.failed, len(e.errs), i, redactURLs(err))
		}
	}
	return fmt.Sprintf("delivery: 0 of %d items failed", len(e.errs))
}
