package sink

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestBatchError(t *testing.T) {
	e := NewBatchError(5)
	if e.Len() != 0 || e.Err() != nil {
		t.Fatalf("empty: Len() = %d, Err() = %v", e.Len(), e.Err())
	}
	bad := &SendError{Class: Permanent, Status: 400}
	e1, e3 := errors.New("one"), errors.New("three")
	e.Fail(3, bad)
	e.Fail(1, e1)
	e.Fail(3, e3) // replaces, does not count twice
	if e.Len() != 2 {
		t.Fatalf("Len() = %d, want 2", e.Len())
	}
	for i, want := range []error{nil, e1, nil, e3, nil} {
		if got := e.Failed(i); got != want {
			t.Errorf("Failed(%d) = %v, want %v", i, got, want)
		}
	}
	if e.Failed(-1) != nil || e.Failed(5) != nil {
		t.Error("Failed outside the batch must be nil")
	}
	var walked []int
	e.Walk(func(i int, err error) {
		if err != e.Failed(i) {
			t.Errorf("Walk(%d) err = %v, want %v", i, err, e.Failed(i))
		}
		walked = append(walked, i)
	})
	if !slices.Equal(walked, []int{1, 3}) {
		t.Fatalf("Walk visited %v, want [1 3]", walked)
	}
	err := e.Err()
	var be *BatchError
	if !errors.As(err, &be) || be != e {
		t.Fatalf("Err() = %v, want the BatchError itself", err)
	}
	if msg := err.Error(); msg != "delivery: 2 of 5 items failed; first, item 1: one" {
		t.Fatalf("Error() = %q", msg)
	}
	// No Unwrap: one item's Permanent must not classify the whole batch.
	e.Fail(0, bad)
	if errors.Is(err, bad) || Classify(err) != Retryable {
		t.Fatal("a BatchError must not expose one item's error as the batch's")
	}
}

func TestBatchErrorEdges(t *testing.T) {
	var nilErr *BatchError
	if nilErr.Err() != nil {
		t.Fatal("nil BatchError Err() must be a nil error")
	}
	e := NewBatchError(1)
	e.Fail(0, nil)
	if err := e.Failed(0); err == nil || Classify(err) != Retryable {
		t.Fatalf("Fail(i, nil) recorded %v: it must count as a Retryable failure", err)
	}
	if e := NewBatchError(-3); e.Len() != 0 || e.Err() != nil {
		t.Fatal("negative size must give an empty batch error")
	}
	for _, i := range []int{-1, 1} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), "outside batch") {
					t.Errorf("Fail(%d) on a batch of 1: recover() = %v, want a panic", i, r)
				}
			}()
			e.Fail(i, errors.New("x"))
		}()
	}
}

// chunkSink is a Sink after the Datadog and EventBridge pattern: it splits
// the batch to hard limits and sends one request per chunk, each taking
// latency, mapping each chunk's failures back to batch indexes.
type chunkSink struct {
	maxCount, maxBytes int
	latency            time.Duration
	reject             func(string) error // per item; nil error = accepted
	delivered          []string
	requests           int
}

func (s *chunkSink) WriteBatch(ctx context.Context, entries []Entry[string]) error {
	batch := make([]string, len(entries))
	for i, e := range entries {
		batch[i] = e.Value
	}
	be := NewBatchError(len(batch))
	off := 0
	for _, chunk := range Split(batch, func(v string) int { return len(v) }, s.maxCount, s.maxBytes) {
		s.requests++
		select {
		case <-ctx.Done():
			for i := range chunk {
				be.Fail(off+i, ctx.Err())
			}
		case <-time.After(s.latency):
			if len(chunk) == 1 && s.maxBytes > 0 && len(chunk[0]) > s.maxBytes {
				be.Fail(off, &SendError{Class: TooLarge, Status: 413})
				break
			}
			for i, v := range chunk {
				if err := s.reject(v); err != nil {
					be.Fail(off+i, err)
				} else {
					s.delivered = append(s.delivered, v)
				}
			}
		}
		off += len(chunk)
	}
	return be.Err()
}

