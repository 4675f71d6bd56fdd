package archive

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PartitionConfig shapes how a partition's records are cut into groups.
type PartitionConfig struct {
	Window time.Duration // window length; divides 24h
	Grace  time.Duration // how long after its end a window takes late arrivals
	// LateFlushAfter is how long a group of late events (events of a closed
	// window) collects before it is written.
	LateFlushAfter time.Duration
	// MaxGroupBytes cuts a group early when its spool reaches this size, so
	// memory and object size stay bounded whatever the day's volume.
	MaxGroupBytes int64
	// MaxOpenGroups cuts the oldest group when one more would open (events
	// scattered over many windows).
	MaxOpenGroups int
	// MaxMetadataBytes bounds the checkpoint's metadata, which the brokers
	// refuse past offset.metadata.max.bytes (commits would then fail for
	// good). Windows archived past the committed offset each keep an entry
	// until the offset passes them, which a long-open group holds back: a
	// backfill over many days while today's group collects. When a new group
	// would leave too little room, the oldest open group is cut instead, so
	// the offset moves on. Zero means no bound.
	MaxMetadataBytes int
	// MaxFutureSkew: an event stamped further ahead of its record's time is
	// filed under the record's time, so a bad clock cannot hold a window open
	// for days.
	MaxFutureSkew time.Duration
	SpoolDir      string
}

// span is a flushed run of one window's records: every record of the window
// at offsets First..Last is archived.
type span struct{ First, Last int64 }

// OpenGroup is a group collecting events.
type OpenGroup struct {
	Window Window
	First  int64
	// Last is the cut, -1 until decided. A decided cut is part of the
	// checkpoint committed before any object of the group is written.
	Last   int64
	Late   bool
	Opened time.Time
	Spool  *Spool
}

// Group returns the group's identity; valid once the cut is decided.
func (g *OpenGroup) Group(partition int32) Group {
	return Group{Window: g.Window, Partition: partition, First: g.First, Last: g.Last}
}

// Partition is the cutting state of one partition, owned by one goroutine.
// It decides which records go into which group and when groups are cut; it
// knows nothing of Kafka or stores. Its Checkpoint (offset and metadata) is
// what makes a re-run after a crash cut exactly the same groups.
type Partition struct {
	cfg       PartitionConfig
	partition int32
	pos       int64 // next offset to process
	open      map[Window]*OpenGroup
	closing   []*OpenGroup // cut, being written; counted until Done
	spans     map[Window]span
	pending   map[Window]span // cuts decided by an earlier run, not yet re-opened
	// dueAt is the clock of the last Due: every group of a window whose
	// grace had passed by then is cut. It goes into the checkpoint so any
	// replica can tell which days the partition has closed.
	dueAt time.Time
}

// NewPartition resumes a partition at the committed offset with the
// committed metadata.
func NewPartition(cfg PartitionConfig, partition int32, committed int64, metadata string) (*Partition, error) {
	p := &Partition{cfg: cfg, partition: partition, pos: committed,
		open: map[Window]*OpenGroup{}, spans: map[Window]span{}, pending: map[Window]span{}}
	if err := p.restore(metadata); err != nil {
		return nil, err
	}
	return p, nil
}

// Position is the next offset the partition expects.
func (p *Partition) Position() int64 { return p.pos }

// WindowFor is the window an event is filed under (PartitionConfig.WindowFor).
func (p *Partition) WindowFor(eventTime, recordTime time.Time) Window {
	return p.cfg.WindowFor(eventTime, recordTime)
}

// Skip marks a record that needs no archiving (dead-lettered, or of an
// account that archives nowhere).
func (p *Partition) Skip(offset int64) { p.pos = max(p.pos, offset+1) }

