// Command benchreport reads `go test -bench` output on stdin, passes it
// through, and prints one comparison of a candidate benchmark against its
// ceiling: every metric both report (median over -count runs), their ratio,
// and whether the candidate reaches the target share of the ceiling on one
// metric.
//
//	go test -run '^$' -bench 'RawProduceCeiling|IngestBatch' ./... |
//	    go run ./benchutil/cmd/benchreport -ceiling RawProduceCeiling -candidate IngestBatch -metric events/s -target 0.5
//
// It exits 1 when the output shows a failure or lacks either benchmark, and,
// with -strict, when the candidate is below the target.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/auditstream/auditstream/services/testsupport/benchutil"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ceiling := fs.String("ceiling", "", "name of the ceiling benchmark, without the Benchmark prefix (required)")
	candidate := fs.String("candidate", "", "name of the benchmark measured against the ceiling (required)")
	metric := fs.String("metric", "events/s", "higher-is-better metric the target applies to")
	target := fs.Float64("target", 0.5, "least candidate/ceiling ratio of -metric that passes")
	least := fs.Float64("min", 0, "least absolute value of -metric the candidate must reach (0: no absolute target)")
	strict := fs.Bool("strict", false, "exit 1 when the candidate is below the target")
	quiet := fs.Bool("quiet", false, "do not copy the benchmark output through")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *ceiling == "" || *candidate == "" {
		fmt.Fprintln(stderr, "benchreport: -ceiling and -candidate are required")
		fs.Usage()
		return 2
	}
	var echo io.Writer = stdout
	if *quiet {
		echo = nil
	}
	out, err := benchutil.Parse(stdin, echo)
	if err != nil {
		fmt.Fprintln(stderr, "benchreport: read benchmark output:", err)
		return 1
	}
	code := 0
	if len(out.Failures) > 0 {
		fmt.Fprintf(stderr, "benchreport: the benchmark run failed: %s\n", out.Failures[0])
		code = 1
	}
	cmp, err := out.Compare(*ceiling, *candidate)
	if err != nil {
		fmt.Fprintln(stderr, "benchreport:", err)
		return 1
	}

	fmt.Fprintf(stdout, "\n%s against the ceiling %s (median of %d and %d runs)\n", *candidate, *ceiling, cmp.CandidateRuns, cmp.CeilingRuns)
	if _, err := cmp.Table(*metric).WriteTo(stdout); err != nil {
		return 1
	}
	ratio, ok := cmp.Ratio(*metric)
	switch {
	case !ok:
		fmt.Fprintf(stdout, "target: %s is not reported by both benchmarks\n", *metric)
		code = 1
	case ratio >= *target:
		fmt.Fprintf(stdout, "target: %s %s >= %s of the ceiling: PASS (%s)\n", *candidate, *metric, benchutil.FormatPercent(*target), benchutil.FormatPercent(ratio))
	default:
		fmt.Fprintf(stdout, "target: %s %s >= %s of the ceiling: BELOW TARGET (%s)\n", *candidate, *metric, benchutil.FormatPercent(*target), benchutil.FormatPercent(ratio))
		if *strict {
			code = 1
		}
	}
	if *least > 0 {
		v, ok := cmp.Candidate.Metrics[*metric]
		verdict := "PASS"
		if !ok || v < *least {
			verdict = "BELOW TARGET"
			if *strict {
				code = 1
			}
		}
		fmt.Fprintf(stdout, "target: %s %s >= %s: %s (%s)\n", *candidate, *metric, benchutil.FormatValue(*least), verdict, benchutil.FormatValue(v))
	}
	return code
}
