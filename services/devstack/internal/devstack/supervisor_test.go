package devstack

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// lockedBuffer is a bytes.Buffer safe for the supervisor's writers and the
// test reading it at the same time.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func helperService(t *testing.T, name string) Service {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Service{Name: name, Path: exe, Args: []string{"--config", name + ".yaml"}}
}

func helperEnvFor(mode string) []string {
	return append(os.Environ(), helperEnv+"="+mode, EnvKafkaBrokers+"=broker.test:9092")
}

func TestSupervisorPrefixesOutputAndStopsChildren(t *testing.T) {
	var stdout, stderr lockedBuffer
	sup := &Supervisor{Stdout: &stdout, Stderr: &stderr, Env: helperEnvFor("serve"), Log: zaptest.NewLogger(t), StopTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- sup.Run(ctx, []Service{helperService(t, "ingest"), helperService(t, "a")}, func() { close(started) })
	}()
	select {
	case <-started:
	case err := <-result:
		t.Fatalf("Run returned before the children started: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("children did not start")
	}
	waitFor(t, 10*time.Second, "both children's output", func() bool {
		return strings.Count(stdout.String(), "hello from stdout") == 2 && strings.Count(stderr.String(), "hello from stderr") == 2
	})
	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	out, errOut := stdout.String(), stderr.String()
	// Names are padded to the longest, so the columns line up.
	for _, want := range []string{
		"ingest | hello from stdout brokers=broker.test:9092 args=[--config ingest.yaml]\n",
		"a      | hello from stdout brokers=broker.test:9092 args=[--config a.yaml]\n",
		"ingest | got SIGTERM, bye\n",
		"a      | got SIGTERM, bye\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		"ingest | hello from stderr\n",
		// a last line without a newline is still written, once the child exits
		"ingest | partial line without newline\n",
		"a      | partial line without newline\n",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(out+errOut, "\n"), "\n") {
		if !strings.HasPrefix(line, "ingest | ") && !strings.HasPrefix(line, "a      | ") {
			t.Errorf("line without a service prefix: %q", line)
		}
	}
}

func TestSupervisorChildExitIsAnError(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// "crash" exits at once; "serve" must then be stopped by the supervisor.
	crash := Service{Name: "crash", Path: "/bin/sh", Args: []string{"-c", `DEVSTACK_TEST_CHILD=crash exec "$0"`, exe}}
	sup := &Supervisor{Env: helperEnvFor("serve"), Log: zaptest.NewLogger(t), StopTimeout: 5 * time.Second}
	result := make(chan error, 1)
	go func() { result <- sup.Run(context.Background(), []Service{helperService(t, "serve"), crash}, nil) }()
	select {
	case err := <-result:
		if err == nil || !strings.Contains(err.Error(), "service crash exited unexpectedly (exit status 3)") {
			t.Fatalf("Run = %v, want the crash reported", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after a child crashed")
	}
	// Run returns only once every child has exited: the healthy one was
	// stopped, not left running.
}

func TestSupervisorKillsChildThatIgnoresSIGTERM(t *testing.T) {
	var stdout lockedBuffer
	sup := &Supervisor{Stdout: &stdout, Env: helperEnvFor("stubborn"), Log: zaptest.NewLogger(t), StopTimeout: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- sup.Run(ctx, []Service{helperService(t, "stubborn")}, nil) }()
	waitFor(t, 10*time.Second, "the child to start", func() bool { return strings.Contains(stdout.String(), "hello from stdout") })
	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a child ignoring SIGTERM was not killed")
	}
	if !strings.Contains(stdout.String(), "stubborn | ignoring SIGTERM") {
		t.Errorf("the child never got SIGTERM:\n%s", stdout.String())
	}
}

func TestSupervisorStartFailureStopsStartedChildren(t *testing.T) {
	var stdout lockedBuffer
	sup := &Supervisor{Stdout: &stdout, Env: helperEnvFor("serve"), Log: zaptest.NewLogger(t), StopTimeout: 5 * time.Second}
	missing := Service{Name: "missing", Path: filepath.Join(t.TempDir(), "nope")}
	err := sup.Run(context.Background(), []Service{helperService(t, "serve"), missing}, nil)
	if err == nil || !strings.Contains(err.Error(), "start missing") {
		t.Fatalf("Run = %v, want a start error", err)
	}
}

func TestRunStartsBrokerAndConfiguredServices(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, configs := t.TempDir(), t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "ingest")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configs, "ingest.yaml"), []byte("http:\n  addr: 127.0.0.1:18080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configs, "README.md"), []byte("not a service"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan Info, 1)
	result := make(chan error, 1)
	go func() {
		result <- Run(ctx, Options{
			DataDir: t.TempDir(), BrokerAddr: "127.0.0.1:0", BinDir: bin, ConfigDir: configs,
			Env:    []string{helperEnv + "=serve", EnvKafkaBrokers + "=overridden.test:1"},
			Stdout: &stdout, Log: zaptest.NewLogger(t), StopTimeout: 5 * time.Second,
			Ready: func(i Info) { ready <- i },
		})
	}()
	var info Info
	select {
	case info = <-ready:
	case err := <-result:
		t.Fatalf("Run: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("dev stack did not start")
	}
	if !info.Embedded || !strings.HasPrefix(info.Brokers, "127.0.0.1:") || info.Brokers == "127.0.0.1:0" {
		t.Errorf("Info = %+v, want the embedded broker's real address", info)
	}
	if info.IngestURL != "http://127.0.0.1:18080" || len(info.Services) != 1 || info.Services[0] != "ingest" {
		t.Errorf("Info = %+v", info)
	}
	// The child was given the embedded broker, whatever the environment said.
	waitFor(t, 10*time.Second, "the child's output", func() bool {
		return strings.Contains(stdout.String(), "ingest | hello from stdout brokers="+info.Brokers+" ")
	})
	for _, want := range []string{
		"kafka broker  " + info.Brokers,
		"curl -sS -X POST http://127.0.0.1:18080/v1/events",
		"bin/auditctl tail --from-beginning --brokers " + info.Brokers,
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
	}
	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunWithExternalBrokersStartsNoBroker(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, configs := t.TempDir(), t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "archiver")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configs, "archiver.yml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan Info, 1)
	result := make(chan error, 1)
	dataDir := t.TempDir()
	go func() {
		result <- Run(ctx, Options{
			// An address that cannot be listened on proves no broker starts.
			DataDir: dataDir, BrokerAddr: "192.0.2.1:1", ExternalBrokers: "k1.test:9092,k2.test:9092",
			BinDir: bin, ConfigDir: configs, Env: []string{helperEnv + "=serve"},
			Stdout: &stdout, Log: zaptest.NewLogger(t), Ready: func(i Info) { ready <- i },
		})
	}()
	select {
	case info := <-ready:
		if info.Embedded || info.Brokers != "k1.test:9092,k2.test:9092" || info.IngestURL != "" {
			t.Errorf("Info = %+v", info)
		}
	case err := <-result:
		t.Fatalf("Run: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("dev stack did not start")
	}
	waitFor(t, 10*time.Second, "the child's output", func() bool {
		return strings.Contains(stdout.String(), "archiver | hello from stdout brokers=k1.test:9092,k2.test:9092 ")
	})
	cancel()
	if err := <-result; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
		t.Errorf("data dir has %d entries; no broker should have written there", len(entries))
	}
}

func TestDiscover(t *testing.T) {
	bin, configs := t.TempDir(), t.TempDir()
	for _, name := range []string{"ingest", "archiver"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"ingest.yaml", "archiver.yml", "notes.txt", ".hidden.yaml"} {
		if err := os.WriteFile(filepath.Join(configs, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svcs, err := Discover(configs, bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[0].Name != "archiver" || svcs[1].Name != "ingest" {
		t.Fatalf("Discover = %+v", svcs)
	}
	want := []string{"--config", filepath.Join(configs, "ingest.yaml")}
	if svcs[1].Path != filepath.Join(bin, "ingest") || strings.Join(svcs[1].Args, " ") != strings.Join(want, " ") {
		t.Errorf("ingest = %+v", svcs[1])
	}

	// A config without its executable is an error naming the fix.
	if err := os.WriteFile(filepath.Join(configs, "forwarder.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Discover(configs, bin); err == nil || !strings.Contains(err.Error(), "forwarder") || !strings.Contains(err.Error(), "make build") {
		t.Errorf("Discover with a missing binary = %v", err)
	}
	if _, err := Discover(t.TempDir(), bin); err == nil || !strings.Contains(err.Error(), "no service configs") {
		t.Errorf("Discover of an empty dir = %v", err)
	}
}

func TestPrefixWriterSplitsLongLines(t *testing.T) {
	var out bytes.Buffer
	w := newPrefixWriter(&out, "x | ")
	long := strings.Repeat("a", maxLine+10)
	if _, err := w.Write([]byte("one\ntw")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("o\n" + long)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "x | one\nx | two\nx | " + long[:maxLine] + "\nx | " + long[maxLine:] + "\n"
	if out.String() != want {
		t.Errorf("got %d bytes, want %d:\n%.200q", out.Len(), len(want), out.String())
	}
}
