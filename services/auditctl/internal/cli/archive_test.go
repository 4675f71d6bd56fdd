package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/services/auditctl/internal/rebuild"
	"github.com/auditstream/auditstream/services/internal/archive"
)

// archivePartition puts acc-a and acc-b on partition 0 (their groups hold
// both), acc-c on 1 and acc-d on 2.
var archivePartition = map[string]int32{"acc-a": 0, "acc-b": 0, "acc-c": 1, "acc-d": 2}

// archived is a topic with two days of events and the archive the real
// archiver binary wrote of it into a local directory.
type archived struct {
	*testKafka
	dir      string // the storage connection's directory
	destFile string
	cfgFile  string // the archiver's own config file, given to auditctl too
	keyFile  string
	pub      ed25519.PublicKey
	day1     time.Time
	day2     time.Time
	// digestDay is the day of the digests the archiver wrote.
	digestDay time.Time
}

func newArchived(t *testing.T) *archived {
	t.Helper()
	bin := buildArchiver(t)
	a := &archived{testKafka: newTestKafka(t), dir: filepath.Join(t.TempDir(), "archive")}
	// Days in the past (the archiver runs on the real clock): every window
	// is closed, so each group is cut a second after it opens.
	a.day1 = time.Now().UTC().Truncate(24 * time.Hour).Add(-3 * 24 * time.Hour)
	a.day2 = a.day1.Add(24 * time.Hour)

	dir := t.TempDir()
	a.keyFile, _, a.pub = writeSigningKey(t, dir, "signing")
	a.destFile = storageDestinations(t, a.dir, filepath.Join(dir, "old"))
	// max_future_skew is 2h, not the default 1h: one event below depends on
	// it, so a rebuild that ignored the file would build other bytes.
	a.cfgFile = archiverConfig(t, a.testKafka, a.destFile, a.keyFile, "max_future_skew: 2h")

	var recs []*kgo.Record
	add := func(account, id string, eventTime, recordTime time.Time) {
		_, r := eventAt(t, account, id, archivePartition[account], eventTime)
		r.Timestamp = recordTime
		recs = append(recs, r)
	}
	for i := 0; i < 2*24*2; i++ {
		at := a.day1.Add(time.Duration(i)*30*time.Minute + 7*time.Minute)
		for _, acc := range slices.Sorted(maps.Keys(archivePartition)) {
			add(acc, fmt.Sprintf("%s-%03d", acc, i), at, at)
		}
	}
	// Stamped 90 minutes ahead of its record, across a window boundary:
	// with max_future_skew 2h it is filed under its own time (06:00), with
	// the default 1h it would go under its record's (03:00).
	add("acc-c", "acc-c-ahead", a.day1.Add(6*time.Hour+30*time.Minute), a.day1.Add(5*time.Hour))
	// A late arrival: an event of the first window of day 1 written on day 2.
	add("acc-a", "acc-a-late", a.day1.Add(time.Hour), a.day2.Add(10*time.Hour+time.Second))
	// Not an event: the archiver dead-letters it, a rebuild skips it.
	bad := malformed(2)
	bad.Timestamp = a.day2.Add(time.Hour + time.Second)
	recs = append(recs, bad)
	slices.SortStableFunc(recs, func(x, y *kgo.Record) int { return x.Timestamp.Compare(y.Timestamp) })
	a.produce(t, recs...)

	// The last closed day's digests, each saying the day had no events: the
	// chains start there, or on an archived day if the archiver cut its
	// first digests while still reading the records (see digestsIn).
	a.digestDay = archive.DayBefore(time.Now().Add(-time.Minute))
	var digests []string
	for _, acc := range slices.Sorted(maps.Keys(archivePartition)) {
		digests = append(digests, archive.DigestKey(acc, a.digestDay, 0))
	}
	runArchiverOnce(t, a.testKafka, bin, a.cfgFile, a.dir, digests...)
	return a
}

// digestsIn counts the day digests among files, of account (all when
// ""). An archiver that cuts its first digests while still reading the
// backlog starts the chains on the oldest day every partition has closed
// then, not on the last closed day, so the count is read, not assumed.
func digestsIn(files map[string]file, account string) int {
	n := 0
	for key := range files {
		if ref, ok := archive.ParseDigestKey(key); ok && (account == "" || ref.Account == account) {
			n++
		}
	}
	return n
}

// file is a stored file: its hash and when it was last written.
type file struct {
	sum     string
	modTime time.Time
}

