package forwarder

// Helpers of the EventBridge forwarder's benchmarks (bench_test.go): the
// event generator, the in-process broker loaded with records, the
// forwarder's configuration, the EventBridge fake as the destination with a
// tally of what it accepts, and memory, CPU and progress sampling.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/eventbridge-forwarder/internal/ebfake"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/kafkatest"
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
	// benchConnections is how many EventBridge connections the accounts
	// route to (account i to connection i mod benchConnections).
	benchConnections = 4
	// benchPartitions is the events topic's partition count.
	benchPartitions = 6
	// benchPool distinct event shapes are cycled through; every record still
	// gets its own id and timestamp.
	benchPool = 8192
	// benchPrefix is the connections' prefix: Source scalr.audit-log.
	benchPrefix = "scalr"
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
// number in their benchID, read from the start of the Detail the encoder
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

// benchIDNumber reads n back from a Detail starting {"id":"<benchID(n)>".
func benchIDNumber(detail string) (int, bool) {
	const prefix = `{"id":"`
	if len(detail) < len(prefix)+36 || detail[:len(prefix)] != prefix {
		return 0, false
	}
	n, err := strconv.ParseUint(detail[len(prefix)+24:len(prefix)+36], 16, 63)
	return int(n), err == nil
}

// benchCPU measures the share of the machine's CPUs the process used
// between start and busy (runtime/metrics: all CPU time less idle), to tell
// a CPU-bound run from one waiting on something.
type benchCPU struct{ total, idle float64 }

var benchCPUSamples = []string{"/cpu/classes/total:cpu-seconds", "/cpu/classes/idle:cpu-seconds"}

func readBenchCPU() benchCPU {
	s := make([]metrics.Sample, len(benchCPUSamples))
	for i, name := range benchCPUSamples {
		s[i].Name = name
	}
	metrics.Read(s)
	var c benchCPU
	if s[0].Value.Kind() == metrics.KindFloat64 {
		c.total = s[0].Value.Float64()
	}
	if s[1].Value.Kind() == metrics.KindFloat64 {
		c.idle = s[1].Value.Float64()
	}
	return c
}

// busy is the share of CPU time used since c, in percent.
func (c benchCPU) busy() float64 {
	now := readBenchCPU()
	total := now.total - c.total
	if total <= 0 {
		return 0
	}
	return 100 * (total - (now.idle - c.idle)) / total
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
