package secretbox

import (
	"container/list"
	"crypto/cipher"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// cacheKey names a wrapped data key: a hash of the key id and the wrapped
// bytes, so an entry costs 32 bytes of key however long a KMS blob is.
func cacheKey(kid string, wrapped []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(kid))
	h.Write([]byte{0})
	h.Write(wrapped)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// keyCache keeps the AEADs of unwrapped data keys, least recently used
// dropped first past size. The data key is only inside the AEAD: a value
// sealed under one context and opened under another still fails on the
// value's own authenticated data, so the cache needs no context.
type keyCache struct {
	mu    sync.Mutex
	size  int
	ttl   time.Duration // 0: entries do not expire
	now   func() time.Time
	ll    *list.List // of *cacheEntry, most recent first
	items map[[sha256.Size]byte]*list.Element
}

type cacheEntry struct {
	key   [sha256.Size]byte
	aead  cipher.AEAD
	added time.Time
}

func newKeyCache(size int, ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{size: size, ttl: ttl, now: now, ll: list.New(), items: map[[sha256.Size]byte]*list.Element{}}
}

func (c *keyCache) get(k [sha256.Size]byte) (cipher.AEAD, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if c.ttl > 0 && c.now().Sub(e.added) >= c.ttl {
		// Expired: the KEK is asked again, so a key removed or disabled
		// since stops opening values within the TTL.
		c.ll.Remove(el)
		delete(c.items, k)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e.aead, true
}

func (c *keyCache) put(k [sha256.Size]byte, aead cipher.AEAD) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value.(*cacheEntry).added = c.now()
		c.ll.MoveToFront(el)
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, aead: aead, added: c.now()})
	for c.ll.Len() > c.size {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// flight runs one unwrap per key at a time; concurrent callers share it.
type flight struct{ g singleflight.Group }

func (f *flight) do(key string, fn func() (cipher.AEAD, error)) (cipher.AEAD, error) {
	v, err, _ := f.g.Do(key, func() (any, error) { return fn() })
	if err != nil {
		return nil, err
	}
	return v.(cipher.AEAD), nil
}
