package archiver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/internal/sink"
)

// Dead-letter reasons of the archiver.
const (
	reasonDecode        = "decode_failed"
	reasonStorageFailed = "storage_failed"
)

// worker owns one partition: it files records into groups, writes groups
// when they are cut and commits the partition's checkpoint. Everything
// about a partition happens on its goroutine, so the cutting state needs no
// lock.
type worker struct {
	s     *Service
	part  int32
	label string
	topic string
	p     *archive.Partition
	recs  chan []*kgo.Record

	ctx          context.Context
	cancel       context.CancelFunc
	quit         chan struct{}
	done         chan struct{}
	once         sync.Once
	commitOnStop bool

	// digestsDone is closed when the digest writer this worker runs (on
	// partition 0) has stopped; nil on other partitions.
	digestsDone chan struct{}

	// lastOffset and lastMeta are the last commit's; the worker writes
	// them under statusMu, which /status, on the HTTP server's goroutine,
	// reads them under.
	statusMu   sync.Mutex
	lastOffset int64
	lastMeta   string
	lastCommit time.Time
	buf        []byte
}

func newWorker(s *Service, part int32, p *archive.Partition) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	return &worker{s: s, part: part, label: strconv.Itoa(int(part)), topic: s.cfg.Kafka.Topics.Events.Name, p: p,
		recs: make(chan []*kgo.Record, 4), ctx: ctx, cancel: cancel, quit: make(chan struct{}), done: make(chan struct{}),
		lastOffset: -1}
}

// stop ends the worker: groups being written are abandoned (the next owner
// re-reads them from the checkpoint and writes the same objects), and with
// commit the current checkpoint is committed first.
func (w *worker) stop(commit bool) {
	w.once.Do(func() {
		w.commitOnStop = commit
		close(w.quit)
		w.cancel()
	})
}

func (w *worker) run() {
	defer close(w.done)
	defer func() {
		if w.digestsDone != nil {
			w.cancel()
			<-w.digestsDone
		}
	}()
	defer func() {
		w.p.Abandon()
		w.s.metrics.openGroups.DeleteLabelValues(w.label)
		w.s.metrics.spoolBytes.DeleteLabelValues(w.label)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.quit:
			if w.commitOnStop {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := w.commit(ctx); err != nil {
					w.s.log.Warn("commit on release", zap.Int32("partition", w.part), zap.Error(err))
				}
				cancel()
			}
			return
		case recs := <-w.recs:
			for _, r := range recs {
				if err := w.record(r); err != nil {
					w.abort(err)
					return
				}
			}
			w.s.filed.Add(int64(len(recs)))
		case <-tick.C:
			if err := w.writeGroups(w.p.Due(w.s.now())); err != nil {
				w.abort(err)
				return
			}
			if time.Since(w.lastCommit) >= w.s.cfg.Archive.CommitInterval {
				if err := w.commit(w.ctx); err != nil && w.ctx.Err() == nil {
					w.s.log.Warn("commit", zap.Int32("partition", w.part), zap.Error(err))
				}
			}
		}
		w.s.metrics.openGroups.WithLabelValues(w.label).Set(float64(w.p.OpenGroups()))
		w.s.metrics.spoolBytes.WithLabelValues(w.label).Set(float64(w.p.SpoolBytes()))
	}
}

// abort ends the worker on an error it cannot get past (the partition was
// taken away, or the spool disk failed). Nothing past the last checkpoint is
// lost: it is read again by whoever owns the partition next.
func (w *worker) abort(err error) {
	if w.ctx.Err() != nil {
		return
	}
	w.s.log.Error("partition stopped", zap.Int32("partition", w.part), zap.Error(err))
	w.s.fail(fmt.Errorf("partition %d: %w", w.part, err))
}

