// Package forwardingtest is the sink-independent test harness of the
// forwarders: a broker with the forwarder's topics, a configuration tuned
// for tests, the destinations file, the forwarder run in process or as its
// binary, and the ingest binary in front of it.
package forwardingtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/auditstream/auditstream/services/testsupport/testwait"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
)

// Pipeline is a broker and a forwarder's config pointing at it, over real
// sockets on ephemeral ports, with its destinations file in DestDir.
type Pipeline struct {
	T       *testing.T
	Cluster *kafkatest.Cluster
	Cfg     forwarding.Config
	DestDir string

	spec       forwarding.Spec
	statusAddr string // of the forwarder started last
}

// NewPipeline starts a broker, tunes cfg (a forwarder's default config)
// for tests and creates its topics.
func NewPipeline(t *testing.T, cfg forwarding.Config) *Pipeline {
	t.Helper()
	return NewPipelineOn(t, kafkatest.New(t), cfg)
}

// NewPipelineOn is NewPipeline with a broker the test started (with TLS,
// a SASL mechanism), cfg.Kafka's TLS and SASL set to reach it; the topics
// are created through them.
func NewPipelineOn(t *testing.T, cluster *kafkatest.Cluster, cfg forwarding.Config) *Pipeline {
	t.Helper()
	cfg.Log.Level = "warn"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = cluster.Brokers()
	cfg.Kafka.Topics.Events.Partitions = 6
	cfg.Kafka.Topics.DeadLetter.Partitions = 1
	cfg.Delivery.RetryTopic.Partitions = 2
	cfg.Delivery.Batch = sink.BatchPolicy{Count: 500, Bytes: 4 << 20, Period: 20 * time.Millisecond}
	cfg.Delivery.Backoff = sink.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, Jitter: 0.2}
	cfg.Delivery.RetryBudget = 3 * time.Second
	cfg.Delivery.ParkDelay = 500 * time.Millisecond
	cfg.Delivery.UnhealthyProbe = 500 * time.Millisecond
	cfg.Delivery.CommitInterval = 100 * time.Millisecond
	cfg.Delivery.RevokeTimeout = 5 * time.Second
	cfg.Delivery.SendTimeout = 5 * time.Second
	p := &Pipeline{T: t, Cluster: cluster, DestDir: t.TempDir()}
	cfg.Destinations.File = filepath.Join(p.DestDir, "destinations.yaml")
	cfg.Destinations.PollInterval = 100 * time.Millisecond
	p.Cfg = cfg
	cl, err := kafka.NewClient(cfg.Kafka, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(context.Background(), cl, cfg.Kafka.Topics.Events, cfg.Kafka.Topics.DeadLetter, cfg.Delivery.RetryTopic); err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteDestinations replaces the destinations file with yaml at once, so
// that a polling forwarder never reads half of it.
func (p *Pipeline) WriteDestinations(yaml string) {
	p.T.Helper()
	tmp := p.Cfg.Destinations.File + ".tmp"
	if err := os.WriteFile(tmp, []byte(yaml), 0o600); err != nil {
		p.T.Fatal(err)
	}
	if err := os.Rename(tmp, p.Cfg.Destinations.File); err != nil {
		p.T.Fatal(err)
	}
}

// Start runs the forwarder of spec in this process until stop (or the end
// of the test).
func (p *Pipeline) Start(spec forwarding.Spec) (stop func()) {
	p.T.Helper()
	cfg := p.Cfg
	// A known address, so that WaitDestinations can ask its /status.
	cfg.HTTP.Addr = FreeAddr(p.T)
	p.spec, p.statusAddr = spec, cfg.HTTP.Addr
	return RunForwarder(p.T, 30*time.Second, func(ctx context.Context) error { return forwarding.Run(ctx, spec, cfg) })
}

// RunForwarder runs run in a goroutine until stop (or the end of the
// test): stop cancels run's context and waits up to timeout for it to
// return, failing tb on an error or when it does not stop.
func RunForwarder(tb testing.TB, timeout time.Duration, run func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("forwarder: %v", err)
				}
			case <-time.After(timeout):
				tb.Error("forwarder did not stop")
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// WaitDestinations waits until the forwarder started last routes by the
// destinations file as it is now: its /status reports the version of the
// file's table for the forwarder's type. Events published after it returns
// are routed by that table.
func (p *Pipeline) WaitDestinations() {
	p.T.Helper()
	tab, err := destinations.Load(p.Cfg.Destinations.File)
	if err != nil {
		p.T.Fatal(err)
	}
	want := tab.ForType(p.spec.Type).Version()
	WaitFor(p.T, "destinations version "+want, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + p.statusAddr + "/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Version string `json:"destinations_version"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return false
		}
		return st.Version == want
	})
}

