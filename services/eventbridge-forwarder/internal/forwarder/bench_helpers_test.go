package forwarder

// Helpers of the EventBridge forwarder's benchmarks (bench_test.go): the
// event generator, the in-process broker loaded with records, the
// forwarder's configuration, the EventBridge fake as the destination with a
// tally of what it accepts, and memory, CPU and progress sampling.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

const (
	// benchConnections is how many EventBridge connections the accounts
	// route to (account i to connection i mod benchConnections).
	benchConnections = 4
	// benchPrefix is the connections' prefix: Source scalr.audit-log.
	benchPrefix = "scalr"
)

// benchBroker starts a broker with the forwarder's topics and returns its
// default configuration pointed at it (forwardingtest.BenchBroker).
func benchBroker(b *testing.B) (*kafkatest.Cluster, Config) {
	b.Helper()
	return forwardingtest.BenchBroker(b, Spec)
}

// benchConnName is connection i's name, which is also its bus's name.
func benchConnName(i int) string { return fmt.Sprintf("eb-bench-%d", i) }

// benchWriteDestinations routes account i to connection i mod
// benchConnections, each an EventBridge connection to endpoint whose bus is
// named after it, signing with the test's keys from Secret files.
func benchWriteDestinations(b *testing.B, cfg Config, endpoint string) {
	b.Helper()
	dir := filepath.Dir(cfg.Destinations.File)
	idFile, keyFile := filepath.Join(dir, "key-id"), filepath.Join(dir, "secret-key")
	if err := os.WriteFile(idFile, []byte(testKeyID+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(testSecret+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	var s strings.Builder
	s.WriteString("connections:\n")
	for i := range benchConnections {
		name := benchConnName(i)
		fmt.Fprintf(&s, "  %s:\n    type: eventbridge\n    settings:\n      region: eu-west-1\n      event_bus: %s\n      endpoint: %s\n      prefix: %s\n"+
			"      credentials: {access_key_id: {file: %s}, secret_access_key: {file: %s}}\n", name, name, endpoint, benchPrefix, idFile, keyFile)
	}
	s.WriteString("routes:\n")
	for i := range forwardingtest.BenchAccounts {
		fmt.Fprintf(&s, "  - account: %q\n    connections: [%s]\n", forwardingtest.BenchAccount(i), benchConnName(i%benchConnections))
	}
	if err := os.WriteFile(cfg.Destinations.File, []byte(s.String()), 0o600); err != nil {
		b.Fatal(err)
	}
}

// benchStart runs the forwarder in this process; stop ends it and waits.
func benchStart(b *testing.B, cfg Config) (stop func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go forwardingtest.RunAsForwarder(ctx, func(ctx context.Context) { done <- Run(ctx, cfg) })
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					b.Errorf("forwarder: %v", err)
				}
			case <-time.After(60 * time.Second):
				b.Error("forwarder did not stop")
			}
		})
	}
	b.Cleanup(stop)
	return stop
}

// newBenchBus starts the EventBridge fake for a benchmark: it verifies
// every signature, counts what it accepts without keeping it (a long run
// must not hold every delivered entry in this process's memory, which the
// benchmarks measure), and hands accepted entries to onAccepted.
func newBenchBus(b *testing.B, onAccepted func(e ebfake.Entry)) *ebfake.Server {
	b.Helper()
	f := ebfake.New()
	b.Cleanup(f.Close)
	f.AddKey(ebfake.Key{AccessKeyID: testKeyID, SecretAccessKey: testSecret})
	f.RequireKnownKeys(true)
	f.KeepEntries(false)
	f.OnAccepted(onAccepted)
	return f
}

// benchTally counts the entries the fake accepts, each event once: an
// entry accepted a second time (its call's answer lost to a timeout, so the
// sink sent it again) counts as resent. Events are told apart by the
// number in their forwardingtest.BenchID, read from the start of the Detail the encoder
// writes ({"id":"<id>",...}).
type benchTally struct {
	seen     []atomic.Uint64 // bit n: event n was accepted
	distinct atomic.Int64
	resent   atomic.Int64
	other    atomic.Int64 // entries without a bench id (warm-up)
}

func newBenchTally(n int) *benchTally {
	return &benchTally{seen: make([]atomic.Uint64, (n+63)/64)}
}

func (t *benchTally) accept(e ebfake.Entry) {
	n, ok := benchIDNumber(e.Detail)
	if !ok || n >= len(t.seen)*64 {
		t.other.Add(1)
		return
	}
	w, bit := &t.seen[n/64], uint64(1)<<(n%64)
	for {
		old := w.Load()
		if old&bit != 0 {
			t.resent.Add(1)
			return
		}
		if w.CompareAndSwap(old, old|bit) {
			t.distinct.Add(1)
			return
		}
	}
}

// benchIDNumber reads n back from a Detail starting {"id":"<forwardingtest.BenchID(n)>".
func benchIDNumber(detail string) (int, bool) {
	const prefix = `{"id":"`
	if len(detail) < len(prefix)+36 || detail[:len(prefix)] != prefix {
		return 0, false
	}
	n, err := strconv.ParseUint(detail[len(prefix)+24:len(prefix)+36], 16, 63)
	return int(n), err == nil
}