func (w *worker) record(r *kgo.Record) error {
	if r.Offset < w.p.Position() {
		return nil // already filed (a re-delivered fetch)
	}
	// The same filing as `auditctl archive rebuild`: one function decides
	// account, window and bytes for both.
	routes := w.s.watcher.Current().ForType(StorageType)
	f, ok, err := w.p.FileRecord(r, func(account string) bool { return len(routes.Route(account)) > 0 }, w.buf)
	if err != nil {
		if err := w.deadLetter(r, "", reasonDecode, err); err != nil {
			return err
		}
		w.p.Skip(r.Offset)
		return nil
	}
	if !ok {
		w.s.metrics.unrouted.Inc()
		w.p.Skip(r.Offset)
		return nil
	}
	w.buf = f.Line
	now := w.s.now()
	if w.p.Late(now, f.Window) {
		w.s.metrics.lateEvents.Inc()
	}
	ready, err := w.p.Add(now, r.Offset, f.Window, f.Account, f.ID, f.Time, f.Line)
	if err != nil {
		return err
	}
	return w.writeGroups(ready)
}

// writeGroups writes cut groups: first the checkpoint naming their cuts is
// committed, so a re-run cuts the same groups; then every account's object
// and manifest; then the checkpoint past them.
func (w *worker) writeGroups(groups []*archive.OpenGroup) error {
	if len(groups) == 0 {
		return nil
	}
	if err := w.commitUntilDone(); err != nil {
		return err
	}
	for _, g := range groups {
		start := time.Now()
		if err := w.writeGroup(g); err != nil {
			return err
		}
		w.p.Done(g)
		w.s.metrics.flushLatency.Observe(time.Since(start).Seconds())
		reason := "window"
		if g.Late {
			reason = "late"
		}
		w.s.metrics.windowsClosed.WithLabelValues(reason).Inc()
		w.s.log.Info("group written", zap.Int32("partition", w.part), zap.String("group", g.Group(w.part).Name()),
			zap.Int("events", g.Spool.Len()), zap.Bool("late", g.Late), zap.Duration("took", time.Since(start)))
	}
	return w.commitUntilDone()
}

func (w *worker) writeGroup(g *archive.OpenGroup) error {
	group := g.Group(w.part)
	batches, err := g.Spool.Partition()
	if err != nil {
		return err
	}
	eg, ctx := errgroup.WithContext(w.ctx)
	eg.SetLimit(w.s.cfg.Archive.UploadConcurrency)
	for _, b := range batches {
		eg.Go(func() error {
			select {
			case w.s.uploads <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			defer func() { <-w.s.uploads }()
			return w.writeAccount(ctx, g, group, b)
		})
	}
	return eg.Wait()
}

func (w *worker) writeAccount(ctx context.Context, g *archive.OpenGroup, group archive.Group, b archive.AccountBatch) error {
	targets := w.s.targets(b.Account)
	if len(targets) == 0 {
		// The route was removed while the group collected.
		w.s.metrics.unrouted.Add(float64(b.Len()))
		return nil
	}
	// One object for the targets that take every event whole, one for each
	// policy (a storage profile's filter and redaction) among the others.
	objs := map[string]archive.Object{}
	for _, t := range targets {
		if t.PolicyErr != nil {
			continue // put retries, then dead-letters
		}
		version := t.Policy.Version()
		obj, ok := objs[version]
		if !ok {
			f, err := os.CreateTemp(w.s.cfg.Archive.SpoolDir, "object-*.json.gz")
			if err != nil {
				return fmt.Errorf("create object file: %w", err)
			}
			_ = os.Remove(f.Name())
			defer f.Close()
			bw := bufio.NewWriterSize(f, 256<<10)
			stats, err := g.Spool.BuildWith(b, bw, archive.PolicyLine(t.Policy))
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				return fmt.Errorf("build object of %s: %w", b.Account, err)
			}
			if len(objs) == 0 {
				// every object of the batch leaves out the same duplicates
				w.s.metrics.duplicates.Add(float64(stats.Duplicates))
			}
			obj = archive.Object{Body: f, Stats: stats}
			objs[version] = obj
		}
		if obj.Stats.Filtered > 0 {
			w.s.health.Filtered(t.Name, obj.Stats.Filtered)
		}
	}
	for _, t := range targets {
		if err := w.put(ctx, t, b, g, group, objs[t.Policy.Version()]); err != nil {
			return err
		}
	}
	return nil
}

