package archive

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var day0 = time.Date(2024, 2, 16, 0, 0, 0, 0, time.UTC)

func testPartitionConfig(t *testing.T) PartitionConfig {
	return PartitionConfig{Window: 24 * time.Hour, Grace: time.Hour, LateFlushAfter: 10 * time.Minute,
		MaxGroupBytes: 1 << 20, MaxOpenGroups: 4, MaxFutureSkew: time.Hour, SpoolDir: t.TempDir()}
}

type feed struct {
	t   *testing.T
	p   *Partition
	cut []Group
}

// add files an event of account acct stamped at ts, read at now.
func (f *feed) add(now time.Time, offset int64, acct string, ts time.Time) {
	f.t.Helper()
	w := f.p.WindowFor(ts, now)
	ready, err := f.p.Add(now, offset, w, acct, fmt.Sprintf("id-%d", offset), ts, []byte(fmt.Sprintf(`{"id":"id-%d"}`, offset)))
	if err != nil {
		f.t.Fatal(err)
	}
	f.done(ready)
}

func (f *feed) tick(now time.Time) { f.done(f.p.Due(now)) }

func (f *feed) done(gs []*OpenGroup) {
	for _, g := range gs {
		f.cut = append(f.cut, g.Group(f.p.partition))
		f.p.Done(g)
	}
}

