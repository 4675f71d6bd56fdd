// Package partitions reads ranges of a topic's partitions directly, without
// a consumer group, so that reading moves no one's committed offsets, and
// finds the offsets that bound such ranges.
package partitions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Range is the offsets [Start, End) of one partition.
type Range struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Len is the number of offsets in the range.
func (r Range) Len() int64 { return max(r.End-r.Start, 0) }

// Total is the number of offsets in all ranges.
func Total(ranges map[int32]Range) int64 {
	var n int64
	for _, r := range ranges {
		n += r.Len()
	}
	return n
}

// Bounds returns each partition's oldest offset and end offset.
func Bounds(ctx context.Context, adm *kadm.Client, topic string) (map[int32]Range, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list the start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list the end offsets of %s: %w", topic, err)
	}
	out := map[int32]Range{}
	for p, s := range starts[topic] {
		if p < 0 {
			return nil, fmt.Errorf("topic %s does not exist", topic)
		}
		e, ok := ends.Lookup(topic, p)
		if err := errors.Join(s.Err, e.Err); err != nil || !ok {
			if err == nil {
				err = errors.New("no end offset")
			}
			return nil, fmt.Errorf("list the offsets of %s partition %d: %w", topic, p, err)
		}
		out[p] = Range{Start: s.Offset, End: e.Offset}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("topic %s does not exist", topic)
	}
	return out, nil
}

// Between returns, for each partition of topic, the range from the first
// record written at or after from to the first written at or after to (by
// the records' Kafka timestamps); a partition with nothing after a time
// gives its end offset for it.
func Between(ctx context.Context, adm *kadm.Client, topic string, from, to time.Time) (map[int32]Range, error) {
	start, err := atTime(ctx, adm, topic, from)
	if err != nil {
		return nil, err
	}
	end, err := atTime(ctx, adm, topic, to)
	if err != nil {
		return nil, err
	}
	out := map[int32]Range{}
	for p, s := range start {
		e, ok := end[p]
		if !ok {
			return nil, fmt.Errorf("list offsets of %s partition %d at %s: no answer", topic, p, to.Format(time.RFC3339))
		}
		out[p] = Range{Start: s, End: max(e, s)}
	}
	return out, nil
}

func atTime(ctx context.Context, adm *kadm.Client, topic string, t time.Time) (map[int32]int64, error) {
	listed, err := adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s at %s: %w", topic, t.Format(time.RFC3339), err)
	}
	out := map[int32]int64{}
	for p, l := range listed[topic] {
		if p < 0 {
			return nil, fmt.Errorf("topic %s does not exist", topic)
		}
		if l.Err != nil {
			return nil, fmt.Errorf("list offsets of %s partition %d at %s: %w", topic, p, t.Format(time.RFC3339), l.Err)
		}
		out[p] = l.Offset
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("topic %s does not exist", topic)
	}
	return out, nil
}

// Read reads each partition's range of topic directly, without a consumer
// group. It calls fn with every record in the ranges, in offset order within
// a partition, from the calling goroutine, and returns when every range is
// read, fn fails, or ctx ends.
//
// A partition is done at the first record at or past its End, so a range
// must end at an offset that exists or at the partition's end offset, as
// Bounds and Between give them.
func Read(ctx context.Context, kcfg kafka.Config, topic string, ranges map[int32]Range, fn func(*kgo.Record) error) error {
	pending := map[int32]Range{}
	offsets := map[int32]kgo.Offset{}
	for p, r := range ranges {
		if r.Len() > 0 {
			pending[p] = r
			offsets[p] = kgo.NewOffset().At(r.Start)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	cl, err := kafka.NewClient(kcfg, zap.NewNop(), nil,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		// A start that retention has removed meanwhile: begin at the
		// oldest record there is.
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
