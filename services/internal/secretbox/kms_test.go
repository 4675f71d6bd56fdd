package secretbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/testsupport/kmsfake"
)

const (
	testAccessKey = "AKIDSECRETBOXTEST"
	testSecretKey = "wJalrXUtnFEMI/K7MDENG/secretboxTESTKEY"
)

// newFakeKMS starts a KMS fake that verifies every signature, with one key
// behind alias/auditstream.
func newFakeKMS(t *testing.T) (*kmsfake.Server, string) {
	t.Helper()
	f := kmsfake.New("eu-west-1")
	t.Cleanup(f.Close)
	f.AddKey(kmsfake.Key{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey})
	f.RequireKnownKeys(true)
	arn := f.CreateKey()
	if err := f.CreateAlias("alias/auditstream", arn); err != nil {
		t.Fatal(err)
	}
	return f, arn
}

func kmsConfig(f *kmsfake.Server, keyID string) Config {
	return Config{KMS: KMSConfig{
		KeyID:    keyID,
		Region:   f.Region(),
		Endpoint: f.URL(),
		Credentials: awsauth.Credentials{
			AccessKeyID:     config.SecretLiteral(testAccessKey),
			SecretAccessKey: config.SecretLiteral(testSecretKey),
		},
		MaxAttempts: 2,
	}}
}

