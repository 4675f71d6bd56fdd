// Package secretbox seals the secrets stored with a destination (API keys,
// secret access keys, SAS tokens, service-account JSON) with envelope
// encryption: each value is encrypted with AES-256-GCM under a fresh data
// key, and the data key is wrapped by a key-encryption key (KEK) held in a
// local keyring file or in AWS KMS. The value's Context (account,
// connection, field) is authenticated data, so a sealed value copied to
// another account, connection or field fails to open.
//
// Errors name the operation, the key id and the context, never a
// plaintext, a data key or key material, and are classified with
// errors.Is: ErrUnknownKey (permanent), ErrTampered (authentication
// failed) and ErrUnavailable (the key service can be retried).
package secretbox

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Version is the Sealed format this package writes and reads.
const Version = 1

// Sizes of the envelope's parts.
const (
	DataKeyBytes = 32 // AES-256
	NonceBytes   = 12 // GCM's standard nonce
	TagBytes     = 16 // GCM's tag
)

// Errors, classified with errors.Is.
var (
	// ErrUnknownKey: the key id is not in the keyring, or the KMS key is
	// not found, disabled or not usable for this. Permanent until an
	// operator restores the key.
	ErrUnknownKey = errors.New("unknown or unusable key-encryption key")
	// ErrTampered: authentication failed. The value was moved to another
	// context (account, connection, field), its bytes were altered, or it
	// was wrapped under another key.
	ErrTampered = errors.New("authentication failed: wrong context, altered value or wrong key")
	// ErrUnavailable: the key service could not answer (unreachable,
	// throttled, 5xx); retrying may succeed.
	ErrUnavailable = errors.New("key service unavailable")
)

// Context is authenticated data bound to a sealed value, for example
// {"account": "acc-1", "connection": "dd-main", "field": "api_key"}. A
// value sealed under one Context fails to open under any other. Its
// values are not secret: errors name them.
type Context map[string]string

// Canonical is the Context's encoding used as authenticated data: the
// number of pairs, then each pair in key order as length-prefixed key and
// value (unsigned varints), so no two Contexts encode alike.
func (c Context) Canonical() []byte {
	keys := make([]string, 0, len(c))
	n := binary.MaxVarintLen64
	for k, v := range c {
		keys = append(keys, k)
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	slices.Sort(keys)
	out := make([]byte, 0, n)
	out = binary.AppendUvarint(out, uint64(len(keys)))
	for _, k := range keys {
		out = binary.AppendUvarint(out, uint64(len(k)))
		out = append(out, k...)
		out = binary.AppendUvarint(out, uint64(len(c[k])))
		out = append(out, c[k]...)
	}
	return out
}

// String lists the pairs in key order, values quoted and shortened, for
// error messages.
func (c Context) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(short(k))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(short(c[k])))
	}
	if b.Len() == 0 {
		return "empty context"
	}
	return b.String()
}

// short bounds a key id or context value quoted in an error (a KMS key
// ARN is about 80 bytes).
func short(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// Sealed is one encrypted value as stored (JSON). It never holds
// plaintext.
type Sealed struct {
	Version    int    `json:"v"`   // Version
	KeyID      string `json:"kid"` // the key-encryption key that wrapped the data key
	WrappedKey []byte `json:"wk"`  // the data key, wrapped by the KEK (base64 in JSON)
	Nonce      []byte `json:"n"`
	Ciphertext []byte `json:"ct"` // AES-256-GCM of the plaintext, AAD = Context.Canonical
}

// KEK wraps and unwraps data keys. Implementations: the local keyring
// (Keyring) and AWS KMS (NewKEK with kms set). Errors wrap ErrUnknownKey,
// ErrTampered or ErrUnavailable where they apply, and never hold key
// material.
type KEK interface {
	// CurrentKeyID is the id new data keys are wrapped with.
	CurrentKeyID() string
	// NewDataKey returns a fresh 32-byte data key, plaintext and wrapped
	// under the current key, bound to c.
	NewDataKey(ctx context.Context, c Context) (keyID string, plaintext, wrapped []byte, err error)
	// Unwrap opens a data key wrapped under keyID for c.
	Unwrap(ctx context.Context, keyID string, wrapped []byte, c Context) ([]byte, error)
}

// Defaults of the cache of unwrapped data keys.
const (
	// DefaultCacheSize is how many unwrapped data keys a Box keeps.
	DefaultCacheSize = 10_000
	// DefaultCacheTTL is how long a Box keeps an unwrapped data key: a
	// key removed from the keyring or disabled in KMS stops opening
	// values in a running process within it.
	DefaultCacheTTL = 10 * time.Minute
)

// Option configures a Box.
type Option func(*Box)

// WithCacheSize bounds the cache of unwrapped data keys (keyed by key id
// and wrapped bytes) to n entries, least recently used dropped first; 0
// turns it off, so every Open unwraps (one KMS Decrypt each).
func WithCacheSize(n int) Option { return func(b *Box) { b.cacheSize = max(n, 0) } }

// WithCacheTTL sets how long an unwrapped data key is kept (default
// DefaultCacheTTL); 0 keeps it until it is evicted.
func WithCacheTTL(d time.Duration) Option { return func(b *Box) { b.cacheTTL = max(d, 0) } }

// Box seals and opens values with a KEK. It is safe for concurrent use.
type Box struct {
	kek       KEK
	cacheSize int
	cacheTTL  time.Duration
	now       func() time.Time
	cache     *keyCache
	flight    flight
}

// New returns a Box sealing with kek.
func New(kek KEK, opts ...Option) *Box {
	b := &Box{kek: kek, cacheSize: DefaultCacheSize, cacheTTL: DefaultCacheTTL, now: time.Now}
	for _, o := range opts {
		o(b)
	}
	if b.cacheSize > 0 {
		b.cache = newKeyCache(b.cacheSize, b.cacheTTL, b.now)
	}
	return b
}

// CurrentKeyID is the id new values are wrapped under.
func (b *Box) CurrentKeyID() string { return b.kek.CurrentKeyID() }

// Seal encrypts plaintext under a fresh data key bound to c.
func (b *Box) Seal(ctx context.Context, plaintext []byte, c Context) (Sealed, error) {
	kid, dk, wrapped, err := b.kek.NewDataKey(ctx, c)
	if err != nil {
		return Sealed{}, opError("seal", kid, c, err)
	}
	defer clear(dk)
	if len(dk) != DataKeyBytes || len(wrapped) == 0 || kid == "" {
		return Sealed{}, opError("seal", kid, c, fmt.Errorf("the key-encryption key returned a %d-byte data key, want %d", len(dk), DataKeyBytes))
	}
	aead, err := newAEAD(dk)
	if err != nil {
		return Sealed{}, opError("seal", kid, c, err)
	}
	nonce := make([]byte, NonceBytes)
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, opError("seal", kid, c, fmt.Errorf("nonce: %w", err))
	}
	s := Sealed{
		Version:    Version,
		KeyID:      kid,
		WrappedKey: wrapped,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, plaintext, c.Canonical()),
	}
	if b.cache != nil {
		b.cache.put(cacheKey(kid, wrapped), aead)
	}
	return s, nil
}

