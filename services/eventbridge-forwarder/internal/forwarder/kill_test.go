package forwarder

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// forwarderBinary builds this module's binary once per test run.
func forwarderBinary(t *testing.T) string {
	t.Helper()
	return forwardingtest.BuildBinary(t, "../..")
}

// lockedBuffer collects a child's output for the test to read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t   *testing.T
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.t.Logf("forwarder: %s", strings.TrimSpace(string(p)))
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startProcess runs the real binary with the pipeline's settings, its
// status endpoint on addr, and returns it with its output.
func (p *pipeline) startProcess(t *testing.T, bin, addr string, inflightBytes int) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cfgFile := p.WriteProcessConfig(addr, inflightBytes, "  unhealthy_probe: 1s\n")
	out := &lockedBuffer{t: t}
	return forwardingtest.StartProcess(t, out, out, bin, "--config", cfgFile), out
}

// kill -9 in the middle of delivery, then restart: nothing is lost, and the
// duplicates are bounded by what was in flight.
func TestKilledMidBatchLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the forwarder binary")
	}
	bin := forwarderBinary(t)
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
	p.bus.Slow(20 * time.Millisecond) // keep calls in flight when the kill lands
	ids := p.publish(forwardingtest.Accounts(10), 600)
	var all []string
	for _, v := range ids {
		all = append(all, v...)
	}
	const inflightBytes = 256 << 10
	first, _ := p.startProcess(t, bin, "127.0.0.1:0", inflightBytes)
	forwardingtest.WaitFor(t, "delivery under way", 30*time.Second, func() bool { return p.bus.Count("eb-a") >= 1500 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := p.bus.Count("eb-a")
	if atKill >= len(all) {
		t.Fatalf("everything was delivered before the kill (%d); the test needs a slower bus", atKill)
	}

	p.startProcess(t, bin, "127.0.0.1:0", inflightBytes)
	forwardingtest.WaitFor(t, "every event after the restart", 60*time.Second, func() bool { return len(forwardingtest.Counts(p.ids("eb-a"))) >= len(all) })
	got := forwardingtest.Counts(p.ids("eb-a"))
	for _, id := range all {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
	dups := len(p.ids("eb-a")) - len(all)
	// One in-flight window: what the cap lets be out unfinished plus what
	// finishes between two commits. A test record is ~300 bytes, and with
	// 20 ms calls of 10 entries, 8 in flight, about 200 entries finish per
	// 50 ms commit interval; allow twice that.
	window := inflightBytes/300 + 2*200
	t.Logf("%d events; %d delivered before the kill; %d duplicates after restart (window %d)", len(all), atKill, dups, window)
	if dups > window {
		t.Fatalf("%d duplicates, more than one in-flight window (%d)", dups, window)
	}
}

// The real binary with static keys and a session token: while the bus is
// denied, the connection is unhealthy, its events parked, and neither the
// logs nor the status endpoint hold the secret key or the session token.
func TestSecretsNeverLoggedOrReported(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the forwarder binary")
	}
	bin := forwarderBinary(t)
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"eb-a"}})
	p.bus.DenyBus("eb-a")
	p.publish([]string{"acc-00"}, 20)
	addr := forwardingtest.FreeAddr(t)
	_, out := p.startProcess(t, bin, addr, 1<<20)
	var status struct {
		Connections []struct {
			Name      string `json:"name"`
			Healthy   bool   `json:"healthy"`
			LastError string `json:"last_error"`
		} `json:"connections"`
	}
	var body string
	forwardingtest.WaitFor(t, "the connection reported unhealthy", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return json.Unmarshal(b, &status) == nil && len(status.Connections) == 1 && !status.Connections[0].Healthy
	})
	if !strings.Contains(status.Connections[0].LastError, "AccessDeniedException") {
		t.Errorf("last error %q does not say why", status.Connections[0].LastError)
	}
	forwardingtest.WaitFor(t, "the unhealthy connection logged", 10*time.Second, func() bool { return strings.Contains(out.String(), "connection unhealthy") })
	metrics := ""
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
	}
	for _, text := range []string{out.String(), body, metrics} {
		for _, secret := range []string{testSecret, testSessionToken} {
			if strings.Contains(text, secret) {
				t.Fatalf("a secret appears in the forwarder's output:\n%s", text)
			}
		}
	}
	p.bus.AllowBus("eb-a")
	forwardingtest.WaitFor(t, "delivery once the bus allows", 30*time.Second, func() bool { return p.bus.Count("eb-a") >= 20 })
}