func newKMSKEK(t *testing.T, f *kmsfake.Server, keyID string) KEK {
	t.Helper()
	k, err := NewKEK(context.Background(), kmsConfig(f, keyID), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKMSRoundTrip(t *testing.T) {
	f, arn := newFakeKMS(t)
	ctx := context.Background()
	for _, keyID := range []string{"alias/auditstream", f.AliasARN("alias/auditstream"), arn, arn[strings.LastIndex(arn, "/")+1:]} {
		kek := newKMSKEK(t, f, keyID)
		if kek.CurrentKeyID() != arn {
			t.Fatalf("key id %s: current key %q, want the ARN %s", keyID, kek.CurrentKeyID(), arn)
		}
		box := New(kek)
		s, err := box.Seal(ctx, secretA, ctxA)
		if err != nil {
			t.Fatal(err)
		}
		if s.KeyID != arn || box.Stale(s) {
			t.Fatalf("sealed under %q (stale %v), want %s", s.KeyID, box.Stale(s), arn)
		}
		if bytes.Contains(s.WrappedKey, secretA) || bytes.Contains(s.Ciphertext, secretA) {
			t.Fatal("the sealed value holds the plaintext")
		}
		// Another process: nothing cached, KMS decrypts the data key.
		f.Reset()
		got, err := New(newKMSKEK(t, f, keyID)).Open(ctx, s, ctxA)
		if err != nil || !bytes.Equal(got, secretA) {
			t.Fatalf("open: %q, %v", got, err)
		}
		if n := f.OK(kmsfake.OpDecrypt); n != 1 {
			t.Fatalf("%d Decrypt calls for one open", n)
		}
	}
}

func TestKMSTampered(t *testing.T) {
	f, arn := newFakeKMS(t)
	other := f.CreateKey()
	ctx := context.Background()
	box := New(newKMSKEK(t, f, "alias/auditstream"), WithCacheSize(0))
	s, err := box.Seal(ctx, secretA, ctxA)
	if err != nil {
		t.Fatal(err)
	}
	f.Reset()
	// Moved to another account: KMS itself refuses the data key, as the
	// encryption context differs.
	moved := Context{"account": "acc-2", "connection": "dd-main", "field": "api_key"}
	if _, err := box.Open(ctx, s, moved); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "InvalidCiphertextException") {
		t.Fatalf("open in another account: %v, want KMS's InvalidCiphertextException as ErrTampered", err)
	}
	if f.Calls(kmsfake.OpDecrypt) != 1 {
		t.Fatalf("the wrong context did not reach KMS: %d Decrypt calls", f.Calls(kmsfake.OpDecrypt))
	}
	for name, bad := range flips(s) {
		_, err := box.Open(ctx, bad, ctxA)
		want := ErrTampered
		if strings.HasPrefix(name, "kid") {
			want = ErrUnknownKey // an ARN of no key
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	// The blob names its key: another key's id is refused.
	c := s
	c.KeyID = other
	if _, err := box.Open(ctx, c, ctxA); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "IncorrectKeyException") {
		t.Fatalf("open naming another key: %v", err)
	}
	if _, err := box.Open(ctx, s, ctxA); err != nil {
		t.Fatalf("the original after the altered copies: %v", err)
	}
	_ = arn
}

func TestKMSFailures(t *testing.T) {
	f, arn := newFakeKMS(t)
	ctx := context.Background()
	box := New(newKMSKEK(t, f, "alias/auditstream"), WithCacheSize(0))
	s, err := box.Seal(ctx, secretA, ctxA)
	if err != nil {
		t.Fatal(err)
	}

	// Throttled past the retries: retryable.
	f.Reset()
	f.Throttle(2)
	_, err = box.Open(ctx, s, ctxA)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTampered) || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("throttled: %v, want ErrUnavailable only", err)
	}
	if n := f.Calls(kmsfake.OpDecrypt); n != 2 {
		t.Fatalf("throttled Decrypt tried %d times, want max_attempts 2", n)
	}
	// One throttle is retried away.
	f.Throttle(1)
	if _, err := box.Open(ctx, s, ctxA); err != nil {
		t.Fatalf("after one throttled try: %v", err)
	}
	f.FailNext(2, http.StatusInternalServerError, "", "")
	if _, err := box.Seal(ctx, secretA, ctxA); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("500: %v, want ErrUnavailable", err)
	}
	f.FailNext(2, http.StatusServiceUnavailable, "KMSInternalException", "")
	if _, err := box.Open(ctx, s, ctxA); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("503: %v, want ErrUnavailable", err)
	}

	// A disabled key: permanent.
	if err := f.DisableKey(arn); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"open": func() error { _, err := box.Open(ctx, s, ctxA); return err }(),
		"seal": func() error { _, err := box.Seal(ctx, secretA, ctxA); return err }(),
		"new":  func() error { _, err := NewKEK(ctx, kmsConfig(f, "alias/auditstream"), nil); return err }(),
	} {
		if !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with the key disabled: %v, want ErrUnknownKey", name, err)
		}
	}
	if err := f.EnableKey(arn); err != nil {
		t.Fatal(err)
	}
	if _, err := box.Open(ctx, s, ctxA); err != nil {
		t.Fatalf("open with the key enabled again: %v", err)
	}
	if _, err := NewKEK(ctx, kmsConfig(f, "alias/missing"), nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("an alias of no key: %v, want ErrUnknownKey", err)
	}

	// Unreachable: retryable, and NewKEK starts anyway.
	f.Close()
	if _, err := box.Open(ctx, s, ctxA); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("KMS gone: %v, want ErrUnavailable", err)
	}
	kek, err := NewKEK(ctx, kmsConfig(f, "alias/auditstream"), nil)
	if err != nil {
		t.Fatalf("NewKEK with KMS unreachable: %v", err)
	}
	if kek.CurrentKeyID() != "alias/auditstream" {
		t.Fatalf("current key before KMS answered: %q", kek.CurrentKeyID())
	}
}