// put writes one object to one target, retrying failures with backoff for up
// to storage_retry_for; past that the account's events of the group go to
// the dead-letter topic so other accounts are not held up.
func (w *worker) put(ctx context.Context, t archive.Target, b archive.AccountBatch, g *archive.OpenGroup, group archive.Group, obj archive.Object) error {
	backoff := sink.Backoff{Initial: 200 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}
	deadline := time.Now().Add(w.s.cfg.Archive.StorageRetryFor)
	for attempt := 0; ; attempt++ {
		start := time.Now()
		var res archive.PutResult
		err := t.PolicyErr // the profile's policy cannot be built (its key unreadable)
		if err == nil {
			res, err = w.s.writer.Put(ctx, t, b.Account, group, g.Late, obj)
		}
		if err == nil {
			w.s.metrics.uploadLatency.WithLabelValues(t.Name).Observe(time.Since(start).Seconds())
			outcome := "created"
			if res.Existed {
				outcome = "existed"
			}
			w.s.metrics.objects.WithLabelValues(t.Name, outcome).Inc()
			if !res.Existed {
				w.s.metrics.objectBytes.WithLabelValues(t.Name).Add(float64(obj.Stats.Size))
			}
			w.s.metrics.events.WithLabelValues(t.Name).Add(float64(obj.Stats.Records))
			w.s.archived.Add(obj.Stats.Records)
			w.s.health.Success(t.Name, obj.Stats.Records)
			if res.Conflict {
				w.s.metrics.conflicts.WithLabelValues(t.Name).Inc()
				w.s.log.Error("ARCHIVE CONFLICT: an object with different content already exists under the expected name; it was left untouched and this copy was written beside it",
					zap.String("connection", t.Name), zap.String("account", b.Account), zap.String("expected_key", archive.ObjectKey(b.Account, group)),
					zap.String("written_key", res.Key), zap.String("store", t.Store.Describe()))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.s.metrics.storageErrors.WithLabelValues(t.Name).Inc()
		w.s.health.Failure(t.Name, err)
		if time.Now().After(deadline) {
			w.s.log.Error("storage keeps failing: dead-lettering the account's events of this group",
				zap.String("connection", t.Name), zap.String("account", b.Account), zap.String("group", group.Name()),
				zap.Int("events", b.Len()), zap.Error(err))
			// in the profile's form: what its filter leaves out is done
			// with, what its redaction removes is not written here either
			transform := archive.PolicyLine(t.Policy)
			var buf []byte
			return g.Spool.Each(b, func(offset int64, line []byte) error {
				if transform != nil {
					out, keep, terr := transform(line, buf[:0])
					if terr != nil {
						return terr
					}
					if !keep {
						return nil
					}
					line, buf = out, out
				}
				src := &kgo.Record{Key: []byte(b.Account), Value: line, Offset: offset,
					Headers: []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeJSON)}}}
				return w.deadLetterPolicy(src, t.Name, reasonStorageFailed, err, t.Policy.Version())
			})
		}
		wait := backoff.Delay(attempt, 0)
		w.s.log.Warn("storage write failed; retrying", zap.String("connection", t.Name), zap.String("account", b.Account),
			zap.String("key", archive.ObjectKey(b.Account, group)), zap.Int("attempt", attempt+1), zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// deadLetter writes a record to the dead-letter topic with the reason in its
// headers, retrying until Kafka takes it: a record is only skipped once its
// copy is safe.
func (w *worker) deadLetter(src *kgo.Record, conn, reason string, cause error) error {
	return w.deadLetterPolicy(src, conn, reason, cause, "")
}

// deadLetterPolicy is deadLetter for a record in the form of the policy
// with version policy ("" for a record as it came).
func (w *worker) deadLetterPolicy(src *kgo.Record, conn, reason string, cause error, policy string) error {
	dl := deadletter.Letter{
		Topic: w.s.cfg.Kafka.Topics.DeadLetter.Name, Source: src,
		SourceTopic: w.topic, SourcePartition: w.part, SourceOffset: src.Offset,
		Consumer: Name, Connection: conn, Reason: reason, Cause: cause, Policy: policy,
	}
	w.s.log.Warn("dead-lettering record", zap.String("reason", reason), zap.Int32("source_partition", w.part),
		zap.Int64("source_offset", src.Offset), zap.String("connection", conn), zap.String("error", dl.ErrorText()))
	rec := dl.Record()
	if err := w.untilDone("write to dead-letter topic", func() error { return w.s.cl.ProduceSync(w.ctx, rec).FirstErr() }); err != nil {
		return err
	}
	w.s.metrics.deadLettered.WithLabelValues(reason).Inc()
	if conn != "" {
		w.s.health.DeadLettered(conn, 1)
	}
	return nil
}

func (w *worker) commitUntilDone() error {
	return w.untilDone("commit", func() error { return w.commit(w.ctx) })
}

// untilDone runs op until it succeeds or the partition stops, waiting
// longer after each failure (up to 5 s).
func (w *worker) untilDone(what string, op func() error) error {
	backoff := sink.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.2}
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		wait := backoff.Delay(attempt, 0)
		w.s.log.Warn(what+" failed; retrying", zap.Int32("partition", w.part), zap.Int("attempt", attempt+1), zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-w.ctx.Done():
			return w.ctx.Err()
		case <-time.After(wait):
		}
	}
}