func TestPartitionCutsWindowsOnTimeWithoutNewRecords(t *testing.T) {
	p, err := NewPartition(testPartitionConfig(t), 3, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	f := &feed{t: t, p: p}
	f.add(day0.Add(23*time.Hour), 0, "a", day0.Add(23*time.Hour))
	f.add(day0.Add(23*time.Hour), 1, "b", day0.Add(22*time.Hour))
	f.add(day0.Add(24*time.Hour+time.Minute), 2, "a", day0.Add(24*time.Hour+time.Minute)) // next day
	f.add(day0.Add(24*time.Hour+2*time.Minute), 3, "a", day0.Add(23*time.Hour+59*time.Minute))
	if off, _ := p.Checkpoint(); off != 0 {
		t.Fatalf("checkpoint %d with day 0 open, want 0", off)
	}
	before := p.SpoolBytes()
	if before == 0 {
		t.Fatal("four events spooled, SpoolBytes is 0")
	}
	f.tick(day0.Add(24*time.Hour + 59*time.Minute))
	if len(f.cut) != 0 {
		t.Fatalf("cut %v inside the grace period", f.cut)
	}
	// No record arrives; the clock alone closes day 0.
	f.tick(day0.Add(25 * time.Hour))
	if len(f.cut) != 1 || f.cut[0].First != 0 || f.cut[0].Last != 3 || !f.cut[0].Window.Start.Equal(day0) {
		t.Fatalf("cut %+v, want day 0 offsets 0..3", f.cut)
	}
	if after := p.SpoolBytes(); after <= 0 || after >= before {
		t.Fatalf("SpoolBytes %d after cutting day 0, %d before: want only day 1's left", after, before)
	}
	off, meta := p.Checkpoint()
	if off != 2 {
		t.Fatalf("checkpoint %d, want 2 (day 1 opened there)", off)
	}
	if !strings.Contains(meta, fmt.Sprintf("%d+86400:0-3:d", day0.Unix())) {
		t.Fatalf("metadata %q does not keep day 0's archived span that straddles the checkpoint", meta)
	}
}

func TestPartitionLateEventsGetTheirOwnGroup(t *testing.T) {
	p, _ := NewPartition(testPartitionConfig(t), 0, 0, "")
	f := &feed{t: t, p: p}
	f.add(day0.Add(time.Hour), 0, "a", day0.Add(time.Hour))
	f.tick(day0.Add(25 * time.Hour))
	late := day0.Add(26 * time.Hour)
	f.add(late, 1, "a", day0.Add(2*time.Hour))
	f.tick(late.Add(9 * time.Minute))
	if len(f.cut) != 1 {
		t.Fatalf("late group cut before late_flush_after: %v", f.cut)
	}
	f.tick(late.Add(10 * time.Minute))
	if len(f.cut) != 2 || f.cut[1].First != 1 || f.cut[1].Last != 1 || !f.cut[1].Window.Start.Equal(day0) {
		t.Fatalf("late cut %+v, want a new day-0 group at offset 1", f.cut)
	}
	if ObjectKey("a", f.cut[0]) == ObjectKey("a", f.cut[1]) {
		t.Fatal("late object would reuse the window's object name")
	}
}

// A re-run from a checkpoint must cut exactly the groups of the first run,
// whatever the clock says and however many records arrived meanwhile.
func TestPartitionRerunFromCheckpointCutsTheSameGroups(t *testing.T) {
	cfg := testPartitionConfig(t)
	type rec struct {
		offset int64
		acct   string
		ts     time.Time
	}
	var recs []rec
	for i := range 40 {
		ts := day0.Add(time.Duration(i) * 50 * time.Minute) // spans two days
		if i%7 == 3 {
			ts = day0.Add(2 * time.Hour) // stragglers of day 0
		}
		recs = append(recs, rec{int64(i), fmt.Sprintf("acct-%d", i%3), ts})
	}
	first, _ := NewPartition(cfg, 1, 0, "")
	f1 := &feed{t: t, p: first}
	var crashAt int64 = -1
	var ckOffset int64
	var ckMeta string
	for _, r := range recs {
		now := r.ts.Add(0)
		if r.ts.Before(day0.Add(time.Duration(r.offset) * 50 * time.Minute)) {
			now = day0.Add(time.Duration(r.offset) * 50 * time.Minute)
		}
		f1.add(now, r.offset, r.acct, r.ts)
		before := len(f1.cut)
		f1.tick(now)
		if len(f1.cut) > before && crashAt < 0 {
			// Crash right after the first cut is decided and written, before
			// its checkpoint is committed: the re-run starts from the
			// checkpoint committed with the cut decided (written first).
			crashAt = r.offset
			ckOffset, ckMeta = checkpointWith(first, f1.cut[before:])
		}
	}
	f1.tick(day0.Add(72 * time.Hour))
	if crashAt < 0 {
		t.Fatal("no group was cut")
	}
	second, err := NewPartition(cfg, 1, ckOffset, ckMeta)
	if err != nil {
		t.Fatal(err)
	}
	f2 := &feed{t: t, p: second}
	late := day0.Add(72 * time.Hour) // the re-run happens much later
	for _, r := range recs[ckOffset:] {
		f2.add(late, r.offset, r.acct, r.ts)
	}
	f2.tick(late.Add(time.Hour))
	cutsAfter := map[string]bool{}
	for _, g := range f1.cut {
		if g.Last >= ckOffset {
			cutsAfter[g.Name()] = true
		}
	}
	for _, g := range f2.cut {
		if cutsAfter[g.Name()] {
			delete(cutsAfter, g.Name())
		}
	}
	// Every group of the first run that holds records at or past the
	// checkpoint and was already decided must come out identical.
	for _, g := range f1.cut {
		if g.Last >= ckOffset && g.First <= crashAt && cutsAfter[g.Name()] {
			t.Errorf("re-run did not reproduce group %s; re-run cut %v", g.Name(), names(f2.cut))
		}
	}
	// And no record is archived twice: re-run groups never overlap a
	// first-run group of the same window that was decided before the crash.
	for _, a := range f1.cut {
		if a.First > crashAt {
			continue
		}
		for _, b := range f2.cut {
			if a.Window == b.Window && a.Name() != b.Name() && b.First <= a.Last && a.First <= b.Last {
				t.Errorf("re-run group %s overlaps archived group %s", b.Name(), a.Name())
			}
		}
	}
}

// checkpointWith is the checkpoint committed between deciding cuts and
// writing them: the groups count as decided, not done.
func checkpointWith(p *Partition, cut []Group) (int64, string) {
	saved := p.spans
	p.spans = map[Window]span{}
	for w, s := range saved {
		p.spans[w] = s
	}
	for _, g := range cut {
		if s, ok := p.spans[g.Window]; ok && s.Last == g.Last {
			delete(p.spans, g.Window)
			if s.First < g.First {
				p.spans[g.Window] = span{s.First, g.First - 1}
			}
		}
		p.closing = append(p.closing, &OpenGroup{Window: g.Window, First: g.First, Last: g.Last})
	}
	off, meta := p.Checkpoint()
	p.closing = nil
	p.spans = saved
	return off, meta
}

func names(gs []Group) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Name()
	}
	return out
}

