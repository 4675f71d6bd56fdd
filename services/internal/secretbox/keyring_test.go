package secretbox

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestKeyringFileErrors(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	k2 := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	short := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"empty", "", []string{"empty"}},
		{"not a mapping", "- k1\n", []string{"must be a mapping"}},
		{"not YAML", "primary: [k1\n", []string{"not YAML"}},
		{"no primary", "keys:\n  - {id: k1, key: " + k1 + "}\n", []string{"primary: must be set"}},
		{"primary not listed", "primary: k3\nkeys:\n  - {id: k1, key: " + k1 + "}\n", []string{`primary: "k3" is not the id of a listed key`}},
		{"primary a list", "primary: [k1]\nkeys:\n  - {id: k1, key: " + k1 + "}\n", []string{"primary: line 1: must be a key id"}},
		{"no keys", "primary: k1\n", []string{"keys: must list at least one key"}},
		{"keys empty", "primary: k1\nkeys: []\n", []string{"keys: must list at least one key"}},
		{"keys a string", "primary: k1\nkeys: " + k1 + "\n", []string{"keys: line 2: must be a list"}},
		{"bad base64", "primary: k1\nkeys:\n  - {id: k1, key: \"" + k1[:20] + "!!" + k1[22:] + "\"}\n", []string{"keys[0].key: line 3: is not standard base64"}},
		{"short key", "primary: k1\nkeys:\n  - {id: k1, key: " + short + "}\n", []string{"keys[0].key: line 3: decodes to 16 bytes, want 32"}},
		{"no key", "primary: k1\nkeys:\n  - {id: k1}\n", []string{"keys[0].key: must be set"}},
		{"no id", "primary: k1\nkeys:\n  - {key: " + k1 + "}\n", []string{"keys[0].id: must be set"}},
		{"bad id", "primary: k1\nkeys:\n  - {id: \"k 1\", key: " + k1 + "}\n", []string{"keys[0].id: line 3: must be 1 to 64"}},
		{"duplicate id", "primary: k1\nkeys:\n  - {id: k1, key: " + k1 + "}\n  - {id: k1, key: " + k2 + "}\n", []string{`keys[1].id: line 4: "k1" is also the id of keys[0]`}},
		{"unknown top field", "primary: k1\nprimay: k2\nkeys:\n  - {id: k1, key: " + k1 + "}\n", []string{"primay: line 2: unknown field"}},
		{"unknown key field", "primary: k1\nkeys:\n  - {id: k1, key: " + k1 + ", created: today}\n", []string{"keys[0].created: line 3: unknown field"}},
		{"key as field name", "primary: k1\nkeys:\n  - {id: k1, key: " + k2 + ", " + k1 + ": x}\n", []string{"keys[0].(unknown field): line 3: unknown field"}},
		{"item not a mapping", "primary: k1\nkeys:\n  - " + k1 + "\n", []string{"keys[0]: line 3: must be a mapping"}},
		{"several at once", "primary: k1\nkeys:\n  - {id: k1, key: " + short + "}\n  - {id: \"\", key: " + k1 + "}\n", []string{"keys[0].key", "keys[1].id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keyring.yaml")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := OpenKeyring(path, zap.NewNop())
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("%q does not name the file", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			for _, key := range []string{k1, k2, short, k1[:20], k1[22:]} {
				if strings.Contains(msg, key) {
					t.Errorf("%q holds key material", msg)
				}
			}
		})
	}
}

