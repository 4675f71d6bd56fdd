package archiver

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/forwardingtest"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/s3store/s3fake"
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
// after the digest: each gets its digest, chained, and verify says so;
// removing the newest manifests with their objects is then detected.
func TestDayDigests(t *testing.T) {
	var s3 *s3fake.Fake
	for _, be := range []backend{localBackend(), s3Backend(&s3)} {
		t.Run(be.name, func(t *testing.T) { testDayDigests(t, be) })
	}
}

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
	// An account's chain starts on the last closed day when its first
	// object is found: the 15th if its partition wrote before the others
	// closed the 16th.
	before := 1
	for _, k := range day[:3] {
		d := e.readDigest(t, st, k)
		earlier := slices.Contains(digestKeys(t, st), strings.Replace(k, "/16.json", "/15.json", 1))
		if earlier {
			before++
		}
		if d.Events != 4 || d.Empty || d.Start == earlier || len(d.Objects) == 0 || d.ManifestHead == nil {
			t.Errorf("%s: %d events, empty %v, start %v (a digest of the 15th: %v), %d objects", k, d.Events, d.Empty, d.Start, earlier, len(d.Objects))
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