// Add files one event. It returns the groups that are ready to be written:
// one cut by size or by its decided cut, or the oldest one evicted to keep
// MaxOpenGroups. The caller writes them with Cut and Done before adding
// more.
func (p *Partition) Add(now time.Time, offset int64, w Window, account, id string, eventTime time.Time, line []byte) ([]*OpenGroup, error) {
	var ready []*OpenGroup
	if sp, ok := p.spans[w]; ok && offset <= sp.Last {
		// Archived by an earlier run whose commit did not get past it.
		p.Skip(offset)
		return p.reached(ready), nil
	}
	g := p.open[w]
	if g == nil {
		if len(p.open) > 0 && (len(p.open) >= p.cfg.MaxOpenGroups || p.metadataCrowded()) {
			oldest := p.oldest()
			oldest.Last = p.pos - 1
			delete(p.open, oldest.Window)
			p.closing = append(p.closing, oldest)
			ready = append(ready, oldest)
		}
		sp, err := NewSpool(p.cfg.SpoolDir)
		if err != nil {
			return ready, err
		}
		g = &OpenGroup{Window: w, First: offset, Last: -1, Opened: now, Spool: sp,
			Late: p.Late(now, w)}
		if pc, ok := p.pending[w]; ok && pc.First == offset {
			g.Last = pc.Last
			delete(p.pending, w)
		}
		p.open[w] = g
	}
	if g.Last >= 0 && offset > g.Last {
		return ready, fmt.Errorf("partition %d: offset %d is past the cut %d of group %s", p.partition, offset, g.Last, g.Group(p.partition).Name())
	}
	if err := g.Spool.Add(account, id, offset, eventTime, line); err != nil {
		return ready, err
	}
	p.pos = max(p.pos, offset+1)
	if g.Last < 0 && g.Spool.Bytes() >= p.cfg.MaxGroupBytes {
		g.Last = offset
	}
	return p.reached(ready), nil
}

// reached moves groups whose decided cut has been read past to ready.
func (p *Partition) reached(ready []*OpenGroup) []*OpenGroup {
	for w, g := range p.open {
		if g.Last >= 0 && p.pos > g.Last {
			delete(p.open, w)
			p.closing = append(p.closing, g)
			ready = append(ready, g)
		}
	}
	slices.SortFunc(ready, func(a, b *OpenGroup) int { return int(a.First - b.First) })
	return ready
}

// maxCheckpointEntry is the longest entry of the checkpoint's metadata:
// ";" start "+" length ":" first "-" last ":" kind, with an 11-digit Unix
// start, a 5-digit length in seconds and 19-digit offsets (60 bytes).
const maxCheckpointEntry = 60

// MinMetadataBytes is the least MaxMetadataBytes that leaves room for
// maxOpen open groups: their entries, those of as many groups being
// written, and a few windows archived past the committed offset.
func MinMetadataBytes(maxOpen int) int {
	return len(metadataVersion) + maxDueEntry + (2*maxOpen+4)*maxCheckpointEntry
}

// maxDueEntry is the length of the checkpoint's ";due=<unix seconds>".
const maxDueEntry = 16

// metadataCrowded reports whether opening a group would leave the
// checkpoint's metadata too little room: every open group may yet gain an
// entry, and so may one being written.
func (p *Partition) metadataCrowded() bool {
	if p.cfg.MaxMetadataBytes <= 0 {
		return false
	}
	p.pruneSpans(p.checkpointOffset())
	entries := len(p.spans) + len(p.pending) + 2*(len(p.open)+1) + len(p.closing)
	return len(metadataVersion)+maxDueEntry+entries*maxCheckpointEntry > p.cfg.MaxMetadataBytes
}

func (p *Partition) oldest() *OpenGroup {
	var o *OpenGroup
	for _, g := range p.open {
		if o == nil || g.Opened.Before(o.Opened) || (g.Opened.Equal(o.Opened) && g.First < o.First) {
			o = g
		}
	}
	return o
}