// commit commits the partition's checkpoint: the first offset not yet
// archived, with the cuts and archived spans in the commit's metadata.
func (w *worker) commit(ctx context.Context) error {
	offset, meta := w.p.Checkpoint()
	if offset < 0 || (offset == w.lastOffset && meta == w.lastMeta) {
		w.lastCommit = time.Now()
		return nil
	}
	pre := kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			for j := range req.Topics[i].Partitions {
				if req.Topics[i].Topic == w.topic && req.Topics[i].Partitions[j].Partition == w.part {
					req.Topics[i].Partitions[j].Metadata = &meta
				}
			}
		}
		return nil
	})
	var cerr error
	w.s.cl.CommitOffsetsSync(pre, map[string]map[int32]kgo.EpochOffset{w.topic: {w.part: {Epoch: -1, Offset: offset}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
						cerr = e
					}
				}
			}
		})
	if errors.Is(cerr, kerr.OffsetMetadataTooLarge) {
		return fmt.Errorf("commit partition %d at %d with %d bytes of metadata: %w (set archive.offset_metadata_max_bytes to the brokers' offset.metadata.max.bytes)", w.part, offset, len(meta), cerr)
	}
	if cerr != nil {
		return fmt.Errorf("commit partition %d at %d: %w", w.part, offset, cerr)
	}
	w.statusMu.Lock()
	w.lastOffset, w.lastMeta = offset, meta
	w.statusMu.Unlock()
	w.lastCommit = time.Now()
	return nil
}

// status is one partition's state for /status.
type status struct {
	Partition  int32  `json:"partition"`
	Position   int64  `json:"position"`
	OpenGroups int    `json:"open_groups"`
	Committed  int64  `json:"committed"`
	Checkpoint string `json:"checkpoint"`
}

func (s *Service) serveStatus(rw http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := make([]status, 0, len(s.workers))
	for p, w := range s.workers {
		w.statusMu.Lock()
		out = append(out, status{Partition: p, Committed: w.lastOffset, Checkpoint: w.lastMeta})
		w.statusMu.Unlock()
	}
	s.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(struct {
		Partitions []status `json:"partitions"`
	}{out})
}
