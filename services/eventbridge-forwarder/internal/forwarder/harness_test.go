package forwarder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/twmb/franz-go/pkg/kgo"
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
	p.bus = ebfake.New()
	t.Cleanup(p.bus.Close)
	p.bus.AddKey(ebfake.Key{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: testSessionToken})
	p.bus.RequireKnownKeys(true)
	for name, value := range map[string]string{"key-id": testKeyID, "secret-key": testSecret, "session-token": testSessionToken} {
		if err := os.WriteFile(filepath.Join(p.DestDir, name), []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// connectionYAML is an EventBridge connection to the fake whose bus is
// named after the connection, with the test's keys in Secret files.
func (p *pipeline) connectionYAML(name string) string {
	return fmt.Sprintf(`  %s:
    type: eventbridge
    settings:
      region: eu-west-1
      event_bus: %s
      endpoint: %s
      prefix: scalr
      timeout: %s
      credentials:
        access_key_id: {file: %s}
        secret_access_key: {file: %s}
        session_token: {file: %s}
`, name, name, p.bus.URL(), p.callTimeout, filepath.Join(p.DestDir, "key-id"), filepath.Join(p.DestDir, "secret-key"), filepath.Join(p.DestDir, "session-token"))
}

// writeRoutes writes the destinations file: account → connection names;
// each connection writes to the fake's bus of its own name.
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
	for n := range conns {
		b.WriteString(p.connectionYAML(n))
	}
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
	return p.publishEvents(accounts, n, nil)
}

// publishEvents is publish with a hook to change each event.
func (p *pipeline) publishEvents(accounts []string, n int, change func(i int, ev *auditlogv1.AuditEvent)) map[string][]string {
	p.T.Helper()
	return p.Publish(accounts, n, func(account string, i int) *auditlogv1.AuditEvent {
		ev := forwardingtest.TestEvent(account, i)
		if change != nil {
			change(i, ev)
		}
		return ev
	})
}

// detail is the part of an entry's Detail the tests read.
type detail struct {
	ID      string `json:"id"`
	Request struct {
		Action string `json:"action"`
	} `json:"request"`
	Target struct {
		Context struct {
			Account struct {
				ID string `json:"id"`
			} `json:"account"`
		} `json:"context"`
	} `json:"target"`
}

func parseDetail(t *testing.T, s string) detail {
	t.Helper()
	var d detail
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("detail does not decode: %v", err)
	}
	return d
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
