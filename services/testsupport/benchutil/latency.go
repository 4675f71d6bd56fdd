package benchutil

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Latencies collects durations (one per request, say) from any number of
// goroutines and reports percentiles over them.
type Latencies struct {
	mu     sync.Mutex
	d      []time.Duration
	sorted bool
}

// NewLatencies returns a recorder with room for expected samples.
func NewLatencies(expected int) *Latencies {
	return &Latencies{d: make([]time.Duration, 0, max(expected, 0))}
}

// Record adds one sample.
func (l *Latencies) Record(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.sorted = false
	l.mu.Unlock()
}

// Count is the number of samples.
func (l *Latencies) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100): the
// smallest sample that at least p percent of the samples are less than or
// equal to. p <= 0 gives the smallest sample, p >= 100 the largest; no
// samples give 0.
func (l *Latencies) Percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	if !l.sorted {
		slices.Sort(l.d)
		l.sorted = true
	}
	return l.d[rankIndex(p, len(l.d))]
}

// rankIndex is the 0-based index of the nearest-rank p-th percentile of n
// sorted samples.
func rankIndex(p float64, n int) int {
	if p <= 0 || math.IsNaN(p) {
		return 0
	}
	if p >= 100 {
		return n - 1
	}
	// Round the rank before taking the ceiling so that binary noise in
	// p/100*n (e.g. 0.29*100 = 28.999999999999996) does not move it.
	rank := int(math.Ceil(math.Round(p/100*float64(n)*1e9) / 1e9))
	return min(max(rank, 1), n) - 1
}

// Millis converts a duration to milliseconds.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
