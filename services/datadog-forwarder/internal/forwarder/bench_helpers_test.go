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
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/datadog-forwarder/internal/ddfake"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/kafkatest"
	"github.com/klauspost/compress/gzip"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// benchRecordBytes is the size of one record's protobuf value.
	benchRecordBytes = 1024
	// benchAccounts is how many accounts the events are spread over; the
	// account is the record key, so the partitioner spreads them as it
	// spreads real traffic.
	benchAccounts = 50
	// benchConnections is how many Datadog connections the accounts route
	// to (account i to connection i mod benchConnections).
	benchConnections = 4
	// benchPartitions is the events topic's partition count.
	benchPartitions = 6
	// benchPool distinct event shapes are cycled through; every record still
	// gets its own id and timestamp.
	benchPool = 8192
	// benchTagPrefix is the connections' tag prefix, as in the seed's logs.
	benchTagPrefix = "scalr"
)

// benchSeedPath is the seed's example event.
var benchSeedPath = filepath.Join("..", "..", "..", "..", "proto", "auditevent", "testdata", "seed-attributes.json")

// benchGen makes the records of the benchmarks. Record n is pool event
// n mod benchPool with an id and a timestamp of its own. A benchGen is not
// safe for concurrent use (it stamps the pool's events in place).
type benchGen struct {
	topic string
	pool  []*auditlogv1.AuditEvent
}

var benchPoolEvents = sync.OnceValues(func() ([]*auditlogv1.AuditEvent, error) {
	seed, err := os.ReadFile(benchSeedPath)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(7, 11))
	userAgents := []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
		"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"scalr-cli/0.15.4 (linux; amd64) go-tfe/1.49.0 terraform/1.7.5",
	}
	actions := []string{"discard-run", "apply-run", "update-workspace", "create-variable", "login", "delete-token", "lock-workspace"}
	at := time.Now()
	out := make([]*auditlogv1.AuditEvent, benchPool)
	for i := range out {
		ev, err := auditevent.DecodeJSON(seed, auditevent.DecodeOptions{DisallowUnknownFields: true})
		if err != nil {
			return nil, fmt.Errorf("seed event: %w", err)
		}
		acc := i % benchAccounts
		user := "user-" + benchRandString(rng, 15)
		ev.Actor.Id = user
		ev.Actor.Email = user + "@example.com"
		ev.Actor.AccessToken.Token = "tok-" + benchRandString(rng, 40) // masked by Prepare
		ev.Request.Id = benchRandHex(rng, 16)
		ev.Request.IpAddress = fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
		ev.Request.UserAgent = userAgents[i%len(userAgents)]
		ev.Request.Action = actions[i%len(actions)]
		run := "run-" + benchRandString(rng, 15)
		ev.Target.Id, ev.Target.DisplayName = run, run
		ctx := ev.Target.Context
		ctx.Account.Id = benchAccount(acc)
		ctx.Account.DisplayName = fmt.Sprintf("account %d", acc)
		ctx.Environment.Id = fmt.Sprintf("org-bench%04denv%d", acc, i%3)
		ctx.Environment.DisplayName = fmt.Sprintf("Env-%d-%d", acc, i%3)
		ctx.Workspace.Id = "ws-" + benchRandString(rng, 15)
		ctx.Workspace.DisplayName = fmt.Sprintf("workspace-%d", rng.IntN(400))
		ev.Extra = map[string]string{
			"trace-id": benchRandHex(rng, 16),
			"span-id":  benchRandHex(rng, 8),
		}
		ev.Id = benchID(0)
		if err := auditevent.Prepare(ev, at); err != nil {
			return nil, err
		}
		// The referring page's address brings the record to size.
		page := "https://app.example.com/v2/e/" + ctx.Environment.Id + "/workspaces/" + ctx.Workspace.Id + "/runs/" + run + "?q="
		ev.Extra["referer"] = page
		for range 4 {
			room := benchRecordBytes - proto.Size(ev)
			if room == 0 {
				break
			}
			page = ev.Extra["referer"]
			if room > 0 {
				page += benchRandString(rng, room)
			} else {
				page = page[:max(len(page)+room, 0)]
			}
			ev.Extra["referer"] = page
		}
		if err := auditevent.Validate(ev); err != nil {
			return nil, err
		}
		out[i] = ev
	}
	return out, nil
})

func newBenchGen(b *testing.B, topic string) *benchGen {
	b.Helper()
	pool, err := benchPoolEvents()
	if err != nil {
		b.Fatal(err)
	}
	return &benchGen{topic: topic, pool: pool}
}

// record returns record n with the given event time.
func (g *benchGen) record(b *testing.B, n int, at time.Time) *kgo.Record {
	ev := g.pool[n%len(g.pool)]
	ev.Id = benchID(n)
	ev.Timestamp = timestamppb.New(at)
	rec, err := auditevent.NewRecord(g.topic, ev)
	if err != nil {
		b.Fatal(err)
	}
	return rec
}

func benchAccount(i int) string { return fmt.Sprintf("acc-bench%04d", i) }

