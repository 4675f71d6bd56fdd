//go:build benchreport

package forwarder

import (
	"io"
	"os"
	"testing"

	"github.com/auditstream/auditstream/services/testsupport/benchutil"
)

// The report of a benchmark run against the targets, built only for make
// bench (-tags benchreport), which hands it the run's output: it is not a
// test that skips itself everywhere else.

// TestOTLPBenchReport prints one comparison of a benchmark run against
// the targets. It reads the `go test -bench` output named by
// AUDITSTREAM_BENCH_OUTPUT and fails without it. It fails only when
// the output lacks a result, or, with AUDITSTREAM_BENCH_STRICT=1, when a
// target is missed.
func TestOTLPBenchReport(t *testing.T) {
	path := os.Getenv("AUDITSTREAM_BENCH_OUTPUT")
	if path == "" {
		t.Fatal("set AUDITSTREAM_BENCH_OUTPUT to a `go test -bench` output (make bench does)")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := benchutil.Parse(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Failures) > 0 {
		t.Errorf("the benchmark run failed: %s", out.Failures[0])
	}
	rep, err := otlpBenchReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(os.Stdout, rep.text); err != nil {
		t.Fatal(err)
	}
	if rep.below > 0 && os.Getenv("AUDITSTREAM_BENCH_STRICT") == "1" {
		t.Errorf("%d target(s) below", rep.below)
	}
}
