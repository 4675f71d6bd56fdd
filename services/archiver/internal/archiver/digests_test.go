package archiver

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/s3fake"
)

// routeWithQuiet routes every account to b, and names acc-quiet, which
// has no events, so its days are digested too.
func (e *env) routeWithQuiet(b bucket) {
	e.t.Helper()
	yaml := "connections:\n  bucket:\n    type: storage\n    settings:\n" + b.settings +
		"routes:\n  - account: \"*\"\n    connections: [bucket]\n  - account: acc-quiet\n    connections: [bucket]\n"
	if err := os.WriteFile(e.destFile, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// digestKeys lists every digest in st.
func digestKeys(t *testing.T, st objstore.Store) []string {
	t.Helper()
	var out []string
	for info, err := range st.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := archive.ParseDigestKey(info.Key); ok {
			out = append(out, info.Key)
		}
	}
	return out
}

func waitDigests(t *testing.T, st objstore.Store, want ...string) {
	t.Helper()
	forwardingtest.WaitFor(t, fmt.Sprintf("digests %v", want), 30*time.Second, func() bool {
		have := digestKeys(t, st)
		for _, k := range want {
			if !slices.Contains(have, k) {
				return false
			}
		}
		return true
	})
}

func (e *env) readDigest(t *testing.T, st objstore.Store, key string) *archive.Digest {
	t.Helper()
	rc, _, err := st.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	d, err := archive.OpenDigest(body, e.pub)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return d
}

func (e *env) digestConfig(group string) Config {
	cfg := e.config(group)
	cfg.Archive.DigestInterval = 50 * time.Millisecond
	return cfg
}

// A day with events, a quiet day, an account without events, late events
// after the digest: each gets its digest, chained, and verify says so, in
// every kind of store; removing the newest manifests with their objects is
// then detected.
func TestDayDigests(t *testing.T) { forEachBackend(t, testDayDigests) }

func testDayDigests(t *testing.T, be backend) {
	e := newEnv(t)
	b := be.newBucket(t)
	e.routeWithQuiet(b)
	st := b.st
	evs := makeEvents(3, 1, 4) // acc-00..02, four events each on day0
	e.publish(evs)
	clk := newClock(day0.Add(12 * time.Hour))
	cfg := e.digestConfig("archiver")
	cfg.Archive.LateFlushAfter = time.Second
	e.start(cfg, clk)
	// While day0 is open only the day before it closes: acc-quiet's chain
	// starts there; the others have no object yet.
	waitDigests(t, st, "acc-quiet/_digests/2024/02/15.json")
	if keys := digestKeys(t, st); len(keys) != 1 {
		t.Fatalf("digests while day0 is open: %v", keys)
	}
	clk.Set(day0.Add(25 * time.Hour))
	day := []string{"acc-00/_digests/2024/02/16.json", "acc-01/_digests/2024/02/16.json", "acc-02/_digests/2024/02/16.json", "acc-quiet/_digests/2024/02/16.json"}
	waitDigests(t, st, day...)
	// An account's chain starts on the first closed day it has objects
	// of (the 16th, even if its objects were found while only the 15th was
	// closed); acc-quiet's on the closed day it was first seen.
	const before = 1
	for _, k := range day[:3] {
		d := e.readDigest(t, st, k)
		if d.Events != 4 || d.Empty || !d.Start || len(d.Objects) == 0 || d.ManifestHead == nil {
			t.Errorf("%s: %d events, empty %v, start %v, %d objects", k, d.Events, d.Empty, d.Start, len(d.Objects))
		}
	}
	if d := e.readDigest(t, st, day[3]); !d.Empty || d.Events != 0 || d.Start || d.Previous == nil || d.Previous.Key != "acc-quiet/_digests/2024/02/15.json" {
		t.Errorf("acc-quiet's day: %+v", d)
	}
	rep := verifyEventually(t, st, archive.VerifyOptions{PublicKey: e.pub}, (*archive.Report).OK)
	if !rep.OK() || rep.Digests != 4+before {
		t.Fatalf("verify: %d digests, %v", rep.Digests, rep.Problems)
	}

	// A late event of day0 gets an addendum, chained to the day's digest.
	e.publish([]event{{id: "late-1", account: "acc-01", ts: day0.Add(3 * time.Hour)}})
	clk.Run(day0.Add(25 * time.Hour)) // the late group is written a second after it opens
	waitDigests(t, st, "acc-01/_digests/2024/02/16.1.json")
	add := e.readDigest(t, st, "acc-01/_digests/2024/02/16.1.json")
	if add.Addendum != 1 || add.Events != 1 || add.Previous == nil || add.Previous.Key != day[1] {
		t.Fatalf("addendum: %+v", add)
	}

	// The next day has no events: every account's digest says so.
	clk.Set(day0.Add(49 * time.Hour))
	next := []string{"acc-00/_digests/2024/02/17.json", "acc-01/_digests/2024/02/17.json", "acc-02/_digests/2024/02/17.json", "acc-quiet/_digests/2024/02/17.json"}
	waitDigests(t, st, next...)
	for _, k := range next {
		if d := e.readDigest(t, st, k); !d.Empty || d.Events != 0 || d.Previous == nil || !strings.HasSuffix(d.Previous.Key, "/16.json") {
			t.Errorf("%s: %+v", k, d)
		}
	}
	if keys := digestKeys(t, st); len(keys) != 9+before {
		t.Fatalf("%d digests, want %d: %v", len(keys), 9+before, keys)
	}
	rep = verifyEventually(t, st, archive.VerifyOptions{PublicKey: e.pub}, (*archive.Report).OK)
	if !rep.OK() || rep.Digests != 9+before {
		t.Fatalf("verify: %d digests, %v", rep.Digests, rep.Problems)
	}
	if be.name != "local" {
		return
	}
	// Remove acc-02's newest manifests and their objects together: the
	// manifest chain alone still verifies; the digests do not.
	var dir string
	fmt.Sscanf(strings.TrimSpace(strings.SplitN(b.settings, "dir: ", 2)[1]), "%q", &dir)
	var removed []string
	for _, sub := range []string{"acc-02/_manifests", "acc-02/2024/02/16"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			if err := os.Remove(filepath.Join(dir, sub, en.Name())); err != nil {
				t.Fatal(err)
			}
			removed = append(removed, sub+"/"+en.Name())
		}
	}
	rep, err := archive.Verify(context.Background(), st, archive.VerifyOptions{PublicKey: e.pub, Accounts: []string{"acc-02"}})
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, p := range rep.Problems {
		if p.Kind == archive.ProblemDigestObjects {
			named[p.Key] = true
		}
	}
	for _, k := range removed {
		if !named[k] {
			t.Errorf("%s removed, verify does not name it: %v", k, rep.Problems)
		}
	}
}

