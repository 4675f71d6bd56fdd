package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// EndOffsets returns the end offset of each partition of topic, which a
// reader of a compacted topic must reach before it is ready. A topic just
// created may not be known to every broker yet, so retryable errors are
// retried (with backoff) until ctx ends; what names the topic in errors
// ("destinations topic").
func EndOffsets(ctx context.Context, cl *kgo.Client, topic, what string, log *zap.Logger) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	var ends kadm.ListedOffsets
	start, nextWarn := time.Now(), 5*time.Second
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		var err error
		ends, err = adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			break
		}
		if !IsRetryable(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("read the end of %s %s: %w", what, topic, err)
		}
		if time.Since(start) >= nextWarn {
			// A topic that never appears (bootstrap off, not created)
			// keeps the reader from being ready: say so, not only in debug.
			log.Warn(what+" not readable yet; not ready until it is (create it, or turn kafka.topics.bootstrap on)",
				zap.String("topic", topic), zap.Duration("waited", time.Since(start).Round(time.Second)), zap.Error(err))
			nextWarn += 30 * time.Second
		} else {
			log.Debug(what+" not readable yet", zap.String("topic", topic), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read the end of %s %s: %w", what, topic, err)
		case <-time.After(wait):
		}
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	if len(out) == 0 {
		return nil, fmt.Errorf("%s %s does not exist (create it, or turn kafka.topics.bootstrap on)", what, topic)
	}
	return out, nil
}
