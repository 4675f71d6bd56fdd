// Package kafkatest starts an in-process Kafka-protocol broker (kfake) on
// 127.0.0.1 with an ephemeral port for a test and stops it in t.Cleanup.
package kafkatest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/testwait"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster is a running broker.
type Cluster struct {
	*kfake.Cluster
	t testing.TB
}

// New starts a one-broker cluster. Extra kfake options (SeedTopics, DataDir,
// ...) apply after the defaults.
func New(t testing.TB, opts ...kfake.Opt) *Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.Ports(0)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Cluster{Cluster: c, t: t}
}

// Brokers returns the seed addresses.
func (c *Cluster) Brokers() []string { return c.ListenAddrs() }

// Client returns a client to the cluster that the test closes on cleanup.
func (c *Cluster) Client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Brokers()...)}, opts...)...)
	if err != nil {
		c.t.Fatalf("kafka client: %v", err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// Uncommitted is how many records of topics group has not committed: the
// sum over their partitions of the high watermark less the committed
// offset.
func (c *Cluster) Uncommitted(adm *kadm.Client, group string, topics ...string) (int64, error) {
	return c.uncommitted(adm, group, c.highWatermarks(topics))
}

func (c *Cluster) highWatermarks(topics []string) map[string]map[int32]int64 {
	marks := map[string]map[int32]int64{}
	for _, topic := range topics {
		marks[topic] = map[int32]int64{}
		for _, p := range c.PartitionInfos(topic) {
			marks[topic][p.Partition] = p.HighWatermark
		}
	}
	return marks
}

// uncommitted is how many records below marks, offsets by topic and
// partition, group has not committed.
func (c *Cluster) uncommitted(adm *kadm.Client, group string, marks map[string]map[int32]int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("fetch the offsets of group %s: %w", group, err)
	}
	var missing int64
	for topic, parts := range marks {
		for p, mark := range parts {
			committed := int64(0)
			if o, ok := offsets.Lookup(topic, p); ok && o.Err == nil {
				committed = o.At
			}
			missing += max(mark-committed, 0)
		}
	}
	return missing, nil
}

// WaitCommitted waits until group has committed every record of topics:
// the consumer is done with them, so whatever it does for them (deliver,
// park, dead-letter, archive) has happened. It waits for one topic after
// the other, each up to the records it holds when its turn comes: what
// the consumer writes to a later topic while it handles an earlier one (a
// parked copy on the retry topic) is waited for, and what it writes again
// and again (a copy parked anew each time it is read) does not hold it up.
func (c *Cluster) WaitCommitted(t testing.TB, timeout time.Duration, group string, topics ...string) {
	t.Helper()
	adm := kadm.NewClient(c.Client())
	defer adm.Close()
	var n int64
	var err error
	defer func() {
		if t.Failed() {
			t.Logf("%d records not committed (last error: %v)", n, err)
		}
	}()
	deadline := time.Now().Add(timeout)
	for _, topic := range topics {
		marks := c.highWatermarks([]string{topic})
		testwait.Until(t, fmt.Sprintf("group %s to commit every record of %s", group, topic), time.Until(deadline), func() bool {
			n, err = c.uncommitted(adm, group, marks)
			return err == nil && n == 0
		})
	}
}

// ReadAll consumes topic from the start until it has n records or timeout
// passes, and returns what it read.
func ReadAll(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("kafka consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// ReleaseOnCleanup deletes every topic when the test ends, before the
// broker stops. A stopped kfake cluster stays reachable from its group
// timers (session and rebalance timeouts, up to a minute) and with it the
// data it holds; benchmarks that load gigabytes, one cluster a run, would
// otherwise carry the previous runs' data in the heap they measure.
func (c *Cluster) ReleaseOnCleanup() {
	c.t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		meta := kmsg.NewPtrMetadataRequest()
		resp, err := meta.RequestWith(ctx, cl)
		if err != nil {
			return
		}
		del := kmsg.NewPtrDeleteTopicsRequest()
		for _, t := range resp.Topics {
			if t.Topic != nil {
				del.TopicNames = append(del.TopicNames, *t.Topic)
				tp := kmsg.NewDeleteTopicsRequestTopic()
				tp.Topic = t.Topic
				del.Topics = append(del.Topics, tp)
			}
		}
		del.TimeoutMillis = 10000
		_, _ = del.RequestWith(ctx, cl)
	})
}
