// Package local is an objstore.Store in a directory: for the dev stack,
// tests, and a mounted volume that something else ships off the host.
//
// Create writes the body to a temporary file in the key's directory,
// flushes it to disk, and then hard-links it to its final name: link fails
// when the name exists, which makes the create conditional and atomic (a
// reader sees the whole object or none), and unlike rename it never
// replaces an object. Objects are left read-only. The SHA-256 is kept in
// the extended attribute user.sha256 where the file system has them.
//
// A key is a path under the directory, so unlike a bucket the directory
// cannot hold both "a" and "a/b".
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/internal/upload"
)

func init() {
	objstore.Register(objstore.KindLocal, func(_ context.Context, s objstore.Settings) (objstore.Store, error) {
		return New(s.Local.Dir)
	})
}

// tempPrefix starts the names of files being written. List skips them and
// no key may have a segment starting with it.
const tempPrefix = ".objstore-tmp-"

// copyChunk is how much of a body one read takes; the context is checked
// between reads.
const copyChunk = 1 << 20

// Store is a directory of objects.
type Store struct {
	dir string
}

// New returns the store in dir, creating the directory if needed.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("local store: %w", err)
	}
	return &Store{dir: abs}, nil
}

func checkKey(key string) error {
	if err := objstore.ValidKey(key); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(seg, tempPrefix) {
			return fmt.Errorf("%w %q: segments starting with %q are reserved", objstore.ErrInvalidKey, key, tempPrefix)
		}
	}
	return nil
}

func (s *Store) path(key string) string { return filepath.Join(s.dir, filepath.FromSlash(key)) }

// Create stores the body under key unless an object is there.
func (s *Store) Create(ctx context.Context, key string, body io.ReaderAt, size int64, opts objstore.CreateOptions) (objstore.Info, error) {
	if err := checkKey(key); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	if err := upload.CheckOptions(size, opts); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	final := s.path(key)
	if err := s.mkdirs(filepath.Dir(final)); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	tmp, err := s.writeTemp(ctx, filepath.Dir(final), body, size, opts)
	if err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	// Removed in every case: after the link the object's name keeps the
	// data, before it nothing must stay behind.
	defer os.Remove(tmp)
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Lstat(final); serr == nil && fi.IsDir() {
				return objstore.Info{}, fmt.Errorf("create %s: the key is a folder of other objects", key)
			}
			return objstore.Info{}, fmt.Errorf("create %s: %w", key, objstore.ErrExists)
		}
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	fi, err := os.Lstat(final)
	if err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	return info(key, fi), nil
}

// writeTemp writes the body to a new temporary file in dir, flushed and
// read-only, and returns its path. On error nothing is left behind.
func (s *Store) writeTemp(ctx context.Context, dir string, body io.ReaderAt, size int64, opts objstore.CreateOptions) (path string, err error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var h hash.Hash
	if len(opts.SHA256) > 0 {
		h = sha256.New()
	}
	buf := make([]byte, min(copyChunk, max(size, 1)))
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n := min(int64(len(buf)), size-off)
		got, rerr := body.ReadAt(buf[:n], off)
		if int64(got) < n {
			if rerr == nil || errors.Is(rerr, io.EOF) {
				rerr = fmt.Errorf("body ends at %d bytes, before its size %d: %w", off+int64(got), size, io.ErrUnexpectedEOF)
			}
			return "", fmt.Errorf("read body: %w", rerr)
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return "", err
		}
		if h != nil {
			h.Write(buf[:n])
		}
		off += n
	}
	if h != nil {
		if err := upload.Check(opts.SHA256, h.Sum(nil)); err != nil {
			return "", err
		}
		// Best effort: not every file system keeps user attributes.
		_ = unix.Fsetxattr(int(f.Fd()), "user.sha256", []byte(hex.EncodeToString(opts.SHA256)), 0)
	}
	if err := f.Chmod(0o444); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// mkdirs creates dir and its missing parents under the store's directory,
// flushing each new entry so a created object's path survives a crash.
func (s *Store) mkdirs(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("a parent of the key is an object")
		}
		return nil
	}
	if dir == s.dir || !strings.HasPrefix(dir, s.dir+string(filepath.Separator)) {
		return os.MkdirAll(dir, 0o750)
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirs(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return s.mkdirs(dir) // made by a concurrent Create, or an object
		}
		if errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("a parent of the key is an object")
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Open returns the object's bytes.
func (s *Store) Open(_ context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	if err := checkKey(key); err != nil {
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, notFound(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, objstore.ErrNotFound)
	}
	return f, info(key, fi), nil
}

// Stat returns the object's Info.
func (s *Store) Stat(_ context.Context, key string) (objstore.Info, error) {
	if err := checkKey(key); err != nil {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	fi, err := os.Lstat(s.path(key))
	if err != nil {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, objstore.ErrNotFound)
	}
	return info(key, fi), nil
}

// notFound wraps objstore.ErrNotFound for a missing file, including one
// whose parent is an object.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w (%w)", objstore.ErrNotFound, err)
	}
	return err
}

// List yields the objects under prefix in key order. Within a directory a
// folder sorts as its name followed by "/", so "a-b" comes before "a/c" as
// it would in a bucket.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[objstore.Info, error] {
	return func(yield func(objstore.Info, error) bool) {
		if err := objstore.ValidPrefix(prefix); err != nil {
			yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
			return
		}
		start := ""
		if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
			start = prefix[:i]
		}
		s.walk(ctx, start, prefix, true, yield)
	}
}

// walk yields the objects in the folder rel that start with prefix; it
// returns false when the caller stopped.
func (s *Store) walk(ctx context.Context, rel, prefix string, top bool, yield func(objstore.Info, error) bool) bool {
	entries, err := os.ReadDir(s.path(rel))
	if err != nil {
		if top && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
			return true // nothing under the prefix
		}
		if errors.Is(err, fs.ErrNotExist) {
			return true // removed while listing
		}
		return yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
	}
	sortKey := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(sortKey(a), sortKey(b)) })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
		}
		if strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		key := e.Name()
		if rel != "" {
			key = rel + "/" + key
		}
		if e.IsDir() {
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				continue
			}
			if !s.walk(ctx, key, prefix, false, yield) {
				return false
			}
			continue
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
		}
		if !yield(info(key, fi), nil) {
			return false
		}
	}
	return true
}

func info(key string, fi fs.FileInfo) objstore.Info {
	v := strconv.FormatInt(fi.ModTime().UnixNano(), 10) + "-" + strconv.FormatInt(fi.Size(), 10)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		v = strconv.FormatUint(st.Ino, 10) + "-" + v
	}
	return objstore.Info{Key: key, Size: fi.Size(), Version: v}
}

// Describe names the directory as a file URL.
func (s *Store) Describe() string { return "file://" + filepath.ToSlash(s.dir) }

// Close releases nothing: the store holds no open files.
func (s *Store) Close() error { return nil }

// String is Describe, so printing a Store shows no more than that.
func (s *Store) String() string { return s.Describe() }
