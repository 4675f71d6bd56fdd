package sinkconformance

import (
	"sync"
	"testing"

	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

func TestBenchTally(t *testing.T) {
	tally := NewBenchTally(1000)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for n := w; n < 1000; n += 4 {
				tally.Accept(forwardingtest.BenchID(n))
			}
		})
	}
	wg.Wait()
	tally.Accept(forwardingtest.BenchID(7))    // sent again
	tally.Accept(forwardingtest.BenchID(5000)) // not of this run
	tally.Accept("warm-up")
	if tally.Distinct() != 1000 || tally.Resent() != 1 || tally.Other() != 2 {
		t.Fatalf("distinct %d, resent %d, other %d; want 1000, 1, 2", tally.Distinct(), tally.Resent(), tally.Other())
	}
}