var _ Sink[string] = (*chunkSink)(nil)

// TestSinkContract runs the runtime's side of the contract against a sink:
// retry only what failed as Retryable, dead-letter Permanent and TooLarge,
// and stop without loss when ctx ends.
func TestSinkContract(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		flaky := map[string]int{"c": 2} // fails twice, then goes through
		sink := &chunkSink{maxCount: 2, maxBytes: 8, latency: 100 * time.Millisecond, reject: func(v string) error {
			switch {
			case v == "bad":
				return &SendError{Class: Permanent, Status: 400}
			case flaky[v] > 0:
				flaky[v]--
				return &SendError{Class: Retryable, Status: 429, RetryAfter: time.Second}
			}
			return nil
		}}
		b := Backoff{Initial: 200 * time.Millisecond, Max: time.Second, Multiplier: 2}

		pending := []string{"a", "b", "c", "bad", "waytoolarge", "d"}
		var dead []string
		start := time.Now()
		for attempt := 0; len(pending) > 0; attempt++ {
			err := sink.WriteBatch(t.Context(), Values(pending))
			var be *BatchError
			if err != nil && !errors.As(err, &be) {
				t.Fatalf("whole-batch failure: %v", err)
			}
			var retry []string
			var hint time.Duration
			if be != nil {
				be.Walk(func(i int, err error) {
					switch Classify(err) {
					case Retryable:
						retry = append(retry, pending[i])
						var se *SendError
						if errors.As(err, &se) {
							hint = max(hint, se.RetryAfter)
						}
					default:
						dead = append(dead, pending[i])
					}
				})
			}
			pending = retry
			if len(pending) > 0 {
				time.Sleep(b.delay(attempt, hint, 0)) // on the bubble's fake clock
			}
		}
		if !slices.Equal(sink.delivered, []string{"a", "b", "d", "c"}) {
			t.Errorf("delivered %v", sink.delivered)
		}
		if !slices.Equal(dead, []string{"bad", "waytoolarge"}) {
			t.Errorf("dead-lettered %v", dead)
		}
		// 4 requests (a,b | c,bad | waytoolarge | d), then 1s, c, 1s, c.
		if got, want := time.Since(start), 4*100*time.Millisecond+time.Second+100*time.Millisecond+time.Second+100*time.Millisecond; got != want {
			t.Errorf("took %v, want %v", got, want)
		}
	})
}

func TestSinkContextEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &chunkSink{maxCount: 1, latency: time.Second, reject: func(string) error { return nil }}
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		err := sink.WriteBatch(ctx, Values([]string{"a", "b", "c"}))
		var be *BatchError
		if !errors.As(err, &be) {
			t.Fatalf("WriteBatch = %v, want a BatchError for the undelivered items", err)
		}
		if !slices.Equal(sink.delivered, []string{"a"}) || be.Len() != 2 || be.Failed(0) != nil {
			t.Fatalf("delivered %v, failed %d (%v)", sink.delivered, be.Len(), be)
		}
		be.Walk(func(i int, err error) {
			if !errors.Is(err, context.DeadlineExceeded) || Classify(err) != Retryable {
				t.Errorf("item %d: %v classified %v: ctx end means not delivered, not dropped", i, err, Classify(err))
			}
		})
	})
}

func TestBatchErrorShared(t *testing.T) {
	denied, throttled := errors.New("denied"), errors.New("throttled")
	cases := []struct {
		name  string
		fails []error
		want  error
	}{
		{"none failed", nil, nil},
		{"one reason", []error{denied, denied, denied}, denied},
		{"two reasons", []error{denied, throttled, denied}, nil},
		{"a later reason for the same item still differs", []error{denied, throttled}, nil},
	}
	for _, c := range cases {
		be := NewBatchError(3)
		for i, err := range c.fails {
			be.Fail(i%2, err)
		}
		if got := be.Shared(); got != c.want {
			t.Errorf("%s: Shared() = %v, want %v", c.name, got, c.want)
		}
	}
}