// snapshot returns every file under the store's directory by key.
func (a *archived) snapshot(t *testing.T) map[string]file {
	t.Helper()
	out := map[string]file{}
	err := filepath.WalkDir(a.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a.dir, path)
		sum := sha256.Sum256(body)
		out[filepath.ToSlash(rel)] = file{hex.EncodeToString(sum[:]), fi.ModTime()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// objects returns the data objects of an account's day, sorted.
func objectsOf(snap map[string]file, account string, day time.Time) []string {
	var out []string
	for key := range snap {
		if ref, ok := archive.ParseObjectKey(key); ok && ref.Account == account && ref.Group.Window.Start.Truncate(24*time.Hour).Equal(day) {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}

func (a *archived) path(key string) string { return filepath.Join(a.dir, filepath.FromSlash(key)) }

// replace writes other bytes under key, as someone with access to the
// bucket could (objects are read-only files; the directory is not).
func (a *archived) replace(t *testing.T, key string, body []byte) {
	t.Helper()
	if err := os.Remove(a.path(key)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.path(key), body, 0o444); err != nil {
		t.Fatal(err)
	}
}

func (a *archived) read(t *testing.T, key string) []byte {
	t.Helper()
	body, err := os.ReadFile(a.path(key))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func flipByte(body []byte, i int) []byte {
	out := slices.Clone(body)
	out[i] ^= 0x01
	return out
}

func (a *archived) rebuild(t *testing.T, args ...string) (rebuild.Summary, result) {
	t.Helper()
	r := ctl(t, append([]string{"archive", "rebuild", "--config", a.cfgFile, "--connection", "bucket", "-o", "json"}, args...)...)
	var sum rebuild.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("rebuild %v: %v: stdout is not JSON: %v\n%s\nstderr:\n%s", args, r.err, err, r.stdout, r.stderr)
	}
	return sum, r
}

func statuses(sum rebuild.Summary) map[string]string {
	out := map[string]string{}
	for _, o := range sum.Objects {
		out[o.Key] = o.Status
	}
	return out
}

func (a *archived) verify(t *testing.T, args ...string) (verifySummary, result) {
	t.Helper()
	r := ctl(t, append([]string{"archive", "verify", "--config", a.cfgFile, "-o", "json"}, args...)...)
	var sum verifySummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("verify %v: %v: stdout is not JSON: %v\n%s\nstderr:\n%s", args, r.err, err, r.stdout, r.stderr)
	}
	return sum, r
}

func TestArchiveRebuildAndVerify(t *testing.T) {
	a := newArchived(t)
	orig := a.snapshot(t)
	d1, d2 := a.day1.Format(time.DateOnly), a.day2.Format(time.DateOnly)
	if n := len(objectsOf(orig, "acc-a", a.day1)); n < 8 {
		t.Fatalf("the archiver wrote %d objects of acc-a on %s, want one per 3h window at least", n, d1)
	}

	t.Run("verify a fresh archive", func(t *testing.T) {
		sum, r := a.verify(t, "--from", d1, "--to", d2)
		if r.err != nil || !sum.OK || sum.Problems != 0 || !sum.Signatures.Checked || sum.Signatures.KeyID != archive.KeyID(a.pub) {
			t.Fatalf("verify: %v\n%s", r.err, r.stdout)
		}
		objects := 0
		for key := range orig {
			if _, ok := archive.ParseObjectKey(key); ok {
				objects++
			}
		}
		if len(sum.Connections) != 1 || sum.Connections[0].Connection != "bucket" || sum.Connections[0].Accounts != 4 ||
			sum.Connections[0].Objects != objects || sum.Connections[0].Manifests+sum.Connections[0].Digests != len(orig)-objects || sum.Connections[0].Digests != digestsIn(orig, "") {
			t.Fatalf("verify covered %+v, want connection bucket with 4 accounts, %d objects and %d manifests", *sum.Connections[0].Report, objects, len(orig)-objects)
		}
		text := mustCtl(t, "archive", "verify", "--config", a.cfgFile, "--from", d1, "--to", d2)
		if !strings.Contains(text.stdout, "signatures checked with key "+archive.KeyID(a.pub)) || !strings.Contains(text.stdout, "OK: 1 connection(s), no problem") {
			t.Fatalf("text report:\n%s", text.stdout)
		}
		// No key anywhere: the report says signatures were not checked.
		text = mustCtl(t, "archive", "verify", "--destinations", a.destFile, "--from", d1, "--to", d1)
		if !strings.Contains(text.stdout, "signatures NOT checked") {
			t.Fatalf("an unchecked verification does not say so:\n%s", text.stdout)
		}
		// A public key file (and a private one) work as --public-key.
		pubFile := writeFile(t, "pub.pem", string(archive.MarshalPublicKey(a.pub)))
		for _, k := range []string{pubFile, a.keyFile} {
			text = mustCtl(t, "archive", "verify", "--destinations", a.destFile, "--public-key", k)
			if !strings.Contains(text.stdout, "signatures checked with key "+archive.KeyID(a.pub)+" (--public-key "+k+")") {
				t.Fatalf("--public-key %s:\n%s", k, text.stdout)
			}
		}
		// Another key: every manifest is reported.
		other, _, _ := ed25519.GenerateKey(rand.Reader)
		otherFile := writeFile(t, "other.pem", string(archive.MarshalPublicKey(other)))
		sum, r = a.verify(t, "--public-key", otherFile, "--account", "acc-d")
		if c := sum.Connections[0]; r.err == nil || sum.Problems != c.Manifests+c.Digests || c.Digests != digestsIn(orig, "acc-d") || c.Problems[0].Kind != archive.ProblemUnknownKey ||
			!strings.Contains(r.stdout, "not one of the keys given ("+archive.KeyID(other)+")") {
			t.Fatalf("verify with another key: %v, %d problems for %d manifests and %d digests", r.err, sum.Problems, c.Manifests, c.Digests)
		}
	})

	t.Run("verify names a changed digest", func(t *testing.T) {
		key := archive.DigestKey("acc-b", a.digestDay, 0)
		orig := a.read(t, key)
		a.replace(t, key, []byte(strings.Replace(string(orig), `"empty": true`, `"empty": false`, 1)))
		sum, r := a.verify(t)
		if r.err == nil || sum.Problems == 0 {
			t.Fatalf("verify of a changed digest: %v\n%s", r.err, r.stdout)
		}
		for _, p := range sum.Connections[0].Problems {
			if p.Key != key || p.Kind != archive.ProblemDigest && p.Kind != archive.ProblemDigestCount {
				t.Errorf("problem %v, want only %s named", p, key)
			}
		}
		text := ctl(t, "archive", "verify", "--config", a.cfgFile)
		if !regexp.MustCompile(`(?m)^digest\s+`+regexp.QuoteMeta(key)+`\s+day `).MatchString(text.stdout) || !strings.Contains(text.stdout, fmt.Sprintf(" %d digests", digestsIn(a.snapshot(t), ""))) {
			t.Errorf("text report:\n%s", text.stdout)
		}
		a.replace(t, key, orig)
		if _, r := a.verify(t); r.err != nil {
			t.Fatalf("verify after restoring: %v\n%s", r.err, r.stdout)
		}
	})

	t.Run("a deleted object is rebuilt byte for byte", func(t *testing.T) {
		key := objectsOf(orig, "acc-a", a.day1)[0] // the first window, where the late event goes
		if err := os.Remove(a.path(key)); err != nil {
			t.Fatal(err)
		}
		sum, r := a.verify(t, "--from", d1, "--to", d1)
		if r.err == nil || len(sum.Connections[0].Problems) != 1 || sum.Connections[0].Problems[0].Kind != archive.ProblemMissing || sum.Connections[0].Problems[0].Key != key {
			t.Fatalf("verify after deleting %s: %v\n%s", key, r.err, r.stdout)
		}

		before := a.snapshot(t)
		dry, r := a.rebuild(t, "--date", d1, "--dry-run")
		if r.err != nil || !dry.DryRun || statuses(dry)[key] != rebuild.StatusWouldCreate || dry.Counts[rebuild.StatusWouldCreate] != 1 ||
			dry.Counts[rebuild.StatusIdentical] != len(dry.Objects)-1 {
			t.Fatalf("dry run: %v\n%s", r.err, r.stdout)
		}
		if !maps.Equal(before, a.snapshot(t)) {
			t.Fatal("a dry run wrote to the store")
		}

		sum2, r := a.rebuild(t, "--date", d1)
		if r.err != nil || statuses(sum2)[key] != rebuild.StatusCreated || sum2.Counts[rebuild.StatusCreated] != 1 {
			t.Fatalf("rebuild: %v\n%s", r.err, r.stdout)
		}
		// Every object of the day's windows, of every account, and nothing else.
		var want []string
		for _, acc := range slices.Sorted(maps.Keys(archivePartition)) {
			want = append(want, objectsOf(orig, acc, a.day1)...)
		}
		var got []string
		for _, o := range sum2.Objects {
			got = append(got, o.Key)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("rebuild covered %d objects, want the %d of %s:\ngot  %v\nwant %v", len(got), len(want), d1, got, want)
		}
		// The malformed record is on partition 2 after day 1: it is read
		// when a group of day 1 there was cut after it.
		if sum2.Undecodable > 1 || sum2.RecordsRead == 0 {
			t.Fatalf("records read %d, undecodable %d", sum2.RecordsRead, sum2.Undecodable)
		}
		if now := a.snapshot(t)[key].sum; now != orig[key].sum {
			t.Fatalf("rebuilt %s has sha256 %s, the archiver's had %s", key, now, orig[key].sum)
		}
		if _, r := a.verify(t); r.err != nil {
			t.Fatalf("verify after the rebuild: %v\n%s", r.err, r.stdout)
		}
	})

	t.Run("a second rebuild finds everything identical and writes nothing", func(t *testing.T) {
		before := a.snapshot(t)
		for _, d := range []string{d1, d2} {
			sum, r := a.rebuild(t, "--date", d)
			if r.err != nil || len(sum.Objects) == 0 || sum.Counts[rebuild.StatusIdentical] != len(sum.Objects) {
				t.Fatalf("rebuild %s: %v\n%s", d, r.err, r.stdout)
			}
		}
		if !maps.Equal(before, a.snapshot(t)) {
			t.Fatal("a rebuild of identical objects wrote to the store")
		}
		// The text form.
		r := ctl(t, "archive", "rebuild", "--config", a.cfgFile, "--connection", "bucket", "--date", d2, "--account", "acc-d")
		n := len(objectsOf(orig, "acc-d", a.day2))
		if r.err != nil || !strings.Contains(r.stdout, "rebuild "+d2+" in bucket (file://") ||
			!strings.Contains(r.stdout, fmt.Sprintf("objects: created 0, identical %d, different 0, missing-in-topic 0", n)) {
			t.Fatalf("text report: %v\n%s", r.err, r.stdout)
		}
		t.Log(r.stdout)
	})

	t.Run("the filing rules come from the archive section", func(t *testing.T) {
		// With the default max_future_skew (1h) the event stamped 90 minutes
		// ahead would be filed under its record's window: both windows'
		// objects come out different, and nothing is written.
		cfg, err := os.ReadFile(a.cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		other := writeFile(t, "archiver-1h.yaml", strings.Replace(string(cfg), "max_future_skew: 2h", "max_future_skew: 1h", 1))
		before := a.snapshot(t)
		r := ctl(t, "archive", "rebuild", "--config", other, "--connection", "bucket", "--date", d1, "--account", "acc-c", "-o", "json")
		var sum rebuild.Summary
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || r.err == nil {
			t.Fatalf("rebuild with another skew: %v, %v", r.err, err)
		}
		for _, o := range sum.Objects {
			ref, _ := archive.ParseObjectKey(o.Key)
			h := ref.Group.Window.Start.Hour()
			if want := map[bool]string{true: rebuild.StatusDifferent, false: rebuild.StatusIdentical}[h == 3 || h == 6]; o.Status != want {
				t.Errorf("%s: %s, want %s (%s)", o.Key, o.Status, want, o.Detail)
			}
		}
		if !maps.Equal(before, a.snapshot(t)) {
			t.Fatal("a rebuild that found different objects wrote to the store")
		}
	})

	t.Run("a different object is reported and left alone", func(t *testing.T) {
		key := objectsOf(orig, "acc-b", a.day2)[3]
		origBody := a.read(t, key)
		a.replace(t, key, []byte("not what the archiver wrote\n"))
		before := a.snapshot(t)
		sum, r := a.rebuild(t, "--date", d2)
		if r.err == nil || !strings.Contains(r.err.Error(), "could not be rebuilt") {
			t.Fatalf("rebuild with a different object succeeded: %v", r.err)
		}
		if statuses(sum)[key] != rebuild.StatusDifferent || sum.Counts[rebuild.StatusDifferent] != 1 || sum.Counts[rebuild.StatusIdentical] != len(sum.Objects)-1 {
			t.Fatalf("statuses: %+v", sum.Counts)
		}
		if !maps.Equal(before, a.snapshot(t)) {
			t.Fatal("the different object was overwritten, or something else was written (a conflict copy?)")
		}
		r = ctl(t, "archive", "rebuild", "--config", a.cfgFile, "--connection", "bucket", "--date", d2, "--account", "acc-b")
		if r.err == nil || !strings.Contains(r.stdout, "different "+key+": the stored object (sha256 ") {
			t.Fatalf("text report: %v\n%s", r.err, r.stdout)
		}
		a.replace(t, key, origBody)
	})

	t.Run("verify names a changed object and a changed manifest", func(t *testing.T) {
		obj := objectsOf(orig, "acc-c", a.day1)[2]
		// The day's last manifest: a digest names it as the chain's head, so
		// changing it is also a digest problem, the widest report.
		var manifest string
		for _, key := range slices.Sorted(maps.Keys(orig)) {
			if ref, ok := archive.ParseManifestKey(key); ok && ref.Account == "acc-d" && ref.Group.Window.Start.Truncate(24*time.Hour).Equal(a.day2) {
				manifest = key
			}
		}
		origObj, origManifest := a.read(t, obj), a.read(t, manifest)
		a.replace(t, obj, flipByte(origObj, len(origObj)/2))
		a.replace(t, manifest, flipByte(origManifest, strings.Index(string(origManifest), `"sha256"`)+12))
		sum, r := a.verify(t, "--from", d1, "--to", d2)
		if r.err == nil || !strings.Contains(r.err.Error(), "archive verification found") {
			t.Fatalf("verify: %v", r.err)
		}
		kinds := map[string]string{}
		for _, p := range sum.Connections[0].Problems {
			kinds[p.Key] += p.Kind + " "
		}
		if !strings.Contains(kinds[obj], archive.ProblemChanged) || !strings.Contains(kinds[manifest], archive.ProblemManifest) {
			t.Fatalf("problems %v, want %s changed and %s manifest", kinds, obj, manifest)
		}
		text := ctl(t, "archive", "verify", "--config", a.cfgFile)
		// The KIND column is as wide as its widest kind, which depends on
		// which other problems the changed manifest causes.
		for _, want := range []string{`(?m)^changed\s+` + regexp.QuoteMeta(obj) + `\s`, `(?m)^manifest\s+` + regexp.QuoteMeta(manifest) + `\s`, `(?m)^FAILED: `} {
			if !regexp.MustCompile(want).MatchString(text.stdout) {
				t.Errorf("text report lacks a row matching %q:\n%s", want, text.stdout)
			}
		}
		a.replace(t, obj, origObj)
		a.replace(t, manifest, origManifest)
		if _, r := a.verify(t); r.err != nil {
			t.Fatalf("verify after restoring: %v\n%s", r.err, r.stdout)
		}
	})

	t.Run("records removed by retention are missing in the topic", func(t *testing.T) {
		adm := kadm.NewClient(a.Client())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var o kadm.Offsets
		o.Add(kadm.Offset{Topic: topic, Partition: 2, At: 20})
		if _, err := adm.DeleteRecords(ctx, o); err != nil {
			t.Fatal(err)
		}
		before := a.snapshot(t)
		sum, r := a.rebuild(t, "--date", d1, "--account", "acc-d", "--account", "acc-c")
		if r.err == nil || !strings.Contains(r.err.Error(), "missing-in-topic") {
			t.Fatalf("rebuild past retention: %v", r.err)
		}
		var missing int
		for _, obj := range sum.Objects {
			switch {
			case obj.Account == "acc-d" && obj.First < 20:
				if obj.Status != rebuild.StatusMissingInTopic || !strings.Contains(obj.Detail, "group "+obj.Group) || !strings.Contains(obj.Detail, "partition now starts at offset 20") {
					t.Errorf("%s: %s %s", obj.Key, obj.Status, obj.Detail)
				}
				missing++
			case obj.Status != rebuild.StatusIdentical:
				t.Errorf("%s: %s %s", obj.Key, obj.Status, obj.Detail)
			}
		}
		if missing == 0 || !maps.Equal(before, a.snapshot(t)) {
			t.Fatalf("%d objects missing in the topic; store unchanged: %v", missing, maps.Equal(before, a.snapshot(t)))
		}
	})
}

func TestBadInputArchive(t *testing.T) {
	dir := t.TempDir()
	dest := storageDestinations(t, filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	noStorage := writeFile(t, "dd-only.yaml", "connections:\n  dd-x:\n    type: datadog\n    settings:\n      api_key: x\nroutes: []\n")
	badWindow := writeFile(t, "archiver.yaml", "archive:\n  window: 7m\n")
	badKey := writeFile(t, "bad.pem", "not a key\n")
	keyNotReadable := writeFile(t, "archiver-key.yaml", "archive:\n  signing_key: {file: /does/not/exist.pem}\n")
	rb := func(args ...string) []string { return append([]string{"archive", "rebuild"}, args...) }
	vf := func(args ...string) []string { return append([]string{"archive", "verify"}, args...) }
	ok := func(args ...string) []string {
		return slices.Concat([]string{"--destinations", dest, "--date", "2024-02-16", "--connection", "bucket"}, args)
	}
	checkBadInputs(t, []badInput{
		{rb("--connection", "bucket", "--destinations", dest), "--date is required"},
		{rb("--date", "2024-02-30", "--connection", "bucket"), `invalid argument "2024-02-30" for "--date" flag: "2024-02-30" is not a date`},
		{rb("--date", "yesterday", "--connection", "bucket"), `"yesterday" is not a date: want a date (2024-02-16, a UTC day)`},
		{rb("--date", "2024-02-16"), "--connection is required"},
		{rb("--date", "2024-02-16", "--connection", "bucket"), "no destinations file: give --destinations, or destinations.file in --config"},
		{rb("--date", "2024-02-16", "--connection", "nope", "--destinations", dest), `unknown connection "nope" in ` + dest + " (storage connections: bucket, old-bucket)"},
		{rb("--date", "2024-02-16", "--connection", "dd-x", "--destinations", dest), "connection dd-x in " + dest + " is of type datadog; the archive is in storage connections"},
		{rb("--date", "2024-02-16", "--connection", "x", "--destinations", noStorage), `unknown connection "x": ` + noStorage + " has no storage connection"},
		{rb("--date", "2024-02-16", "--connection", "old-bucket", "--destinations", dest), "connection old-bucket is disabled in " + dest},
		{rb("--date", "2024-02-16", "--connection", "bucket", "--destinations", "/does/not/exist.yaml"), "destinations file /does/not/exist.yaml"},
		{rb(ok("--account", "acc/1")...), `--account "acc/1" is not an account id`},
		{rb(ok("--topic", "")...), "--topic must not be empty"},
		{rb(ok("--spool-dir", "/does/not/exist")...), "--spool-dir /does/not/exist is not a directory"},
		{rb(ok("--config", badWindow)...), "archive.window: 7m0s must divide 24h"},
		{rb(ok("-o", "yaml")...), `invalid argument "yaml" for "-o, --output" flag: must be text or json`},
		{rb(ok("extra")...), `unknown command "extra" for "auditctl archive rebuild"`},
		{rb(ok("--brokers", closedAddr(t))...), "cannot reach Kafka at 127.0.0.1:"},
		{rb(ok("--timeout", "1s", "--brokers", closedAddr(t))...), "cannot reach Kafka at 127.0.0.1:"},
		{vf("--from", "2024-02-17", "--to", "2024-02-16", "--destinations", dest), "--from (2024-02-17) must not be after --to (2024-02-16)"},
		{vf("--from", "soon", "--destinations", dest), `invalid argument "soon" for "--from" flag: "soon" is not a date`},
		{vf("--destinations", dest, "--connection", "nope"), `unknown connection "nope" in ` + dest},
		{vf("--destinations", dest, "--connection", "dd-x"), "connection dd-x in " + dest + " is of type datadog"},
		{vf("--destinations", noStorage), noStorage + " has no enabled storage connection"},
		{vf(), "no destinations file"},
		{vf("--destinations", dest, "--public-key", "/does/not/exist.pem"), "--public-key: open /does/not/exist.pem: no such file or directory"},
		{vf("--destinations", dest, "--public-key", badKey), "--public-key " + badKey + ": public key: no PEM block found"},
		{vf("--destinations", dest, "--config", keyNotReadable), "archive.signing_key of " + keyNotReadable},
		{vf("--destinations", dest, "--account", ""), `--account "" is not an account id`},
	})
}

// A config whose signing key cannot be read still serves the commands that
// do not need it.
func TestArchiveSectionDoesNotStopOtherCommands(t *testing.T) {
	cfg := writeFile(t, "archiver.yaml", "archive:\n  signing_key: {file: /does/not/exist.pem}\n  spool_dir: /nowhere\n  window: 1h\n")
	r := ctl(t, "lag", "--config", cfg, "--brokers", closedAddr(t))
	if r.err == nil || !strings.HasPrefix(r.err.Error(), "cannot reach Kafka") {
		t.Fatalf("lag with an archiver config: %v", r.err)
	}
}
