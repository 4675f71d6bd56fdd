package benchutil

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	l := NewLatencies(0)
	// 1..100 ms in scrambled order
	for i := range 100 {
		l.Record(time.Duration((i*37)%100+1) * time.Millisecond)
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{
		{0, 1 * time.Millisecond},
		{1, 1 * time.Millisecond},
		{29, 29 * time.Millisecond}, // 0.29*100 is 28.999999999999996 in floating point
		{50, 50 * time.Millisecond},
		{50.5, 51 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{99.9, 100 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{150, 100 * time.Millisecond},
		{-5, 1 * time.Millisecond},
	}
	for _, c := range cases {
		if got := l.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestPercentileSmallSets(t *testing.T) {
	var l Latencies
	if got := l.Percentile(50); got != 0 {
		t.Fatalf("empty p50 = %v, want 0", got)
	}
	l.Record(7 * time.Second)
	if got := l.Percentile(99); got != 7*time.Second {
		t.Fatalf("single p99 = %v", got)
	}
	l.Record(1 * time.Second)
	l.Record(3 * time.Second)
	l.Record(5 * time.Second)
	// sorted 1 3 5 7: p50 -> rank 2, p75 -> rank 3, p76 -> rank 4, p25 -> rank 1
	for p, want := range map[float64]time.Duration{25: time.Second, 50: 3 * time.Second, 75: 5 * time.Second, 76: 7 * time.Second, 99: 7 * time.Second} {
		if got := l.Percentile(p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	// recording after a percentile keeps the answer right
	l.Record(0)
	if got := l.Percentile(0); got != 0 {
		t.Errorf("min after a late record = %v, want 0", got)
	}
	if l.Count() != 5 {
		t.Errorf("count %d", l.Count())
	}
}

func TestRankIndex(t *testing.T) {
	for _, c := range []struct {
		p    float64
		n    int
		want int
	}{
		{50, 1, 0}, {50, 2, 0}, {50, 3, 1}, {99, 10, 9}, {90, 10, 8}, {10, 10, 0}, {10.0001, 10, 1}, {math.NaN(), 4, 0},
	} {
		if got := rankIndex(c.p, c.n); got != c.want {
			t.Errorf("rankIndex(%v, %d) = %d, want %d", c.p, c.n, got, c.want)
		}
	}
}

func TestLatenciesConcurrent(t *testing.T) {
	l := NewLatencies(1000)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 250 {
				l.Record(time.Duration(g*250 + i))
			}
		})
	}
	wg.Wait()
	if l.Count() != 1000 || l.Percentile(100) != 999 || l.Percentile(50) != 499 {
		t.Fatalf("count %d max %v p50 %v", l.Count(), l.Percentile(100), l.Percentile(50))
	}
}

func TestPeakMemorySeesAllocation(t *testing.T) {
	p := StartPeakMemory(time.Millisecond)
	before := InUseBytes()
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	peak := p.Stop()
	if peak < before+60<<20 {
		t.Fatalf("peak %d bytes, want at least %d", peak, before+60<<20)
	}
	if again := p.Stop(); again != peak {
		t.Fatalf("second Stop = %d, first %d", again, peak)
	}
	_ = buf[len(buf)-1]
}

const sampleOutput = `goos: linux
goarch: amd64
pkg: example/ingest
cpu: Some CPU
BenchmarkRawProduceCeiling-2   	 1000000	      4000 ns/op	    250000 events/s	       100.0 peak-MB
BenchmarkRawProduceCeiling-2   	 1000000	      5000 ns/op	    200000 events/s	       120.0 peak-MB
BenchmarkRawProduceCeiling-2   	 1000000	      3000 ns/op	    333333 events/s	        90.0 peak-MB
BenchmarkIngestBatch-2         	  500000	     10000 ns/op	    100000 events/s	        12.5 p50-ms	        40.0 p99-ms	        50.0 peak-MB
BenchmarkIngestBatch-2         	  500000	      8000 ns/op	    125000 events/s	        10.5 p50-ms	        30.0 p99-ms	        60.0 peak-MB
PASS
ok  	example/ingest	30.1s
`

func TestParseAndCompare(t *testing.T) {
	var echo bytes.Buffer
	out, err := Parse(strings.NewReader(sampleOutput), &echo)
	if err != nil {
		t.Fatal(err)
	}
	if echo.String() != sampleOutput {
		t.Fatalf("echo differs:\n%s", echo.String())
	}
	if len(out.Results) != 5 || len(out.Failures) != 0 {
		t.Fatalf("results %d failures %v", len(out.Results), out.Failures)
	}
	cmp, err := out.Compare("RawProduceCeiling", "IngestBatch")
	if err != nil {
		t.Fatal(err)
	}
	if cmp.CeilingRuns != 3 || cmp.CandidateRuns != 2 {
		t.Fatalf("runs %d %d", cmp.CeilingRuns, cmp.CandidateRuns)
	}
	if got := cmp.Ceiling.Metrics["events/s"]; got != 250000 {
		t.Errorf("ceiling median events/s %v", got)
	}
	if got := cmp.Candidate.Metrics["events/s"]; got != 112500 {
		t.Errorf("candidate median events/s %v", got)
	}
	if r, ok := cmp.Ratio("events/s"); !ok || math.Abs(r-0.45) > 1e-9 {
		t.Errorf("ratio %v %v", r, ok)
	}
	if _, ok := cmp.Ratio("p50-ms"); ok {
		t.Error("p50-ms ratio without a ceiling value")
	}
	var b bytes.Buffer
	if _, err := cmp.Table("events/s").WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := `metric    RawProduceCeiling  IngestBatch  candidate/ceiling
events/s            250,000      112,500             45.0 %
ns/op                 4,000        9,000            225.0 %
p50-ms                    -         11.5                  -
p99-ms                    -         35.0                  -
peak-MB                 100         55.0             55.0 %
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestCompareMissingAndFailures(t *testing.T) {
	out, err := Parse(strings.NewReader("BenchmarkA-2 10 5 ns/op\n--- FAIL: BenchmarkB\nFAIL\texample 1.0s\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Failures) != 2 {
		t.Fatalf("failures %q", out.Failures)
	}
	if _, err := out.Compare("A", "B"); err == nil || !strings.Contains(err.Error(), "BenchmarkB") {
		t.Fatalf("err %v", err)
	}
}

func TestParseLine(t *testing.T) {
	for line, want := range map[string]string{
		"BenchmarkX-16 	 3	 1 ns/op":          "X",
		"BenchmarkX 	 3	 1 ns/op":             "X",
		"BenchmarkX/size-1k-2 	 3	 1 ns/op":   "X/size-1k",
		"BenchmarkX/size-1k 	 3	 1 ns/op":     "X/size-1k",
		"BenchmarkX/batch-500-2 	 3	 1 ns/op": "X/batch-500",
	} {
		r, ok := ParseLine(line)
		if !ok || r.Name != want {
			t.Errorf("%q: %q %v, want %q", line, r.Name, ok, want)
		}
	}
	for _, line := range []string{"BenchmarkX", "BenchmarkX-2 \t--- FAIL", "PASS", "Benchmark 3 x ns/op", "BenchmarkX 3 1 ns/op extra"} {
		if _, ok := ParseLine(line); ok {
			t.Errorf("%q parsed as a result", line)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0.00", 1.234: "1.23", 12.34: "12.3", 123.4: "123", 1234.5: "1,234", 1234567: "1,234,567", -2500: "-2,500"} {
		if got := FormatValue(v); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", v, got, want)
		}
	}
}