// Two replicas in one group write each digest once; when the one owning
// partition 0 leaves, the other takes the digests over.
func TestDigestsWithTwoReplicas(t *testing.T) {
	e := newEnv(t)
	b := localBackend().newBucket(t)
	e.routeWithQuiet(b)
	st := b.st
	evs := makeEvents(12, 1, 3)
	e.publish(evs)
	clk := newClock(day0.Add(12 * time.Hour))
	stopA := e.start(e.digestConfig("archiver"), clk)
	e.start(e.digestConfig("archiver"), clk)
	waitDigests(t, st, "acc-quiet/_digests/2024/02/15.json")
	clk.Set(day0.Add(25 * time.Hour))
	var want []string
	for a := range 12 {
		want = append(want, fmt.Sprintf("acc-%02d/_digests/2024/02/16.json", a))
	}
	want = append(want, "acc-quiet/_digests/2024/02/16.json")
	waitDigests(t, st, want...)
	stopA()
	clk.Set(day0.Add(49 * time.Hour))
	var next []string
	for _, k := range want {
		next = append(next, strings.Replace(k, "/16.json", "/17.json", 1))
	}
	waitDigests(t, st, next...)
	rep := verifyEventually(t, st, archive.VerifyOptions{PublicKey: e.pub}, (*archive.Report).OK)
	if !rep.OK() {
		t.Fatalf("verify: %v", rep.Problems)
	}
	for _, k := range digestKeys(t, st) {
		if ref, _ := archive.ParseDigestKey(k); ref.Addendum != 0 {
			t.Errorf("addendum %s without late events: two writers each wrote the day", k)
		}
	}
	for _, k := range want {
		if d := e.readDigest(t, st, k); k != want[len(want)-1] && d.Events != 3 {
			t.Errorf("%s lists %d events, want 3", k, d.Events)
		}
	}
}