// Metric scrapes the /metrics of the forwarder started last and returns
// the value of the series name whose labels include labels; ok is false
// when no such series is exposed.
func (p *Pipeline) Metric(name string, labels map[string]string) (v float64, ok bool) {
	p.T.Helper()
	resp, err := http.Get("http://" + p.statusAddr + "/metrics")
	if err != nil {
		p.T.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		p.T.Fatalf("parse metrics: %v", err)
	}
	f := families[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, want := range labels {
			if have[k] != want {
				continue next
			}
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// WaitCommitted waits until the forwarders' group has committed every
// record of the events and retry topics: each was delivered, dead-lettered
// or sent nowhere, so no delivery of them is still to come.
func (p *Pipeline) WaitCommitted() {
	p.T.Helper()
	p.Cluster.WaitCommitted(p.T, 30*time.Second, p.Cfg.Delivery.Group, p.Cfg.Kafka.Topics.Events.Name, p.Cfg.Delivery.RetryTopic.Name)
}

// Publish writes n events for each account, made by makeEvent, through the
// producer package (the code ingest uses) and returns their ids by account.
func (p *Pipeline) Publish(accounts []string, n int, makeEvent func(account string, i int) *auditlogv1.AuditEvent) map[string][]string {
	p.T.Helper()
	cl := p.Cluster.Client()
	prod := producer.New(cl, p.Cfg.Kafka.Topics.Events.Name)
	ids := map[string][]string{}
	const chunk = 2000
	var events []*auditlogv1.AuditEvent
	flush := func() {
		res, err := prod.Publish(context.Background(), events)
		if err != nil {
			p.T.Fatal(err)
		}
		for i, ev := range events {
			acc := auditevent.AccountID(ev)
			ids[acc] = append(ids[acc], res.IDs[i])
		}
		events = events[:0]
	}
	for i := range n {
		for _, acc := range accounts {
			events = append(events, makeEvent(acc, i))
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

// TestEvent is a small event of account, numbered i.
func TestEvent(account string, i int) *auditlogv1.AuditEvent {
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

// TestEvents makes TestEvent's events for Publish, each changed by change
// (when not nil) first.
func TestEvents(change func(i int, ev *auditlogv1.AuditEvent)) func(account string, i int) *auditlogv1.AuditEvent {
	return func(account string, i int) *auditlogv1.AuditEvent {
		ev := TestEvent(account, i)
		if change != nil {
			change(i, ev)
		}
		return ev
	}
}

// Accounts is n account ids: acc-00, acc-01, ...
func Accounts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("acc-%02d", i)
	}
	return out
}

// WaitFor polls cond until it holds, failing the test after timeout.
func WaitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, timeout, cond)
}

// Counts counts each id.
func Counts(ids []string) map[string]int {
	m := make(map[string]int, len(ids))
	for _, id := range ids {
		m[id]++
	}
	return m
}

type build struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // package path → *build

// BuildBinary builds the main package at pkgPath (relative to the test's
// directory) once per test run and returns the binary's path. Under the
// race detector the binary has it too.
func BuildBinary(t *testing.T, pkgPath string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkgPath, &build{})
	b := v.(*build)
	b.once.Do(func() {
		name := filepath.Base(pkgPath)
		if abs, err := filepath.Abs(pkgPath); err == nil {
			name = filepath.Base(abs)
		}
		dir, err := os.MkdirTemp("", name+"-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		args := []string{"build", "-o", b.path}
		if raceBuild {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, pkgPath)...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkgPath, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// StartProcess starts bin with args, its output to stdout and stderr (nil
// discards it), and kills it at the end of the test. A binary built with
// the race detector exits at the first race, its report on stderr, so a
// race fails the test even in a process the test kills.
func StartProcess(t *testing.T, stdout, stderr io.Writer, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestWriter logs what a child process writes, each write prefixed.
type TestWriter struct {
	T      *testing.T
	Prefix string
}

func (w *TestWriter) Write(b []byte) (int, error) {
	w.T.Logf("%s: %s", w.Prefix, strings.TrimSpace(string(b)))
	return len(b), nil
}

// FreeAddr finds a free port on 127.0.0.1 for a server the test starts
// next and cannot hand a listener (a child process, a forwarder run in
// process). The port is picked below the ephemeral range (32768 and up on
// Linux, 49152 on macOS): a port that range gave out and took back would
// be the next one handed to another listener on port 0 or to an outgoing
// connection, before the server had bound it.
func FreeAddr(t *testing.T) string {
	t.Helper()
	var err error
	for range 100 {
		var ln net.Listener
		ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err == nil {
			addr := ln.Addr().String()
			ln.Close()
			return addr
		}
	}
	t.Fatalf("no free port below the ephemeral range: %v", err)
	return ""
}

// StartIngest builds the ingest binary at ingestPkg (relative to the
// test's directory), runs it without authentication against brokers, and
// returns its address once it is ready.
func StartIngest(t *testing.T, ingestPkg string, brokers []string) (addr string) {
	t.Helper()
	return StartIngestWith(t, ingestPkg, brokers, "")
}

// StartIngestWith is StartIngest with kafkaYAML (lines indented by two
// spaces: tls, sasl) added to the kafka section of its config.
func StartIngestWith(t *testing.T, ingestPkg string, brokers []string, kafkaYAML string) (addr string) {
	t.Helper()
	bin := BuildBinary(t, ingestPkg)
	addr = FreeAddr(t)
	cfg := fmt.Sprintf("log: {level: warn}\nhttp: {addr: %q}\nkafka:\n  brokers: [%s]\n%s  topics:\n    events: {name: audit.events, partitions: 6}\n    dead_letter: {name: audit.events.dlq, partitions: 1}\ningest:\n  auth: {disabled: true}\n",
		addr, strings.Join(brokers, ", "), kafkaYAML)
	cfgFile := filepath.Join(t.TempDir(), "ingest.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	StartProcess(t, nil, &TestWriter{T: t, Prefix: "ingest"}, bin, "--config", cfgFile)
	WaitFor(t, "ingest ready", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return addr
}

// WriteProcessConfig writes the config file of a forwarder process run
// against the pipeline (its broker, topics and destinations file), with
// its status endpoint on addr, small batches, frequent commits, both
// in-flight caps at inflightBytes and extraDelivery (lines indented by two
// spaces) added under delivery; it returns the file's path.
func (p *Pipeline) WriteProcessConfig(addr string, inflightBytes int, extraDelivery string) (file string) {
	p.T.Helper()
	file = filepath.Join(p.DestDir, "forwarder.yaml")
	yaml := fmt.Sprintf(`log: {level: warn, format: json}
http: {addr: %q}
kafka:
  brokers: [%s]
  topics:
    events: {name: audit.events, partitions: 6}
    dead_letter: {name: audit.events.dlq, partitions: 1}
delivery:
  retry_topic: {name: %s, partitions: 2}
  batch: {count: 200, bytes: 1MB, period: 20ms}
  commit_interval: 50ms
  session_timeout: 6s
  park_delay: 1s
%s  max_inflight_bytes: %d
  max_connection_bytes: %d
destinations:
  file: %s
  poll_interval: 100ms
`, addr, strings.Join(p.Cfg.Kafka.Brokers, ", "), p.Cfg.Delivery.RetryTopic.Name, extraDelivery, inflightBytes, inflightBytes, p.Cfg.Destinations.File)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		p.T.Fatal(err)
	}
	return file
}

// PostEvent posts one event's JSON to the ingest at addr and returns the
// id ingest gave it, failing the test unless ingest accepted it.
func PostEvent(t *testing.T, addr string, event []byte) (id string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/events", "application/json", bytes.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct{ IDs []string }
	_ = json.NewDecoder(resp.Body).Decode(&accepted)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || len(accepted.IDs) != 1 {
		t.Fatalf("ingest answered %d %v", resp.StatusCode, accepted.IDs)
	}
	return accepted.IDs[0]
}
