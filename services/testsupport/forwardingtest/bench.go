package forwardingtest

// Benchmark support shared by the forwarders: the 1 KB event generator, the
// broker preloaded with records, and memory and progress sampling.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/google/pprof/profile"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// BenchRecordBytes is the size of one record's protobuf value.
	BenchRecordBytes = 1024
	// BenchAccounts is how many accounts the events are spread over; the
	// account is the record key, so the partitioner spreads them as it
	// spreads real traffic.
	BenchAccounts = 50
	// BenchPool distinct event shapes are cycled through; every record still
	// gets its own id and timestamp.
	BenchPool = 8192
)

// BenchSeedPath is the seed's example event, from a forwarder's
// internal/forwarder test directory.
var BenchSeedPath = filepath.Join("..", "..", "..", "..", "proto", "auditevent", "testdata", "seed-attributes.json")

// BenchGen makes the records of the benchmarks. Record n is pool event
// n mod BenchPool with an id and a timestamp of its own. A BenchGen is not
// safe for concurrent use (it stamps the pool's events in place).
type BenchGen struct {
	topic string
	pool  []*auditlogv1.AuditEvent
}

var benchPoolEvents = sync.OnceValues(func() ([]*auditlogv1.AuditEvent, error) {
	seed, err := os.ReadFile(BenchSeedPath)
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
	out := make([]*auditlogv1.AuditEvent, BenchPool)
	for i := range out {
		ev, err := auditevent.DecodeJSON(seed, auditevent.DecodeOptions{DisallowUnknownFields: true})
		if err != nil {
			return nil, fmt.Errorf("seed event: %w", err)
		}
		acc := i % BenchAccounts
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
		ctx.Account.Id = BenchAccount(acc)
		ctx.Account.DisplayName = fmt.Sprintf("account %d", acc)
		ctx.Environment.Id = fmt.Sprintf("org-bench%04denv%d", acc, i%3)
		ctx.Environment.DisplayName = fmt.Sprintf("Env-%d-%d", acc, i%3)
		ctx.Workspace.Id = "ws-" + benchRandString(rng, 15)
		ctx.Workspace.DisplayName = fmt.Sprintf("workspace-%d", rng.IntN(400))
		ev.Extra = map[string]string{
			"trace-id": benchRandHex(rng, 16),
			"span-id":  benchRandHex(rng, 8),
		}
		ev.Id = BenchID(0)
		if err := auditevent.Prepare(ev, at); err != nil {
			return nil, err
		}
		// The referring page's address brings the record to size.
		page := "https://app.example.com/v2/e/" + ctx.Environment.Id + "/workspaces/" + ctx.Workspace.Id + "/runs/" + run + "?q="
		ev.Extra["referer"] = page
		for range 4 {
			room := BenchRecordBytes - proto.Size(ev)
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

func NewBenchGen(b *testing.B, topic string) *BenchGen {
	b.Helper()
	pool, err := benchPoolEvents()
	if err != nil {
		b.Fatal(err)
	}
	return &BenchGen{topic: topic, pool: pool}
}

// record returns record n with the given event time.
func (g *BenchGen) Record(b *testing.B, n int, at time.Time) *kgo.Record {
	ev := g.pool[n%len(g.pool)]
	ev.Id = BenchID(n)
	ev.Timestamp = timestamppb.New(at)
	rec, err := auditevent.NewRecord(g.topic, ev)
	if err != nil {
		b.Fatal(err)
	}
	return rec
}

func BenchAccount(i int) string { return fmt.Sprintf("acc-bench%04d", i) }

// BenchID is a UUID-shaped id, unique per record and of fixed length.
func BenchID(n int) string {
	return fmt.Sprintf("0190b1c2-%04x-7%03x-8%03x-%012x", n>>24&0xffff, n>>12&0xfff, n&0xfff, n)
}

// BenchIDNumber is n of an id made by BenchID(n); ok is false for any
// other id.
func BenchIDNumber(id string) (n int, ok bool) {
	const prefix = "0190b1c2-"
	if len(id) != 36 || id[:len(prefix)] != prefix {
		return 0, false
	}
	v, err := strconv.ParseUint(id[24:], 16, 63)
	return int(v), err == nil
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

// BenchProducer is a client with ingest's producer settings: acks=all,
// idempotent, 2 ms linger, 1 MB batches, lz4.
func BenchProducer(cluster *kafkatest.Cluster) *kgo.Client {
	return cluster.Client(
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.MaxBufferedRecords(20000),
	)
}

// BenchPreload writes records 0..n-1 to the events topic, stamped with the
// current time, and checks that the broker holds them.
func BenchPreload(b *testing.B, cluster *kafkatest.Cluster, cfg forwarding.Config, n int) {
	b.Helper()
	topic := cfg.Kafka.Topics.Events.Name
	gen := NewBenchGen(b, topic)
	cl := BenchProducer(cluster)
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
		cl.Produce(ctx, gen.Record(b, i, at.Add(time.Duration(i)*time.Microsecond)), func(_ *kgo.Record, err error) {
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
	if got := BenchHighWatermarks(cluster, topic); got != int64(n) {
		b.Fatalf("preload: the broker holds %d records, want %d", got, n)
	}
}

// BenchHighWatermarks sums the end offsets of topic.
func BenchHighWatermarks(cluster *kafkatest.Cluster, topic string) int64 {
	var n int64
	for _, p := range cluster.PartitionInfos(topic) {
		n += p.HighWatermark
	}
	return n
}

// BenchWait polls cond every millisecond until it holds or timeout passes.
func BenchWait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// BenchLive tracks the peak of the live heap (runtime/metrics
// /gc/heap/live:bytes, the heap the last collection marked reachable). The
// peak memory of benchutil counts garbage not yet collected too, and how
// much garbage the collector lets build up grows with the live heap of the
// whole process, here mostly the broker holding the loaded topic; the live
// heap is what the forwarder itself retains.
type BenchLive struct {
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

// StartBenchLive collects garbage, takes the live heap as the baseline and
// samples it every 2 ms until stop.
func StartBenchLive() *BenchLive { return startBenchLive(2*time.Millisecond, false) }

// StartBenchLiveCollecting is StartBenchLive that collects garbage before
// each sample, every interval. Forcing the collections costs some speed,
// but with a broker holding gigabytes in the same process the collector
// would otherwise run too seldom for the service's own peak to show.
func StartBenchLiveCollecting(interval time.Duration) *BenchLive {
	return startBenchLive(interval, true)
}

func startBenchLive(interval time.Duration, collect bool) *BenchLive {
	runtime.GC()
	s := []metrics.Sample{{Name: benchLiveSample}}
	l := &BenchLive{base: benchReadLive(s), stop: make(chan struct{}), done: make(chan struct{})}
	l.peak.Store(l.base)
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				if collect {
					runtime.GC()
				}
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
func (l *BenchLive) OverBase() uint64 {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	return l.peak.Load() - min(l.base, l.peak.Load())
}

// NewBenchProgress starts a progress record at start.
func NewBenchProgress(start time.Time) *BenchProgress { return &BenchProgress{start: start} }

// BenchProgress remembers when a growing count reached each value it was
// seen at.
type BenchProgress struct {
	start time.Time
	at    []time.Duration
	n     []int64
}

func (p *BenchProgress) See(n int64) {
	if len(p.n) == 0 || n > p.n[len(p.n)-1] {
		p.at = append(p.at, time.Since(p.start))
		p.n = append(p.n, n)
	}
}

// reached is when the count first was at least n.
func (p *BenchProgress) Reached(n int64) (time.Duration, bool) {
	for i, v := range p.n {
		if v >= n {
			return p.at[i], true
		}
	}
	return 0, false
}

// Steady is the rate between the counts from and to: events/s once the
// run is under way and before its last batches linger, which start-up and
// the batch period's wait for a last partial batch do not dilute.
func (p *BenchProgress) Steady(from, to int64) (float64, bool) {
	i, j := -1, -1
	for k, v := range p.n {
		if i < 0 && v >= from {
			i = k
		}
		if v >= to {
			j = k
			break
		}
	}
	if i < 0 || j <= i || p.at[j] <= p.at[i] {
		return 0, false
	}
	return float64(p.n[j]-p.n[i]) / (p.at[j] - p.at[i]).Seconds(), true
}

// BenchUncommitted is how many records of the events and retry topics the
// forwarder's group has not committed: zero once everything was delivered,
// parked and delivered, or dead-lettered.
func BenchUncommitted(b *testing.B, cluster *kafkatest.Cluster, cfg forwarding.Config) int64 {
	b.Helper()
	n, err := cluster.Uncommitted(kadm.NewClient(cluster.Client()), cfg.Delivery.Group, cfg.Kafka.Topics.Events.Name, cfg.Delivery.RetryTopic.Name)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchUsage measures what a run uses: the whole process's peak memory
// (heap and stacks, garbage included: benchutil's sampler), the same above
// the baseline, the peak of the live heap above its baseline, and the CPU
// time the process kept busy. It also takes the run's CPU profile when
// benchutil.ProfileEnv names a file.
type BenchUsage struct {
	base        uint64
	peak        *benchutil.PeakMemory
	live        *BenchLive
	cpu         benchCPU
	stopProfile func() error
	split       *bytes.Buffer // the run's CPU profile, for StartBenchUsageSplit
}

// StartBenchUsage collects garbage, takes the heap in use as the baseline
// (the broker holding the loaded topic, the event pool, the test's own
// state) and starts sampling. Call it right before b.ResetTimer.
func StartBenchUsage(b *testing.B) *BenchUsage { return startBenchUsage(b, false) }

// StartBenchUsageSplit is StartBenchUsage for a forwarder run started with
// RunAsForwarder: it also profiles the run's CPU to tell the forwarder's
// share (its goroutines, and the collector's own workers) from the rest,
// the broker and the fake, which share the CPUs with it.
func StartBenchUsageSplit(b *testing.B) *BenchUsage { return startBenchUsage(b, true) }

func startBenchUsage(b *testing.B, split bool) *BenchUsage {
	runtime.GC()
	m := &BenchUsage{base: benchutil.InUseBytes()}
	m.live = StartBenchLive()
	m.peak = benchutil.StartPeakMemory(0)
	if split {
		m.split = &bytes.Buffer{}
		if err := pprof.StartCPUProfile(m.split); err != nil {
			b.Fatal(err)
		}
		m.stopProfile = func() error {
			pprof.StopCPUProfile()
			if path := os.Getenv(benchutil.ProfileEnv); path != "" && b.N > 1 {
				return os.WriteFile(path, m.split.Bytes(), 0o644)
			}
			return nil
		}
	} else if b.N > 1 {
		// go test runs b.N = 1 first; its profile would overwrite the run's
		stop, err := benchutil.StartTimedProfile()
		if err != nil {
			b.Fatal(err)
		}
		m.stopProfile = stop
	} else {
		m.stopProfile = func() error { return nil }
	}
	m.cpu = readBenchCPU()
	return m
}

// benchSideLabel is the profile label RunAsForwarder puts on the
// forwarder's goroutines; every goroutine the forwarder starts inherits it,
// while the broker and the fake, started by the benchmark, run without.
const benchSideLabel = "auditstream_bench_side"

// RunAsForwarder runs f (the forwarder) under the label that
// StartBenchUsageSplit counts as the forwarder's.
func RunAsForwarder(ctx context.Context, f func(ctx context.Context)) {
	pprof.Do(ctx, pprof.Labels(benchSideLabel, "forwarder"), f)
}

// splitCPU reads a CPU profile and returns the share of its CPU time spent
// by the forwarder: goroutines labelled by RunAsForwarder, and the
// garbage collector's and scavenger's own workers, which work for every
// allocation in the process (counting them as the forwarder's makes the
// rest, the broker and the fake, no larger than it is).
func splitCPU(data []byte) (forwarder float64, samples int, err error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return 0, 0, fmt.Errorf("read the run's CPU profile: %w", err)
	}
	// A profile's Sample is one per distinct stack and labels; "samples"
	// counts the ticks each stands for.
	idx, count := -1, -1
	for i, st := range p.SampleType {
		switch st.Type {
		case "cpu":
			idx = i
		case "samples":
			count = i
		}
	}
	if idx < 0 || count < 0 {
		return 0, 0, errors.New("the CPU profile has no cpu samples")
	}
	var own, total, n int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		n += s.Value[count]
		if slices.Contains(s.Label[benchSideLabel], "forwarder") || benchCollector(s) {
			own += v
		}
	}
	if total == 0 {
		return 0, 0, nil
	}
	return float64(own) / float64(total), int(n), nil
}

func benchCollector(s *profile.Sample) bool {
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function == nil {
				continue
			}
			switch line.Function.Name {
			case "runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge":
				return true
			}
		}
	}
	return false
}

// Stop ends the sampling and reports peak-MB, peak-over-base-MB,
// live-over-base-MB, cpu-% (the share of the machine's CPUs kept busy, to
// tell a CPU-bound run from one waiting on something) and cpu-ns/op (busy
// CPU time per op: per event in the throughput benchmarks, where the
// passes' costs add up when they share the CPUs). Call it right after
// b.StopTimer.
func (m *BenchUsage) Stop(b *testing.B) {
	cpu := readBenchCPU()
	if err := m.stopProfile(); err != nil {
		b.Error(err)
	}
	peak := m.peak.Stop()
	live := m.live.OverBase()
	b.ReportMetric(benchutil.MB(peak), "peak-MB")
	b.ReportMetric(benchutil.MB(peak-min(m.base, peak)), "peak-over-base-MB")
	b.ReportMetric(benchutil.MB(live), "live-over-base-MB")
	used, wall := cpu.used-m.cpu.used, cpu.at.Sub(m.cpu.at)
	if wall > 0 {
		b.ReportMetric(100*float64(used)/float64(wall)/float64(runtime.NumCPU()), "cpu-%")
		b.ReportMetric(float64(used.Nanoseconds())/float64(max(b.N, 1)), "cpu-ns/op")
	}
	if m.split != nil {
		share, samples, err := splitCPU(m.split.Bytes())
		if err != nil {
			b.Error(err)
			return
		}
		if samples == 0 {
			return // too short a run to sample (go test runs b.N = 1 first)
		}
		b.ReportMetric(100*(1-share), "rig-cpu-%")
	}
}

// benchCPU is the process's CPU time (user and system, from getrusage)
// at a wall-clock instant.
type benchCPU struct {
	used time.Duration
	at   time.Time
}

func readBenchCPU() benchCPU {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return benchCPU{at: time.Now()}
	}
	return benchCPU{used: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), at: time.Now()}
}

// BenchMicros is a result's CPU per op (per event) in microseconds.
func BenchMicros(r benchutil.Result) string {
	v, ok := r.Metrics["cpu-ns/op"]
	if !ok {
		return "-"
	}
	return benchutil.FormatValue(v / 1000)
}

// BenchBoundRate estimates the most events/s any forwarder could reach on
// these CPUs while the broker and the fake share them as in the forwarder's
// run fwd, of whose CPU they took the share split measured (a run under
// StartBenchUsageSplit): were the forwarder's own CPU per event no more
// than the encode-only pass's, the CPUs would run out at cores /
// (encode-only's + the broker's and the fake's).
func BenchBoundRate(encode, fwd, split benchutil.Result) (float64, bool) {
	rig, own, ok := benchSplit(fwd, split)
	e, okE := encode.Metrics["cpu-ns/op"]
	if !ok || !okE || e <= 0 || own <= 0 {
		return 0, false
	}
	return float64(runtime.NumCPU()) * 1e9 / (e + rig), true
}

// benchSplit is the forwarder run's CPU per event taken by the broker and
// the fake, and its own.
func benchSplit(fwd, split benchutil.Result) (rig, own float64, ok bool) {
	total, okT := fwd.Metrics["cpu-ns/op"]
	share, okS := split.Metrics["rig-cpu-%"]
	if !okT || !okS || total <= 0 {
		return 0, 0, false
	}
	rig = total * share / 100
	return rig, total - rig, true
}

// BenchBound explains the forwarder run's CPU per event: what the broker
// and the fake took of it, what that leaves any forwarder, and the
// forwarder's own.
func BenchBound(encode, fwd, split benchutil.Result, peer string) string {
	bound, ok := BenchBoundRate(encode, fwd, split)
	if !ok {
		return ""
	}
	rig, own, _ := benchSplit(fwd, split)
	e := encode.Metrics["cpu-ns/op"]
	us := func(ns float64) string { return benchutil.FormatValue(ns / 1000) }
	return fmt.Sprintf("\nIn the default forwarder's run the broker and the %s took %s µs of CPU per event (%s of %s µs, as a profiled\n"+
		"run splits it); the forwarder itself, with the garbage collector, %s µs, of which the encode-only work (%s µs) is %s.\n"+
		"On %d CPUs shared with the broker and the %s, a forwarder spending no more than the encode-only work would reach\n"+
		"about %s events/s, %s of encode-only: the most the ratio can show here.\n",
		peer, us(rig), benchutil.FormatPercent(rig/(rig+own)), us(rig+own),
		us(own), us(e), benchutil.FormatPercent(e/own), runtime.NumCPU(),
		peer, benchutil.FormatValue(bound), benchutil.FormatPercent(bound/encode.Metrics["events/s"]))
}

// benchMemoryPerInflight and benchMemoryFixed bound the live heap a
// forwarder may keep for a max_inflight_bytes setting: the cap counts the
// records' bytes, and a record in flight also holds its decoded event and
// its encoded entry (several times its size together), besides buffers that
// do not grow with the cap (connections, compressors, fetches).
const (
	benchMemoryPerInflight = 8
	benchMemoryFixed       = 64e6
)

// BenchMemoryVerdict judges "memory set by config, not by backlog" over
// forwarder runs at several max_inflight_bytes settings (results[i] at
// settings[i], each the median of runs[i] runs draining the same backlog):
// every live heap stays within what its setting allows
// (benchMemoryPerInflight × the cap + benchMemoryFixed), and the smallest
// setting's below the backlog it drains, so the backlog is not read into
// memory. It returns the verdict, the live heaps as text and the backlog in
// MB. A backlog within what the smallest setting allows (a shortened run)
// cannot show that it is not read into memory: judged is then false, and
// pass says only that every heap stayed within its setting.
func BenchMemoryVerdict(settings []config.ByteSize, results []benchutil.Result, runs []int) (pass, judged bool, got string, backlogMB float64) {
	pass = true
	var parts []string
	smallest := 0
	for i, inflight := range settings {
		live := results[i].Metrics["live-over-base-MB"]
		allowed := (benchMemoryPerInflight*float64(inflight) + benchMemoryFixed) / 1e6
		if live > allowed {
			pass = false
		}
		if inflight < settings[smallest] {
			smallest = i
		}
		parts = append(parts, fmt.Sprintf("live %s MB at %d MiB (allowed %s)", benchutil.FormatValue(live), inflight>>20, benchutil.FormatValue(allowed)))
	}
	// Median sums the iterations of every run; one run's backlog is b.N
	// records.
	backlogMB = float64(results[smallest].Iterations) / float64(max(runs[smallest], 1)) * BenchRecordBytes / 1e6
	judged = backlogMB > (benchMemoryPerInflight*float64(settings[smallest])+benchMemoryFixed)/1e6
	if judged {
		pass = pass && results[smallest].Metrics["live-over-base-MB"] < backlogMB
	}
	return pass, judged, strings.Join(parts, ", "), backlogMB
}

// BenchWorkers is the timed part of a pass that needs no broker: jobs 0 to
// jobs-1 are taken in order by workers goroutines, each with the state
// newWorker gives it, while usage is sampled (StartBenchUsage, with the
// timer reset and stopped around it). The first error fails b. It returns
// how long the jobs took.
func BenchWorkers(b *testing.B, workers int, jobs int64, newWorker func() (func(job int64) error, error)) time.Duration {
	var (
		next   atomic.Int64
		failed atomic.Pointer[error]
		wg     sync.WaitGroup
	)
	usage := StartBenchUsage(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			work, err := newWorker()
			if err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
			for job := next.Add(1) - 1; job < jobs; job = next.Add(1) - 1 {
				if err := work(job); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	usage.Stop(b)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return elapsed
}
