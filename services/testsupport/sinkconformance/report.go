package sinkconformance

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// BenchReport lays out a forwarder's benchmark run against its targets:
// the passes it is measured against and the forwarder runs (median over
// -count runs), their memory, the latency, and a verdict per target. A
// forwarder's report names its passes and targets; the layout is shared.
type BenchReport struct {
	out  benchutil.Output
	err  error
	runs int

	text     strings.Builder
	verdicts strings.Builder
	labels   []string
	results  []benchutil.Result
	// Below counts the targets missed.
	Below int
}

// NewBenchReport reads results from out.
func NewBenchReport(out benchutil.Output) *BenchReport { return &BenchReport{out: out} }

// Get returns the median of the runs of Benchmark<name>; a missing one is
// the report's error (Err).
func (r *BenchReport) Get(name string) benchutil.Result {
	res, runs := r.out.Median(name)
	if runs == 0 && r.err == nil {
		r.err = fmt.Errorf("no result for Benchmark%s in the benchmark output", name)
	}
	if r.runs == 0 {
		r.runs = runs
	}
	return res
}

// Forwarders returns the forwarder runs of prefix at each of settings, and
// how many runs each had.
func (r *BenchReport) Forwarders(prefix string, settings []config.ByteSize) ([]benchutil.Result, []int) {
	fwds := make([]benchutil.Result, len(settings))
	runs := make([]int, len(settings))
	for i, inflight := range settings {
		name := BenchForwarderName(prefix, inflight)
		fwds[i], runs[i] = r.out.Median(name)
		if runs[i] == 0 && r.err == nil {
			r.err = fmt.Errorf("no result for Benchmark%s in the benchmark output", name)
		}
	}
	return fwds, runs
}

// Err is the first result missing.
func (r *BenchReport) Err() error { return r.err }

// Metric formats res's metric unit, "-" when it has none.
func Metric(res benchutil.Result, unit string) string {
	v, ok := res.Metrics[unit]
	if !ok {
		return "-"
	}
	return benchutil.FormatValue(v)
}

// Ratio is res's metric unit over of's events/s, and as a percentage.
func Ratio(res benchutil.Result, unit string, of benchutil.Result) (float64, string) {
	a, okA := res.Metrics[unit]
	b, okB := of.Metrics["events/s"]
	if !okA || !okB || b == 0 {
		return math.NaN(), "-"
	}
	return a / b, benchutil.FormatPercent(a / b)
}

// Throughput writes, under title and setup, the table of passes (labels and results, the ceiling
// first, the encode-only pass among them) and forwarder runs at settings,
// each against the ceiling and the forwarders against encode-only, then
// the CPU bound of the default run beside the broker and the fake (peer).
func (r *BenchReport) Throughput(title, setup string, labels []string, results []benchutil.Result, settings []config.ByteSize, fwds []benchutil.Result, encode, split benchutil.Result, peer string) {
	firstForwarder := len(results)
	ceiling := results[0]
	for i, inflight := range settings {
		label := fmt.Sprintf("forwarder into the fake, max_inflight %d MiB", inflight>>20)
		if i == 0 {
			label += " (default)"
		}
		labels = append(labels, label)
		results = append(results, fwds[i])
	}
	r.labels, r.results = labels, results
	fmt.Fprintf(&r.text, "\n%s (median of %d run(s); %s)\n", title, r.runs, setup)
	tbl := &benchutil.Table{}
	tbl.Row("", "events/s", "of ceiling", "of encode-only", "steady events/s", "of encode-only", "parked", "CPU µs/event", "CPU busy")
	for i, res := range results {
		c, e, ue := "-", "-", "-"
		if i > 0 {
			_, c = Ratio(res, "events/s", ceiling)
		}
		if i >= firstForwarder {
			_, e = Ratio(res, "events/s", encode)
			_, ue = Ratio(res, "steady-events/s", encode)
		}
		tbl.Row(labels[i], Metric(res, "events/s"), c, e, Metric(res, "steady-events/s"), ue, Metric(res, "parked"), forwardingtest.BenchMicros(res), Metric(res, "cpu-%")+" %")
	}
	tbl.WriteTo(&r.text)
	r.text.WriteString("steady: the rate from 10 % to 90 % of the events delivered, without start-up and the linger of the last batches;\n" +
		"the targets are judged on events/s over the whole run.\n")
	r.text.WriteString(forwardingtest.BenchBound(encode, fwds[0], split, peer))
}