func TestPartitionSizeCutAndEviction(t *testing.T) {
	cfg := testPartitionConfig(t)
	cfg.MaxGroupBytes = 100
	cfg.MaxOpenGroups = 2
	p, _ := NewPartition(cfg, 0, 0, "")
	f := &feed{t: t, p: p}
	now := day0.Add(time.Hour)
	for i := range 10 {
		f.add(now, int64(i), "a", day0.Add(time.Hour)) // ~15 bytes a line
	}
	if len(f.cut) == 0 || f.cut[0].First != 0 {
		t.Fatalf("no size cut after 150 bytes with max 100: %v", f.cut)
	}
	n := len(f.cut)
	f.add(now, 10, "a", day0.Add(-24*time.Hour))
	f.add(now, 11, "a", day0.Add(-48*time.Hour)) // a third window: evicts the oldest
	if len(f.cut) != n+1 {
		t.Fatalf("opening a third window with max_open_groups 2 cut %d groups, want 1", len(f.cut)-n)
	}
}

func TestPartitionFutureEventsUseRecordTime(t *testing.T) {
	p, _ := NewPartition(testPartitionConfig(t), 0, 0, "")
	rt := day0.Add(5 * time.Hour)
	if w := p.WindowFor(day0.Add(30*24*time.Hour), rt); !w.Start.Equal(day0) {
		t.Fatalf("event a month ahead of its record filed under %s", w.Start)
	}
	if w := p.WindowFor(day0.Add(5*time.Hour+30*time.Minute), rt); !w.Start.Equal(day0) {
		t.Fatalf("event within the skew filed under %s", w.Start)
	}
}

func TestPartitionRejectsForeignMetadata(t *testing.T) {
	for _, meta := range []string{
		"something else",
		metadataVersion + ";x",
		metadataVersion + ";1+86400:5-3:d",
		metadataVersion + ";1+0:1-3:d",
		metadataVersion + ";1+86400:1-3:z",
		metadataVersion + ";" + strings.Repeat("9", 40) + "+86400:1-3:d",
	} {
		if _, err := NewPartition(testPartitionConfig(t), 0, 0, meta); err == nil {
			t.Errorf("metadata %q accepted", meta)
		}
	}
}

// A backfill files events of many past days while today's group stays open:
// each past day is archived past the committed offset, and its entry stays
// in the checkpoint until the offset passes it. The metadata must stay
// within the brokers' offset.metadata.max.bytes, or commits fail for good.
func TestPartitionMetadataStaysWithinBudget(t *testing.T) {
	run := func(budget int) (maxLen, todayGroups int) {
		cfg := testPartitionConfig(t)
		cfg.MaxOpenGroups = 16
		cfg.MaxMetadataBytes = budget
		p, err := NewPartition(cfg, 0, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		f := &feed{t: t, p: p}
		now := day0.Add(6 * time.Hour)
		var off int64
		for d := 1; d <= 300; d++ {
			f.add(now, off, "a", now) // today's traffic
			off++
			f.add(now, off, "a", day0.Add(-time.Duration(d)*24*time.Hour)) // the backfill
			off++
			now = now.Add(time.Minute)
			f.tick(now)
			if _, meta := p.Checkpoint(); len(meta) > maxLen {
				maxLen = len(meta)
			}
		}
		for _, g := range f.cut {
			if g.Window.Start.Equal(day0) {
				todayGroups++
			}
		}
		return maxLen, todayGroups
	}
	if maxLen, _ := run(0); maxLen <= 4096 {
		t.Fatalf("without a bound the metadata reached only %d bytes: the test does not exercise the bound", maxLen)
	}
	maxLen, todayGroups := run(4096)
	if maxLen > 4096 {
		t.Fatalf("metadata reached %d bytes, over the 4096 bound", maxLen)
	}
	if todayGroups == 0 {
		t.Fatal("today's group was never cut to make room")
	}
	t.Logf("metadata peaked at %d bytes; today's window was cut %d times", maxLen, todayGroups)
	if MinMetadataBytes(16) > 4096 {
		t.Fatalf("MinMetadataBytes(16) = %d: the default max_open_groups does not fit Kafka's default offset.metadata.max.bytes", MinMetadataBytes(16))
	}
}
