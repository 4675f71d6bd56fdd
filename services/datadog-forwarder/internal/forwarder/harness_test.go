package forwarder

import (
	"testing"

	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// pipeline is a broker, a Datadog intake fake and the forwarder's config
// pointing at both (sinkconformance.Pipeline); each connection name is
// also its API key in the fake.
type pipeline struct {
	*sinkconformance.Pipeline
	intake *ddfake.Server
}

func newPipeline(t *testing.T, keys ...string) *pipeline {
	t.Helper()
	f := &intakeFake{Server: ddfake.New(keys...), t: t}
	t.Cleanup(f.Close)
	return &pipeline{Pipeline: sinkconformance.NewPipeline(t, Spec, DefaultConfig(), f), intake: f.Server}
}
