package forwarder

// Helpers of the EventBridge forwarder's benchmarks (bench_test.go): the
// event generator, the in-process broker loaded with records, the
// forwarder's configuration, the EventBridge fake as the destination with a
// tally of what it accepts, and memory, CPU and progress sampling.

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"encoding/json"
	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

const (
	// benchConnections is how many EventBridge connections the accounts
	// route to (account i to connection i mod benchConnections).
	benchConnections = sinkconformance.BenchConnections
	// benchPrefix is the connections' prefix: Source scalr.audit-log.
	benchPrefix = "scalr"
)

// benchConnName is connection i's name, which is also its bus's name.
func benchConnName(i int) string { return fmt.Sprintf("eb-bench-%d", i) }

// Connection is an EventBridge connection to the fake whose bus is named
// after it, signing with the test's keys from Secret files.
func (f *benchBus) Connection(b *testing.B, i int, dir string) (name, yaml string) {
	name = benchConnName(i)
	idFile, keyFile := filepath.Join(dir, "key-id"), filepath.Join(dir, "secret-key")
	sinkconformance.WriteBenchSecret(b, idFile, testKeyID)
	sinkconformance.WriteBenchSecret(b, keyFile, testSecret)
	return name, fmt.Sprintf("  %s:\n    type: eventbridge\n    settings:\n      region: eu-west-1\n      event_bus: %s\n      endpoint: %s\n      prefix: %s\n"+
		"      credentials: {access_key_id: {file: %s}, secret_access_key: {file: %s}}\n", name, name, f.URL(), benchPrefix, idFile, keyFile)
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

// benchAccept hands the id at the start of a Detail the encoder writes
// ({"id":"<id>",...}) to tally.
func benchAccept(tally *sinkconformance.BenchTally) func(e ebfake.Entry) {
	return func(e ebfake.Entry) {
		const prefix = `{"id":"`
		if len(e.Detail) < len(prefix)+36 || e.Detail[:len(prefix)] != prefix {
			tally.Accept("")
			return
		}
		tally.Accept(e.Detail[len(prefix) : len(prefix)+36])
	}
}

// benchBus is the EventBridge fake as the shared benchmarks drive it,
// with a tally of the events it accepted (nil in the latency run, which
// counts for itself).
type benchBus struct {
	*ebfake.Server
	tally *sinkconformance.BenchTally
}

func newBenchFake(b *testing.B, onAccepted func(id string, eventTime, at time.Time)) sinkconformance.BenchFake {
	if onAccepted == nil {
		tally := sinkconformance.NewBenchTally(b.N)
		return &benchBus{Server: newBenchBus(b, benchAccept(tally)), tally: tally}
	}
	return &benchBus{Server: newBenchBus(b, func(e ebfake.Entry) {
		var d struct {
			ID        string `json:"id"`
			Timestamp string `json:"timestamp"`
		}
		err := json.Unmarshal([]byte(e.Detail), &d)
		var at time.Time
		if err == nil {
			at, err = auditevent.ParseTimestamp(d.Timestamp)
		}
		if err != nil {
			b.Errorf("an accepted entry's detail does not read: %v", err)
			return
		}
		onAccepted(d.ID, at, e.Received)
	})}
}

func (f *benchBus) Delivered() int64 { return f.tally.Distinct() }
func (f *benchBus) Resent() int64    { return f.tally.Resent() }

func (f *benchBus) Refused() int64 {
	st := f.Stats()
	return int64(st.Calls - st.OK)
}

func (f *benchBus) Failed() int64 { return int64(f.Stats().Failed) }

func (f *benchBus) ReportMetrics(b *testing.B) {
	st := f.Stats()
	b.ReportMetric(float64(st.Bytes)/float64(max(st.Accepted, 1)), "entry-B")
	b.ReportMetric(float64(st.Accepted)/float64(max(st.OK, 1)), "entries/call")
}

// benchAdapter runs the shared forwarder and latency benchmarks against
// the fake. max_connection_bytes keeps its default share of
// max_inflight_bytes.
var benchAdapter = sinkconformance.BenchAdapter{
	Spec:    Spec,
	NewFake: newBenchFake,
	ConnectionBytes: func(inflight config.ByteSize) config.ByteSize {
		return inflight * DefaultConfig().Delivery.MaxConnectionBytes / DefaultConfig().Delivery.MaxInflightBytes
	},
}
