package forwarder

import (
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// pipeline is a broker, a Datadog intake fake and the forwarder's config
// pointing at both, over real sockets on ephemeral ports.
type pipeline struct {
	*forwardingtest.Pipeline
	intake *ddfake.Server
	// requestTimeout is the connections' timeout for one request (2s, so
	// that fault tests give up on a slow intake quickly).
	requestTimeout time.Duration
}

func newPipeline(t *testing.T, keys ...string) *pipeline {
	t.Helper()
	p := &pipeline{Pipeline: forwardingtest.NewPipeline(t, DefaultConfig()), requestTimeout: 2 * time.Second}
	p.intake = ddfake.New(keys...)
	t.Cleanup(p.intake.Close)
	return p
}

// writeRoutes writes the destinations file: account → connection names;
// each connection name is also its API key in the fake.
func (p *pipeline) writeRoutes(routes map[string][]string) {
	p.T.Helper()
	sinkconformance.WriteRoutes(p.Pipeline, &intakeFake{Server: p.intake, t: p.T}, p.requestTimeout, routes)
}

// start runs a forwarder in this process until stop.
func (p *pipeline) start() (stop func()) {
	p.T.Helper()
	return p.Start(Spec)
}

// publish writes n test events for each account and returns their ids by
// account.
func (p *pipeline) publish(accounts []string, n int) map[string][]string {
	p.T.Helper()
	return p.Publish(accounts, n, forwardingtest.TestEvent)
}

// received returns, for an API key, the audit ids and accounts of the logs
// the intake accepted.
func (p *pipeline) received(key string) (ids []string, accounts []string) {
	for _, log := range p.intake.Logs(key) {
		id, _ := log["audit-id"].(string)
		ids = append(ids, id)
		acc := ""
		if t, ok := log["target"].(map[string]any); ok {
			if c, ok := t["context"].(map[string]any); ok {
				if a, ok := c["account"].(map[string]any); ok {
					acc, _ = a["id"].(string)
				}
			}
		}
		accounts = append(accounts, acc)
	}
	return ids, accounts
}

// mustIDs is the audit ids of the logs the intake accepted for key.
func mustIDs(p *pipeline, key string) []string {
	ids, _ := p.received(key)
	return ids
}
