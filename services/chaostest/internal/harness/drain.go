package harness

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/services/chaostest/internal/check"
)

// The topics and groups of the pipeline, by their documented defaults.
const (
	eventsTopic = "audit.events"
	dlqTopic    = "audit.events.dlq"
)

var groups = map[string][]string{
	"auditstream-datadog":     {eventsTopic, "audit.events.retry.datadog"},
	"auditstream-eventbridge": {eventsTopic, "audit.events.retry.eventbridge"},
	"auditstream-otlp":        {eventsTopic, "audit.events.retry.otlp"},
	"auditstream-archiver":    {eventsTopic},
}

// lagging returns, for each group, how many records of its topics lie past
// its committed offsets.
func lagging(ctx context.Context, adm *kadm.Client) (map[string]int64, error) {
	topics := map[string]bool{}
	for _, ts := range groups {
		for _, t := range ts {
			topics[t] = true
		}
	}
	var names []string
	for t := range topics {
		names = append(names, t)
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	out := map[string]int64{}
	for g, ts := range groups {
		committed, err := adm.FetchOffsets(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("fetch offsets of %s: %w", g, err)
		}
		var lag int64
		for _, t := range ts {
			ends.Each(func(o kadm.ListedOffset) {
				if o.Topic != t {
					return
				}
				at := int64(0)
				if c, ok := committed.Lookup(t, o.Partition); ok && c.At > 0 {
					at = c.At
				}
				lag += max(o.Offset-at, 0)
			})
		}
		out[g] = lag
	}
	return out, nil
}

// drain waits until the checker holds every accepted event at each of its
// destinations and in the archive, and every group has committed the end
// of its topics (so no parked or uncommitted record can still be sent). It
// returns false when ctx ends first.
func drain(ctx context.Context, brokerAddr string, chk *check.Checker, archiveDir string, tl *timeline) (bool, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr))
	if err != nil {
		return false, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastPrint := time.Now()
	for {
		if err := chk.ScanArchive(archiveDir); err != nil {
			return false, err
		}
		done, ps := chk.Done()
		lag, lagErr := lagging(ctx, adm)
		caughtUp := lagErr == nil
		for _, l := range lag {
			caughtUp = caughtUp && l == 0
		}
		if done && caughtUp {
			tl.add("drained", "%s; every group committed the end of its topics", progressText(ps))
			return true, nil
		}
		if time.Since(lastPrint) >= 5*time.Second {
			lastPrint = time.Now()
			tl.add("draining", "%s; uncommitted records %s", progressText(ps), lagText(lag, lagErr))
		}
		select {
		case <-ctx.Done():
			tl.add("draining", "%s; uncommitted records %s", progressText(ps), lagText(lag, lagErr))
			return false, nil
		case <-tick.C:
		}
	}
}

func lagText(lag map[string]int64, err error) string {
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, g := range sortedKeys(lag) {
		parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(g, "auditstream-"), lag[g]))
	}
	return strings.Join(parts, ", ")
}

// scanTopics reads every record of the pipeline's topics (events, retry,
// dead letters) and has the checker look for raw tokens and secrets in
// them. It returns the smallest event record (key and value bytes), which
// sizes the in-flight bound, and what each topic held.
func scanTopics(ctx context.Context, brokerAddr string, chk *check.Checker) (int, string, error) {
	topics := []string{eventsTopic, dlqTopic, "audit.events.retry.datadog", "audit.events.retry.eventbridge", "audit.events.retry.otlp"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr))
	if err != nil {
		return 0, "", err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, "", fmt.Errorf("list end offsets: %w", err)
	}
	want := map[string]map[int32]kgo.Offset{}
	left := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset == 0 {
			return
		}
		if want[o.Topic] == nil {
			want[o.Topic] = map[int32]kgo.Offset{}
		}
		want[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		left++
	})
	if left == 0 {
		return 0, "no records", nil
	}
	end := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if end[o.Topic] == nil {
			end[o.Topic] = map[int32]int64{}
		}
		end[o.Topic][o.Partition] = o.Offset
	})
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr), kgo.ConsumePartitions(want))
	if err != nil {
		return 0, "", err
	}
	defer rd.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	minRecord := 0
	counts := map[string]int{}
	reasons := map[string]int{}
	for left > 0 {
		fs := rd.PollFetches(rctx)
		if rctx.Err() != nil {
			return 0, "", fmt.Errorf("read the topics back: %d partitions not read to their end", left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			counts[r.Topic]++
			chk.Scan("topic "+r.Topic, r.Value)
			for _, h := range r.Headers {
				chk.Scan("topic "+r.Topic, []byte(h.Value))
			}
			if r.Topic == dlqTopic {
				for _, h := range r.Headers {
					if h.Key == "auditstream-dlq-reason" {
						reasons[string(h.Value)]++
					}
				}
			}
			if r.Topic == eventsTopic {
				if n := len(r.Key) + len(r.Value); minRecord == 0 || n < minRecord {
					minRecord = n
				}
			}
			if r.Offset+1 == end[r.Topic][r.Partition] {
				left--
			}
		})
	}
	var parts []string
	for _, t := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%s %d", t, counts[t]))
	}
	for _, r := range sortedKeys(reasons) {
		parts = append(parts, fmt.Sprintf("dead letters %s %d", r, reasons[r]))
	}
	return minRecord, strings.Join(parts, ", "), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
