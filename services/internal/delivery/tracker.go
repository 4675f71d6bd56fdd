package delivery

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// partitionTracker knows which offsets of one assigned partition are still
// out (handed to sinks but not yet delivered, parked or dead-lettered), so
// the runtime commits only offsets below which everything is finished.
// Offsets are added in increasing order by the poll loop and finished in any
// order by the workers.
type partitionTracker struct {
	topic     string
	partition int32
	// revoked is set when the partition is taken away: queued work for it is
	// dropped unsent, since its new owner reads it again from the commit.
	revoked atomic.Bool

	mu sync.Mutex
	// pending holds increasing offsets from head on; finished ones at the
	// front are skipped by moving head, and the slice is compacted only
	// once head passed half of it, so finishing costs no copy per record.
	pending []trackedOffset
	head    int
	next    kgo.EpochOffset // offset after the last record added
	idle    chan struct{}   // closed when pending empties; replaced when work is added
}

type trackedOffset struct {
	offset int64
	done   bool
}

func newPartitionTracker(topic string, partition int32) *partitionTracker {
	idle := make(chan struct{})
	close(idle)
	return &partitionTracker{topic: topic, partition: partition, next: kgo.EpochOffset{Epoch: -1, Offset: -1}, idle: idle}
}

// add registers a record handed out by the poll loop.
func (t *partitionTracker) add(rec *kgo.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head == len(t.pending) {
		t.idle = make(chan struct{})
		t.pending, t.head = t.pending[:0], 0
	} else if t.head > len(t.pending)/2 {
		n := copy(t.pending, t.pending[t.head:])
		t.pending, t.head = t.pending[:n], 0
	}
	t.pending = append(t.pending, trackedOffset{offset: rec.Offset})
	t.next = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
}

// finish marks one offset finished.
func (t *partitionTracker) finish(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	open := t.pending[t.head:]
	i := sort.Search(len(open), func(i int) bool { return open[i].offset >= offset })
	if i == len(open) || open[i].offset != offset || open[i].done {
		return // already finished (the tracker was reset by a revoke)
	}
	open[i].done = true
	if i > 0 {
		return
	}
	for t.head < len(t.pending) && t.pending[t.head].done {
		t.head++
	}
	if t.head == len(t.pending) {
		close(t.idle)
	}
}

// committable is the offset to commit: the first unfinished one, or the one
// after the last record seen when all are finished. ok is false before any
// record was seen.
func (t *partitionTracker) committable() (kgo.EpochOffset, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next.Offset < 0 {
		return kgo.EpochOffset{}, false
	}
	if t.head < len(t.pending) {
		// the epoch of the first unfinished record is not kept; -1 tells the
		// broker to skip the fencing check, which is safe for our own group
		return kgo.EpochOffset{Epoch: -1, Offset: t.pending[t.head].offset}, true
	}
	return t.next, true
}

// outstanding is how many offsets are still out.
func (t *partitionTracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending) - t.head
}

// idleCh is closed once nothing is outstanding.
func (t *partitionTracker) idleCh() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idle
}

// tracked is one polled record in flight: it is finished when every
// connection it was routed to has delivered, parked or dead-lettered it.
type tracked struct {
	rec       *kgo.Record
	size      int64 // what the record holds of MaxInflightBytes
	tracker   *partitionTracker
	remaining atomic.Int32
	r         *Runtime // whose max_inflight_bytes the record holds
}

// complete finishes one of the record's deliveries.
func (t *tracked) complete() {
	if t.remaining.Add(-1) == 0 {
		t.tracker.finish(t.rec.Offset)
		t.r.inflight.Release(t.size)
		t.r.held.Add(-t.size)
	}
}
