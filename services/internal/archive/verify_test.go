package archive_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/local"
)

var day = time.Date(2024, 2, 16, 0, 0, 0, 0, time.UTC)

// writeArchive writes two accounts' objects over two days (two groups each,
// so every chain has links) and returns the directory.
func writeArchive(t *testing.T, signer *archive.Signer) (string, objstore.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := archive.NewWriter(signer)
	offset := int64(0)
	for d := range 2 {
		for _, acct := range []string{"acc-a", "acc-b"} {
			sp, err := archive.NewSpool(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			first := offset
			for i := range 5 {
				line := fmt.Sprintf(`{"id":"%s-%d-%d"}`, acct, d, i)
				if err := sp.Add(acct, fmt.Sprintf("%s-%d-%d", acct, d, i), offset, day.Add(time.Duration(d)*24*time.Hour), []byte(line)); err != nil {
					t.Fatal(err)
				}
				offset++
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
			g := archive.Group{Window: archive.WindowOf(day.Add(time.Duration(d)*24*time.Hour), 24*time.Hour), Partition: 0, First: first, Last: offset - 1}
			if _, err := w.Put(context.Background(), archive.Target{Name: "t", Store: st}, acct, g, false, archive.Object{Body: bytes.NewReader(buf.Bytes()), Stats: stats}); err != nil {
				t.Fatal(err)
			}
			sp.Close()
		}
	}
	return dir, st
}

func TestVerifyDetectsEveryChangedByte(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir, st := writeArchive(t, archive.NewSigner(priv))
	rep, err := archive.Verify(context.Background(), st, archive.VerifyOptions{PublicKey: pub})
	if err != nil || !rep.OK() || rep.Objects != 4 || rep.Manifests != 4 {
		t.Fatalf("clean archive: %+v %v", rep, err)
	}
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 8 {
		t.Fatalf("%d files, want 4 objects and 4 manifests", len(files))
	}
	for _, f := range files {
		orig, _ := os.ReadFile(f)
		for _, at := range []int{0, len(orig) / 2, len(orig) - 1} {
			changed := bytes.Clone(orig)
			changed[at] ^= 0x01
			if err := os.WriteFile(f, changed, 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := archive.Verify(context.Background(), st, archive.VerifyOptions{PublicKey: pub})
			key := filepath.ToSlash(strings.TrimPrefix(f, dir+string(filepath.Separator)))
			named := false
			for _, p := range rep.Problems {
				if p.Key == key || strings.Contains(p.Detail, key) {
					named = true
				}
			}
			if err != nil || rep.OK() || !named {
				t.Errorf("byte %d of %s flipped: verify %v, problems %v (none names the file)", at, key, err, rep.Problems)
			}
			if err := os.WriteFile(f, orig, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestVerifyFindsMissingExtraAndBrokenChains(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		kind   string
	}{
		{"object deleted", func(t *testing.T, dir string) {
			removeFirst(t, dir, "acc-a/2024/02/16")
		}, archive.ProblemMissing},
		{"manifest deleted", func(t *testing.T, dir string) {
			removeFirst(t, dir, "acc-a/_manifests")
		}, archive.ProblemChain},
		{"object added", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "acc-b/2024/02/16/20240216T000000Z-86400s-p00000-00000000000000000900-00000000000000000901.json.gz")
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, archive.ProblemExtra},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, st := writeArchive(t, archive.NewSigner(priv))
			tc.change(t, dir)
			rep, err := archive.Verify(context.Background(), st, archive.VerifyOptions{PublicKey: pub})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range rep.Problems {
				found = found || p.Kind == tc.kind
			}
			if !found {
				t.Fatalf("problems %v, want a %s", rep.Problems, tc.kind)
			}
		})
	}
	// Unsigned manifests verified with a key are reported.
	_, st := writeArchive(t, nil)
	rep, _ := archive.Verify(context.Background(), st, archive.VerifyOptions{PublicKey: pub})
	if rep.OK() || rep.Problems[0].Kind != archive.ProblemUnsigned {
		t.Fatalf("unsigned archive verified with a key: %v", rep.Problems)
	}
}

func removeFirst(t *testing.T, dir, sub string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil || len(entries) == 0 {
		t.Fatalf("nothing in %s: %v", sub, err)
	}
	if err := os.Remove(filepath.Join(dir, sub, entries[0].Name())); err != nil {
		t.Fatal(err)
	}
}
