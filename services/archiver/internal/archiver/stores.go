package archiver

import (
	"context"
	"io"
	"iter"
	"sync"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/objstore"
)

// storeCache keeps one open store per connection version: a connection whose
// settings change (a new bucket, a rotated key file path) gets a new client,
// the others keep theirs.
type storeCache struct {
	log *zap.Logger
	mu  sync.Mutex
	m   map[string]objstore.Store // by connection fingerprint
}

func newStoreCache(log *zap.Logger) *storeCache {
	return &storeCache{log: log, m: map[string]objstore.Store{}}
}

// get returns the connection's store. A store that cannot be opened now
// (credentials missing, a bad endpoint) comes back as one whose every call
// fails with that error, so the caller's retry and dead-letter rules apply
// and the next get tries again.
func (c *storeCache) get(conn *destinations.Connection) objstore.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[conn.Fingerprint]; ok {
		return st
	}
	settings, err := destinations.DecodeSettings[objstore.Settings](conn)
	if err != nil {
		return failedStore{name: conn.Name, err: err}
	}
	st, err := objstore.Open(context.Background(), settings)
	if err != nil {
		c.log.Error("open storage connection", zap.String("connection", conn.Name), zap.Error(err))
		return failedStore{name: conn.Name, err: err}
	}
	c.m[conn.Fingerprint] = st
	return st
}

func (c *storeCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, st := range c.m {
		_ = st.Close()
		delete(c.m, k)
	}
}

type failedStore struct {
	name string
	err  error
}

func (f failedStore) Create(context.Context, string, io.ReaderAt, int64, objstore.CreateOptions) (objstore.Info, error) {
	return objstore.Info{}, f.err
}
func (f failedStore) Open(context.Context, string) (io.ReadCloser, objstore.Info, error) {
	return nil, objstore.Info{}, f.err
}
func (f failedStore) Stat(context.Context, string) (objstore.Info, error) {
	return objstore.Info{}, f.err
}
func (f failedStore) List(context.Context, string) iter.Seq2[objstore.Info, error] {
	return func(yield func(objstore.Info, error) bool) { yield(objstore.Info{}, f.err) }
}
func (f failedStore) Describe() string { return "connection " + f.name + " (not open)" }
func (f failedStore) Close() error     { return nil }
