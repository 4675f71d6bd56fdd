package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/services/internal/archive"
)

// The signing key is rotated between two runs of the archiver: the
// manifests and the day's digest written before are signed with the old
// key, those after (manifests of a later day, a late event's manifest and
// the digest addendum it brings) with the new one. verify takes both keys
// and passes; given one key only, it names each day signed by the other.
func TestArchiveVerifyAcrossAKeyRotation(t *testing.T) {
	bin := buildArchiver(t)
	k := newTestKafka(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "archive")
	destFile := writeFile(t, "destinations.yaml", fmt.Sprintf(`connections:
  bucket:
    type: storage
    settings:
      kind: local
      local: {dir: %q}
routes:
  - account: "*"
    connections: [bucket]
`, store))
	oldPriv, oldPub, oldKey := writeSigningKey(t, dir, "old")
	newPriv, newPub, newKey := writeSigningKey(t, dir, "new")

	// The archiver runs on the real clock: the last closed day is the
	// digested one, the days before it are archived but before the chain.
	digestDay := archive.DayBefore(time.Now().Add(-time.Minute))
	early := digestDay.Add(-2 * 24 * time.Hour)
	later := digestDay.Add(-24 * time.Hour)
	var recs []*kgo.Record
	for i, at := range []time.Time{early.Add(time.Hour), early.Add(7 * time.Hour), digestDay.Add(2 * time.Hour), digestDay.Add(9 * time.Hour)} {
		_, r := eventAt(t, "acc-a", fmt.Sprintf("old-%d", i), 0, at)
		recs = append(recs, r)
	}
	k.produce(t, recs...)
	runArchiverOnce(t, k, bin, archiverConfig(t, k, destFile, oldPriv), store, archive.DigestKey("acc-a", digestDay, 0))

	// The key is rotated: the next run signs with the new one.
	recs = recs[:0]
	for i, at := range []time.Time{later.Add(time.Hour), later.Add(13 * time.Hour)} {
		_, r := eventAt(t, "acc-a", fmt.Sprintf("new-%d", i), 0, at)
		recs = append(recs, r)
	}
	// A late event of the digested day: written after its digest, it gets
	// an addendum, which links to the digest signed with the old key.
	_, late := eventAt(t, "acc-a", "late", 0, digestDay.Add(4*time.Hour))
	late.Timestamp = time.Now()
	k.produce(t, append(recs, late)...)
	addendum := archive.DigestKey("acc-a", digestDay, 1)
	runArchiverOnce(t, k, bin, archiverConfig(t, k, destFile, newPriv), store, addendum)

	// Which key signed what, as written.
	signedBy := map[string]string{} // key id → days it signed
	for _, f := range listFiles(t, store) {
		body, err := os.ReadFile(filepath.Join(store, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		if ref, ok := archive.ParseManifestKey(f); ok {
			m, err := archive.OpenManifestWith(body, archive.NewPublicKeys(oldKey, newKey))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			signedBy[m.KeyID] += " " + ref.Group.Window.Start.Format(time.DateOnly)
		}
	}
	oldID, newID := archive.KeyID(oldKey), archive.KeyID(newKey)
	if !strings.Contains(signedBy[oldID], early.Format(time.DateOnly)) || !strings.Contains(signedBy[newID], later.Format(time.DateOnly)) {
		t.Fatalf("manifests signed: %v; want %s's by the old key %s and %s's by the new key %s", signedBy, early.Format(time.DateOnly), oldID, later.Format(time.DateOnly), newID)
	}

	from, to := early.Format(time.DateOnly), digestDay.Format(time.DateOnly)
	verify := func(keys ...string) (verifySummary, result) {
		args := []string{"archive", "verify", "--destinations", destFile, "--from", from, "--to", to, "-o", "json"}
		for _, k := range keys {
			args = append(args, "--public-key", k)
		}
		r := ctl(t, args...)
		var sum verifySummary
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
			t.Fatalf("verify %v: %v: stdout is not JSON: %v\n%s\nstderr:\n%s", keys, r.err, err, r.stdout, r.stderr)
		}
		return sum, r
	}

	// Both keys: everything verifies, the digests across the rotation too.
	sum, r := verify(oldPub, newPub)
	if r.err != nil || !sum.OK || len(sum.Signatures.Keys) != 2 || sum.Connections[0].Digests != 2 {
		t.Fatalf("verify with both keys: %v\n%s", r.err, r.stdout)
	}
	text := mustCtl(t, "archive", "verify", "--destinations", destFile, "--public-key", oldPub, "--public-key", newPub, "--from", from, "--to", to)
	if want := fmt.Sprintf("signatures checked with keys %s (--public-key %s), %s (--public-key %s)", oldID, oldPub, newID, newPub); !strings.Contains(text.stdout, want) {
		t.Fatalf("text report lacks %q:\n%s", want, text.stdout)
	}

	// One key only: each manifest and digest signed by the other is named,
	// with its day, and nothing else is.
	for _, c := range []struct {
		given, other string
		otherDays    []string
		otherDigests []string
	}{
		{newPub, oldID, []string{early.Format(time.DateOnly), to}, []string{archive.DigestKey("acc-a", digestDay, 0)}},
		{oldPub, newID, []string{later.Format(time.DateOnly), to}, []string{addendum}},
	} {
		sum, r := verify(c.given)
		if r.err == nil || sum.OK {
			t.Fatalf("verify with %s alone passed:\n%s", c.given, r.stdout)
		}
		days := map[string]bool{}
		digests := map[string]bool{}
		for _, p := range sum.Connections[0].Problems {
			if p.Kind != archive.ProblemUnknownKey || !strings.Contains(p.Detail, "signed by key "+c.other+", not one of the keys given") {
				t.Errorf("verify with %s alone: problem %v, want only %s named", c.given, p, archive.ProblemUnknownKey)
				continue
			}
			day, _, _ := strings.Cut(strings.TrimPrefix(p.Detail, "day "), ":")
			days[day] = true
			if _, ok := archive.ParseDigestKey(p.Key); ok {
				digests[p.Key] = true
			}
		}
		for _, d := range c.otherDays {
			if !days[d] {
				t.Errorf("verify with %s alone does not name day %s, signed by key %s: %v", c.given, d, c.other, sum.Connections[0].Problems)
			}
		}
		for _, d := range c.otherDigests {
			if !digests[d] {
				t.Errorf("verify with %s alone does not name the digest %s, signed by key %s: %v", c.given, d, c.other, sum.Connections[0].Problems)
			}
		}
		if len(digests) != len(c.otherDigests) {
			t.Errorf("verify with %s alone names digests %v, want %v", c.given, digests, c.otherDigests)
		}
	}

	// The day's digest removed, its addendum left: the day is named.
	dayDigest := archive.DigestKey("acc-a", digestDay, 0)
	if err := os.Remove(filepath.Join(store, filepath.FromSlash(dayDigest))); err != nil {
		t.Fatal(err)
	}
	sum, r = verify(oldPub, newPub)
	named := false
	for _, p := range sum.Connections[0].Problems {
		named = named || p.Kind == archive.ProblemDigestMissing && p.Key == dayDigest && strings.Contains(p.Detail, "day "+to+" has no digest")
	}
	if r.err == nil || !named {
		t.Fatalf("verify without the day's digest: %v, want %s named missing\n%s", r.err, dayDigest, r.stdout)
	}
}
