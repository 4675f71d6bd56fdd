package archiver

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/destinations"
)

// runDigests writes the accounts' day digests while this instance owns
// partition 0 of the events topic: one writer for the whole group, whatever
// the number of replicas. Every digest_interval it reads every partition's
// committed checkpoint; a day is closed when each partition has closed it
// (its Due clock is past the day's end and grace, and no decided cut of the
// day is unwritten) or is idle (nothing past its committed offset). It then
// writes each archived account's digests through that day, and addenda for
// objects of digested days written since. Work is skipped while neither
// the closed day nor any partition's progress has changed.
func (s *Service) runDigests(ctx context.Context) {
	tick := time.NewTicker(s.cfg.Archive.DigestInterval)
	defer tick.Stop()
	var done string // closed day and progress of the last complete pass
	for {
		through, progress, err := s.closedThrough(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("digests: read the partitions' checkpoints", zap.Error(err))
		case through.IsZero():
		default:
			// A changed route can start or end a chain.
			state := through.Format(time.DateOnly) + "|" + s.watcher.Current().ForType(StorageType).Version() + "|" + progress
			if state != done && s.writeDigests(ctx, through) {
				done = state
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// closedThrough is the last day every partition has closed (zero when one
// has not closed any yet), and the partitions' progress (their committed
// offsets and checkpoints without the clock).
func (s *Service) closedThrough(ctx context.Context) (time.Time, string, error) {
	topic, grace := s.cfg.Kafka.Topics.Events.Name, s.cfg.Archive.Grace
	// Committed offsets first, then the partitions' ends: a committed
	// offset that reaches a later end proves nothing was left to archive.
	committed, err := s.adm.FetchOffsets(ctx, s.cfg.Archive.Group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("fetch committed offsets: %w", err)
	}
	starts, err := s.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := s.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	through := archive.DayBefore(s.now().Add(-grace))
	var progress strings.Builder
	var parts []int32
	ends.Each(func(o kadm.ListedOffset) { parts = append(parts, o.Partition) })
	slices.Sort(parts)
	for _, p := range parts {
		end, _ := ends.Lookup(topic, p)
		start, _ := starts.Lookup(topic, p)
		c, ok := committed.Lookup(topic, p)
		ok = ok && c.Err == nil && c.At >= 0
		switch {
		case ok && c.At >= end.Offset, !ok && start.Offset >= end.Offset:
			// Idle: nothing to archive; its days close by the clock.
		case ok:
			day, known := archive.ClosedThrough(c.Metadata, grace)
			if !known {
				return time.Time{}, "", nil
			}
			through = minTime(through, day)
		default:
			return time.Time{}, "", nil // records, and no checkpoint yet
		}
		if ok {
			fmt.Fprintf(&progress, "%d:%d:%s|", p, c.At, archive.Progress(c.Metadata))
		}
	}
	if len(parts) == 0 {
		return time.Time{}, "", nil
	}
	return through, progress.String(), nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// writeDigests writes every archived account's digests through day, and
// ends the chains of accounts no longer archived to a bucket. It
// reports whether every account's are done; on a failure the next pass
// tries again.
func (s *Service) writeDigests(ctx context.Context, through time.Time) bool {
	table := s.watcher.Current().ForType(StorageType)
	accounts := map[string]bool{}
	for _, a := range table.Accounts() {
		accounts[a] = true
	}
	for _, a := range table.APIAccounts() {
		accounts[a] = true
	}
	// Every storage bucket is listed: a "*" route reaches accounts nobody
	// names, those with manifests in its buckets; and an account with
	// digests in a bucket no longer routed to it (its route removed, or the
	// connection disabled) has its chain ended.
	ok := true
	wildcard := wildcardConnections(table)
	ended := map[*destinations.Connection][]string{}
	for _, c := range table.Connections() {
		st := s.stores.get(c)
		chains := map[string]bool{}
		for info, err := range st.List(ctx, "") {
			if err != nil {
				s.log.Warn("digests: list the bucket", zap.String("connection", c.Name), zap.String("store", st.Describe()), zap.Error(err))
				ok = false
				break
			}
			if ref, isManifest := archive.ParseManifestKey(info.Key); isManifest && slices.Contains(wildcard, c) && destinations.ValidAccountID(ref.Account) {
				accounts[ref.Account] = true
			}
			if ref, isDigest := archive.ParseDigestKey(info.Key); isDigest {
				chains[ref.Account] = true
			}
		}
		for acct := range chains {
			if !slices.ContainsFunc(table.Route(acct), func(r *destinations.Connection) bool { return r.Name == c.Name }) {
				ended[c] = append(ended[c], acct)
			}
		}
	}
	written := 0
	for _, acct := range slices.Sorted(maps.Keys(accounts)) {
		for _, c := range table.Route(acct) {
			keys, err := s.digester.Digest(ctx, archive.Target{Name: c.Name, Store: s.stores.get(c)}, acct, through)
			written += len(keys)
			if err != nil {
				if ctx.Err() != nil {
					return false
				}
				s.log.Warn("digests: write", zap.String("connection", c.Name), zap.String("account", acct),
					zap.String("through", through.Format(time.DateOnly)), zap.Error(err))
				ok = false
			}
		}
	}
	for c, accts := range ended {
		for _, acct := range accts {
			keys, err := s.digester.End(ctx, archive.Target{Name: c.Name, Store: s.stores.get(c)}, acct, through)
			written += len(keys)
			if err != nil {
				if ctx.Err() != nil {
					return false
				}
				s.log.Warn("digests: end the chain", zap.String("connection", c.Name), zap.String("account", acct), zap.Error(err))
				ok = false
			}
			if len(keys) > 0 {
				s.log.Info("digest chain ended: the account is no longer archived here", zap.String("connection", c.Name),
					zap.String("account", acct), zap.String("final", keys[len(keys)-1]))
			}
		}
	}
	s.metrics.digests.Add(float64(written))
	if written > 0 {
		s.log.Info("digests written", zap.String("through", through.Format(time.DateOnly)), zap.Int("digests", written), zap.Int("accounts", len(accounts)))
	}
	return ok
}

// wildcardConnections are the enabled connections of the enabled "*" routes.
func wildcardConnections(table *destinations.Table) []*destinations.Connection {
	var out []*destinations.Connection
	for _, r := range table.Routes() {
		if r.Account != destinations.Wildcard || !r.Enabled {
			continue
		}
		for _, n := range r.Connections {
			if c := table.Lookup(n); c != nil && c.Enabled && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}
