package api

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/internal/forwardingtest"
	"github.com/auditstream/auditstream/services/internal/sink/datadog/ddfake"
)

// forwarderDir is the Datadog forwarder's source, from this package.
const forwarderDir = "../../../datadog-forwarder"

// testDelivery are delivery settings that make faults and retries quick.
const testDelivery = `delivery:
  retry_topic: {partitions: 1}
  batch: {count: 100, period: 20ms, idle: 10ms}
  backoff: {initial: 20ms, max: 200ms}
  retry_budget: 2s
  park_delay: 300ms
  unhealthy_probe: 300ms
  commit_interval: 100ms
  session_timeout: 6s
`

// startForwarder builds the real Datadog forwarder and runs it as a process
// against the harness's broker and key ring, following the destinations
// topic only, with the delivery section given.
func startForwarder(t testing.TB, h *harness, delivery string) *lockedLog {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the end-to-end test builds the forwarder and needs the go tool: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "datadog-forwarder")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Dir = forwarderDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build datadog-forwarder: %v\n%s", err, out)
	}
	cfg := fmt.Sprintf(`log: {level: info}
http: {addr: "127.0.0.1:0"}
kafka:
  brokers: [%s]
  topics:
    events: {partitions: %d}
    destinations: {partitions: %d}
%sdestinations:
  topic: true
  encryption: {keyring_file: %s}
`, strings.Join(h.cfg.Kafka.Brokers, ", "), h.cfg.Kafka.Topics.Events.Partitions, h.cfg.Kafka.Topics.Destinations.Partitions, delivery, h.cfg.Encryption.KeyringFile)
	cfgFile := filepath.Join(dir, "forwarder.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &lockedLog{}
	cmd := exec.Command(bin, "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the forwarder did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("forwarder log:\n%s", log.String())
		}
	})
	return log
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// publish writes one event of account through the producer package and
// returns its id.
func publishEvent(t testing.TB, h *harness, account, action string) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cluster.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ev := &auditlogv1.AuditEvent{
		Actor:   &auditlogv1.Actor{Id: "user-e2e", Type: "user"},
		Request: &auditlogv1.Request{Action: action, Source: "ui"},
		Service: "audit-log",
		Outcome: &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 200},
		Target: &auditlogv1.Target{Id: "run-1", Type: "runs",
			Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: account}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := producer.New(cl, h.cfg.Kafka.Topics.Events.Name).Publish(ctx, []*auditlogv1.AuditEvent{ev})
	if err == nil {
		err = res.FirstError()
	}
	if err != nil {
		t.Fatal(err)
	}
	return ev.Id
}

// committedToEnd reports whether group has committed every partition of the
// events topic up to its end.
func (h *harness) committedToEnd(t testing.TB, group string) bool {
	t.Helper()
	adm := kadm.NewClient(h.cluster.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	topic := h.cfg.Kafka.Topics.Events.Name
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		c, found := committed.Lookup(topic, o.Partition)
		if o.Offset > 0 && (!found || c.At < o.Offset) {
			ok = false
		}
	})
	return ok
}

func receivedIDs(intake *ddfake.Server, key string) map[string]string {
	out := map[string]string{}
	for _, log := range intake.Logs(key) {
		id, _ := log["audit-id"].(string)
		acc := ""
		if tg, ok := log["target"].(map[string]any); ok {
			if c, ok := tg["context"].(map[string]any); ok {
				if a, ok := c["account"].(map[string]any); ok {
					acc, _ = a["id"].(string)
				}
			}
		}
		out[id] = acc
	}
	return out
}

