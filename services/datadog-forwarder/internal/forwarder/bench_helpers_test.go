package forwarder

// Helpers of the Datadog forwarder's benchmarks (bench_test.go): the event
// generator, the in-process broker loaded with records, the forwarder's
// configuration, the intake (the Datadog fake, observed: it counts and
// times what it accepts), and memory and progress sampling.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

const (
	// benchConnections is how many Datadog connections the accounts route
	// to (account i to connection i mod benchConnections).
	benchConnections = 4
	// benchTagPrefix is the connections' tag prefix, as in the seed's logs.
	benchTagPrefix = "scalr"
)

// benchBroker starts a broker with the forwarder's topics and returns its
// default configuration pointed at it (forwardingtest.BenchBroker).
func benchBroker(b *testing.B) (*kafkatest.Cluster, Config) {
	b.Helper()
	return forwardingtest.BenchBroker(b, Spec)
}

// benchConnName is connection i's name, which is also its API key.
func benchConnName(i int) string { return fmt.Sprintf("dd-bench-%d", i) }

// benchWriteDestinations routes account i to connection i mod
// benchConnections, each a Datadog connection to baseURL with gzip (the
// default) and its API key in a file.
func benchWriteDestinations(b *testing.B, cfg Config, baseURL string) {
	b.Helper()
	dir := filepath.Dir(cfg.Destinations.File)
	var s strings.Builder
	s.WriteString("connections:\n")
	for i := range benchConnections {
		name := benchConnName(i)
		keyFile := filepath.Join(dir, name+".key")
		if err := os.WriteFile(keyFile, []byte(name+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		// Written well before the service starts, as a mounted Secret is: a
		// file modified within seconds is read again at every use.
		old := time.Now().Add(-time.Minute)
		if err := os.Chtimes(keyFile, old, old); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&s, "  %s:\n    type: datadog\n    settings:\n      base_url: %s\n      api_key: {file: %s}\n      tag_prefix: %s\n      timeout: 10s\n",
			name, baseURL, keyFile, benchTagPrefix)
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

// benchIntake is the Datadog fake, observed rather than recording: it
// counts what it accepts and hands accepted entries to onAccepted (when
// set) with the time of the answer, so that a long run holds no delivered
// log in this process's memory, which the benchmarks measure.
type benchIntake struct {
	fake       *ddfake.Server
	onAccepted func(entries [][]byte, at time.Time)

	accepted   atomic.Int64 // entries accepted
	requests   atomic.Int64 // requests answered
	rejected   atomic.Int64 // of which answered other than 202
	entryBytes atomic.Int64 // uncompressed bytes of accepted requests
	wireBytes  atomic.Int64 // as sent
	// resent counts entries accepted in requests whose client had given up
	// (timed out) before the answer reached it: the sink sends them again,
	// so each is accepted twice.
	resent atomic.Int64
}

func newBenchIntake(b *testing.B, onAccepted func(entries [][]byte, at time.Time)) *benchIntake {
	b.Helper()
	var keys []string
	for i := range benchConnections {
		keys = append(keys, benchConnName(i))
	}
	in := &benchIntake{fake: ddfake.New(keys...), onAccepted: onAccepted}
	b.Cleanup(in.fake.Close)
	in.fake.Observe(in.observe)
	return in
}

func (in *benchIntake) URL() string { return in.fake.URL() }

func (in *benchIntake) observe(o ddfake.Observed) {
	in.requests.Add(1)
	if o.Status != http.StatusAccepted {
		in.rejected.Add(1)
		return
	}
	n := int64(len(o.Entries))
	in.accepted.Add(n)
	in.entryBytes.Add(int64(o.Bytes))
	in.wireBytes.Add(int64(o.WireBytes))
	if o.Unanswered {
		in.resent.Add(n)
	}
	if in.onAccepted != nil {
		in.onAccepted(o.Entries, o.At)
	}
}

// delivered is the number of entries the fake accepted so far, less those
// accepted again after a lost answer.
func (in *benchIntake) delivered() int64 { return in.accepted.Load() - in.resent.Load() }

// benchEntryTimes returns the audit id and timestamp of each accepted
// entry.
func benchEntryTimes(entries [][]byte) ([]string, []time.Time, error) {
	ids := make([]string, len(entries))
	times := make([]time.Time, len(entries))
	for i, raw := range entries {
		var e struct {
			ID        string `json:"audit-id"`
			Timestamp string `json:"timestamp"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, nil, err
		}
		t, err := auditevent.ParseTimestamp(e.Timestamp)
		if err != nil {
			return nil, nil, err
		}
		ids[i], times[i] = e.ID, t
	}
	return ids, times, nil
}
