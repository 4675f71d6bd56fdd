package forwarder

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/eventbridge-forwarder/internal/ebfake"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/kafkatest"
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
	t       *testing.T
	cluster *kafkatest.Cluster
	bus     *ebfake.Server
	cfg     Config
	destDir string
	// callTimeout is the connections' timeout for one PutEvents call.
	callTimeout time.Duration
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	cluster := kafkatest.New(t)
	bus := ebfake.New()
	t.Cleanup(bus.Close)
	bus.AddKey(ebfake.Key{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: testSessionToken})
	bus.RequireKnownKeys(true)
	cfg := DefaultConfig()
	cfg.Log.Level = "warn"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = cluster.Brokers()
	cfg.Kafka.Topics.Events.Partitions = 6
	cfg.Kafka.Topics.DeadLetter.Partitions = 1
	cfg.Delivery.RetryTopic.Partitions = 2
	cfg.Delivery.Batch = delivery.BatchPolicy{Count: 500, Bytes: 4 << 20, Period: 20 * time.Millisecond}
	cfg.Delivery.Backoff = delivery.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, Jitter: 0.2}
	cfg.Delivery.RetryBudget = 3 * time.Second
	cfg.Delivery.ParkDelay = 500 * time.Millisecond
	cfg.Delivery.UnhealthyProbe = 500 * time.Millisecond
	cfg.Delivery.CommitInterval = 100 * time.Millisecond
	cfg.Delivery.RevokeTimeout = 5 * time.Second
	// A batch is many calls; only a call's own timeout (callTimeout) is
	// meant to cut one short in these tests.
	cfg.Delivery.SendTimeout = 30 * time.Second
	p := &pipeline{t: t, cluster: cluster, bus: bus, destDir: t.TempDir(), callTimeout: 10 * time.Second}
	cfg.Destinations.File = filepath.Join(p.destDir, "destinations.yaml")
	cfg.Destinations.PollInterval = 100 * time.Millisecond
	p.cfg = cfg
	for name, value := range map[string]string{"key-id": testKeyID, "secret-key": testSecret, "session-token": testSessionToken} {
		if err := os.WriteFile(filepath.Join(p.destDir, name), []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cl := cluster.Client()
	if err := kafka.EnsureTopics(context.Background(), cl, cfg.Kafka.Topics.Events, cfg.Kafka.Topics.DeadLetter, cfg.Delivery.RetryTopic); err != nil {
		t.Fatal(err)
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
`, name, name, p.bus.URL(), p.callTimeout, filepath.Join(p.destDir, "key-id"), filepath.Join(p.destDir, "secret-key"), filepath.Join(p.destDir, "session-token"))
}

// writeRoutes writes the destinations file: account → connection names;
// each connection writes to the fake's bus of its own name.
func (p *pipeline) writeRoutes(routes map[string][]string) {
	p.t.Helper()
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
	tmp := p.cfg.Destinations.File + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.cfg.Destinations.File); err != nil {
		p.t.Fatal(err)
	}
}

// start runs a forwarder in this process until stop.
func (p *pipeline) start() (stop func()) {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := p.cfg
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					p.t.Errorf("forwarder: %v", err)
				}
			case <-time.After(30 * time.Second):
				p.t.Error("forwarder did not stop")
			}
		})
	}
	p.t.Cleanup(stop)
	return stop
}

// publish writes n events for each account through the producer package
// (the code ingest uses) and returns their ids by account.
func (p *pipeline) publish(accounts []string, n int) map[string][]string {
	p.t.Helper()
	return p.publishEvents(accounts, n, nil)
}

// publishEvents is publish with a hook to change each event.
func (p *pipeline) publishEvents(accounts []string, n int, change func(i int, ev *auditlogv1.AuditEvent)) map[string][]string {
	p.t.Helper()
	cl := p.cluster.Client()
	prod := producer.New(cl, p.cfg.Kafka.Topics.Events.Name)
	ids := map[string][]string{}
	const chunk = 2000
	var events []*auditlogv1.AuditEvent
	flush := func() {
		res, err := prod.Publish(context.Background(), events)
		if err != nil {
			p.t.Fatal(err)
		}
		for i, ev := range events {
			acc := auditevent.AccountID(ev)
			ids[acc] = append(ids[acc], res.IDs[i])
		}
		events = events[:0]
	}
	for i := range n {
		for _, acc := range accounts {
			ev := testEvent(acc, i)
			if change != nil {
				change(i, ev)
			}
			events = append(events, ev)
			if len(events) == chunk {
				flush()
			}
		}
	}
	if len(events) > 0 {
		flush()
	}
	return ids
}

func testEvent(account string, i int) *auditlogv1.AuditEvent {
	return &auditlogv1.AuditEvent{
		Actor:    &auditlogv1.Actor{Id: "user-1", Type: "user", Email: "someone@example.com", AccessToken: &auditlogv1.AccessToken{Type: "session", Token: "tok-abcdefghijklmnopqrstuvwxyz"}},
		Request:  &auditlogv1.Request{Action: fmt.Sprintf("action-%d", i%7), Source: "api", IpAddress: "10.0.0.1"},
		Hostname: "platform.example.com",
		Service:  "audit-log",
		Outcome:  &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 200},
		Target: &auditlogv1.Target{Id: fmt.Sprintf("ws-%d", i), Type: "workspaces", Context: &auditlogv1.Context{
			Account:     &auditlogv1.Ref{Id: account, DisplayName: account},
			Environment: &auditlogv1.Ref{Id: "env-1", DisplayName: "Prod"},
		}},
	}
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
		d := parseDetail(p.t, e.Detail)
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
				m[parseDetail(p.t, e.Detail).ID]++
			}
		}
	}
	return m
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func counts(ids []string) map[string]int {
	m := make(map[string]int, len(ids))
	for _, id := range ids {
		m[id]++
	}
	return m
}

func accountsN(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("acc-%02d", i)
	}
	return out
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
