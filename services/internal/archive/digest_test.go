package archive_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/objstore"
)

// putGroup writes one group of n events of acct on the given day.
func putGroup(t *testing.T, w *archive.Writer, st objstore.Store, acct string, d time.Time, first int64, n int, late bool) {
	t.Helper()
	sp, err := archive.NewSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for i := range n {
		id := fmt.Sprintf("%s-%d", acct, first+int64(i))
		if err := sp.Add(acct, id, first+int64(i), d, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	batches, err := sp.Partition()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	stats, err := sp.Build(batches[0], &buf)
	if err != nil {
		t.Fatal(err)
	}
	g := archive.Group{Window: archive.WindowOf(d, 24*time.Hour), Partition: 1, First: first, Last: first + int64(n) - 1}
	if _, err := w.Put(context.Background(), archive.Target{Name: "t", Store: st}, acct, g, late, archive.Object{Body: bytes.NewReader(buf.Bytes()), Stats: stats}); err != nil {
		t.Fatal(err)
	}
}

func kindsOf(rep *archive.Report) map[string][]string {
	out := map[string][]string{}
	for _, p := range rep.Problems {
		out[p.Kind] = append(out[p.Kind], p.Key)
	}
	return out
}

func TestDigestsProveDaysComplete(t *testing.T) {
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer := archive.NewSigner(priv)
	dir, st := writeArchive(t, signer) // acc-a and acc-b on day and day+1
	tg := archive.Target{Name: "t", Store: st}
	dg := archive.NewDigester(signer)
	verify := func(opts archive.VerifyOptions) *archive.Report {
		t.Helper()
		opts.PublicKey = pub
		rep, err := archive.Verify(ctx, st, opts)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	for _, acct := range []string{"acc-a", "acc-b"} {
		// The chain starts on the first closed day it is asked for.
		if keys, err := dg.Digest(ctx, tg, acct, day); err != nil || len(keys) != 1 || keys[0] != acct+"/_digests/2024/02/16.json" {
			t.Fatalf("digest of %s through %s: %v %v", acct, day, keys, err)
		}
		// Day+1 with events, day+2 without.
		if keys, err := dg.Digest(ctx, tg, acct, day.Add(48*time.Hour)); err != nil || len(keys) != 2 {
			t.Fatalf("digest of %s through day+2: %v %v", acct, keys, err)
		}
		// Nothing new: nothing written.
		if keys, err := dg.Digest(ctx, tg, acct, day.Add(48*time.Hour)); err != nil || len(keys) != 0 {
			t.Fatalf("second pass wrote %v %v", keys, err)
		}
	}
	read := func(key string) *archive.Digest {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, key))
		if err != nil {
			t.Fatal(err)
		}
		d, err := archive.OpenDigest(b, pub)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d16, d18 := read("acc-a/_digests/2024/02/16.json"), read("acc-a/_digests/2024/02/18.json")
	if !d16.Start || d16.Previous != nil || d16.Events != 5 || len(d16.Objects) != 1 || d16.Empty || d16.ManifestHead == nil {
		t.Fatalf("first digest: %+v", d16)
	}
	if d18.Start || !d18.Empty || d18.Events != 0 || d18.Previous == nil || d18.Previous.Key != "acc-a/_digests/2024/02/17.json" {
		t.Fatalf("quiet day's digest: %+v", d18)
	}
	rep := verify(archive.VerifyOptions{})
	if !rep.OK() || rep.Digests != 6 {
		t.Fatalf("verify: %d digests, %v", rep.Digests, rep.Problems)
	}
	// A fresh digester (another process) reads the chain from the store.
	dg = archive.NewDigester(signer)
	w := archive.NewWriter(signer)
	putGroup(t, w, st, "acc-a", day.Add(5*time.Hour), 500, 3, true)
	rep = verify(archive.VerifyOptions{})
	if !rep.OK() {
		t.Fatalf("a manifest written after the newest digest is pending, not a problem: %v", rep.Problems)
	}
	keys, err := dg.Digest(ctx, tg, "acc-a", day.Add(48*time.Hour))
	if err != nil || !slices.Equal(keys, []string{"acc-a/_digests/2024/02/16.1.json"}) {
		t.Fatalf("late events: wrote %v %v, want the addendum of 2024-02-16", keys, err)
	}
	if a := read(keys[0]); a.Addendum != 1 || a.Events != 3 || a.Previous == nil || a.Previous.Key != "acc-a/_digests/2024/02/16.json" {
		t.Fatalf("addendum: %+v", a)
	}
	if rep := verify(archive.VerifyOptions{}); !rep.OK() || rep.Digests != 7 {
		t.Fatalf("verify with an addendum: %d digests %v", rep.Digests, rep.Problems)
	}
	// Days after the newest digest are expected once due.
	rep = verify(archive.VerifyOptions{Now: day.Add(4*24*time.Hour + 2*time.Hour), DigestDue: time.Hour})
	if k := kindsOf(rep); !slices.Equal(k[archive.ProblemDigestMissing], []string{"acc-a/_digests/2024/02/19.json", "acc-b/_digests/2024/02/19.json"}) || len(rep.Problems) != 2 {
		t.Fatalf("a due day without digest: %v", rep.Problems)
	}
	// The next day's digest names the chain's head, past the addendum's
	// manifest: from now on a deleted addendum shows.
	if keys, err := dg.Digest(ctx, tg, "acc-a", day.Add(72*time.Hour)); err != nil || len(keys) != 1 {
		t.Fatalf("day+3: %v %v", keys, err)
	}

	tamper := []struct {
		name   string
		change func(t *testing.T)
		kind   string
		key    string
	}{
		{"the newest manifests and their objects deleted together", func(t *testing.T) {
			for _, sub := range []string{"acc-b/_manifests", "acc-b/2024/02/17"} {
				entries, _ := os.ReadDir(filepath.Join(dir, sub))
				for _, e := range entries {
					if sub == "acc-b/2024/02/17" || strings.Contains(e.Name(), "20240217") {
						if err := os.Remove(filepath.Join(dir, sub, e.Name())); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}, archive.ProblemDigestObjects, "acc-b/2024/02/17/"},
		{"a day's digest deleted", func(t *testing.T) {
			if err := os.Remove(filepath.Join(dir, "acc-b/_digests/2024/02/17.json")); err != nil {
				t.Fatal(err)
			}
		}, archive.ProblemDigestMissing, "acc-b/_digests/2024/02/17.json"},
		{"a digest changed", func(t *testing.T) {
			p := filepath.Join(dir, "acc-b/_digests/2024/02/16.json")
			b, _ := os.ReadFile(p)
			b = bytes.Replace(b, []byte(`"events": 5`), []byte(`"events": 4`), 1)
			_ = os.Remove(p)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, archive.ProblemDigest, "acc-b/_digests/2024/02/16.json"},
		{"an addendum deleted", func(t *testing.T) {
			if err := os.Remove(filepath.Join(dir, "acc-a/_digests/2024/02/16.1.json")); err != nil {
				t.Fatal(err)
			}
		}, archive.ProblemDigestObjects, "acc-a/_manifests/0000000003-"},
	}
	for _, tc := range tamper {
		t.Run(tc.name, func(t *testing.T) {
			tc.change(t)
			rep := verify(archive.VerifyOptions{})
			k := kindsOf(rep)
			if !slices.ContainsFunc(k[tc.kind], func(key string) bool { return strings.HasPrefix(key, tc.key) }) {
				t.Fatalf("problems %v, want a %s naming %q", rep.Problems, tc.kind, tc.key)
			}
			t.Log(rep.Problems)
		})
	}
}

func TestClosedThroughReadsTheCheckpoint(t *testing.T) {
	due := day.Add(25 * time.Hour).Unix()
	for _, c := range []struct {
		meta string
		want time.Time
		ok   bool
	}{
		{fmt.Sprintf("auditstream-archiver/1;due=%d", due), day, true},
		// A cut of day's window decided and not yet written holds the day.
		{fmt.Sprintf("auditstream-archiver/1;%d+86400:10-20:p;due=%d", day.Unix(), due), day.Add(-24 * time.Hour), true},
		// A written span does not.
		{fmt.Sprintf("auditstream-archiver/1;%d+86400:10-20:d;due=%d", day.Unix(), due), day, true},
		// Before the grace has passed the day is open.
		{fmt.Sprintf("auditstream-archiver/1;due=%d", day.Add(24*time.Hour+10*time.Minute).Unix()), day.Add(-24 * time.Hour), true},
		{"auditstream-archiver/1", time.Time{}, false},
		{"someone else's", time.Time{}, false},
	} {
		got, ok := archive.ClosedThrough(c.meta, 30*time.Minute)
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("ClosedThrough(%q) = %s %v, want %s %v", c.meta, got, ok, c.want, c.ok)
		}
	}
	if p := archive.Progress(fmt.Sprintf("auditstream-archiver/1;1+1:1-2:d;due=%d", due)); p != "auditstream-archiver/1;1+1:1-2:d" {
		t.Errorf("Progress kept the clock: %q", p)
	}
}

// A partition's own checkpoint, after a pass over due groups, tells which
// day it has closed.
func TestCheckpointCarriesTheDueClock(t *testing.T) {
	cfg := archive.PartitionConfig{Window: 24 * time.Hour, Grace: 30 * time.Minute, LateFlushAfter: time.Minute,
		MaxGroupBytes: 1 << 20, MaxOpenGroups: 4, SpoolDir: t.TempDir()}
	p, err := archive.NewPartition(cfg, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	now := day.Add(12 * time.Hour)
	if _, err := p.Add(now, 0, archive.WindowOf(day, cfg.Window), "acc", "id-0", day, []byte(`{"id":"id-0"}`)); err != nil {
		t.Fatal(err)
	}
	p.Due(now)
	_, meta := p.Checkpoint()
	if got, ok := archive.ClosedThrough(meta, cfg.Grace); !ok || !got.Equal(day.Add(-24*time.Hour)) {
		t.Fatalf("at noon: closed through %s %v (%q)", got, ok, meta)
	}
	ready := p.Due(day.Add(25 * time.Hour))
	if len(ready) != 1 {
		t.Fatalf("%d groups due", len(ready))
	}
	_, meta = p.Checkpoint()
	if got, ok := archive.ClosedThrough(meta, cfg.Grace); !ok || !got.Equal(day.Add(-24*time.Hour)) {
		t.Fatalf("cut, not written: closed through %s %v (%q)", got, ok, meta)
	}
	p.Done(ready[0])
	_, meta = p.Checkpoint()
	if got, ok := archive.ClosedThrough(meta, cfg.Grace); !ok || !got.Equal(day) {
		t.Fatalf("written: closed through %s %v (%q)", got, ok, meta)
	}
	// The next owner restores it.
	if _, err := archive.NewPartition(cfg, 0, 1, meta); err != nil {
		t.Fatalf("restore %q: %v", meta, err)
	}
}

// Turning archiving off ends an account's chain with a final digest; on
// again, a new chain starts, linked to it; verify expects no day between.
func TestDigestChainEndsAndStartsAgain(t *testing.T) {
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer := archive.NewSigner(priv)
	dir, st := writeArchive(t, signer)
	tg := archive.Target{Name: "t", Store: st}
	dg := archive.NewDigester(signer)
	step := func(what string, f func(context.Context, archive.Target, string, time.Time) ([]string, error), through time.Time, want ...string) {
		t.Helper()
		keys, err := f(ctx, tg, "acc-a", through)
		if err != nil || !slices.Equal(keys, want) {
			t.Fatalf("%s through %s: wrote %v (%v), want %v", what, through.Format(time.DateOnly), keys, err, want)
		}
	}
	step("digest", dg.Digest, day, "acc-a/_digests/2024/02/16.json")
	step("digest", dg.Digest, day.Add(24*time.Hour), "acc-a/_digests/2024/02/17.json")
	step("end", dg.End, day.Add(24*time.Hour)) // a day after the newest digest is not closed yet
	step("end", dg.End, day.Add(48*time.Hour), "acc-a/_digests/2024/02/18.json")
	dg = archive.NewDigester(signer) // what it knows comes from the store
	step("end again", dg.End, day.Add(72*time.Hour))
	step("on again, same day", dg.Digest, day.Add(48*time.Hour))
	step("on again", dg.Digest, day.Add(96*time.Hour), "acc-a/_digests/2024/02/20.json")
	read := func(key string) *archive.Digest {
		b, err := os.ReadFile(filepath.Join(dir, key))
		if err != nil {
			t.Fatal(err)
		}
		d, err := archive.OpenDigest(b, pub)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	final, again := read("acc-a/_digests/2024/02/18.json"), read("acc-a/_digests/2024/02/20.json")
	if !final.Final || final.Start || !final.Empty {
		t.Fatalf("final digest: %+v", final)
	}
	if !again.Start || again.Final || again.Previous == nil || again.Previous.Key != "acc-a/_digests/2024/02/18.json" {
		t.Fatalf("digest starting the chain again: %+v", again)
	}
	rep, err := archive.Verify(ctx, st, archive.VerifyOptions{PublicKey: pub, Accounts: []string{"acc-a"}, Now: day.Add(6*24*time.Hour + 2*time.Hour), DigestDue: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if k := kindsOf(rep); len(rep.Problems) != 1 || !slices.Equal(k[archive.ProblemDigestMissing], []string{"acc-a/_digests/2024/02/21.json"}) {
		t.Fatalf("problems %v, want only the due 21st missing (not the 19th, while archiving was off)", rep.Problems)
	}
	// Ended and not started again: nothing is due after the final digest.
	if err := os.Remove(filepath.Join(dir, "acc-a/_digests/2024/02/20.json")); err != nil {
		t.Fatal(err)
	}
	rep, err = archive.Verify(ctx, st, archive.VerifyOptions{PublicKey: pub, Accounts: []string{"acc-a"}, Now: day.Add(30 * 24 * time.Hour), DigestDue: time.Hour})
	if err != nil || !rep.OK() {
		t.Fatalf("an ended chain: %v %v", rep.Problems, err)
	}
}

// The days a verification reports, and the day each problem is of, are
// what a page of the account's archive days is built from.
func TestVerifyReportsDaysAndProblemDays(t *testing.T) {
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer := archive.NewSigner(priv)
	dir, st := writeArchive(t, signer) // acc-a and acc-b on day and day+1
	dg := archive.NewDigester(signer)
	if _, err := dg.Digest(ctx, archive.Target{Name: "t", Store: st}, "acc-a", day.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	removeFirst(t, dir, "acc-a/2024/02/17")
	rep, err := archive.Verify(ctx, st, archive.VerifyOptions{Accounts: []string{"acc-a"}, PublicKey: pub,
		From: day.Add(24 * time.Hour), To: day.Add(72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// The chain starts on day+2 (the first closed day it was asked for):
	// its digest is of a quiet day.
	if len(rep.Days) != 1 || !rep.Days[0].Day.Equal(day.Add(48*time.Hour)) || !rep.Days[0].Empty || !rep.Days[0].Digest ||
		rep.Days[0].KeyID != archive.KeyID(pub) || rep.Days[0].Events != 0 {
		t.Fatalf("days: %+v", rep.Days)
	}
	var missing []time.Time
	for _, p := range rep.Problems {
		d, ok := p.Day()
		if !ok {
			t.Errorf("problem of no day: %v", p)
		}
		if p.Kind == archive.ProblemMissing {
			missing = append(missing, d)
		}
	}
	if len(missing) != 1 || !missing[0].Equal(day.Add(24*time.Hour)) {
		t.Fatalf("missing objects on %v, want one on %s: %v", missing, day.Add(24*time.Hour), rep.Problems)
	}
	for _, c := range []struct {
		p    archive.Problem
		want string
	}{
		{archive.Problem{Key: "acc-a/_digests/2024/02/18.2.json", Detail: "x"}, "2024-02-18"},
		{archive.Problem{Key: "acc-a/_manifests/whatever", Detail: "day 2024-02-19: listed twice"}, "2024-02-19"},
		{archive.Problem{Key: "acc-a/notes.txt", Detail: "no day here"}, ""},
	} {
		d, ok := c.p.Day()
		if got := d.Format(time.DateOnly); ok != (c.want != "") || ok && got != c.want {
			t.Errorf("%v: day %s %v, want %q", c.p, got, ok, c.want)
		}
	}
}
