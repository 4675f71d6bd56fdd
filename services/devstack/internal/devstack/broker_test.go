package devstack

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"
)

func TestBrokerKeepsRecordsAndOffsetsAcrossRestart(t *testing.T) {
	const topic, group = "persist.test", "persist-group"
	dir := filepath.Join(t.TempDir(), "kafka")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cl, err := StartBroker("127.0.0.1:0", dir, zaptest.NewLogger(t), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	addr := BrokerAddr(cl)
	if !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:0" {
		t.Fatalf("broker address %q", addr)
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 6 {
		v := fmt.Sprintf("record-%d", i)
		want = append(want, v)
		rec := &kgo.Record{Topic: topic, Partition: int32(i % 2), Key: []byte("k"), Value: []byte(v)}
		if err := producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	adm := kadm.NewClient(producer)
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: 2, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, group, offsets); err != nil {
		t.Fatalf("commit offsets: %v", err)
	}
	producer.Close()
	cl.Close()

	// Same data dir, a new port: everything is still there.
	cl2, err := StartBroker("127.0.0.1:0", dir, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer cl2.Close()
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(BrokerAddr(cl2)),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := map[int32][]string{}
	n := 0
	for n < len(want) {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before the timeout: %v", n, len(want), got)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			n++
		})
	}
	if g, w := strings.Join(got[0], ","), "record-0,record-2,record-4"; g != w {
		t.Errorf("partition 0 after restart = %s, want %s", g, w)
	}
	if g, w := strings.Join(got[1], ","), "record-1,record-3,record-5"; g != w {
		t.Errorf("partition 1 after restart = %s, want %s", g, w)
	}
	committed, err := kadm.NewClient(consumer).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	if o, ok := committed.Lookup(topic, 0); !ok || o.At != 2 {
		t.Errorf("committed offset after restart = %+v (found %v), want 2", o, ok)
	}
}

func TestStartBrokerRejectsBadAddress(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1:port", "127.0.0.1:70000"} {
		if _, err := StartBroker(addr, "", nil); err == nil {
			t.Errorf("StartBroker(%q) succeeded", addr)
		}
	}
}

func TestStartBrokerPortInUse(t *testing.T) {
	cl, err := StartBroker("127.0.0.1:0", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := StartBroker(BrokerAddr(cl), "", nil); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second broker on %s: %v, want address already in use", BrokerAddr(cl), err)
	}
}
