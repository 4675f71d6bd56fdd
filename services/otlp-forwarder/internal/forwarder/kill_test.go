package forwarder

import (
	"os/exec"
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

// startProcess runs the real binary with the pipeline's settings.
func (p *pipeline) startProcess(t *testing.T, bin string, inflightBytes int) *exec.Cmd {
	t.Helper()
	cfgFile := p.WriteProcessConfig("127.0.0.1:0", inflightBytes, "")
	return forwardingtest.StartProcess(t, nil, &forwardingtest.TestWriter{T: t, Prefix: "forwarder"}, bin, "--config", cfgFile)
}

// kill -9 in the middle of delivery, then restart: nothing is lost, and the
// duplicates are bounded by what was in flight.
func TestKilledMidBatchLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the forwarder binary")
	}
	bin := forwarderBinary(t)
	p := newPipeline(t)
	p.writeRoutes(map[string][]string{"*": {"otlp-a"}})
	p.rcv.Slow(20 * time.Millisecond) // keep batches in flight when the kill lands
	ids := p.publish(forwardingtest.Accounts(10), 600)
	var all []string
	for _, v := range ids {
		all = append(all, v...)
	}
	const inflightBytes = 256 << 10
	first := p.startProcess(t, bin, inflightBytes)
	forwardingtest.WaitFor(t, "delivery under way", 30*time.Second, func() bool { return p.rcv.Accepted("otlp-a") >= 1500 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := p.rcv.Accepted("otlp-a")
	if atKill >= len(all) {
		t.Fatalf("everything was delivered before the kill (%d); the test needs a slower receiver", atKill)
	}

	p.startProcess(t, bin, inflightBytes)
	forwardingtest.WaitFor(t, "every event after the restart", 60*time.Second, func() bool { return len(forwardingtest.Counts(mustIDs(p, "otlp-a"))) >= len(all) })
	got := forwardingtest.Counts(mustIDs(p, "otlp-a"))
	for _, id := range all {
		if got[id] == 0 {
			t.Fatalf("lost %s", id)
		}
	}
	dups := len(mustIDs(p, "otlp-a")) - len(all)
	// One in-flight window, as for the Datadog forwarder: what the cap lets
	// be out unfinished (an encoded test record is some 600 bytes of
	// protobuf; 450 keeps the bound on the generous side) plus what
	// finishes between two commits.
	requestsInFlight := DefaultConfig().Delivery.RequestsInFlight
	window := inflightBytes/450 + requestsInFlight*4*200
	t.Logf("%d events; %d delivered before the kill; %d duplicates after restart (window %d)", len(all), atKill, dups, window)
	if dups > window {
		t.Fatalf("%d duplicates, more than one in-flight window (%d)", dups, window)
	}
}
