package archiver

// Benchmarks of the archiver on one machine, against a raw franz-go
// consumer on the same in-process broker:
//
//   - BenchmarkArchiveConsumeCeiling: a bare group consumer polling b.N
//     pre-loaded records, the ceiling.
//   - BenchmarkArchiveLocal: the archiver filing b.N events (1 KB records,
//     1,000 accounts, one day) and writing the day into a local directory,
//     from a cold start to the last object written.
//   - BenchmarkArchiveLargeDay: one day of 2 GB of JSON over 10,000
//     accounts; reports the archiver's live heap above the broker's, which
//     holds the loaded topic in the same process.
//
// b.N is the number of events: run with -benchtime=200000x.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/auditstream/auditstream/services/testsupport/s3fake"
)

const benchPartitions = 12

// benchAccounts is how many accounts the throughput benchmarks spread
// events over: with 200,000 events, 2,000 events per account and day.
const benchAccounts = 100

func benchCluster(b *testing.B) *kafkatest.Cluster {
	b.Helper()
	c := kafkatest.New(b, kfake.SeedTopics(benchPartitions, "audit.events"), kfake.SeedTopics(1, "audit.events.dlq"))
	c.ReleaseOnCleanup()
	return c
}

// benchPreload writes n events of accounts accounts, all stamped within
// day0, and returns the bytes of their archived JSON lines.
func benchPreload(b *testing.B, c *kafkatest.Cluster, n, accounts int) int64 {
	b.Helper()
	cl := forwardingtest.BenchProducer(c)
	defer cl.Close()
	var jsonBytes atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	workers := 4
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := w; i < n; i += workers {
				ev := forwardingtest.TestEvent(fmt.Sprintf("acc-%05d", i%accounts), i)
				ev.Id = forwardingtest.BenchID(i)
				ev.Timestamp = timestamppb.New(day0.Add(time.Duration(i%86400) * time.Second))
				ev.Extra = map[string]string{"referer": ""}
				if room := forwardingtest.BenchRecordBytes - proto.Size(ev); room > 0 {
					// Random text: a real event compresses far less than a
					// run of one letter, and the fetch buffers show it.
					ev.Extra["referer"] = randText(rng, room)
				}
				if err := auditevent.Prepare(ev, day0); err != nil {
					b.Error(err)
					return
				}
				buf = auditevent.AppendJSON(buf[:0], ev)
				jsonBytes.Add(int64(len(buf) + 1))
				rec, err := auditevent.NewRecord("audit.events", ev)
				if err != nil {
					b.Error(err)
					return
				}
				wg.Add(1)
				cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
					}
					wg.Done()
				})
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("preload: %d records failed", f)
	}
	if got := forwardingtest.BenchHighWatermarks(c, "audit.events"); got != int64(n) {
		b.Fatalf("preload: broker holds %d records, want %d", got, n)
	}
	return jsonBytes.Load()
}

func randText(rng *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-/"
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(out)
}

func BenchmarkArchiveConsumeCeiling(b *testing.B) {
	c := benchCluster(b)
	benchPreload(b, c, b.N, benchAccounts)
	b.ResetTimer()
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.ConsumerGroup("ceiling"), kgo.ConsumeTopics("audit.events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	n := 0
	for n < b.N {
		fs := cl.PollRecords(context.Background(), 10_000)
		n += fs.NumRecords()
		cl.AllowRebalance()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// benchArchive runs the archiver over the pre-loaded day: the clock stands
// inside the day while it files the events, then moves past the grace
// period so the day is cut and written.
func benchArchive(b *testing.B, c *kafkatest.Cluster, n int, settings string) (elapsed time.Duration, liveOverBase uint64) {
	return benchArchiveSampled(b, c, n, settings, false)
}

func benchArchiveSampled(b *testing.B, c *kafkatest.Cluster, n int, settings string, exact bool) (elapsed time.Duration, liveOverBase uint64) {
	b.Helper()
	dir := b.TempDir()
	dest := dir + "/destinations.yaml"
	if settings == "" {
		settings = fmt.Sprintf("      kind: local\n      local: {dir: %q}\n", dir+"/bucket")
	}
	yaml := "connections:\n  bucket:\n    type: storage\n    settings:\n" + settings + "routes:\n  - account: \"*\"\n    connections: [bucket]\n"
	if err := os.WriteFile(dest, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = c.Brokers()
	cfg.Kafka.Topics.Events.Partitions = benchPartitions
	cfg.Kafka.Topics.DeadLetter.Partitions = 1
	cfg.Destinations.File = dest
	cfg.Destinations.Topic = false // these tests route through the file and run Consume alone
	cfg.Archive.SpoolDir = dir + "/spool"
	cfg.Archive.Group = "bench"
	clk := newClock(day0.Add(23 * time.Hour))

	var overBase func() uint64
	if exact {
		overBase = forwardingtest.StartBenchLiveCollecting(100 * time.Millisecond).OverBase
	} else {
		overBase = forwardingtest.StartBenchLive().OverBase
	}
	b.ResetTimer()
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := newService(ctx, cfg, zap.NewNop(), prometheus.NewRegistry(), clk.Now)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Consume(ctx) }()
	if !forwardingtest.BenchWait(10*time.Minute, func() bool { return s.filed.Load() >= int64(n) }) {
		b.Fatalf("filed %d of %d events", s.filed.Load(), n)
	}
	filedAt := time.Since(start)
	clk.Set(day0.Add(48 * time.Hour))
	if !forwardingtest.BenchWait(10*time.Minute, func() bool { return s.archived.Load() >= int64(n) }) {
		b.Fatalf("archived %d of %d events", s.archived.Load(), n)
	}
	elapsed = time.Since(start)
	b.StopTimer()
	b.Logf("%d events: filed in %s, written %s later", n, filedAt.Round(time.Millisecond), (elapsed - filedAt).Round(time.Millisecond))
	liveOverBase = overBase()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed, liveOverBase
}

func BenchmarkArchiveLocal(b *testing.B) {
	c := benchCluster(b)
	jsonBytes := benchPreload(b, c, b.N, benchAccounts)
	elapsed, live := benchArchive(b, c, b.N, "")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(jsonBytes)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(benchutil.MB(live), "live-MB")
}

// BenchmarkArchiveS3 is BenchmarkArchiveLocal into gofakes3 over HTTP (the
// fake runs in this process too).
func BenchmarkArchiveS3(b *testing.B) {
	c := benchCluster(b)
	jsonBytes := benchPreload(b, c, b.N, benchAccounts)
	var fake *s3fake.Fake
	bk := s3Backend(&fake).newBucket(b)
	elapsed, live := benchArchive(b, c, b.N, bk.settings)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(jsonBytes)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(benchutil.MB(live), "live-MB")
}

// BenchmarkArchiveLargeDay archives a day of at least 2 GB of JSON over
// 10,000 accounts (b.N is ignored; run with -benchtime=1x).
func BenchmarkArchiveLargeDay(b *testing.B) {
	const events = 1_700_000
	c := benchCluster(b)
	jsonBytes := benchPreload(b, c, events, 10_000)
	if jsonBytes < 2e9 {
		b.Fatalf("the day holds %d bytes of JSON, want at least 2 GB", jsonBytes)
	}
	elapsed, live := benchArchiveSampled(b, c, events, "", true)
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(jsonBytes)/1e6, "day-MB")
	b.ReportMetric(benchutil.MB(live), "live-MB")
}
