package sinkconformance

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// BenchPass is a benchmark a forwarder's report reads besides its
// forwarder runs: Benchmark<prefix><Name>, and its label in the report.
type BenchPass struct{ Name, Label string }

// BenchReportSpec is what a forwarder's benchmark report says of its own:
// the names of its passes, their captions and its targets. The layout and
// the verdicts every forwarder has are BenchReportSpec.Report's.
type BenchReportSpec struct {
	// Prefix starts every benchmark name ("Datadog"): the report reads
	// <Prefix>ConsumeCeiling, the Passes, <Prefix>Forwarder/max-inflight=…
	// at each of BenchInflightSettings(Spec), <Prefix>ForwarderCPUSplit and
	// <Prefix>EndToEndLatency.
	Prefix string
	Spec   forwarding.Spec
	// Setup says how the throughput table's runs were set up.
	Setup string
	// Passes are the rows between the ceiling and the forwarder runs, in
	// the table's order; the one named EncodeOnly is what the forwarder is
	// measured against.
	Passes []BenchPass
	// Peer is the fake as the CPU split names it ("Datadog intake");
	// BoundPeer as the bound's verdict line does ("intake").
	Peer, BoundPeer string
	// MinEventsPerSec, when not 0, is the default run's target rate. The
	// targets every forwarder has are BenchTargetOfEncodeOnly and
	// BenchTargetP99.
	MinEventsPerSec float64
	// Note, when set, adds lines of the sink's own after the throughput
	// table, from the passes' results (by Name) and the default run.
	Note func(passes map[string]benchutil.Result, fwd benchutil.Result) string
	// Against are passes (by Name) the default run is set against without
	// a target, each a verdict line of its Label.
	Against []BenchPass
}

// The targets of every forwarder (2-core machine): the default run's
// share of the encode-only pass, and the end-to-end p99 at 1k events/s.
const (
	BenchTargetOfEncodeOnly = 0.70
	BenchTargetP99          = time.Second
)

// The benchmarks every forwarder has, after the prefix.
const (
	benchCeiling  = "ConsumeCeiling"
	benchEncode   = "EncodeOnly"
	benchSplit    = "ForwarderCPUSplit"
	benchLatency  = "EndToEndLatency"
	ceilingLabel  = "raw franz-go consume ceiling"
	benchNoTarget = "(no target)"
)

// Report lays out a run's results (out) against s's targets: the ceiling,
// the passes and the forwarder runs (median over -count runs), their
// memory, the latency, and a verdict per target. It returns the text and
// how many targets were missed; the error names a result out lacks.
func (s BenchReportSpec) Report(out benchutil.Output) (text string, below int, err error) {
	settings := BenchInflightSettings(s.Spec)
	r := newBenchReport(out)
	ceiling := r.get(s.Prefix + benchCeiling)
	labels := []string{ceilingLabel}
	results := []benchutil.Result{ceiling}
	passes := map[string]benchutil.Result{}
	for _, p := range s.Passes {
		passes[p.Name] = r.get(s.Prefix + p.Name)
		labels = append(labels, p.Label)
		results = append(results, passes[p.Name])
	}
	fwds, fwdRuns := r.forwarders(s.Prefix, settings)
	latency := r.get(s.Prefix + benchLatency)
	split := r.get(s.Prefix + benchSplit)
	if r.err != nil {
		return "", 0, r.err
	}
	encode, ok := passes[benchEncode]
	if !ok {
		return "", 0, fmt.Errorf("the %s report has no %s pass", s.Prefix, benchEncode)
	}

	r.throughput(s.Prefix+" forwarder against its ceilings", s.Setup, labels, results, settings, fwds, encode, split, s.Peer)
	fwd := fwds[0]
	if s.Note != nil {
		r.text.WriteString(s.Note(passes, fwd))
	}
	r.memory(latency)

	// The first verdict on the default run says what it parked.
	parked := Parked(fwd)
	if s.MinEventsPerSec > 0 {
		rate := fwd.Metrics["events/s"]
		r.verdict(fmt.Sprintf("forwarder >= %s events/s", benchutil.FormatValue(s.MinEventsPerSec)),
			rate >= s.MinEventsPerSec, benchutil.FormatValue(rate)+" events/s"+parked)
		parked = ""
	}
	of, txt := Ratio(fwd, "events/s", encode)
	r.verdict(fmt.Sprintf("forwarder >= %s of encode-only", benchutil.FormatPercent(BenchTargetOfEncodeOnly)), of >= BenchTargetOfEncodeOnly, txt+parked)
	r.commonVerdicts(BenchTargetP99, latency, settings, fwds, fwdRuns, encode, ceiling)
	for _, p := range s.Against {
		_, txt := Ratio(fwd, "events/s", passes[p.Name])
		r.line(p.Label, benchNoTarget, txt)
	}
	r.bound(encode, fwd, split, s.BoundPeer)
	return r.textOf(), r.below, nil
}

