package secretbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

var (
	ctxA    = Context{"account": "acc-1", "connection": "dd-main", "field": "api_key"}
	secretA = []byte("dd-api-key-0123456789abcdef0123456789abcdef")
)

func TestRoundTripKeyring(t *testing.T) {
	box := New(openKeyring(t, newKeyringFile(t, "k1")))
	ctx := context.Background()
	for _, pt := range [][]byte{secretA, {}, bytes.Repeat([]byte{0xff}, 64<<10)} {
		s, err := box.Seal(ctx, pt, ctxA)
		if err != nil {
			t.Fatal(err)
		}
		if s.Version != 1 || s.KeyID != "k1" || len(s.Nonce) != NonceBytes || len(s.Ciphertext) != len(pt)+TagBytes {
			t.Fatalf("sealed %d bytes: v=%d kid=%q nonce %d ct %d", len(pt), s.Version, s.KeyID, len(s.Nonce), len(s.Ciphertext))
		}
		// Stored as JSON, read back in another process: a Box without the
		// data key in its cache.
		raw, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 4 && bytes.Contains(raw, pt) {
			t.Fatalf("stored form holds the plaintext: %s", raw)
		}
		var back Sealed
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		fresh := New(openKeyring(t, newKeyringFileCopy(t, box)))
		got, err := fresh.Open(ctx, back, Context{"field": "api_key", "connection": "dd-main", "account": "acc-1"})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("opened %d bytes, sealed %d", len(got), len(pt))
		}
	}
	var probe map[string]any
	s, _ := box.Seal(ctx, secretA, ctxA)
	raw, _ := json.Marshal(s)
	if err := json.Unmarshal(raw, &probe); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"v", "kid", "wk", "n", "ct"} {
		if _, ok := probe[k]; !ok {
			t.Errorf("stored JSON lacks %q: %s", k, raw)
		}
	}
}

// newKeyringFileCopy copies the keyring file box's Keyring reads to a new
// path, as another process would have the same file.
func newKeyringFileCopy(t *testing.T, box *Box) string {
	t.Helper()
	data, err := os.ReadFile(box.kek.(*Keyring).path)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/keyring.yaml"
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestContextBinding(t *testing.T) {
	for _, cache := range []int{0, DefaultCacheSize} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			box := New(openKeyring(t, newKeyringFile(t, "k1")), WithCacheSize(cache))
			ctx := context.Background()
			s, err := box.Seal(ctx, secretA, ctxA)
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range map[string]Context{
				"other account":    {"account": "acc-2", "connection": "dd-main", "field": "api_key"},
				"other connection": {"account": "acc-1", "connection": "dd-other", "field": "api_key"},
				"other field":      {"account": "acc-1", "connection": "dd-main", "field": "app_key"},
				"extra pair":       {"account": "acc-1", "connection": "dd-main", "field": "api_key", "x": ""},
				"missing pair":     {"account": "acc-1", "connection": "dd-main"},
				"empty":            nil,
				"shifted bytes":    {"account": "acc-1", "connection": "dd-mai", "field": "napi_key"},
			} {
				pt, err := box.Open(ctx, s, c)
				if !errors.Is(err, ErrTampered) || pt != nil {
					t.Errorf("%s: %v, %d bytes, want ErrTampered", name, err, len(pt))
				}
			}
			if _, err := box.Open(ctx, s, ctxA); err != nil {
				t.Fatalf("the right context after wrong ones: %v", err)
			}
		})
	}
}

func TestCanonicalUnambiguous(t *testing.T) {
	pairs := [][2]Context{
		{{"a": "bc"}, {"ab": "c"}},
		{{"a": "b", "c": "d"}, {"a": "b\x01c\x01d"}},
		{{"a": ""}, {"": "a"}},
		{{}, {"": ""}},
	}
	for _, p := range pairs {
		if bytes.Equal(p[0].Canonical(), p[1].Canonical()) {
			t.Errorf("%v and %v encode alike", p[0], p[1])
		}
	}
	if !bytes.Equal(Context{"x": "1", "a": "2"}.Canonical(), Context{"a": "2", "x": "1"}.Canonical()) {
		t.Error("the encoding depends on insertion order")
	}
}

