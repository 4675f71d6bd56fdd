package forwarder

import (
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pipeline is a broker, an OTLP receiver fake and the forwarder's config
// pointing at both, over real sockets on ephemeral ports.
type pipeline struct {
	*forwardingtest.Pipeline
	rcv *otlpfake.Server
	// requestTimeout is the connections' timeout for one request (2s, so
	// that fault tests give up on a slow receiver quickly).
	requestTimeout time.Duration
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	p := &pipeline{Pipeline: forwardingtest.NewPipeline(t, DefaultConfig()), requestTimeout: 2 * time.Second}
	p.rcv = otlpfake.New()
	p.rcv.RequireTenant(true)
	t.Cleanup(p.rcv.Close)
	return p
}

// writeRoutes writes the destinations file: account → connection names.
// Each connection is its own tenant (tenant_id = its name) of the fake, so
// the fake's records per tenant are the connection's deliveries, and sends
// a bearer token read from a Secret file (receiverFake.Connection).
func (p *pipeline) writeRoutes(routes map[string][]string) {
	p.T.Helper()
	sinkconformance.WriteRoutes(p.Pipeline, &receiverFake{Server: p.rcv, t: p.T}, p.requestTimeout, routes)
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

// received returns, for a connection, the event ids and accounts of the
// records the receiver accepted.
func (p *pipeline) received(conn string) (ids []string, accounts []string) {
	for _, r := range p.rcv.Records(conn) {
		ids = append(ids, r.EventID)
		acc, _ := r.Resource["audit.account.id"].(string)
		accounts = append(accounts, acc)
	}
	return ids, accounts
}

func mustIDs(p *pipeline, conn string) []string {
	ids, _ := p.received(conn)
	return ids
}

func headers(rec *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range rec.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

func recordEventID(t *testing.T, rec *kgo.Record) string {
	t.Helper()
	ev, err := auditevent.DecodeRecord(rec)
	if err != nil {
		t.Fatalf("record does not decode: %v", err)
	}
	return ev.GetId()
}