// Due returns the groups to cut now: windows past their grace, late groups
// past LateFlushAfter, and groups whose decided cut has been read past. The
// cut of a group without one is the last offset read. The caller commits
// the checkpoint (which now names the cuts), writes each group and calls
// Done.
func (p *Partition) Due(now time.Time) []*OpenGroup {
	p.dueAt = now
	var ready []*OpenGroup
	for w, g := range p.open {
		due := g.Last >= 0 && p.pos > g.Last
		if g.Last < 0 {
			if g.Late {
				due = !now.Before(g.Opened.Add(p.cfg.LateFlushAfter))
			} else {
				due = !now.Before(w.End().Add(p.cfg.Grace))
			}
			if due {
				g.Last = p.pos - 1
			}
		}
		if due {
			delete(p.open, w)
			p.closing = append(p.closing, g)
			ready = append(ready, g)
		}
	}
	slices.SortFunc(ready, func(a, b *OpenGroup) int { return int(a.First - b.First) })
	return ready
}

// Done records a written group: its records are archived.
func (p *Partition) Done(g *OpenGroup) {
	p.closing = slices.DeleteFunc(p.closing, func(c *OpenGroup) bool { return c == g })
	sp, ok := p.spans[g.Window]
	if !ok || g.First < sp.First {
		sp.First = g.First
	}
	sp.Last = max(sp.Last, g.Last)
	p.spans[g.Window] = sp
	_ = g.Spool.Close()
}

// Abandon drops every open group's spool (the partition was revoked); the
// next owner re-reads from the checkpoint.
func (p *Partition) Abandon() {
	for _, g := range p.open {
		_ = g.Spool.Close()
	}
	for _, g := range p.closing {
		_ = g.Spool.Close()
	}
	clear(p.open)
	p.closing = nil
}

// OpenGroups is the number of groups collecting events.
func (p *Partition) OpenGroups() int { return len(p.open) }

// SpoolBytes is the size of the open groups' spools.
func (p *Partition) SpoolBytes() int64 {
	var n int64
	for _, g := range p.open {
		n += g.Spool.Bytes()
	}
	return n
}

// Late reports whether an event of window w read at now is late: its
// window's grace period is over.
func (p *Partition) Late(now time.Time, w Window) bool {
	return !now.Before(w.End().Add(p.cfg.Grace))
}

// Checkpoint is what to commit: the first offset not yet archived, and
// metadata naming the windows' archived spans at or past it and the decided
// cuts of groups not yet written.
func (p *Partition) Checkpoint() (offset int64, metadata string) {
	offset = p.checkpointOffset()
	p.pruneSpans(offset)
	var b strings.Builder
	b.WriteString(metadataVersion)
	write := func(w Window, sp span, kind byte) {
		fmt.Fprintf(&b, ";%d+%d:%d-%d:%c", w.Start.Unix(), int64(w.Length/time.Second), sp.First, sp.Last, kind)
	}
	for _, w := range sortedWindows(p.spans) {
		write(w, p.spans[w], 'd')
	}
	for _, w := range sortedWindows(p.pending) {
		write(w, p.pending[w], 'p')
	}
	for _, w := range sortedWindows(p.open) {
		if g := p.open[w]; g.Last >= 0 {
			write(w, span{g.First, g.Last}, 'p')
		}
	}
	for _, g := range p.closing {
		write(g.Window, span{g.First, g.Last}, 'p')
	}
	if !p.dueAt.IsZero() {
		fmt.Fprintf(&b, ";%s%d", dueEntry, p.dueAt.Unix())
	}
	return offset, b.String()
}

const (
	metadataVersion = "auditstream-archiver/1"
	dueEntry        = "due="
)