// flips returns copies of s with one field altered each.
func flips(s Sealed) map[string]Sealed {
	out := map[string]Sealed{}
	alter := func(name string, f func(*Sealed)) {
		c := s
		c.WrappedKey = bytes.Clone(s.WrappedKey)
		c.Nonce = bytes.Clone(s.Nonce)
		c.Ciphertext = bytes.Clone(s.Ciphertext)
		f(&c)
		out[name] = c
	}
	alter("v", func(c *Sealed) { c.Version = 2 })
	alter("v=0", func(c *Sealed) { c.Version = 0 })
	alter("kid", func(c *Sealed) {
		last := "9"
		if strings.HasSuffix(c.KeyID, last) {
			last = "8" // a key id ending in 9 would not change
		}
		c.KeyID = c.KeyID[:len(c.KeyID)-1] + last
	})
	alter("kid empty", func(c *Sealed) { c.KeyID = "" })
	for _, i := range []int{0, len(s.WrappedKey) / 2, len(s.WrappedKey) - 1} {
		alter(fmt.Sprintf("wk[%d]", i), func(c *Sealed) { c.WrappedKey[i] ^= 0x01 })
	}
	alter("wk short", func(c *Sealed) { c.WrappedKey = c.WrappedKey[:len(c.WrappedKey)-1] })
	alter("wk empty", func(c *Sealed) { c.WrappedKey = nil })
	for _, i := range []int{0, NonceBytes - 1} {
		alter(fmt.Sprintf("n[%d]", i), func(c *Sealed) { c.Nonce[i] ^= 0x80 })
	}
	alter("n short", func(c *Sealed) { c.Nonce = c.Nonce[:NonceBytes-1] })
	for _, i := range []int{0, len(s.Ciphertext) / 2, len(s.Ciphertext) - 1} {
		alter(fmt.Sprintf("ct[%d]", i), func(c *Sealed) { c.Ciphertext[i] ^= 0x01 })
	}
	alter("ct truncated", func(c *Sealed) { c.Ciphertext = c.Ciphertext[:len(c.Ciphertext)-1] })
	alter("ct empty", func(c *Sealed) { c.Ciphertext = nil })
	alter("ct extended", func(c *Sealed) { c.Ciphertext = append(c.Ciphertext, 0) })
	return out
}

func TestFlippedBytes(t *testing.T) {
	for _, cache := range []int{0, DefaultCacheSize} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			box := New(openKeyring(t, newKeyringFile(t, "k1")), WithCacheSize(cache))
			ctx := context.Background()
			s, err := box.Seal(ctx, secretA, ctxA)
			if err != nil {
				t.Fatal(err)
			}
			for name, bad := range flips(s) {
				pt, err := box.Open(ctx, bad, ctxA)
				want := ErrTampered
				if strings.HasPrefix(name, "kid") {
					want = ErrUnknownKey
				}
				if !errors.Is(err, want) || pt != nil {
					t.Errorf("%s: %v, %d bytes, want %v", name, err, len(pt), want)
				}
			}
			if _, err := box.Open(ctx, s, ctxA); err != nil {
				t.Fatalf("the original after the altered copies: %v", err)
			}
		})
	}
}

func TestOtherKeyInKeyring(t *testing.T) {
	// A value claiming another key of the same keyring fails
	// authentication: the key id is part of the wrapped key's data.
	path := newKeyringFile(t, "k1", "k2")
	box := New(openKeyring(t, path), WithCacheSize(0))
	ctx := context.Background()
	s, err := box.Seal(ctx, secretA, ctxA)
	if err != nil {
		t.Fatal(err)
	}
	s.KeyID = "k2"
	if _, err := box.Open(ctx, s, ctxA); !errors.Is(err, ErrTampered) {
		t.Fatalf("k1's wrapped key read as k2's: %v, want ErrTampered", err)
	}
}

