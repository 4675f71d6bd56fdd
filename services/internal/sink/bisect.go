package sink

import (
	"context"
	"errors"
	"fmt"
)

// Step is what a sink that finds the entries a destination refuses by
// halving the request does after a request failed.
type Step int

const (
	// StepAbort: the failure is not the entries' (retryable, unhealthy,
	// or not a *SendError): the rest of the batch fails with it.
	StepAbort Step = iota
	// StepRefuse: the request held one entry and the destination refused
	// it as too large or for good: it is refused for good.
	StepRefuse
	// StepSplit: the request held more, refused as too large or for good:
	// each half is sent again.
	StepSplit
)

// NextStep is the Step after a request of n entries failed with err, and
// err as a *SendError (nil when it is not one).
func NextStep(err error, n int) (Step, *SendError) {
	var se *SendError
	if !errors.As(err, &se) {
		return StepAbort, nil
	}
	switch se.Class {
	case TooLarge, Permanent:
		if n == 1 {
			return StepRefuse, se
		}
		return StepSplit, se
	default: // Retryable, Unhealthy
		return StepAbort, se
	}
}

// RefusedAlone says why peer (as "the intake") refused an entry sent
// alone with se.
func RefusedAlone(peer string, se *SendError) string {
	detail := "no detail"
	if se.Err != nil {
		detail = se.Err.Error()
	}
	if se.Class == TooLarge {
		return peer + " answered 413 for this entry alone: " + detail
	}
	return fmt.Sprintf("%s answered %d for this entry alone: %s", peer, se.Status, detail)
}

// Halving is what a sink that halves refused requests keeps for one
// batch: the batch's outcome, the split requests it may still send and
// the failure that gave the rest of the batch up.
type Halving struct {
	BE     *BatchError
	Budget int
	// Abort, once set, fails every entry not yet sent.
	Abort error
	// Delivered counts the entries delivered.
	Delivered int
}

// NewHalving is the state of a batch of n entries that may send budget
// split requests.
func NewHalving(n, budget int) Halving { return Halving{BE: NewBatchError(n), Budget: budget} }

// FailAll fails the entries at idx with err.
func (h *Halving) FailAll(idx []int, err error) {
	for _, i := range idx {
		h.BE.Fail(i, err)
	}
}

// GivenUp fails the entries at idx, and says so, once the batch was given
// up or ctx ended.
func (h *Halving) GivenUp(ctx context.Context, idx []int) bool {
	if h.Abort == nil {
		if err := ctx.Err(); err != nil {
			h.Abort = err
		}
	}
	if h.Abort != nil {
		h.FailAll(idx, h.Abort)
		return true
	}
	return false
}

// Failed takes a request of the entries at idx that failed with err
// (NextStep): it gives the rest of the batch up, or refuses a lone entry
// for good with the error refuse makes of se, and returns nil; or it
// returns se, with which each half is to be sent again.
func (h *Halving) Failed(idx []int, err error, refuse func(se *SendError) error) *SendError {
	step, se := NextStep(err, len(idx))
	switch step {
	case StepAbort:
		h.Abort = err
		h.FailAll(idx, err)
		return nil
	case StepRefuse:
		h.BE.Fail(idx[0], refuse(se))
		return nil
	}
	return se
}

// Err is the batch's outcome: nil when every entry was delivered; the
// failure all of them share when none was; else BE.
func (h *Halving) Err() error {
	if h.BE.Len() == 0 {
		return nil
	}
	if shared := h.BE.Shared(); h.Delivered == 0 && shared != nil {
		return shared
	}
	return h.BE
}