// ClosedThrough reads a committed checkpoint for the day digests: the last
// UTC day the partition has closed, that is every group of its windows is
// written and committed. That holds for a day whose end plus grace is no
// later than the checkpoint's Due clock (every group of it was cut then;
// events read later are late and go into addenda), and that ends no later
// than the first window of a decided cut not yet written. ok is false when
// the checkpoint tells nothing (no Due yet, or not this archiver's).
func ClosedThrough(metadata string, grace time.Duration) (day time.Time, ok bool) {
	parts := strings.Split(metadata, ";")
	if parts[0] != metadataVersion {
		return time.Time{}, false
	}
	var due, pending time.Time
	for _, e := range parts[1:] {
		if v, isDue := strings.CutPrefix(e, dueEntry); isDue {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			due = time.Unix(sec, 0).UTC()
			continue
		}
		if !strings.HasSuffix(e, ":p") {
			continue
		}
		st, _, _ := strings.Cut(e, "+")
		sec, err := strconv.ParseInt(st, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		if start := time.Unix(sec, 0).UTC(); pending.IsZero() || start.Before(pending) {
			pending = start
		}
	}
	if due.IsZero() {
		return time.Time{}, false
	}
	day = DayBefore(due.Add(-grace))
	if !pending.IsZero() {
		day = minTime(day, DayBefore(pending))
	}
	return day, true
}

// DayBefore is the last UTC day that ends no later than t.
func DayBefore(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Progress is a checkpoint without its Due clock: it changes only when the
// partition archives something or decides a cut.
func Progress(metadata string) string {
	if i := strings.LastIndex(metadata, ";"+dueEntry); i >= 0 {
		return metadata[:i]
	}
	return metadata
}

// checkpointOffset is the first offset not yet archived.
func (p *Partition) checkpointOffset() int64 {
	offset := p.pos
	for _, g := range p.open {
		offset = min(offset, g.First)
	}
	for _, g := range p.closing {
		offset = min(offset, g.First)
	}
	for _, pc := range p.pending {
		offset = min(offset, pc.First)
	}
	return offset
}

// pruneSpans forgets archived spans that end before offset: a re-run
// starts there and never sees them.
func (p *Partition) pruneSpans(offset int64) {
	for w, sp := range p.spans {
		if sp.Last < offset {
			delete(p.spans, w)
		}
	}
}

func sortedWindows[V any](m map[Window]V) []Window {
	ws := make([]Window, 0, len(m))
	for w := range m {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b Window) int { return a.Start.Compare(b.Start) })
	return ws
}

func (p *Partition) restore(metadata string) error {
	if metadata == "" {
		return nil
	}
	parts := strings.Split(metadata, ";")
	if parts[0] != metadataVersion {
		return fmt.Errorf("partition %d: committed metadata %q is not from this archiver", p.partition, truncateMeta(metadata))
	}
	for _, e := range parts[1:] {
		if strings.HasPrefix(e, dueEntry) {
			continue // the last owner's clock; this owner keeps its own
		}
		var start, secs, first, last int64
		var kind byte
		ws, rest, ok1 := strings.Cut(e, ":")
		rng, k, ok2 := strings.Cut(rest, ":")
		st, ln, ok3 := strings.Cut(ws, "+")
		f, l, ok4 := strings.Cut(rng, "-")
		var err error
		if ok1 && ok2 && ok3 && ok4 && len(k) == 1 {
			kind = k[0]
			start, err = strconv.ParseInt(st, 10, 64)
			if err == nil {
				secs, err = strconv.ParseInt(ln, 10, 64)
			}
			if err == nil {
				first, err = strconv.ParseInt(f, 10, 64)
			}
			if err == nil {
				last, err = strconv.ParseInt(l, 10, 64)
			}
		}
		if !ok1 || !ok2 || !ok3 || !ok4 || err != nil || secs <= 0 || first > last || (kind != 'd' && kind != 'p') {
			return fmt.Errorf("partition %d: committed metadata entry %q does not parse", p.partition, truncateMeta(e))
		}
		w := Window{Start: time.Unix(start, 0).UTC(), Length: time.Duration(secs) * time.Second}
		if kind == 'd' {
			p.spans[w] = span{first, last}
		} else {
			p.pending[w] = span{first, last}
		}
	}
	return nil
}

func truncateMeta(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
