// Package objstore is the archive's view of a bucket: S3, GCS, Azure Blob or
// a local directory behind one small interface whose only write is a
// conditional create. Nothing here can overwrite or delete an object; that is
// the archive's immutability guarantee, kept by construction.
package objstore

import (
	"context"
	"errors"
	"io"
	"iter"
)

// ErrExists is wrapped by Create when an object is already stored under the
// key. The stored object is left as it was.
var ErrExists = errors.New("object already exists")

// ErrNotFound is wrapped by Open and Stat when no object is stored under the
// key.
var ErrNotFound = errors.New("object not found")

// ErrChecksumMismatch is wrapped by Create when the body's SHA-256 is not
// CreateOptions.SHA256 (or a store's own checksum does not match what it
// received). Nothing is stored.
var ErrChecksumMismatch = errors.New("body does not match its checksum")

// Info describes a stored object.
type Info struct {
	Key  string
	Size int64
	// Version identifies this exact stored object: the S3 ETag (and version
	// id on versioned buckets), the GCS generation, the Azure ETag, the local
	// file's inode and modification time. A changed Version means the object
	// was replaced.
	Version string
}

// CreateOptions describe the object being created.
type CreateOptions struct {
	ContentType     string // application/x-ndjson, application/json
	ContentEncoding string // gzip for data objects, empty for manifests
	// SHA256 is the body's SHA-256. Stores that can check it on upload do
	// (S3 x-amz-checksum-sha256, Azure Content-MD5 is not used); every store
	// keeps it as object metadata "sha256" (hex) for humans and tools.
	SHA256 []byte
}

// Store is one bucket (or directory) and key prefix. Keys are slash-separated
// paths relative to the store's prefix.
type Store interface {
	// Create stores size bytes of body under key only if no object exists
	// there: S3 If-None-Match: * (on PutObject and CompleteMultipartUpload),
	// GCS DoesNotExist, Azure If-None-Match: *, local O_EXCL/link. If one
	// exists it returns an error wrapping ErrExists and changes nothing. An
	// interrupted Create leaves either no object or the whole object, never a
	// partial one. body is read through ReadAt so retries and parallel
	// multipart parts need no buffering.
	Create(ctx context.Context, key string, body io.ReaderAt, size int64, opts CreateOptions) (Info, error)
	// Open returns the object's bytes as stored (no transparent gunzip).
	Open(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat returns the object's Info, or an error wrapping ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// List yields the objects whose keys start with prefix, in lexicographic
	// key order. It stops at the first error, which it yields.
	List(ctx context.Context, prefix string) iter.Seq2[Info, error]
	// Describe names the store for logs and errors, without credentials:
	// "s3://bucket/prefix", "file:///var/lib/archive".
	Describe() string
	Close() error
}
