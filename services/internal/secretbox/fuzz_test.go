package secretbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzOpen opens arbitrary stored values: Open never panics, fails with a
// classified error, and succeeds only for the value as sealed.
func FuzzOpen(f *testing.F) {
	kr := openKeyring(f, newKeyringFile(f, "k1", "k2"))
	cached, uncached := New(kr), New(kr, WithCacheSize(0))
	ctx := context.Background()
	orig, err := cached.Seal(ctx, secretA, ctxA)
	if err != nil {
		f.Fatal(err)
	}
	seed, err := json.Marshal(orig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, bad := range flips(orig) {
		b, _ := json.Marshal(bad)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"kid":"k1","wk":null,"n":"","ct":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Sealed
		if json.Unmarshal(data, &s) != nil {
			return
		}
		same := s.Version == orig.Version && s.KeyID == orig.KeyID && bytes.Equal(s.WrappedKey, orig.WrappedKey) &&
			bytes.Equal(s.Nonce, orig.Nonce) && bytes.Equal(s.Ciphertext, orig.Ciphertext)
		for _, box := range []*Box{cached, uncached} {
			pt, err := box.Open(ctx, s, ctxA)
			switch {
			case err == nil && !same:
				t.Fatalf("opened an altered value: %+v", s)
			case err == nil && !bytes.Equal(pt, secretA):
				t.Fatalf("opened to %q", pt)
			case err != nil && same:
				t.Fatalf("the value as sealed did not open: %v", err)
			case err != nil && !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKey):
				t.Fatalf("unclassified: %v", err)
			case err != nil && pt != nil:
				t.Fatalf("an error with %d bytes of plaintext", len(pt))
			}
		}
	})
}

// FuzzKeyringFile parses arbitrary keyring files: never a panic, and a
// keyring accepted has its primary among its keys.
func FuzzKeyringFile(f *testing.F) {
	path := newKeyringFile(f, "k1", "k2")
	data := mustRead(f, path)
	f.Add(data)
	f.Add([]byte("primary: k1\nkeys: []\n"))
	f.Add([]byte("primary: k1\nkeys:\n  - {id: k1, key: AAAA}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRing(data)
		if err != nil {
			return
		}
		if r.aeads[r.primary] == nil || len(r.ids) != len(r.raw) || len(r.ids) == 0 {
			t.Fatalf("accepted a keyring without its primary %q or with %d ids for %d keys", r.primary, len(r.ids), len(r.raw))
		}
		if _, err := parseRing(r.render()); err != nil {
			t.Fatalf("rendered keyring does not parse: %v", err)
		}
	})
}
