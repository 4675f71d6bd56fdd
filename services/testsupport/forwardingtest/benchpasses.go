package forwardingtest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchPartitions is the events topic's partition count in the forwarder
// benchmarks.
const BenchPartitions = 6

// BenchBroker starts a broker with a forwarder's topics (events,
// dead-letter, retry), created as bootstrap creates them, and returns the
// forwarder's default configuration (delivery defaults included) pointed at
// it, with quiet logs, an ephemeral status port and a destinations file in
// a directory of the benchmark's. The broker drops its topics when the
// benchmark ends.
func BenchBroker(b *testing.B, spec forwarding.Spec) (*kafkatest.Cluster, forwarding.Config) {
	b.Helper()
	cluster := kafkatest.New(b)
	cluster.ReleaseOnCleanup()
	cfg := forwarding.DefaultConfig(spec)
	cfg.Log.Level = "error"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = cluster.Brokers()
	cfg.Kafka.Topics.Events.Partitions = BenchPartitions
	cfg.Destinations.File = filepath.Join(b.TempDir(), "destinations.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cluster.Client(), cfg.Kafka.Topics.Events, cfg.Kafka.Topics.DeadLetter, cfg.Delivery.RetryTopic); err != nil {
		b.Fatal(err)
	}
	return cluster, cfg
}

// BenchConsumeCeiling is a forwarder's ceiling pass: a franz-go group
// consumer with the runtime's consumer and fetch options (no decoding, no
// delivery) polling b.N records pre-loaded into cluster, from a cold start
// (group join included, as for the forwarder). It reports events/s, the
// records' size and the time to the first record.
func BenchConsumeCeiling(b *testing.B, cluster *kafkatest.Cluster, cfg forwarding.Config, timeout time.Duration) {
	BenchPreload(b, cluster, cfg, b.N)
	dc := cfg.Delivery

	mem := StartBenchUsage(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.ConsumerGroup(dc.Group),
		kgo.ConsumeTopics(cfg.Kafka.Topics.Events.Name, dc.RetryTopic.Name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(dc.SessionTimeout),
		kgo.RebalanceTimeout(dc.RebalanceTimeout),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxBytes(delivery.FetchMaxBytes(dc)),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var (
		n          int
		valueBytes int64
		first      time.Duration
	)
	for n < b.N {
		fs := cl.PollRecords(ctx, 10000)
		if ctx.Err() != nil {
			b.Fatalf("consumed %d of %d records: %v", n, b.N, ctx.Err())
		}
		fs.EachError(func(t string, p int32, err error) { b.Fatalf("fetch %s/%d: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			n++
			valueBytes += int64(len(r.Value))
		})
		if first == 0 && n > 0 {
			first = time.Since(start)
		}
		cl.AllowRebalance()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mem.Stop(b)

	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(valueBytes)/float64(n), "record-B")
	b.ReportMetric(benchutil.Millis(first), "first-ms")
}
