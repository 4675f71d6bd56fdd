package forwarder

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
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

// The real binary with static keys and a session token: while the bus is
// denied, the connection is unhealthy, its events parked, and neither the
// logs nor the status endpoint hold the secret key or the session token.
func TestSecretsNeverLoggedOrReported(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the forwarder binary")
	}
	bin := forwarderBinary(t)
	p := newPipeline(t)
	p.WriteRoutes(map[string][]string{"*": {"eb-a"}})
	p.bus.DenyBus("eb-a")
	p.PublishEvents([]string{"acc-00"}, 20, nil)
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