func TestKMSCacheBoundsDecrypts(t *testing.T) {
	f, _ := newFakeKMS(t)
	ctx := context.Background()
	sealer := New(newKMSKEK(t, f, "alias/auditstream"))
	var values []Sealed
	for i := range 3 {
		s, err := sealer.Seal(ctx, secretA, Context{"account": fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, s)
	}
	// Eight workers open the three values twenty times each.
	f.Reset()
	box := New(newKMSKEK(t, f, "alias/auditstream"))
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 20 {
				for i, s := range values {
					if _, err := box.Open(ctx, s, Context{"account": fmt.Sprint(i)}); err != nil {
						failed.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d opens failed", failed.Load())
	}
	if got := f.Calls(kmsfake.OpDecrypt); got != 3 {
		t.Errorf("KMS saw %d Decrypt calls for 480 concurrent opens of 3 values, want 3", got)
	}
	// One at a time, a cache smaller than the values cycled (or none)
	// decrypts every time; one as large, once per value.
	for _, tc := range []struct{ size, want int }{{3, 3}, {2, 60}, {0, 60}} {
		f.Reset()
		box := New(newKMSKEK(t, f, "alias/auditstream"), WithCacheSize(tc.size))
		for range 20 {
			for i, s := range values {
				if _, err := box.Open(ctx, s, Context{"account": fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := f.Calls(kmsfake.OpDecrypt); got != tc.want {
			t.Errorf("cache of %d: KMS saw %d Decrypt calls for 60 opens of 3 values, want %d", tc.size, got, tc.want)
		}
	}
}

func TestKMSRotation(t *testing.T) {
	f, k1 := newFakeKMS(t)
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	cfg := kmsConfig(f, "alias/auditstream").WithDefaults().KMS
	kek, err := newKMS(ctx, cfg, zap.NewNop(), kmsOptions{now: now})
	if err != nil {
		t.Fatal(err)
	}
	box := New(kek)
	old, err := box.Seal(ctx, secretA, ctxA)
	if err != nil {
		t.Fatal(err)
	}
	// The alias moves to a new key: within a minute, values under the
	// old one are stale.
	k2 := f.CreateKey()
	if err := f.CreateAlias("alias/auditstream", k2); err != nil {
		t.Fatal(err)
	}
	if box.Stale(old) {
		t.Fatal("stale before the key was described again")
	}
	clock.Add(int64(kmsRefresh))
	if box.CurrentKeyID() != k2 || !box.Stale(old) {
		t.Fatalf("after the refresh: current %q, stale %v", box.CurrentKeyID(), box.Stale(old))
	}
	got, err := box.Open(ctx, old, ctxA)
	if err != nil || !bytes.Equal(got, secretA) {
		t.Fatalf("old value after the alias moved: %v", err)
	}
	r, err := box.Rewrap(ctx, old, ctxA)
	if err != nil {
		t.Fatal(err)
	}
	if r.KeyID != k2 || box.Stale(r) {
		t.Fatalf("rewrapped under %q", r.KeyID)
	}
	// The old key disabled: the re-wrapped value opens in a new process,
	// the old one does not.
	if err := f.DisableKey(k1); err != nil {
		t.Fatal(err)
	}
	fresh := New(newKMSKEK(t, f, "alias/auditstream"))
	if got, err := fresh.Open(ctx, r, ctxA); err != nil || !bytes.Equal(got, secretA) {
		t.Fatalf("rewrapped value with k1 disabled: %v", err)
	}
	if _, err := fresh.Open(ctx, old, ctxA); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old value with k1 disabled: %v, want ErrUnknownKey", err)
	}
}

func TestKMSNoSecretsInErrors(t *testing.T) {
	f, _ := newFakeKMS(t)
	other := f.CreateKey()
	ctx := context.Background()
	rec := &recordingKEK{KEK: newKMSKEK(t, f, "alias/auditstream")}
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
	}
	c := s
	c.KeyID = other
	_, err = box.Open(ctx, c, ctxA)
	errs = append(errs, err)
	_, err = box.Open(ctx, s, Context{"account": "acc-2"})
	errs = append(errs, err)
	// Throttled for every attempt, so that the open fails whatever the
	// retry policy, and there is an error to check.
	f.Throttle(100)
	_, err = box.Open(ctx, s, ctxA)
	errs = append(errs, err)
	secrets := append(rec.secrets(), secretForms(secretA)...)
	secrets = append(secrets, testSecretKey, secretForms(s.WrappedKey)[0])
	assertNoSecrets(t, errs, secrets)
}
