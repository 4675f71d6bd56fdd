package forwardingtest

import (
	"bytes"
	"context"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
)

func TestBenchMemoryVerdict(t *testing.T) {
	settings := []config.ByteSize{16 << 20, 64 << 20}
	run := func(live float64) benchutil.Result {
		// three runs of 200,000 records each: a 205 MB backlog
		return benchutil.Result{Iterations: 600_000, Metrics: map[string]float64{"live-over-base-MB": live}}
	}
	cases := []struct {
		name         string
		small, large float64
		pass         bool
	}{
		{"heap grows with the cap", 50, 120, true},
		{"a cap the pipeline never fills", 119, 96, true},
		{"past what the small cap allows", 210, 120, false},
		{"past what the large cap allows", 120, 610, false},
		{"near the caps, under the backlog", 190, 240, true},
	}
	for _, c := range cases {
		pass, judged, got, backlog := BenchMemoryVerdict(settings, []benchutil.Result{run(c.small), run(c.large)}, []int{3, 3})
		if pass != c.pass || !judged {
			t.Errorf("%s: pass = %v, want %v (%s)", c.name, pass, c.pass, got)
		}
		if backlog < 204 || backlog > 206 {
			t.Errorf("%s: backlog %v MB, want 204.8", c.name, backlog)
		}
		if !strings.Contains(got, "at 16 MiB") || !strings.Contains(got, "at 64 MiB") {
			t.Errorf("%s: %q names not both settings", c.name, got)
		}
	}
	// A shortened run: 100,000 records (102 MB) are within what 16 MiB
	// allows (198 MB), so a heap above the backlog proves nothing.
	short := func(live float64) benchutil.Result {
		return benchutil.Result{Iterations: 300_000, Metrics: map[string]float64{"live-over-base-MB": live}}
	}
	pass, judged, got, backlog := BenchMemoryVerdict(settings, []benchutil.Result{short(134), short(146)}, []int{3, 3})
	if judged || !pass || backlog > 103 {
		t.Errorf("short run: pass %v, judged %v, backlog %v MB (%s): want passed within the caps, not judged against the backlog", pass, judged, backlog, got)
	}
	if pass, _, _, _ := BenchMemoryVerdict(settings, []benchutil.Result{short(210), short(146)}, []int{3, 3}); pass {
		t.Error("short run past what the small cap allows passed")
	}
}

func TestBenchBound(t *testing.T) {
	encode := benchutil.Result{Metrics: map[string]float64{"cpu-ns/op": 10000, "events/s": 2e5}}
	fwd := benchutil.Result{Metrics: map[string]float64{"cpu-ns/op": 18000}}
	split := benchutil.Result{Metrics: map[string]float64{"cpu-ns/op": 20000, "rig-cpu-%": 25}}
	rate, ok := BenchBoundRate(encode, fwd, split)
	if want := float64(runtime.NumCPU()) * 1e9 / 14500; !ok || rate != want {
		t.Errorf("bound %v (%v), want %v", rate, ok, want)
	}
	text := BenchBound(encode, fwd, split, "fake")
	for _, want := range []string{"the broker and the fake took 4.50 µs of CPU per event (25.0 % of 18.0 µs", "itself, with the garbage collector, 13.5 µs, of which the encode-only work (10.0 µs) is 74.1 %"} {
		if !strings.Contains(text, want) {
			t.Errorf("bound text lacks %q:\n%s", want, text)
		}
	}
	if _, ok := BenchBoundRate(encode, fwd, benchutil.Result{Metrics: map[string]float64{}}); ok {
		t.Error("a bound without a split run")
	}
}

// The split counts labelled goroutines and the collector's workers as the
// forwarder's, the rest as the broker's and the fake's.
func TestSplitCPU(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skip("a CPU profile is already running:", err)
	}
	// Each side spins until the process has used its CPU time, so that a
	// loaded machine slows the test down but leaves the profile the same.
	spin := func(d time.Duration) {
		for end := readBenchCPU().used + d; readBenchCPU().used < end; {
		}
	}
	RunAsForwarder(context.Background(), func(context.Context) { spin(600 * time.Millisecond) })
	spin(200 * time.Millisecond)
	pprof.StopCPUProfile()
	share, samples, err := splitCPU(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if samples < 20 {
		t.Fatalf("only %d samples in a profile of 800 ms of CPU time", samples)
	}
	// 600 ms labelled against 200 ms not: 75 %, give or take the sampling
	// and whatever else the test process ran.
	if share < 0.55 || share > 0.9 {
		t.Errorf("forwarder share %.2f, want about 0.75", share)
	}
}

func TestBenchIDNumber(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, 1<<24 + 5, 1<<40 - 1} {
		if got, ok := BenchIDNumber(BenchID(n)); !ok || got != n {
			t.Errorf("BenchIDNumber(BenchID(%d)) = %d, %v", n, got, ok)
		}
	}
	for _, id := range []string{"", "acc-00-0001", "0190b1c2-0000-7000-8000-00000000000g", "0290b1c2-0000-7000-8000-000000000001"} {
		if n, ok := BenchIDNumber(id); ok {
			t.Errorf("BenchIDNumber(%q) = %d, want not a bench id", id, n)
		}
	}
}
