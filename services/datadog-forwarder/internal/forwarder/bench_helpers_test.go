package forwarder

// Helpers of the Datadog forwarder's benchmarks (bench_test.go): the event
// generator, the in-process broker loaded with records, the forwarder's
// configuration, the intake (the Datadog fake behind a small proxy that
// counts and times what it accepts), and memory and progress sampling.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/forwardingtest"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/kafkatest"
	"github.com/auditstream/auditstream/services/internal/sink/datadog/ddfake"
	"github.com/klauspost/compress/gzip"
)

const (
	// benchConnections is how many Datadog connections the accounts route
	// to (account i to connection i mod benchConnections).
	benchConnections = 4
	// benchPartitions is the events topic's partition count.
	benchPartitions = 6
	// benchTagPrefix is the connections' tag prefix, as in the seed's logs.
	benchTagPrefix = "scalr"
)

// benchConfig is the forwarder's default configuration (delivery defaults
// included) pointed at cluster, with quiet logs, an ephemeral status port
// and a destinations file in dir.
func benchConfig(cluster *kafkatest.Cluster, dir string) Config {
	cfg := DefaultConfig()
	cfg.Log.Level = "error"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = cluster.Brokers()
	cfg.Kafka.Topics.Events.Partitions = benchPartitions
	cfg.Destinations.File = filepath.Join(dir, "destinations.yaml")
	return cfg
}

// benchBroker starts a broker with the forwarder's topics (events,
// dead-letter, retry), created as bootstrap creates them.
func benchBroker(b *testing.B) (*kafkatest.Cluster, Config) {
	b.Helper()
	cluster := kafkatest.New(b)
	cfg := benchConfig(cluster, b.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cluster.Client(), cfg.Kafka.Topics.Events, cfg.Kafka.Topics.DeadLetter, cfg.Delivery.RetryTopic); err != nil {
		b.Fatal(err)
	}
	return cluster, cfg
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
	go func() { done <- Run(ctx, cfg) }()
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

// benchIntake is the Datadog fake behind a proxy on 127.0.0.1. The proxy
// passes every request through unchanged and, once the fake has answered,
// hands accepted bodies to onAccepted (when set) with the time of the
// answer. So that a long run does not hold every delivered log in this
// process's memory, which the benchmarks measure, there are two fakes:
// requests go to the active one, and drain switches to the other, waits
// for the requests still in the first, moves what it recorded into the
// counts and resets it. Requests never wait for a drain.
type benchIntake struct {
	fakes      [2]*ddfake.Server
	gates      [2]sync.RWMutex // held shared by requests in flight to a fake, exclusively by drain
	active     atomic.Int32
	srv        *httptest.Server
	client     *http.Client
	keys       []string
	onAccepted func(body []byte, at time.Time)

	// resent counts entries the fake accepted in requests whose client had
	// given up (timed out) before the answer reached it: the sink sends them
	// again, so each is accepted twice.
	resent      atomic.Int64
	lostAnswers atomic.Int64 // such requests

	mu         sync.Mutex // guards the counts below and serialises drain
	accepted   int64      // entries accepted by the fakes and forgotten by drain
	requests   int64      // requests drained
	rejected   int64      // of which answered other than 202
	entryBytes int64      // uncompressed bytes of accepted requests
	wireBytes  int64      // as sent
}

func newBenchIntake(b *testing.B, onAccepted func(body []byte, at time.Time)) *benchIntake {
	b.Helper()
	in := &benchIntake{onAccepted: onAccepted}
	for i := range benchConnections {
		in.keys = append(in.keys, benchConnName(i))
	}
	for i := range in.fakes {
		in.fakes[i] = ddfake.New(in.keys...)
		b.Cleanup(in.fakes[i].Close)
	}
	transport := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 32, IdleConnTimeout: time.Minute}
	b.Cleanup(transport.CloseIdleConnections)
	in.client = &http.Client{Transport: transport}
	in.srv = httptest.NewServer(in)
	b.Cleanup(in.srv.Close)
	return in
}

func (in *benchIntake) URL() string { return in.srv.URL }

var benchHopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (in *benchIntake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The exchange with the fake outlives a client that gives up, so that
	// what the fake accepted is always known.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	i := in.active.Load()
	in.gates[i].RLock()
	req, err := http.NewRequestWithContext(ctx, r.Method, in.fakes[i].URL()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		in.gates[i].RUnlock()
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header = r.Header.Clone()
	for _, h := range benchHopHeaders {
		req.Header.Del(h)
	}
	resp, err := in.client.Do(req)
	in.gates[i].RUnlock()
	at := time.Now()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, werr := w.Write(answer)
	if resp.StatusCode != http.StatusAccepted {
		return
	}
	if werr != nil || r.Context().Err() != nil {
		in.lostAnswers.Add(1)
		if n, err := benchCountEntries(body); err == nil {
			in.resent.Add(int64(n))
		}
	}
	if in.onAccepted != nil {
		in.onAccepted(body, at)
	}
}

// benchCountEntries is the number of entries in a request body.
func benchCountEntries(body []byte) (int, error) {
	raw, err := benchGunzip(body)
	if err != nil {
		return 0, err
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// benchGunzip returns body decompressed when it is gzip, else as is.
func benchGunzip(body []byte) ([]byte, error) {
	if len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		return body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// drain switches fakes and moves what the previous one recorded into the
// counts. A request that picked the previous fake just before the switch
// may still reach it after the reset; the next drain of that fake counts it.
func (in *benchIntake) drain() {
	in.mu.Lock()
	defer in.mu.Unlock()
	old := in.active.Load()
	in.active.Store(1 - old)
	in.gates[old].Lock()
	reqs := in.fakes[old].Requests()
	in.fakes[old].Reset()
	in.gates[old].Unlock()
	for _, r := range reqs {
		in.requests++
		if r.Status != http.StatusAccepted {
			in.rejected++
			continue
		}
		in.accepted += int64(r.Entries)
		in.entryBytes += int64(r.Bytes)
		in.wireBytes += int64(r.WireBytes)
	}
}

// drainAll drains both fakes.
func (in *benchIntake) drainAll() {
	in.drain()
	in.drain()
}

// delivered is the number of entries the fakes accepted so far, less
// those accepted again after a lost answer.
func (in *benchIntake) delivered() int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := in.accepted - in.resent.Load()
	for _, f := range in.fakes {
		for _, k := range in.keys {
			n += int64(f.Count(k))
		}
	}
	return n
}

// drainEvery drains every d until the benchmark ends.
func (in *benchIntake) drainEvery(b *testing.B, d time.Duration) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				in.drain()
			}
		}
	}()
	b.Cleanup(func() { close(stop); <-done })
}

// benchEntryTimes reads an accepted request body (gzip or plain JSON array)
// and returns the audit id and timestamp of each entry.
func benchEntryTimes(body []byte) ([]string, []time.Time, error) {
	body, err := benchGunzip(body)
	if err != nil {
		return nil, nil, err
	}
	var entries []struct {
		ID        string `json:"audit-id"`
		Timestamp string `json:"timestamp"`
	}
	if err := json.Unmarshal(body, &entries); err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(entries))
	times := make([]time.Time, len(entries))
	for i, e := range entries {
		t, err := auditevent.ParseTimestamp(e.Timestamp)
		if err != nil {
			return nil, nil, err
		}
		ids[i], times[i] = e.ID, t
	}
	return ids, times, nil
}
