package forwarder

// Helpers of the Datadog forwarder's benchmarks (bench_test.go): the event
// generator, the in-process broker loaded with records, the forwarder's
// configuration, the intake (the Datadog fake, observed: it counts and
// times what it accepts), and memory and progress sampling.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

const (
	// benchConnections is how many Datadog connections the accounts route
	// to (account i to connection i mod benchConnections).
	benchConnections = sinkconformance.BenchConnections
	// benchTagPrefix is the connections' tag prefix, as in the seed's logs.
	benchTagPrefix = "scalr"
)

// benchConnName is connection i's name, which is also its API key.
func benchConnName(i int) string { return fmt.Sprintf("dd-bench-%d", i) }

// Connection is a Datadog connection to the intake with gzip (the default)
// and its API key in a file.
func (in *benchIntake) Connection(b *testing.B, i int, dir string) (name, yaml string) {
	name = benchConnName(i)
	keyFile := filepath.Join(dir, name+".key")
	sinkconformance.WriteBenchSecret(b, keyFile, name)
	return name, fmt.Sprintf("  %s:\n    type: datadog\n    settings:\n      base_url: %s\n      api_key: {file: %s}\n      tag_prefix: %s\n      timeout: 10s\n",
		name, in.URL(), keyFile, benchTagPrefix)
}

// benchIntake is the Datadog fake, observed rather than recording: it
// counts what it accepts and hands each accepted entry's id and time to
// onAccepted (when set) with the time of the answer, so that a long run
// holds no delivered log in this process's memory, which the benchmarks
// measure.
type benchIntake struct {
	b          *testing.B
	fake       *ddfake.Server
	onAccepted func(id string, eventTime, at time.Time)

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

// newBenchFake is newBenchIntake as the shared benchmarks start it.
func newBenchFake(b *testing.B, onAccepted func(id string, eventTime, at time.Time)) sinkconformance.BenchFake {
	return newBenchIntake(b, onAccepted)
}

func newBenchIntake(b *testing.B, onAccepted func(id string, eventTime, at time.Time)) *benchIntake {
	b.Helper()
	var keys []string
	for i := range benchConnections {
		keys = append(keys, benchConnName(i))
	}
	in := &benchIntake{b: b, fake: ddfake.New(keys...), onAccepted: onAccepted}
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
	if in.onAccepted == nil {
		return
	}
	for _, raw := range o.Entries {
		var e struct {
			ID        string `json:"audit-id"`
			Timestamp string `json:"timestamp"`
		}
		err := json.Unmarshal(raw, &e)
		var at time.Time
		if err == nil {
			at, err = auditevent.ParseTimestamp(e.Timestamp)
		}
		if err != nil {
			in.b.Errorf("an accepted entry does not read: %v", err)
			return
		}
		in.onAccepted(e.ID, at, o.At)
	}
}

// Delivered is the number of entries the fake accepted so far, less
// those accepted again after a lost answer.
func (in *benchIntake) Delivered() int64 { return in.accepted.Load() - in.resent.Load() }

func (in *benchIntake) Resent() int64  { return in.resent.Load() }
func (in *benchIntake) Refused() int64 { return in.rejected.Load() }

// Failed is 0: the intake takes or refuses a request whole.
func (in *benchIntake) Failed() int64 { return 0 }

func (in *benchIntake) ReportMetrics(b *testing.B) {
	accepted := float64(max(in.accepted.Load(), 1))
	b.ReportMetric(float64(in.entryBytes.Load())/accepted, "entry-B")
	b.ReportMetric(float64(in.wireBytes.Load())/accepted, "wire-B")
	b.ReportMetric(float64(in.accepted.Load())/float64(max(in.requests.Load(), 1)), "entries/req")
}

// benchAdapter runs the shared forwarder and latency benchmarks against
// the intake (max_connection_bytes a quarter of max_inflight_bytes, at
// most its default).
var benchAdapter = sinkconformance.BenchAdapter{
	Spec:    Spec,
	NewFake: newBenchFake,
}