func TestGenerateKeyring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.yaml")
	if err := GenerateKeyring(path, "dev-1"); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", info.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if err := GenerateKeyring(path, "dev-2"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second GenerateKeyring: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("GenerateKeyring overwrote the file")
	}
	if err := GenerateKeyring(filepath.Join(t.TempDir(), "k.yaml"), "bad id"); err == nil {
		t.Fatal("accepted the id \"bad id\"")
	}

	// Two keyrings never share a key.
	other := filepath.Join(t.TempDir(), "keyring.yaml")
	if err := GenerateKeyring(other, "dev-1"); err != nil {
		t.Fatal(err)
	}
	a, b := keyMaterial(t, path), keyMaterial(t, other)
	if a[0] == b[0] {
		t.Fatal("two generated keyrings hold the same key")
	}

	// AddKey keeps every key and the primary unless told.
	if err := AddKey(path, "dev-2", false); err != nil {
		t.Fatal(err)
	}
	kr := openKeyring(t, path)
	if kr.CurrentKeyID() != "dev-1" || strings.Join(kr.KeyIDs(), ",") != "dev-1,dev-2" {
		t.Fatalf("after AddKey(dev-2, false): primary %q, keys %v", kr.CurrentKeyID(), kr.KeyIDs())
	}
	if !slices.Contains(keyMaterial(t, path), a[0]) {
		t.Fatal("AddKey changed dev-1's key")
	}
	if err := AddKey(path, "dev-2", true); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("AddKey of an existing id: %v", err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode after AddKey %v", info.Mode().Perm())
	}
	if err := SetPrimary(path, "dev-2"); err != nil || kr.CurrentKeyID() != "dev-2" {
		t.Fatalf("SetPrimary(dev-2): %v, current %q", err, kr.CurrentKeyID())
	}
	if err := RemoveKey(path, "dev-2"); err == nil || !strings.Contains(err.Error(), "primary") {
		t.Fatalf("RemoveKey of the primary: %v", err)
	}
	if err := RemoveKey(path, "dev-9"); err == nil {
		t.Fatal("RemoveKey of an unknown id succeeded")
	}
	// No temporary file is left next to it.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries", len(entries))
	}
	if err := AddKey(filepath.Join(t.TempDir(), "missing.yaml"), "k1", true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("AddKey to a missing file: %v", err)
	}
}

func TestKeyringBadRewriteKeepsKeys(t *testing.T) {
	path := newKeyringFile(t, "k1")
	core, logs := observer.New(zap.InfoLevel)
	kr, err := OpenKeyring(path, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	box := New(kr, WithCacheSize(0))
	ctx := context.Background()
	s, err := box.Seal(ctx, secretA, ctxA)
	if err != nil {
		t.Fatal(err)
	}
	material := keyMaterial(t, path)
	good, _ := os.ReadFile(path)
	// An operator's typo: the file turns invalid. The keys read before
	// stay in use, and the problem is logged once.
	broken := strings.Replace(string(good), "primary: k1", "primary: k2", 1)
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := box.Open(ctx, s, ctxA); err != nil {
			t.Fatalf("open after the file turned invalid: %v", err)
		}
	}
	errLogs := logs.FilterMessage("keyring file unusable; the keys last read stay in use").All()
	if len(errLogs) != 1 {
		t.Fatalf("%d error logs for 3 opens of an invalid file, want 1", len(errLogs))
	}
	if !strings.Contains(errLogs[0].ContextMap()["error"].(string), "primary") {
		t.Errorf("log does not say what is wrong: %v", errLogs[0].ContextMap())
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := box.Open(ctx, s, ctxA); err != nil {
		t.Fatalf("open after the file was removed: %v", err)
	}
	// Fixed: read again, and logged.
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := AddKey(path, "k2", true); err != nil {
		t.Fatal(err)
	}
	if kr.CurrentKeyID() != "k2" {
		t.Fatalf("current key %q after the file was fixed", kr.CurrentKeyID())
	}
	for _, e := range logs.All() {
		for _, v := range e.ContextMap() {
			for _, m := range material {
				if strings.Contains(strings.ReplaceAll(toString(v), "\n", ""), m) {
					t.Errorf("log %q holds key material", e.Message)
				}
			}
		}
	}
	if logs.FilterMessage("keyring file read").Len() != 1 {
		t.Errorf("the re-read was not logged once: %d", logs.FilterMessage("keyring file read").Len())
	}
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		var parts []string
		for _, p := range x {
			parts = append(parts, toString(p))
		}
		return strings.Join(parts, " ")
	}
	return ""
}
