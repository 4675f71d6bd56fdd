//go:build benchreport

package forwarder

import (
	"testing"

	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// The report of a benchmark run against the targets, built only for make
// bench (-tags benchreport), which hands it the run's output: it is not a
// test that skips itself everywhere else.

// TestDatadogBenchReport prints one comparison of a benchmark run against
// the targets.
func TestDatadogBenchReport(t *testing.T) { sinkconformance.RunBenchReport(t, benchReportSpec) }