func TestUnknownKeyID(t *testing.T) {
	ctx := context.Background()
	a := New(openKeyring(t, newKeyringFile(t, "k1")))
	s, err := a.Seal(ctx, secretA, ctxA)
	if err != nil {
		t.Fatal(err)
	}
	// Another installation's keyring, with other keys.
	b := New(openKeyring(t, newKeyringFile(t, "k7")))
	_, err = b.Open(ctx, s, ctxA)
	if !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrTampered) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("open under a keyring without k1: %v, want ErrUnknownKey only", err)
	}
	for _, want := range []string{`"k1"`, `account="acc-1"`, `connection="dd-main"`, `field="api_key"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// Same id, other key material: the key is not the one that wrapped it.
	c := New(openKeyring(t, newKeyringFile(t, "k1")))
	if _, err := c.Open(ctx, s, ctxA); !errors.Is(err, ErrTampered) {
		t.Fatalf("open under another k1: %v, want ErrTampered", err)
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	path := newKeyringFile(t, "k1")
	kr := openKeyring(t, path)
	clock := newTestClock()
	box := New(kr, withClock(clock.now))
	contexts := []Context{
		{"account": "acc-1", "connection": "dd-main", "field": "api_key"},
		{"account": "acc-2", "connection": "eb", "field": "secret_access_key"},
		{"account": "acc-3", "connection": "gcs", "field": "service_account_json"},
	}
	var old []Sealed
	for i, c := range contexts {
		s, err := box.Seal(ctx, fmt.Appendf(nil, "secret-%d", i), c)
		if err != nil {
			t.Fatal(err)
		}
		if box.Stale(s) {
			t.Fatalf("a value sealed now is stale")
		}
		old = append(old, s)
	}

	// Add k2 as primary: the running Box sees it at its next use.
	if err := AddKey(path, "k2", true); err != nil {
		t.Fatal(err)
	}
	if got := box.CurrentKeyID(); got != "k2" {
		t.Fatalf("current key after AddKey(k2, primary): %q", got)
	}
	fresh, err := box.Seal(ctx, []byte("new"), contexts[0])
	if err != nil {
		t.Fatal(err)
	}
	if fresh.KeyID != "k2" || box.Stale(fresh) {
		t.Fatalf("new value under %q, stale %v", fresh.KeyID, box.Stale(fresh))
	}
	var rewrapped []Sealed
	for i, s := range old {
		if !box.Stale(s) {
			t.Fatalf("value %d under k1 not stale with k2 primary", i)
		}
		if _, err := box.Open(ctx, s, contexts[i]); err != nil {
			t.Fatalf("value %d under k1 after rotation: %v", i, err)
		}
		// Rewrap refuses a value that does not open in the given context.
		if _, err := box.Rewrap(ctx, s, contexts[(i+1)%len(contexts)]); !errors.Is(err, ErrTampered) {
			t.Fatalf("rewrap under the wrong context: %v", err)
		}
		r, err := box.Rewrap(ctx, s, contexts[i])
		if err != nil {
			t.Fatal(err)
		}
		if r.KeyID != "k2" || box.Stale(r) || bytes.Equal(r.WrappedKey, s.WrappedKey) {
			t.Fatalf("rewrapped value %d: kid %q stale %v", i, r.KeyID, box.Stale(r))
		}
		again, err := box.Rewrap(ctx, r, contexts[i])
		if err != nil || !bytes.Equal(again.Ciphertext, r.Ciphertext) {
			t.Fatalf("rewrap of a current value changed it (%v)", err)
		}
		rewrapped = append(rewrapped, r)
	}

	// Remove k1: what was re-wrapped still opens, in this Box and in a
	// new one; what was not fails as unknown key in a Box that has not
	// cached its data key.
	if err := RemoveKey(path, "k1"); err != nil {
		t.Fatal(err)
	}
	if ids := kr.KeyIDs(); len(ids) != 1 || ids[0] != "k2" {
		t.Fatalf("keys after removing k1: %v", ids)
	}
	restarted := New(openKeyring(t, path))
	for i, r := range rewrapped {
		for _, b := range []*Box{box, restarted} {
			got, err := b.Open(ctx, r, contexts[i])
			if err != nil || string(got) != fmt.Sprintf("secret-%d", i) {
				t.Fatalf("rewrapped value %d after removing k1: %q, %v", i, got, err)
			}
		}
		if _, err := restarted.Open(ctx, old[i], contexts[i]); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("value %d under the removed k1: %v, want ErrUnknownKey", i, err)
		}
	}
	// The running Box still holds k1's data keys, until they expire.
	if _, err := box.Open(ctx, old[0], contexts[0]); err != nil {
		t.Fatalf("a cached data key under the removed k1: %v", err)
	}
	clock.add(DefaultCacheTTL)
	if _, err := box.Open(ctx, old[0], contexts[0]); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("value under the removed k1 after the cache TTL: %v, want ErrUnknownKey", err)
	}
	if _, err := box.Open(ctx, rewrapped[0], contexts[0]); err != nil {
		t.Fatalf("rewrapped value after the cache TTL: %v", err)
	}
}

func TestCacheBoundsUnwraps(t *testing.T) {
	ctx := context.Background()
	path := newKeyringFile(t, "k1")
	sealer := New(openKeyring(t, path))
	var values []Sealed
	for i := range 3 {
		s, err := sealer.Seal(ctx, secretA, Context{"account": fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, s)
	}
	for _, tc := range []struct {
		size, want int
	}{{DefaultCacheSize, 3}, {3, 3}, {2, 300}, {0, 300}} {
		rec := &recordingKEK{KEK: openKeyring(t, path)}
		box := New(rec, WithCacheSize(tc.size))
		for range 100 {
			for i, s := range values {
				if _, err := box.Open(ctx, s, Context{"account": fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := int(rec.unwraps.Load()); got != tc.want {
			t.Errorf("cache of %d: %d unwraps for 300 opens of 3 values, want %d", tc.size, got, tc.want)
		}
		if box.cache != nil && box.cache.len() > tc.size {
			t.Errorf("cache of %d holds %d", tc.size, box.cache.len())
		}
	}
}

func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	path := newKeyringFile(t, "k1")
	rec := &recordingKEK{KEK: openKeyring(t, path)}
	box := New(rec, WithCacheSize(8))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				c := Context{"account": fmt.Sprint(g), "connection": fmt.Sprint(i % 10)}
				pt := fmt.Appendf(nil, "secret %d %d", g, i)
				s, err := box.Seal(ctx, pt, c)
				if err != nil {
					errs <- err
					return
				}
				got, err := box.Open(ctx, s, c)
				if err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("open: %q, %v", got, err)
					return
				}
				if g == 0 && i == 25 {
					// A rotation while the others seal and open.
					if err := AddKey(path, "k2", true); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if box.cache.len() > 8 {
		t.Fatalf("cache of 8 holds %d", box.cache.len())
	}
	if box.CurrentKeyID() != "k2" {
		t.Fatalf("current key %q after the rotation", box.CurrentKeyID())
	}
}

func TestNoSecretsInErrors(t *testing.T) {
	ctx := context.Background()
	path := newKeyringFile(t, "k1", "k2")
	rec := &recordingKEK{KEK: openKeyring(t, path)}
	box := New(rec, WithCacheSize(0))
	s, err := box.Seal(ctx, secretA, ctxA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := box.Open(ctx, s, ctxA); err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, bad := range flips(s) {
		_, err := box.Open(ctx, bad, ctxA)
		errs = append(errs, err)
		_, err = box.Rewrap(ctx, bad, ctxA)
		errs = append(errs, err)
	}
	_, err = box.Open(ctx, s, Context{"account": "acc-2", "connection": "dd-main", "field": "api_key"})
	errs = append(errs, err)
	other := New(openKeyring(t, newKeyringFile(t, "k9")))
	_, err = other.Open(ctx, s, ctxA)
	errs = append(errs, err)

	secrets := append(keyMaterial(t, path), rec.secrets()...)
	secrets = append(secrets, secretForms(secretA)...)
	assertNoSecrets(t, errs, secrets)
}

func TestFormatVersionNamed(t *testing.T) {
	box := New(openKeyring(t, newKeyringFile(t, "k1")))
	s, err := box.Seal(context.Background(), secretA, ctxA)
	if err != nil {
		t.Fatal(err)
	}
	s.Version = 7
	_, err = box.Open(context.Background(), s, ctxA)
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "format version 7") {
		t.Fatalf("open of version 7: %v", err)
	}
}