// Open decrypts s, which must have been sealed under c.
func (b *Box) Open(ctx context.Context, s Sealed, c Context) ([]byte, error) {
	if err := checkShape(s); err != nil {
		return nil, opError("open", s.KeyID, c, err)
	}
	aead, err := b.dataKey(ctx, s.KeyID, s.WrappedKey, c)
	if err != nil {
		return nil, opError("open", s.KeyID, c, err)
	}
	pt, err := aead.Open(nil, s.Nonce, s.Ciphertext, c.Canonical())
	if err != nil {
		return nil, opError("open", s.KeyID, c, fmt.Errorf("value: %w", ErrTampered))
	}
	return pt, nil
}

// Stale reports whether s is wrapped under a key that is not the current
// one: Rewrap would change it.
func (b *Box) Stale(s Sealed) bool { return s.KeyID != b.kek.CurrentKeyID() }

// Rewrap returns s under the current key: it opens s first (so a value
// that does not open is reported, not rewritten), then seals the same
// plaintext under a fresh data key wrapped by the current KEK. A value
// that is not Stale is returned as it is.
func (b *Box) Rewrap(ctx context.Context, s Sealed, c Context) (Sealed, error) {
	pt, err := b.Open(ctx, s, c)
	if err != nil {
		return Sealed{}, fmt.Errorf("rewrap: %w", err)
	}
	defer clear(pt)
	if !b.Stale(s) {
		return s, nil
	}
	out, err := b.Seal(ctx, pt, c)
	if err != nil {
		return Sealed{}, fmt.Errorf("rewrap: %w", err)
	}
	return out, nil
}

// dataKey returns the AEAD of the data key wrapped under kid: from the
// cache, or unwrapped by the KEK, one call for concurrent Opens of the
// same value.
func (b *Box) dataKey(ctx context.Context, kid string, wrapped []byte, c Context) (cipher.AEAD, error) {
	ck := cacheKey(kid, wrapped)
	if b.cache != nil {
		if aead, ok := b.cache.get(ck); ok {
			return aead, nil
		}
	}
	// The context is part of the flight's key: a caller with the wrong
	// context must not share a right one's answer, nor the reverse.
	return b.flight.do(string(ck[:])+string(c.Canonical()), func() (cipher.AEAD, error) {
		dk, err := b.kek.Unwrap(ctx, kid, wrapped, c)
		if err != nil {
			return nil, err
		}
		defer clear(dk)
		if len(dk) != DataKeyBytes {
			return nil, fmt.Errorf("data key: unwrapped to %d bytes, want %d: %w", len(dk), DataKeyBytes, ErrTampered)
		}
		aead, err := newAEAD(dk)
		if err != nil {
			return nil, err
		}
		if b.cache != nil {
			b.cache.put(ck, aead)
		}
		return aead, nil
	})
}

// checkShape refuses a Sealed that cannot be a value this package wrote.
func checkShape(s Sealed) error {
	switch {
	case s.Version != Version:
		return fmt.Errorf("format version %d, want %d: %w", s.Version, Version, ErrTampered)
	case s.KeyID == "":
		return fmt.Errorf("no key id: %w", ErrUnknownKey)
	case len(s.WrappedKey) == 0:
		return fmt.Errorf("no wrapped key: %w", ErrTampered)
	case len(s.Nonce) != NonceBytes:
		return fmt.Errorf("nonce of %d bytes, want %d: %w", len(s.Nonce), NonceBytes, ErrTampered)
	case len(s.Ciphertext) < TagBytes:
		return fmt.Errorf("ciphertext of %d bytes is shorter than its tag: %w", len(s.Ciphertext), ErrTampered)
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return cipher.NewGCM(block)
}

// opError says which operation failed on which key and context; err says
// why and carries the classification.
func opError(op, kid string, c Context, err error) error {
	if kid == "" {
		return fmt.Errorf("secretbox: %s (%s): %w", op, c, err)
	}
	return fmt.Errorf("secretbox: %s with key %q (%s): %w", op, short(kid), c, err)
}
