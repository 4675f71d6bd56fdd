// Package kafkatest starts an in-process Kafka-protocol broker (kfake) on
// 127.0.0.1 with an ephemeral port for a test and stops it in t.Cleanup.
package kafkatest

import (
	"context"
	"testing"
	"time"

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
