package secretbox

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// newKeyringFile creates a keyring file with a key ids[0] (the primary)
// and the rest of ids added after it.
func newKeyringFile(t testing.TB, ids ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyring.yaml")
	if err := GenerateKeyring(path, ids[0]); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[1:] {
		if err := AddKey(path, id, false); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func openKeyring(t testing.TB, path string) *Keyring {
	t.Helper()
	k, err := OpenKeyring(path, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyMaterial is every form in which the keys of the keyring file at
// path could leak: the base64 of the file, the raw bytes, hex.
func keyMaterial(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseRing(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, raw := range r.raw {
		out = append(out, secretForms(raw)...)
	}
	return out
}

func secretForms(b []byte) []string {
	return []string{
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), hex.EncodeToString(b), string(b),
		strings.Trim(fmt.Sprint(b), "[]"), // as %v prints a []byte
	}
}

// recordingKEK passes calls to a real KEK, counting unwraps and keeping
// every data key it hands out, so tests can look for them in errors.
type recordingKEK struct {
	KEK
	unwraps atomic.Int64

	mu       sync.Mutex
	dataKeys [][]byte
}

func (r *recordingKEK) NewDataKey(ctx context.Context, c Context) (string, []byte, []byte, error) {
	kid, dk, wk, err := r.KEK.NewDataKey(ctx, c)
	if err == nil {
		r.mu.Lock()
		r.dataKeys = append(r.dataKeys, append([]byte(nil), dk...))
		r.mu.Unlock()
	}
	return kid, dk, wk, err
}

func (r *recordingKEK) Unwrap(ctx context.Context, kid string, wrapped []byte, c Context) ([]byte, error) {
	r.unwraps.Add(1)
	dk, err := r.KEK.Unwrap(ctx, kid, wrapped, c)
	if err == nil {
		r.mu.Lock()
		r.dataKeys = append(r.dataKeys, append([]byte(nil), dk...))
		r.mu.Unlock()
	}
	return dk, err
}

func (r *recordingKEK) secrets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, dk := range r.dataKeys {
		out = append(out, secretForms(dk)...)
	}
	return out
}

// assertNoSecrets fails when any error's text holds any of secrets.
func assertNoSecrets(t *testing.T, errs []error, secrets []string) {
	t.Helper()
	if len(errs) == 0 || len(secrets) == 0 {
		t.Fatalf("nothing to check: %d errors, %d secrets", len(errs), len(secrets))
	}
	for _, err := range errs {
		if err == nil {
			t.Fatal("a nil error in the list")
		}
		msg := err.Error()
		for _, s := range secrets {
			if len(s) >= 4 && strings.Contains(msg, s) {
				t.Errorf("error %q holds a secret (%.6s...)", msg, s)
			}
		}
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testClock is a clock tests move by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) now() time.Time         { return time.Unix(0, c.ns.Load()) }
func (c *testClock) add(d time.Duration)    { c.ns.Add(int64(d)) }
func withClock(now func() time.Time) Option { return func(b *Box) { b.now = now } }
