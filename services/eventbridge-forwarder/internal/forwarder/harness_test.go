package forwarder

import (
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// The forwarder's AWS keys in the tests. The fake verifies every signature
// with them; the secret and the session token must never be logged.
const (
	testKeyID        = "AKIDFORWARDERTEST001"
	testSecret       = "forwarder-secret-never-logged"
	testSessionToken = "forwarder-session-token-never-logged"
)

// pipeline is a broker, an EventBridge fake and the forwarder's config
// pointing at both (sinkconformance.Pipeline); each connection writes to
// the fake's bus of its own name.
type pipeline struct {
	*sinkconformance.Pipeline
	bus *ebfake.Server
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	f := newBusFake(t)
	p := &pipeline{Pipeline: sinkconformance.NewPipeline(t, Spec, DefaultConfig(), f), bus: f.(*busFake).Server}
	// A batch is many calls; only a call's own timeout (Timeout, one
	// PutEvents call's) is meant to cut one short in these tests.
	p.Timeout = 10 * time.Second
	p.Cfg.Delivery.SendTimeout = 30 * time.Second
	return p
}

// sent counts, per event id, the times an entry for it was sent to bus, in
// any call, accepted or not.
func (p *pipeline) sent(bus string) map[string]int {
	m := map[string]int{}
	for _, c := range p.bus.Calls() {
		for _, e := range c.Entries {
			if e.Bus == bus {
				m[parseDetail(p.T, e.Detail).ID]++
			}
		}
	}
	return m
}
