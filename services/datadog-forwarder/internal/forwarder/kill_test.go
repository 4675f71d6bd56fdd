package forwarder

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// forwarderBinary builds this module's binary once per test run.
func forwarderBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "datadog-forwarder-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "datadog-forwarder")
		cmd := exec.Command("go", "build", "-o", binPath, "../..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// startProcess runs the real binary with the pipeline's settings.
func (p *pipeline) startProcess(t *testing.T, bin string, inflightBytes int) *exec.Cmd {
	t.Helper()
	cfgFile := filepath.Join(p.destDir, "forwarder.yaml")
	yaml := fmt.Sprintf(`log: {level: warn, format: json}
http: {addr: "127.0.0.1:0"}
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
  max_inflight_bytes: %d
  max_connection_bytes: %d
destinations:
  file: %s
  poll_interval: 100ms
`, strings.Join(p.cfg.Kafka.Brokers, ", "), p.cfg.Delivery.RetryTopic.Name, inflightBytes, inflightBytes, p.cfg.Destinations.File)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgFile)
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Logf("forwarder: %s", strings.TrimSpace(string(b)))
	return len(b), nil
}

// kill -9 in the middle of delivery, then restart: nothing is lost, and the
// duplicates are bounded by what was in flight.
func TestKilledMidBatchLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the forwarder binary")
	}
	bin := forwarderBinary(t)
	p := newPipeline(t, "dd-a")
	p.writeRoutes(map[string][]string{"*": {"dd-a"}})
	p.intake.Slow(20 * time.Millisecond) // keep batches in flight when the kill lands
	ids := p.publish(accountsN(10), 600)
	var all []string
	for _, v := range ids {
		all = append(all, v...)
	}
	const inflightBytes = 256 << 10
	first := p.startProcess(t, bin, inflightBytes)
	waitFor(t, "delivery under way", 30*time.Second, func() bool { return p.intake.Count("dd-a") >= 1500 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := p.intake.Count("dd-a")
	if atKill >= len(all) {
		t.Fatalf("everything was delivered before the kill (%d); the test needs a slower intake", atKill)
	}

	p.startProcess(t, bin, inflightBytes)
	waitFor(t, "every event after the restart", 60*time.Second, func() bool { return len(counts(mustIDs(p, "dd-a"))) >= len(all) })
	got := counts(mustIDs(p, "dd-a"))
	for _, id := range all {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
	dups := len(mustIDs(p, "dd-a")) - len(all)
	// One in-flight window: what the cap lets be out unfinished plus what
	// finishes between two commits. An encoded test record is ~450 bytes
	// and the 20 ms intake takes at most ~2 batches of 200 per commit
	// interval.
	window := inflightBytes/450 + 2*200
	t.Logf("%d events; %d delivered before the kill; %d duplicates after restart (window %d)", len(all), atKill, dups, window)
	if dups > window {
		t.Fatalf("%d duplicates, more than one in-flight window (%d)", dups, window)
	}
}
