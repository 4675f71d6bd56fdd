package forwarder

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
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
	// maxRequestBytes, when set, is every connection's max_request_bytes.
	maxRequestBytes int
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
// a bearer token read from a Secret file.
func (p *pipeline) writeRoutes(routes map[string][]string) {
	p.T.Helper()
	conns := map[string]bool{}
	var b strings.Builder
	b.WriteString("routes:\n")
	accounts := make([]string, 0, len(routes))
	for acc := range routes {
		accounts = append(accounts, acc)
	}
	sort.Strings(accounts)
	for _, acc := range accounts {
		names := routes[acc]
		fmt.Fprintf(&b, "  - account: %q\n    connections: [%s]\n", acc, strings.Join(names, ", "))
		for _, n := range names {
			conns[n] = true
		}
	}
	b.WriteString("connections:\n")
	if len(conns) == 0 {
		b.Reset()
		b.WriteString("connections: {}\nroutes: []\n")
	}
	var tokens []string
	for n := range conns {
		tokenFile := filepath.Join(p.DestDir, n+".token")
		if err := os.WriteFile(tokenFile, []byte("token-"+n+"\n"), 0o600); err != nil {
			p.T.Fatal(err)
		}
		tokens = append(tokens, "Bearer token-"+n)
		fmt.Fprintf(&b, "  %s:\n    type: otlp\n    settings:\n      endpoint: %s\n      allow_http: true\n      tenant_id: %s\n      auth: {token: {file: %s}}\n      timeout: %s\n",
			n, p.rcv.URL(), n, tokenFile, p.requestTimeout)
		if p.maxRequestBytes > 0 {
			fmt.Fprintf(&b, "      max_request_bytes: %d\n", p.maxRequestBytes)
		}
	}
	p.rcv.RequireAuthorization(tokens...)
	p.WriteDestinations(b.String())
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

// publishEvents is publish with a hook to change each event.
func (p *pipeline) publishEvents(accounts []string, n int, change func(i int, ev *auditlogv1.AuditEvent)) map[string][]string {
	p.T.Helper()
	return p.Publish(accounts, n, func(account string, i int) *auditlogv1.AuditEvent {
		ev := forwardingtest.TestEvent(account, i)
		change(i, ev)
		return ev
	})
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