// Printf adds a line of the sink's own to the report.
func (r *BenchReport) Printf(format string, args ...any) { fmt.Fprintf(&r.text, format, args...) }

// Memory writes the memory of every pass and run of the throughput table
// and of the latency run, and the latency.
func (r *BenchReport) Memory(latency benchutil.Result) {
	r.text.WriteString("\nmemory (MB): peak is the whole process (benchutil: heap and stacks, garbage included); over-base is above the\nheap in use before the run (the broker holding the loaded topic, the event pool); live is the live heap's peak above its own\n")
	mt := &benchutil.Table{}
	mt.Row("", "max_inflight", "live over base", "peak over base", "peak")
	labels := append(r.labels, "end-to-end latency run (1k events/s)")
	results := append(r.results, latency)
	for i, res := range results {
		mt.Row(labels[i], Metric(res, "max-inflight-MB"), Metric(res, "live-over-base-MB"), Metric(res, "peak-over-base-MB"), Metric(res, "peak-MB"))
	}
	mt.WriteTo(&r.text)
	fmt.Fprintf(&r.text, "\nend-to-end latency at %s events/s (default config): p50 %s ms, p99 %s ms, max %s ms\n",
		Metric(latency, "produced-events/s"), Metric(latency, "p50-ms"), Metric(latency, "p99-ms"), Metric(latency, "max-ms"))
}

// Line adds a line without a target to the verdicts.
func (r *BenchReport) Line(target, verdict, got string) {
	fmt.Fprintf(&r.verdicts, "  %-46s %-13s %s\n", target, verdict, got)
}

// Verdict adds a target's verdict.
func (r *BenchReport) Verdict(target string, pass bool, got string) {
	v := "PASS"
	if !pass {
		v = "BELOW TARGET"
		r.Below++
	}
	r.Line(target, v, got)
}

// Parked says how many events the run parked and the rate of the rest,
// "" when it parked none.
func Parked(fwd benchutil.Result) string {
	if fwd.Metrics["parked"] == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s parked; the rest at %s events/s)", Metric(fwd, "parked"), Metric(fwd, "unparked-events/s"))
}

// CommonVerdicts judges the targets every forwarder has (latency p99,
// memory set by config) and adds the default run's steady rate against
// encode-only and its rate against the ceiling.
func (r *BenchReport) CommonVerdicts(p99Target time.Duration, latency benchutil.Result, settings []config.ByteSize, fwds []benchutil.Result, fwdRuns []int, encode, ceiling benchutil.Result) {
	p99, ok := latency.Metrics["p99-ms"]
	r.Verdict(fmt.Sprintf("end-to-end p99 < %s at 1k events/s", p99Target), ok && p99 < benchutil.Millis(p99Target), Metric(latency, "p99-ms")+" ms")
	pass, got, backlog := forwardingtest.BenchMemoryVerdict(settings, fwds, fwdRuns)
	r.Verdict(fmt.Sprintf("memory set by config (backlog %s MB)", benchutil.FormatValue(backlog)), pass, got)
	_, txt := Ratio(fwds[0], "steady-events/s", encode)
	r.Line("steady forwarder / encode-only", "(no target)", txt)
	_, txt = Ratio(fwds[0], "events/s", ceiling)
	r.Line("forwarder / consume ceiling", "(no target)", txt)
}

// Bound adds the rate the default run could reach beside the broker and
// the fake (peer), from its CPU split.
func (r *BenchReport) Bound(encode, fwd, split benchutil.Result, peer string) {
	if bound, ok := forwardingtest.BenchBoundRate(encode, fwd, split); ok {
		r.Line("bound beside the broker and "+peer, "(no target)",
			fmt.Sprintf("%s events/s = %s of encode-only", benchutil.FormatValue(bound), benchutil.FormatPercent(bound/encode.Metrics["events/s"])))
	}
}

// Text is the report with its verdicts.
func (r *BenchReport) Text() string {
	return r.text.String() + "\ntargets (2-core machine)\n" + r.verdicts.String()
}
