package forwardingtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// StatusReader follows the pipeline's status topic as the destinations API
// does.
func (p *Pipeline) StatusReader() *connstatus.Reader {
	t := p.T
	t.Helper()
	r, err := connstatus.NewReader(context.Background(), p.Cfg.Kafka, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	return r
}

// WaitStatus waits, on each record the reader applies, until the merged
// status of conn satisfies cond.
func WaitStatus(t *testing.T, r *connstatus.Reader, conn, what string, cond func(connstatus.View) bool) connstatus.View {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		ch := r.Changed()
		if v := r.Connection(conn); cond(v) {
			return v
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s of %s; last %+v", what, conn, r.Connection(conn))
		}
	}
}

// StatusTopicBytes returns every record of the status topic, key and value.
func (p *Pipeline) StatusTopicBytes() string {
	t := p.T
	t.Helper()
	cl := p.Cluster.Client(kgo.ConsumeTopics(p.Cfg.Kafka.Topics.Status.Name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kafka.EndOffsets(ctx, cl, p.Cfg.Kafka.Topics.Status.Name, "status topic", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	read := map[int32]int64{}
	for !reachedEnds(read, ends) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("status topic not read to its end: %v", ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			read[r.Partition] = r.Offset + 1
			b.Write(r.Key)
			b.Write(r.Value)
		})
	}
	return b.String()
}

func reachedEnds(read, ends map[int32]int64) bool {
	for p, end := range ends {
		if read[p] < end {
			return false
		}
	}
	return true
}
