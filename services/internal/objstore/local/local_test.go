package local_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/local"
	"github.com/auditstream/auditstream/services/testsupport/storetest"
)

func newStore(t *testing.T) *local.Store {
	t.Helper()
	st, err := local.New(filepath.Join(t.TempDir(), "archive"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) objstore.Store { return newStore(t) })
}

// Through Open, with every key under a prefix.
func TestConformanceWithPrefix(t *testing.T) {
	storetest.Run(t, func(t *testing.T) objstore.Store {
		st, err := objstore.Open(t.Context(), objstore.Settings{
			Kind:   objstore.KindLocal,
			Prefix: "audit/acme",
			Local:  &objstore.LocalSettings{Dir: t.TempDir()},
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

// What only a directory shows: no temporary file is left behind or
// listed, objects are read-only, and a key cannot be both an object and a
// folder.
func TestDirectory(t *testing.T) {
	st := newStore(t)
	dir := strings.TrimPrefix(st.Describe(), "file://")
	b := storetest.NewBody(1000, 1)
	storetest.MustCreate(t, st, "a/b/c.json", b)

	// a temporary file from a crashed create is neither listed nor in the
	// way
	crashed := filepath.Join(dir, "a", "b", ".objstore-tmp-123")
	if err := os.WriteFile(crashed, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Keys(t, st, ""); len(got) != 1 || got[0] != "a/b/c.json" {
		t.Errorf("listed %q", got)
	}
	if _, err := st.Stat(t.Context(), "a/b/.objstore-tmp-123"); err == nil {
		t.Error("a temporary file is reachable as a key")
	}
	entries, err := os.ReadDir(filepath.Join(dir, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want the object and the planted file", len(entries))
	}

	fi, err := os.Stat(filepath.Join(dir, "a", "b", "c.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("object mode %v is writable", fi.Mode())
	}

	for _, key := range []string{"a/b", "a/b/c.json/d"} {
		if _, err := storetest.Create(t.Context(), st, key, b); err == nil {
			t.Errorf("create %s: succeeded", key)
		}
	}
	if !strings.HasPrefix(st.Describe(), "file:///") {
		t.Errorf("describe %q", st.Describe())
	}
}