// coveredManifests reads every digest of st: the manifests they list, and
// how many digests list each.
func (e *env) coveredManifests(t *testing.T, st objstore.Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, k := range digestKeys(t, st) {
		for _, o := range e.readDigest(t, st, k).Objects {
			out[o.Manifest]++
		}
	}
	return out
}

func manifestKeys(t *testing.T, st objstore.Store) []string {
	t.Helper()
	var out []string
	for info, err := range st.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := archive.ParseManifestKey(info.Key); ok {
			out = append(out, info.Key)
		}
	}
	return out
}

// Killed with SIGKILL at each step of writing digests: when it starts
// reading the digests, right as the first digest is created, and a few
// digests in. After a restart each account has exactly one digest of the
// day, every manifest of the day is listed by exactly one digest, nothing
// written before the kill changed, and the archive verifies.
func TestKilledAtEachStepOfWritingDigests(t *testing.T) {
	for _, step := range []struct {
		name string
		list bool // a listing of digests; else a digest's create
		nth  int64
	}{
		{"reading-digests", true, 1},
		{"first-digest-created", false, 1},
		{"mid-digests", false, 4},
	} {
		t.Run(step.name, func(t *testing.T) {
			e := newEnv(t)
			var fake *s3fake.Fake
			b := s3Backend(&fake).newBucket(t)
			e.route(b)
			st := b.st
			p := e.process(t.TempDir())
			// Events of the last closed day on the real clock (the process
			// runs on it, with a grace of one minute).
			yesterday := archive.DayBefore(time.Now().Add(-time.Minute))
			var published []event
			for i := range 200 {
				published = append(published, event{id: fmt.Sprintf("dg-%04d", i), account: fmt.Sprintf("acc-%02d", i%10),
					ts: yesterday.Add(time.Duration(i) * time.Minute)})
			}
			e.publish(published)
			var seen atomic.Int64
			var killed atomic.Bool
			fake.OnRequest = func(op string, r *http.Request) {
				match := strings.Contains(r.URL.Path, "/_digests/") && op == "put"
				if step.list {
					match = r.Method == http.MethodGet && strings.Contains(r.URL.Query().Get("prefix"), "/_digests/")
				}
				if match && seen.Add(1) == step.nth && !killed.Load() {
					p.kill() // the request itself is still answered: the create lands, the writer never hears
					killed.Store(true)
				}
			}
			p.start()
			forwardingtest.WaitFor(t, "the kill at "+step.name, 60*time.Second, killed.Load)
			p.kill()
			before := map[string]string{}
			remember(t, st, before)
			// The create in flight at the kill lands or not, as the
			// connection went.
			if n := int64(len(digestKeys(t, st))); (step.list && n != 0) || (!step.list && n != step.nth && n != step.nth-1) {
				t.Fatalf("killed at %s with %d digests written", step.name, n)
			}
			p.start()
			want := make([]string, 0, 10)
			for a := range 10 {
				want = append(want, archive.DigestKey(fmt.Sprintf("acc-%02d", a), yesterday, 0))
			}
			waitDigests(t, st, want...)
			// Every manifest of the day ends in exactly one digest (late
			// objects in addenda).
			forwardingtest.WaitFor(t, "every manifest in a digest", 60*time.Second, func() bool {
				covered := e.coveredManifests(t, st)
				for _, m := range manifestKeys(t, st) {
					if covered[m] != 1 {
						return false
					}
				}
				return len(covered) > 0
			})
			checkArchive(t, e, st, published, before)
			p.stop()
			var events int64
			for _, k := range digestKeys(t, st) {
				ref, _ := archive.ParseDigestKey(k)
				if !ref.Day.Equal(yesterday) {
					t.Errorf("digest %s of another day", k)
				}
				events += e.readDigest(t, st, k).Events
			}
			if events != int64(len(published)) {
				t.Errorf("digests count %d events, %d were published", events, len(published))
			}
		})
	}
}