// CheckBenchReport fails t unless s's report of the benchmark output
// output holds every line of want and misses below targets, and unless a
// report of an output without results is an error.
func CheckBenchReport(t *testing.T, s BenchReportSpec, output string, want []string, below int) {
	t.Helper()
	out, err := benchutil.Parse(strings.NewReader(output), nil)
	if err != nil {
		t.Fatal(err)
	}
	text, n, err := s.Report(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("report lacks %q:\n%s", w, text)
		}
	}
	if n != below {
		t.Errorf("%d targets below, want %d:\n%s", n, below, text)
	}
	if _, _, err := s.Report(benchutil.Output{}); err == nil {
		t.Error("no error for an output without results")
	}
}

// benchReport is BenchReportSpec.Report's layout, filled in as it reads
// results.
type benchReport struct {
	out  benchutil.Output
	err  error
	runs int

	text     strings.Builder
	verdicts strings.Builder
	labels   []string
	results  []benchutil.Result
	// below counts the targets missed.
	below int
}

// newBenchReport reads results from out.
func newBenchReport(out benchutil.Output) *benchReport { return &benchReport{out: out} }

// get returns the median of the runs of Benchmark<name>; a missing one is
// the report's error.
func (r *benchReport) get(name string) benchutil.Result {
	res, runs := r.out.Median(name)
	if runs == 0 && r.err == nil {
		r.err = fmt.Errorf("no result for Benchmark%s in the benchmark output", name)
	}
	if r.runs == 0 {
		r.runs = runs
	}
	return res
}

// forwarders returns the forwarder runs of prefix at each of settings, and
// how many runs each had.
func (r *benchReport) forwarders(prefix string, settings []config.ByteSize) ([]benchutil.Result, []int) {
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

// throughput writes, under title and setup, the table of passes (labels and results, the ceiling
// first, the encode-only pass among them) and forwarder runs at settings,
// each against the ceiling and the forwarders against encode-only, then
// the CPU bound of the default run beside the broker and the fake (peer).
func (r *benchReport) throughput(title, setup string, labels []string, results []benchutil.Result, settings []config.ByteSize, fwds []benchutil.Result, encode, split benchutil.Result, peer string) {
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

// memory writes the memory of every pass and run of the throughput table
// and of the latency run, and the latency.
func (r *benchReport) memory(latency benchutil.Result) {
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

// line adds a line without a target to the verdicts.
func (r *benchReport) line(target, verdict, got string) {
	fmt.Fprintf(&r.verdicts, "  %-46s %-13s %s\n", target, verdict, got)
}

// verdict adds a target's verdict.
func (r *benchReport) verdict(target string, pass bool, got string) {
	v := "PASS"
	if !pass {
		v = "BELOW TARGET"
		r.below++
	}
	r.line(target, v, got)
}

// Parked says how many events the run parked and the rate of the rest,
// "" when it parked none.
func Parked(fwd benchutil.Result) string {
	if fwd.Metrics["parked"] == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s parked; the rest at %s events/s)", Metric(fwd, "parked"), Metric(fwd, "unparked-events/s"))
}

// commonVerdicts judges the targets every forwarder has (latency p99,
// memory set by config) and adds the default run's steady rate against
// encode-only and its rate against the ceiling.
func (r *benchReport) commonVerdicts(p99Target time.Duration, latency benchutil.Result, settings []config.ByteSize, fwds []benchutil.Result, fwdRuns []int, encode, ceiling benchutil.Result) {
	p99, ok := latency.Metrics["p99-ms"]
	r.verdict(fmt.Sprintf("end-to-end p99 < %s at 1k events/s", p99Target), ok && p99 < benchutil.Millis(p99Target), Metric(latency, "p99-ms")+" ms")
	pass, judged, got, backlog := forwardingtest.BenchMemoryVerdict(settings, fwds, fwdRuns)
	target := fmt.Sprintf("memory set by config (backlog %s MB)", benchutil.FormatValue(backlog))
	if pass && !judged {
		r.line(target, "RUN TOO SHORT", got+"; a backlog under what the smallest cap allows cannot show it is not held")
	} else {
		r.verdict(target, pass, got)
	}
	_, txt := Ratio(fwds[0], "steady-events/s", encode)
	r.line("steady forwarder / encode-only", benchNoTarget, txt)
	_, txt = Ratio(fwds[0], "events/s", ceiling)
	r.line("forwarder / consume ceiling", benchNoTarget, txt)
}

// bound adds the rate the default run could reach beside the broker and
// the fake (peer), from its CPU split.
func (r *benchReport) bound(encode, fwd, split benchutil.Result, peer string) {
	if bound, ok := forwardingtest.BenchBoundRate(encode, fwd, split); ok {
		r.line("bound beside the broker and "+peer, benchNoTarget,
			fmt.Sprintf("%s events/s = %s of encode-only", benchutil.FormatValue(bound), benchutil.FormatPercent(bound/encode.Metrics["events/s"])))
	}
}

// textOf is the report with its verdicts.
func (r *benchReport) textOf() string {
	return r.text.String() + "\ntargets (2-core machine)\n" + r.verdicts.String()
}