// An account admin turns Datadog on through the API; the real forwarder,
// configured with no destinations file, delivers the account's next event
// and no other account's; routing changes apply to the next events without
// a restart; a refused key holds the events back until the key is
// replaced, and then they arrive.
func TestEndToEndAdminTurnsOnDatadog(t *testing.T) {
	const key1, key2, badKey = "dd-e2e-key-one-0123456789", "dd-e2e-key-two-0123456789", "dd-e2e-key-bad-0123456789"
	intake := ddfake.New(key1, key2)
	t.Cleanup(intake.Close)
	h := newHarness(t, func(c *Config) { c.API.AllowCustomEndpoints = true })
	fwdLog := startForwarder(t, h, testDelivery)
	conn := func(key string) map[string]any {
		return map[string]any{"type": "datadog", "settings": map[string]any{"base_url": intake.URL(), "api_key": key, "timeout": "2s"}}
	}
	streamTo := func(names ...string) {
		t.Helper()
		mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"streaming": true, "connections": names}), http.StatusOK)
	}

	mustStatus(t, h.do("PUT", connPath(accountA, "dd-one"), tokenA, conn(key1)), http.StatusCreated)
	streamTo("dd-one")
	e1 := publishEvent(t, h, accountA, "e2e-first")
	other := publishEvent(t, h, accountB, "e2e-other-account")
	forwardingtest.WaitFor(t, "the first event at Datadog", time.Minute, func() bool { return receivedIDs(intake, key1)[e1] == accountA })

	// Routing moves to a second connection: the next event goes there only.
	mustStatus(t, h.do("PUT", connPath(accountA, "dd-two"), tokenA, conn(key2)), http.StatusCreated)
	streamTo("dd-two")
	e2 := publishEvent(t, h, accountA, "e2e-second")
	forwardingtest.WaitFor(t, "the second event at the second connection", time.Minute, func() bool { return receivedIDs(intake, key2)[e2] == accountA })
	if _, ok := receivedIDs(intake, key1)[e2]; ok {
		t.Fatal("the event published after streaming moved to dd-two reached dd-one")
	}
	for _, k := range []string{key1, key2} {
		for id, acc := range receivedIDs(intake, k) {
			if acc != accountA || id == other {
				t.Fatalf("connection %s received event %s of account %q", k, id, acc)
			}
		}
	}

	// A bad key: the intake refuses it, the event is held back, and it
	// arrives once the admin replaces the key.
	mustStatus(t, h.do("PUT", connPath(accountA, "dd-two"), tokenA, conn(badKey)), http.StatusOK)
	var v verdict
	tested := h.do("POST", connPath(accountA, "dd-two")+"/test", tokenA, nil)
	mustStatus(t, tested, http.StatusOK)
	tested.json(t, &v)
	if v.Result == "ok" || v.Code != "bad_credentials" {
		t.Fatalf("testing the bad key: %+v", v)
	}
	e3 := publishEvent(t, h, accountA, "e2e-held")
	forwardingtest.WaitFor(t, "the intake refusing the bad key", time.Minute, func() bool {
		for _, r := range intake.Requests() {
			if r.Status == http.StatusForbidden {
				return true
			}
		}
		return false
	})
	mustStatus(t, h.do("PUT", connPath(accountA, "dd-two"), tokenA, conn(key2)), http.StatusOK)
	h.do("POST", connPath(accountA, "dd-two")+"/test", tokenA, nil).json(t, &v)
	if v.Result != "ok" {
		t.Fatalf("testing the replaced key: %+v", v)
	}
	forwardingtest.WaitFor(t, "the held event after the key was replaced", time.Minute, func() bool { return receivedIDs(intake, key2)[e3] == accountA })

	// Turning streaming off stops delivery: an event published after it
	// goes nowhere, while one routed through a still-streaming account
	// arrives.
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"streaming": false}), http.StatusOK)
	mustStatus(t, h.do("PUT", connPath(accountB, "dd-b"), tokenB, conn(key1)), http.StatusCreated)
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountB+"/audit-logs", tokenB, map[string]any{"streaming": true, "connections": []string{"dd-b"}}), http.StatusOK)
	e4 := publishEvent(t, h, accountA, "e2e-after-off")
	marker := publishEvent(t, h, accountB, "e2e-marker")
	forwardingtest.WaitFor(t, "account B's marker", time.Minute, func() bool { return receivedIDs(intake, key1)[marker] == accountB })
	// The forwarder commits an offset only after the events before it were
	// delivered or dropped as unrouted; wait until it read past e4.
	forwardingtest.WaitFor(t, "the forwarder to read past the event of the account turned off", time.Minute, func() bool {
		return h.committedToEnd(t, "auditstream-datadog")
	})
	for _, k := range []string{key1, key2} {
		if _, ok := receivedIDs(intake, k)[e4]; ok {
			t.Fatal("an event published after streaming was turned off was delivered")
		}
	}
	for _, secret := range []string{key1, key2, badKey} {
		if strings.Contains(fwdLog.String(), secret) || strings.Contains(h.logs.String(), secret) {
			t.Fatal("a log holds an API key")
		}
	}
}
