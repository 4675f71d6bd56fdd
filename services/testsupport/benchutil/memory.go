// Package benchutil measures benchmarks the same way across services: peak
// memory while a benchmark runs, request latency percentiles, and a report
// that compares a candidate benchmark with a ceiling read from `go test
// -bench` output.
package benchutil

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// Memory samples read by PeakMemory. Their sum is the Go heap in use (live
// and not yet swept objects plus the free space inside in-use spans, as
// runtime.MemStats.HeapInuse) plus the goroutine stacks (StackInuse).
// Memory the runtime returned to the OS or keeps only as free spans, GC
// metadata, and memory not managed by Go are not counted.
var memorySamples = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/stacks:bytes",
}

// InUseBytes returns the Go heap and stack bytes in use now (see
// PeakMemory for what that includes).
func InUseBytes() uint64 {
	s := make([]metrics.Sample, len(memorySamples))
	return readInUse(s)
}

func readInUse(s []metrics.Sample) uint64 {
	for i, name := range memorySamples {
		s[i].Name = name
	}
	metrics.Read(s)
	var total uint64
	for _, m := range s {
		if m.Value.Kind() == metrics.KindUint64 {
			total += m.Value.Uint64()
		}
	}
	return total
}

// PeakMemory records the highest Go heap plus stack memory in use (heap
// objects, free space in in-use heap spans, goroutine stacks) seen between
// StartPeakMemory and Stop. It samples runtime/metrics, which does not stop
// the world, from its own goroutine. It measures the whole process, so
// everything a benchmark runs in process (an in-process broker, the client
// driving the load) counts.
type PeakMemory struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	peak uint64
}

// DefaultSampleInterval is short enough to catch the peaks of garbage
// collection cycles in a busy benchmark and cheap enough not to disturb it.
const DefaultSampleInterval = 2 * time.Millisecond

// StartPeakMemory collects garbage (so the previous benchmark's leftovers do
// not count) and starts sampling every interval (DefaultSampleInterval when
// zero or negative).
func StartPeakMemory(interval time.Duration) *PeakMemory {
	if interval <= 0 {
		interval = DefaultSampleInterval
	}
	runtime.GC()
	p := &PeakMemory{stop: make(chan struct{}), done: make(chan struct{})}
	s := make([]metrics.Sample, len(memorySamples))
	p.peak = readInUse(s)
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				p.peak = max(p.peak, readInUse(s))
				return
			case <-t.C:
				p.peak = max(p.peak, readInUse(s))
			}
		}
	}()
	return p
}

// Stop ends sampling and returns the peak in bytes. Calling it again returns
// the same peak.
func (p *PeakMemory) Stop() uint64 {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	return p.peak
}

// MB converts bytes to megabytes (10^6 bytes).
func MB(bytes uint64) float64 { return float64(bytes) / 1e6 }