// benchID is a UUID-shaped id, unique per record and of fixed length.
func benchID(n int) string {
	return fmt.Sprintf("0190b1c2-%04x-7%03x-8%03x-%012x", n>>24&0xffff, n>>12&0xfff, n&0xfff, n)
}

func benchRandString(rng *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(out)
}

func benchRandHex(rng *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*n)
	for i := range out {
		out[i] = digits[rng.IntN(16)]
	}
	return string(out)
}

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

// benchProducer is a client with ingest's producer settings: acks=all,
// idempotent, 2 ms linger, 1 MB batches, lz4.
func benchProducer(cluster *kafkatest.Cluster) *kgo.Client {
	return cluster.Client(
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.MaxBufferedRecords(20000),
	)
}

// benchPreload writes records 0..n-1 to the events topic, stamped with the
// current time, and checks that the broker holds them.
func benchPreload(b *testing.B, cluster *kafkatest.Cluster, cfg Config, n int) {
	b.Helper()
	topic := cfg.Kafka.Topics.Events.Name
	gen := newBenchGen(b, topic)
	cl := benchProducer(cluster)
	defer cl.Close()
	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		firstErr atomic.Pointer[error]
	)
	ctx := context.Background()
	at := time.Now()
	for i := range n {
		wg.Add(1)
		cl.Produce(ctx, gen.record(b, i, at.Add(time.Duration(i)*time.Microsecond)), func(_ *kgo.Record, err error) {
			if err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if f := failures.Load(); f > 0 {
		b.Fatalf("preload: %d of %d records failed; first: %v", f, n, *firstErr.Load())
	}
	if got := benchHighWatermarks(cluster, topic); got != int64(n) {
		b.Fatalf("preload: the broker holds %d records, want %d", got, n)
	}
}

// benchHighWatermarks sums the end offsets of topic.
func benchHighWatermarks(cluster *kafkatest.Cluster, topic string) int64 {
	var n int64
	for _, p := range cluster.PartitionInfos(topic) {
		n += p.HighWatermark
	}
	return n
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
	for i := range benchAccounts {
		fmt.Fprintf(&s, "  - account: %q\n    connections: [%s]\n", benchAccount(i), benchConnName(i%benchConnections))
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

// benchWait polls cond every millisecond until it holds or timeout passes.
func benchWait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// benchLive tracks the peak of the live heap (runtime/metrics
// /gc/heap/live:bytes, the heap the last collection marked reachable). The
// peak memory of benchutil counts garbage not yet collected too, and how
// much garbage the collector lets build up grows with the live heap of the
// whole process, here mostly the broker holding the loaded topic; the live
// heap is what the forwarder itself retains.
type benchLive struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

const benchLiveSample = "/gc/heap/live:bytes"

func benchReadLive(s []metrics.Sample) uint64 {
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// startBenchLive collects garbage, takes the live heap as the baseline and
// samples it every 2 ms until stop.
func startBenchLive() *benchLive {
	runtime.GC()
	s := []metrics.Sample{{Name: benchLiveSample}}
	l := &benchLive{base: benchReadLive(s), stop: make(chan struct{}), done: make(chan struct{})}
	l.peak.Store(l.base)
	go func() {
		defer close(l.done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				if v := benchReadLive(s); v > l.peak.Load() {
					l.peak.Store(v)
				}
			}
		}
	}()
	return l
}

// overBase stops sampling and returns the live heap's peak above the
// baseline, in bytes.
func (l *benchLive) overBase() uint64 {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	return l.peak.Load() - min(l.base, l.peak.Load())
}

// benchProgress remembers when a growing count reached each value it was
// seen at.
type benchProgress struct {
	start time.Time
	at    []time.Duration
	n     []int64
}

func (p *benchProgress) see(n int64) {
	if len(p.n) == 0 || n > p.n[len(p.n)-1] {
		p.at = append(p.at, time.Since(p.start))
		p.n = append(p.n, n)
	}
}

// reached is when the count first was at least n.
func (p *benchProgress) reached(n int64) (time.Duration, bool) {
	for i, v := range p.n {
		if v >= n {
			return p.at[i], true
		}
	}
	return 0, false
}

// benchUncommitted is how many records of the events and retry topics the
// forwarder's group has not committed: zero once everything was delivered,
// parked and delivered, or dead-lettered.
func benchUncommitted(b *testing.B, cluster *kafkatest.Cluster, cfg Config) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offsets, err := kadm.NewClient(cluster.Client()).FetchOffsets(ctx, cfg.Delivery.Group)
	if err != nil {
		b.Fatalf("fetch the group's offsets: %v", err)
	}
	var missing int64
	for _, topic := range []string{cfg.Kafka.Topics.Events.Name, cfg.Delivery.RetryTopic.Name} {
		for _, p := range cluster.PartitionInfos(topic) {
			committed := int64(0)
			if o, ok := offsets.Lookup(topic, p.Partition); ok && o.Err == nil {
				committed = o.At
			}
			missing += max(p.HighWatermark-committed, 0)
		}
	}
	return missing
}
