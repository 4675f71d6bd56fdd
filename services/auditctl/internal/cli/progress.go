package cli

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressLineInterval is how often a progress line is written when stderr
// is not a terminal.
var progressLineInterval = 10 * time.Second

// progressSource is what a progress display reads.
type progressSource struct {
	total     int64
	done      *atomic.Int64
	delivered *atomic.Int64
}

// showProgress displays progress on w until the returned stop is called:
// a bar with the count, rate and ETA on a terminal, a line every
// progressLineInterval otherwise.
func showProgress(w io.Writer, terminal bool, what string, src progressSource) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if terminal {
			showBar(w, what, src, done)
		} else {
			showLines(w, what, src, done)
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func showBar(w io.Writer, what string, src progressSource, done <-chan struct{}) {
	bar := progressbar.NewOptions64(src.total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("records"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			_ = bar.Set64(src.done.Load())
			if src.done.Load() < src.total {
				fmt.Fprintln(w)
			}
			return
		case <-tick.C:
			_ = bar.Set64(src.done.Load())
		}
	}
}

func showLines(w io.Writer, what string, src progressSource, done <-chan struct{}) {
	start := time.Now()
	tick := time.NewTicker(progressLineInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			fmt.Fprintln(w, progressLine(what, src, time.Since(start)))
		}
	}
}

// progressLine is one plain progress report:
//
//	auditctl: replay: 1200/5000 records (24%), 850 delivered, 310 records/s, ETA 12s
func progressLine(what string, src progressSource, elapsed time.Duration) string {
	n := src.done.Load()
	pct := 100.0
	if src.total > 0 {
		pct = 100 * float64(n) / float64(src.total)
	}
	rate := float64(n) / max(elapsed.Seconds(), 1e-3)
	eta := "-"
	if rate > 0 && n < src.total {
		eta = time.Duration(float64(src.total-n) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("auditctl: %s: %d/%d records (%.0f%%), %d delivered, %.0f records/s, ETA %s",
		what, n, src.total, pct, src.delivered.Load(), rate, eta)
}
