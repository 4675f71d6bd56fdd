package forwardingtest

import (
	"runtime"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/internal/benchutil"
	"github.com/auditstream/auditstream/services/internal/config"
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
		{"a cap the pipeline never fills", 119, 112, true},
		{"smaller cap, much larger heap", 150, 100, false},
		{"the smallest cap holds the backlog", 230, 240, false},
	}
	for _, c := range cases {
		pass, got, backlog := BenchMemoryVerdict(settings, []benchutil.Result{run(c.small), run(c.large)}, []int{3, 3})
		if pass != c.pass {
			t.Errorf("%s: pass = %v, want %v (%s)", c.name, pass, c.pass, got)
		}
		if backlog < 204 || backlog > 206 {
			t.Errorf("%s: backlog %v MB, want 204.8", c.name, backlog)
		}
		if !strings.Contains(got, "at 16 MiB") || !strings.Contains(got, "at 64 MiB") {
			t.Errorf("%s: %q names not both settings", c.name, got)
		}
	}
}

func TestBenchBound(t *testing.T) {
	res := func(nsPerOp, eventsPerSec float64) benchutil.Result {
		return benchutil.Result{Metrics: map[string]float64{"cpu-ns/op": nsPerOp, "events/s": eventsPerSec}}
	}
	ceiling, encode, peer, fwd := res(1000, 1e6), res(10000, 2e5), res(5000, 4e5), res(18000, 1e5)
	rate, ok := BenchBoundRate(ceiling, encode, peer)
	if want := float64(runtime.NumCPU()) * 1e9 / 16000; !ok || rate != want {
		t.Errorf("bound %v (%v), want %v", rate, ok, want)
	}
	text := BenchBound(ceiling, encode, peer, fwd, "fake")
	for _, want := range []string{"= 16.0 µs", "2.00 µs beyond the three", "that is 13.0 µs per event, of which the encode-only work is 76.9 %"} {
		if !strings.Contains(text, want) {
			t.Errorf("bound text lacks %q:\n%s", want, text)
		}
	}
	if _, ok := BenchBoundRate(ceiling, benchutil.Result{Metrics: map[string]float64{}}, peer); ok {
		t.Error("a bound without the encode pass's CPU")
	}
}
