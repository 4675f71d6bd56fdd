package sink

import (
	"math"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

// BatchPolicy says when an accumulating batch is flushed. A zero Count or
// Bytes means no limit of that kind. Bytes is a flush trigger, not a hard
// limit (sizes are known only once an item is in), so a sink with hard
// limits cuts the batch again with Split.
type BatchPolicy struct {
	// Count flushes once the batch holds this many items; a caller that
	// flushes when Add says so never sees more.
	Count int `yaml:"count"`
	// Bytes flushes once the batch holds at least this many bytes. The item
	// that crosses the line stays in the batch, so a batch may pass Bytes by
	// at most one item.
	Bytes config.ByteSize `yaml:"bytes"`
	// Period flushes a non-empty batch this long after its first item, so a
	// quiet account's events do not wait for traffic that never comes.
	Period time.Duration `yaml:"period"`
	// Idle flushes a non-empty batch once no item was added for this long,
	// before Period: the last events of a burst go out when it ends rather
	// than waiting out the period. Under steady traffic items keep coming
	// and Period and the limits decide. Events sparser than Idle travel in
	// smaller batches (at most one request per Idle) but sooner. Zero turns
	// it off.
	Idle time.Duration `yaml:"idle"`
}

// Validate reports every problem in the policy.
func (p BatchPolicy) Validate() error {
	var errs config.Errors
	if p.Count < 0 {
		errs.Addf("count", "must not be negative")
	}
	if p.Bytes < 0 {
		errs.Addf("bytes", "must not be negative")
	}
	if p.Count <= 0 && p.Bytes <= 0 {
		// Without either, memory would grow with traffic until the period
		// fires; the invariant is memory bounded by configuration.
		errs.Addf("count", "count or bytes must be set to bound a batch")
	}
	if p.Period < 0 {
		errs.Addf("period", "must not be negative")
	}
	if p.Idle < 0 {
		errs.Addf("idle", "must not be negative")
	}
	if p.Period == 0 && p.Count != 1 {
		// A partial batch with no period waits for more traffic forever,
		// and its offsets are never committed.
		errs.Addf("period", "must be positive unless count is 1")
	}
	return errs.Err()
}

// Batcher accumulates items with their sizes under a BatchPolicy. It does not
// own a timer: the caller selects on Deadline so one goroutine can serve the
// input and the clock without locks. A Batcher is not safe for concurrent use.
type Batcher[T any] struct {
	policy BatchPolicy
	items  []T
	size   int
	first  time.Time
}

// NewBatcher returns an empty Batcher for p. A policy with neither Count nor
// Bytes (which Validate rejects) flushes after every item rather than growing
// without bound.
func NewBatcher[T any](p BatchPolicy) *Batcher[T] {
	return &Batcher[T]{policy: p}
}

// Add appends item, whose encoded size is size bytes, and reports whether the
// batch is ready to flush. An item that alone reaches Bytes is ready at once,
// so when the batch was empty it travels alone; whether it breaks a hard
// limit is for the sink to decide. A negative size counts as zero.
func (b *Batcher[T]) Add(item T, size int) (ready bool) {
	if len(b.items) == 0 {
		b.first = time.Now()
	}
	b.items = append(b.items, item)
	b.size = addSat(b.size, size)
	return b.full()
}

func (b *Batcher[T]) full() bool {
	p := b.policy
	switch {
	case p.Count <= 0 && p.Bytes <= 0:
		return len(b.items) > 0
	case p.Count > 0 && len(b.items) >= p.Count:
		return true
	case p.Bytes > 0 && int64(b.size) >= int64(p.Bytes):
		return true
	}
	return false
}

// Flush returns the accumulated items and empties the Batcher. The returned
// slice belongs to the caller; the Batcher never touches it again.
func (b *Batcher[T]) Flush() []T {
	out := b.items
	// The next batch is likely as long as this one: size for it now.
	b.items = make([]T, 0, len(out))
	b.size = 0
	b.first = time.Time{}
	return out
}

// Len is the number of items waiting.
func (b *Batcher[T]) Len() int { return len(b.items) }

// Size is the sum of the sizes of the items waiting.
func (b *Batcher[T]) Size() int { return b.size }

// Deadline is when the waiting batch must be flushed: the time of its first
// item plus Period. It is false when the batch is empty or Period is zero.
func (b *Batcher[T]) Deadline() (time.Time, bool) {
	if len(b.items) == 0 || b.policy.Period <= 0 {
		return time.Time{}, false
	}
	return b.first.Add(b.policy.Period), true
}

// FlushAt is when the waiting batch must be flushed if no item is added
// from quiet on: its Deadline, or quiet plus Idle when that comes first.
// It is false when the batch is empty or neither applies.
func (b *Batcher[T]) FlushAt(quiet time.Time) (time.Time, bool) {
	d, ok := b.Deadline()
	if len(b.items) == 0 || b.policy.Idle <= 0 {
		return d, ok
	}
	if idle := quiet.Add(b.policy.Idle); !ok || idle.Before(d) {
		return idle, true
	}
	return d, true
}

// Split cuts items, in order, into consecutive chunks of at most maxCount
// items and at most maxBytes bytes as measured by sizes; a limit of zero or
// less means none. An item that alone exceeds maxBytes forms a chunk of its
// own, so the caller can refuse it (TooLarge) without holding back the rest.
// Chunks are filled greedily and share items' backing array (with capacity
// capped, so appending to one never overwrites the next); chunk k starts at
// the index equal to the summed lengths of the chunks before it, which is how
// a sink maps per-chunk failures back to batch indexes. sizes should include
// any per-item framing the destination counts against its limit.
func Split[T any](items []T, sizes func(T) int, maxCount, maxBytes int) [][]T {
	if len(items) == 0 {
		return nil
	}
	var chunks [][]T
	start, bytes := 0, 0
	for i, item := range items {
		n := max(sizes(item), 0)
		overCount := maxCount > 0 && i-start >= maxCount
		overBytes := maxBytes > 0 && i > start && n > maxBytes-bytes
		if overCount || overBytes {
			chunks = append(chunks, items[start:i:i])
			start, bytes = i, 0
		}
		bytes = addSat(bytes, n)
	}
	return append(chunks, items[start:len(items):len(items)])
}

// addSat adds a non-negative n (negative counts as zero) to sum without
// wrapping, so a hostile size can only make a batch look full, never empty.
func addSat(sum, n int) int {
	n = max(n, 0)
	if n > math.MaxInt-sum {
		return math.MaxInt
	}
	return sum + n
}
