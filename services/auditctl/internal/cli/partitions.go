package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// offsetRange is the offsets [Start, End) of one partition.
type offsetRange struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

func (r offsetRange) len() int64 { return max(r.End-r.Start, 0) }

// topicBounds returns each partition's oldest offset and end offset.
func topicBounds(ctx context.Context, g *globals, adm *kadm.Client, topic string) (map[int32]offsetRange, error) {
	rctx, cancel := g.requestContext(ctx)
	defer cancel()
	starts, err := adm.ListStartOffsets(rctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list the start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(rctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list the end offsets of %s: %w", topic, err)
	}
	out := map[int32]offsetRange{}
	for p, s := range starts[topic] {
		e, ok := ends.Lookup(topic, p)
		if err := errors.Join(s.Err, e.Err); err != nil || !ok {
			if err == nil {
				err = errors.New("no end offset")
			}
			if p < 0 {
				return nil, fmt.Errorf("topic %s does not exist: %w", topic, err)
			}
			return nil, fmt.Errorf("list the offsets of %s partition %d: %w", topic, p, err)
		}
		out[p] = offsetRange{Start: s.Offset, End: e.Offset}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("topic %s does not exist", topic)
	}
	return out, nil
}

// readRanges reads each partition's range of topic directly, without a
// consumer group, so no group's offsets move. It calls fn with every record
// in the ranges, in offset order within a partition, from this goroutine,
// and returns when every range is read, fn fails, or ctx ends.
//
// A partition is done at the first record at or past its End; ranges must
// end at offsets that exist or at the partition's end offset.
func readRanges(ctx context.Context, cfg *Config, topic string, ranges map[int32]offsetRange, fn func(*kgo.Record) error) error {
	pending := map[int32]offsetRange{}
	offsets := map[int32]kgo.Offset{}
	for p, r := range ranges {
		if r.len() > 0 {
			pending[p] = r
			offsets[p] = kgo.NewOffset().At(r.Start)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	cl, err := kafka.NewClient(cfg.Kafka, zap.NewNop(), nil,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		// Records before a range's start that retention removed: begin at
		// the oldest there is.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(pending) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if !kafka.IsRetryable(err) {
				fetchErr = errors.Join(fetchErr, fmt.Errorf("read %s partition %d: %w", t, p, err))
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		var done []int32
		var fnErr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			r, ok := pending[fp.Partition]
			if !ok || fnErr != nil {
				return
			}
			for _, rec := range fp.Records {
				if rec.Offset >= r.End {
					break
				}
				if fnErr = fn(rec); fnErr != nil {
					return
				}
			}
			if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset >= r.End-1 {
				done = append(done, fp.Partition)
				delete(pending, fp.Partition)
			}
		})
		if fnErr != nil {
			return fnErr
		}
		if len(done) > 0 {
			cl.PauseFetchPartitions(map[string][]int32{topic: done})
		}
	}
	return nil
}
