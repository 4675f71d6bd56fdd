package forwarder

import (
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
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
// pointing at both, over real sockets on ephemeral ports.
type pipeline struct {
	*forwardingtest.Pipeline
	bus *ebfake.Server
	// callTimeout is the connections' timeout for one PutEvents call.
	callTimeout time.Duration
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	p := &pipeline{Pipeline: forwardingtest.NewPipeline(t, DefaultConfig()), callTimeout: 10 * time.Second}
	// A batch is many calls; only a call's own timeout (callTimeout) is
	// meant to cut one short in these tests.
	p.Cfg.Delivery.SendTimeout = 30 * time.Second
	p.bus = newBusFake(t).(*busFake).Server
	return p
}

// writeRoutes writes the destinations file: account → connection names;
// each connection writes to the fake's bus of its own name.
func (p *pipeline) writeRoutes(routes map[string][]string) {
	p.T.Helper()
	sinkconformance.WriteRoutes(p.Pipeline, &busFake{Server: p.bus, t: p.T}, p.callTimeout, routes)
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
	return p.publishEvents(accounts, n, nil)
}

// publishEvents is publish with a hook to change each event.
func (p *pipeline) publishEvents(accounts []string, n int, change func(i int, ev *auditlogv1.AuditEvent)) map[string][]string {
	p.T.Helper()
	return p.Publish(accounts, n, forwardingtest.TestEvents(change))
}

// received returns the event ids and accounts of the entries the fake
// accepted for a bus.
func (p *pipeline) received(bus string) (ids []string, accounts []string) {
	for _, e := range p.bus.Entries(bus) {
		d := parseDetail(p.T, e.Detail)
		ids = append(ids, d.ID)
		accounts = append(accounts, d.Target.Context.Account.ID)
	}
	return ids, accounts
}

func (p *pipeline) ids(bus string) []string {
	ids, _ := p.received(bus)
	return ids
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