// Removing an account's route ends its chain with a final digest; no
// digest follows it, and verify expects none.
func TestRouteRemovedEndsTheChain(t *testing.T) {
	e := newEnv(t)
	b := localBackend().newBucket(t)
	routes := func(accounts ...string) {
		yaml := "connections:\n  bucket:\n    type: storage\n    settings:\n" + b.settings + "routes:\n"
		for _, a := range accounts {
			yaml += "  - account: " + a + "\n    connections: [bucket]\n"
		}
		if err := os.WriteFile(e.destFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	routes("acc-00", "acc-quiet")
	st := b.st
	e.publish(makeEvents(1, 1, 3))
	clk := newClock(day0.Add(12 * time.Hour))
	e.start(e.digestConfig("archiver"), clk)
	svc := e.svc
	waitDigests(t, st, "acc-quiet/_digests/2024/02/15.json")
	clk.Set(day0.Add(25 * time.Hour))
	waitDigests(t, st, "acc-00/_digests/2024/02/16.json", "acc-quiet/_digests/2024/02/16.json")
	routes("acc-00")
	// The service reads the file again (as it does every poll_interval,
	// or on SIGHUP): the next day's digest is the last.
	if err := svc.watcher.Reload(); err != nil {
		t.Fatal(err)
	}
	clk.Set(day0.Add(49 * time.Hour))
	final := "acc-quiet/_digests/2024/02/17.json"
	waitDigests(t, st, final)
	if d := e.readDigest(t, st, final); !d.Final || !d.Empty {
		t.Fatalf("%s: %+v, want the final digest", final, d)
	}
	// Days go on for acc-00, not for acc-quiet.
	clk.Set(day0.Add(4*24*time.Hour + time.Hour))
	waitDigests(t, st, "acc-00/_digests/2024/02/19.json")
	for _, k := range digestKeys(t, st) {
		if strings.HasPrefix(k, "acc-quiet/") && k > final {
			t.Errorf("%s written after the final digest %s", k, final)
		}
	}
	rep, err := archive.Verify(context.Background(), st, archive.VerifyOptions{PublicKey: e.pub, Accounts: []string{"acc-quiet"},
		Now: day0.Add(90 * 24 * time.Hour), DigestDue: time.Hour})
	if err != nil || !rep.OK() {
		t.Fatalf("verify of the ended chain: %v %v", rep.Problems, err)
	}
}

// The signing key is rotated between two days: the first days' digests and
// manifests are signed with the old key, the next day's with the new one,
// and the chain runs on across the rotation. Verify takes both keys;
// given one, it names each file the other signed, with its day, and
// nothing else.
func TestDigestsAcrossASigningKeyRotation(t *testing.T) {
	e := newEnv(t)
	b := localBackend().newBucket(t)
	e.routeWithQuiet(b)
	st := b.st
	e.publish(makeEvents(1, 1, 3)) // acc-00, day0
	// The days are over when the archiver starts: their events are late
	// groups, written a second after they open on a running clock.
	clk := newClock(day0)
	clk.Run(day0.Add(25 * time.Hour))
	cfg := e.digestConfig("archiver")
	cfg.Archive.LateFlushAfter = time.Second
	cfg.Archive.Window = time.Hour // so a group of day 17 closes while the day is open
	stop := e.start(cfg, clk)
	waitDigests(t, st, "acc-00/_digests/2024/02/16.json", "acc-quiet/_digests/2024/02/16.json")
	// Every event of the 16th written under the old key before it rotates:
	// a late group still open when its day's digest is written gets an
	// addendum, which must be signed by the key of the 16th too.
	e.cluster.WaitCommitted(t, 30*time.Second, cfg.Archive.Group, "audit.events")
	stop()
	oldKey := e.pub

	newKey, priv, _ := ed25519.GenerateKey(crand.Reader)
	keyFile := filepath.Join(t.TempDir(), "new-signing.pem")
	if err := os.WriteFile(keyFile, archive.MarshalSigningKey(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Archive.SigningKey = config.SecretFile(keyFile)
	e.publish([]event{{id: "after-rotation", account: "acc-00", ts: day0.Add(26 * time.Hour)}})
	clk.Run(day0.Add(30 * time.Hour))
	e.start(cfg, clk)
	// Its group is written while its day is open, then the day closes.
	forwardingtest.WaitFor(t, "the manifest of the event after the rotation", 30*time.Second, func() bool {
		return slices.ContainsFunc(manifestKeys(t, st), func(k string) bool {
			return strings.HasPrefix(k, "acc-00/_manifests/") && strings.Contains(k, "-20240217T")
		})
	})
	clk.Run(day0.Add(49 * time.Hour))
	waitDigests(t, st, "acc-00/_digests/2024/02/17.json", "acc-quiet/_digests/2024/02/17.json")
	e.pub = newKey
	if d := e.readDigest(t, st, "acc-00/_digests/2024/02/17.json"); d.Events != 1 || d.Previous == nil || d.Previous.Key != "acc-00/_digests/2024/02/16.json" {
		t.Fatalf("the first digest after the rotation: %+v", d)
	}

	rep := verifyEventually(t, st, archive.VerifyOptions{PublicKeys: []ed25519.PublicKey{oldKey, newKey}}, (*archive.Report).OK)
	// The 16th and 17th of acc-00 and acc-quiet, and any addendum: a late
	// group of the 16th may still be written as the first run stops.
	keys := digestKeys(t, st)
	if !rep.OK() || rep.Digests != len(keys) || rep.Digests < 4 {
		t.Fatalf("verify with both keys: %d digests of %v, %v", rep.Digests, keys, rep.Problems)
	}
	for _, c := range []struct {
		given ed25519.PublicKey
		days  []string // the days the other key signed
	}{
		{newKey, []string{"2024-02-16"}},
		{oldKey, []string{"2024-02-17"}},
	} {
		rep, err := archive.Verify(context.Background(), st, archive.VerifyOptions{PublicKey: c.given})
		if err != nil {
			t.Fatal(err)
		}
		named := map[string]bool{}
		for _, p := range rep.Problems {
			day, _, _ := strings.Cut(strings.TrimPrefix(p.Detail, "day "), ":")
			if p.Kind == archive.ProblemUnknownKey && strings.HasSuffix(p.Key, "/16.1.json") {
				// An addendum of the 16th written as the first run stopped
				// is signed by whichever key was current when it was written.
				continue
			}
			if p.Kind != archive.ProblemUnknownKey || !slices.Contains(c.days, day) {
				t.Errorf("with key %s alone: %v, want only the days %v signed by the other key named", archive.KeyID(c.given), p, c.days)
			}
			named[day] = true
		}
		for _, d := range c.days {
			if !named[d] {
				t.Errorf("with key %s alone: day %s, signed by the other key, not named: %v", archive.KeyID(c.given), d, rep.Problems)
			}
		}
	}
}
