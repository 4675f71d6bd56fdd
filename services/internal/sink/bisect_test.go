package sink

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A halving sink sends the halves of a request refused as too large or
// for good, refuses an entry alone for good, and gives up the batch on any
// other failure.
func TestNextStep(t *testing.T) {
	tooLarge := &SendError{Class: TooLarge, Status: 413}
	permanent := &SendError{Class: Permanent, Status: 400}
	for _, c := range []struct {
		name   string
		err    error
		n      int
		want   Step
		wantSE *SendError
	}{
		{"too large, several", tooLarge, 2, StepSplit, tooLarge},
		{"too large, alone", tooLarge, 1, StepRefuse, tooLarge},
		{"permanent, several", permanent, 500, StepSplit, permanent},
		{"permanent wrapped, alone", fmt.Errorf("post: %w", permanent), 1, StepRefuse, permanent},
		{"retryable", &SendError{Class: Retryable, Status: 503}, 1, StepAbort, nil},
		{"unhealthy", &SendError{Class: Unhealthy}, 3, StepAbort, nil},
		{"not classified", context.Canceled, 1, StepAbort, nil},
	} {
		step, se := NextStep(c.err, c.n)
		if step != c.want {
			t.Errorf("%s: step %d, want %d", c.name, step, c.want)
		}
		if c.wantSE != nil && se != c.wantSE {
			t.Errorf("%s: SendError %v, want %v", c.name, se, c.wantSE)
		}
	}
}

func TestRefusedAlone(t *testing.T) {
	for _, c := range []struct {
		se   *SendError
		want string
	}{
		{&SendError{Class: TooLarge, Status: 413, Err: errors.New("body too big")}, "the intake answered 413 for this entry alone: body too big"},
		{&SendError{Class: Permanent, Status: 422}, "the intake answered 422 for this entry alone: no detail"},
	} {
		if got := RefusedAlone("the intake", c.se); got != c.want {
			t.Errorf("RefusedAlone = %q, want %q", got, c.want)
		}
	}
}

// Once a batch is given up, or its context ended, every entry not yet sent
// fails with that failure and nothing more is sent.
func TestHalvingGivenUp(t *testing.T) {
	h := NewHalving(4, 2)
	if h.GivenUp(context.Background(), []int{0}) || h.BE.Len() != 0 {
		t.Fatalf("a live batch is given up: %v", h.BE)
	}
	unhealthy := &SendError{Class: Unhealthy}
	h.Abort = unhealthy
	if !h.GivenUp(context.Background(), []int{1, 2}) || h.BE.Failed(1) != unhealthy || h.BE.Failed(2) != unhealthy || h.BE.Failed(0) != nil {
		t.Fatalf("after Abort: given up entries %v", h.BE)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h = NewHalving(2, 0)
	if !h.GivenUp(ctx, []int{0, 1}) || !errors.Is(h.BE.Failed(1), context.Canceled) || h.Abort != context.Canceled {
		t.Fatalf("after ctx ended: %v, abort %v", h.BE, h.Abort)
	}
}

// Failed refuses a lone entry with the sink's own error, hands back the
// failure to split a larger request with, and gives up on the rest.
func TestHalvingFailed(t *testing.T) {
	refused := errors.New("refused for good")
	refuse := func(*SendError) error { return refused }
	permanent := &SendError{Class: Permanent, Status: 400}

	h := NewHalving(3, 1)
	if se := h.Failed([]int{0, 1}, permanent, refuse); se != permanent || h.BE.Len() != 0 {
		t.Fatalf("split: got %v, failed %v", se, h.BE)
	}
	if se := h.Failed([]int{1}, permanent, refuse); se != nil || h.BE.Failed(1) != refused {
		t.Fatalf("alone: got %v, entry 1 failed with %v", se, h.BE.Failed(1))
	}
	throttled := &SendError{Class: Retryable, Status: 429}
	if se := h.Failed([]int{2}, throttled, refuse); se != nil || h.Abort != throttled || h.BE.Failed(2) != throttled {
		t.Fatalf("abort: got %v, abort %v, entry 2 failed with %v", se, h.Abort, h.BE.Failed(2))
	}
}

// A batch fails whole with the failure its entries share only when none
// was delivered; otherwise the runtime gets each entry's own outcome.
func TestHalvingErr(t *testing.T) {
	unhealthy := &SendError{Class: Unhealthy}
	h := NewHalving(2, 0)
	if err := h.Err(); err != nil {
		t.Fatalf("nothing failed: %v", err)
	}
	h.FailAll([]int{0, 1}, unhealthy)
	if err := h.Err(); err != unhealthy {
		t.Fatalf("all failed alike, none delivered: %v, want the shared failure", err)
	}
	h = NewHalving(2, 0)
	h.Delivered = 1
	h.FailAll([]int{1}, unhealthy)
	if err := h.Err(); err != h.BE {
		t.Fatalf("one delivered: %v, want the BatchError", err)
	}
}
