// Package gcsstore is an objstore.Store in a Google Cloud Storage bucket,
// through cloud.google.com/go/storage.
//
// Create writes with the precondition DoesNotExist (ifGenerationMatch=0),
// which GCS checks when the object is finalized: on a single-request upload
// and on the last request of a resumable one alike. A failed condition is
// 412. A resumable upload that is abandoned (an error, a cancelled
// context) is never finalized, so no object appears.
//
// GCS checks MD5 and CRC32C, not SHA-256: Create reads the body once before
// sending it to verify CreateOptions.SHA256 and compute the CRC32C, which
// GCS then checks against what it received. The SHA-256 is kept as the
// metadata "sha256". Info.Version is the object's generation.
package gcsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/internal/upload"
)

func init() {
	objstore.Register(objstore.KindGCS, func(ctx context.Context, s objstore.Settings) (objstore.Store, error) {
		return New(ctx, *s.GCS, Options{})
	})
}

// Options tune a Store beyond its settings.
type Options struct {
	// HTTPClient sends the requests of a store without credentials (an
	// emulator at an endpoint); nil is the client library's own.
	HTTPClient *http.Client
	// ListPageSize is how many objects one list call asks for (default
	// 1000).
	ListPageSize int
}

// Store is one bucket.
type Store struct {
	cfg      objstore.GCSSettings
	client   *storage.Client
	bucket   *storage.BucketHandle
	pageSize int
}

// New returns the store for the bucket the settings name. With
// Credentials it signs with them; with neither Credentials nor Endpoint it
// uses the Application Default Credentials; with an Endpoint alone it sends
// unauthenticated requests, as emulators expect.
func New(ctx context.Context, cfg objstore.GCSSettings, opts Options) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gcs store: %w", err)
	}
	// Reads stay on the XML API, the library's default: its JSON reads
	// cannot ask for the stored (compressed) bytes.
	var copts []option.ClientOption
	if cfg.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(cfg.Endpoint))
	}
	switch {
	case cfg.Credentials.IsSet():
		if opts.HTTPClient != nil {
			return nil, errors.New("gcs store: an HTTP client cannot be combined with credentials")
		}
		opt, err := credentialsOption(cfg.Credentials.Value)
		if err != nil {
			return nil, fmt.Errorf("gcs store: credentials: %w", err)
		}
		copts = append(copts, opt)
	case cfg.Endpoint != "":
		copts = append(copts, option.WithoutAuthentication())
		if opts.HTTPClient != nil {
			copts = append(copts, option.WithHTTPClient(opts.HTTPClient))
		}
	}
	client, err := storage.NewClient(ctx, copts...)
	if err != nil {
		return nil, fmt.Errorf("gcs store: %w", err)
	}
	pageSize := opts.ListPageSize
	if pageSize <= 0 {
		pageSize = 1000
	}
	return &Store{cfg: cfg, client: client, bucket: client.Bucket(cfg.Bucket), pageSize: pageSize}, nil
}

// credentialTypes are the credentials files accepted, by their "type": the
// library asks for the type to be named so that a file of an unexpected
// kind is not used.
var credentialTypes = map[string]option.CredentialsType{
	"service_account":              option.ServiceAccount,
	"external_account":             option.ExternalAccount,
	"impersonated_service_account": option.ImpersonatedServiceAccount,
	"authorized_user":              option.AuthorizedUser,
}

func credentialsOption(value func() (string, error)) (option.ClientOption, error) {
	raw, err := value()
	if err != nil {
		return nil, err
	}
	var head struct {
		Type string `json:"type"`
	}
	// The decoder's error may quote the document; it is not passed on.
	if json.Unmarshal([]byte(raw), &head) != nil {
		return nil, errors.New("not a JSON credentials file")
	}
	typ, ok := credentialTypes[head.Type]
	if !ok {
		return nil, fmt.Errorf("credentials of type %q are not supported (service_account, external_account, impersonated_service_account or authorized_user)", head.Type)
	}
	return option.WithAuthCredentialsJSON(typ, []byte(raw)), nil
}

// Create stores the body under key unless an object is there.
func (s *Store) Create(ctx context.Context, key string, body io.ReaderAt, size int64, opts objstore.CreateOptions) (objstore.Info, error) {
	if err := objstore.ValidKey(key); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	if err := upload.CheckOptions(size, opts); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	info, err := s.create(ctx, key, body, size, opts)
	if err != nil {
		if isStatus(err, http.StatusPreconditionFailed) {
			err = fmt.Errorf("%w (%v)", objstore.ErrExists, err)
		}
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	return info, nil
}

func (s *Store) create(ctx context.Context, key string, body io.ReaderAt, size int64, opts objstore.CreateOptions) (objstore.Info, error) {
	sums, err := upload.Digest(ctx, body, size, opts.SHA256)
	if err != nil {
		return objstore.Info{}, err
	}
	// Cancelling the writer's context is what abandons an upload; Close
	// alone would finalize what was written.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.bucket.Object(key).If(storage.Conditions{DoesNotExist: true}).NewWriter(wctx)
	// The writer buffers a whole chunk: no more than the body needs.
	w.ChunkSize = int(min(int64(s.cfg.ChunkSize), roundUp(size+1, objstore.GCSChunkQuantum)))
	w.ContentType = opts.ContentType
	w.ForceEmptyContentType = opts.ContentType == ""
	w.ContentEncoding = opts.ContentEncoding
	w.Metadata = upload.Metadata(opts)
	w.CRC32C, w.SendCRC32C = sums.CRC32C, true
	if _, err := io.Copy(w, io.NewSectionReader(body, 0, size)); err != nil {
		cancel()
		_ = w.Close()
		return objstore.Info{}, err
	}
	if err := w.Close(); err != nil {
		return objstore.Info{}, err
	}
	a := w.Attrs()
	return objstore.Info{Key: key, Size: a.Size, Version: strconv.FormatInt(a.Generation, 10)}, nil
}

func roundUp(n, q int64) int64 { return (n + q - 1) / q * q }

// Open returns the object's bytes as stored: gzip objects are not
// decompressed on the way (no decompressive transcoding).
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	if err := objstore.ValidKey(key); err != nil {
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, err)
	}
	r, err := s.bucket.Object(key).ReadCompressed(true).NewReader(ctx)
	if err != nil {
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, notFound(err))
	}
	return r, objstore.Info{Key: key, Size: r.Attrs.Size, Version: strconv.FormatInt(r.Attrs.Generation, 10)}, nil
}

// Stat returns the object's Info.
func (s *Store) Stat(ctx context.Context, key string) (objstore.Info, error) {
	if err := objstore.ValidKey(key); err != nil {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	a, err := s.bucket.Object(key).Attrs(ctx)
	if err != nil {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, notFound(err))
	}
	return objstore.Info{Key: key, Size: a.Size, Version: strconv.FormatInt(a.Generation, 10)}, nil
}

// List yields the objects under prefix in key order, a page at a time.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[objstore.Info, error] {
	return func(yield func(objstore.Info, error) bool) {
		if err := objstore.ValidPrefix(prefix); err != nil {
			yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
			return
		}
		q := &storage.Query{Prefix: prefix}
		if err := q.SetAttrSelection([]string{"Name", "Size", "Generation"}); err != nil {
			yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
			return
		}
		it := s.bucket.Objects(ctx, q)
		it.PageInfo().MaxSize = s.pageSize
		for {
			a, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return
			}
			if err != nil {
				yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
				return
			}
			if !yield(objstore.Info{Key: a.Name, Size: a.Size, Version: strconv.FormatInt(a.Generation, 10)}, nil) {
				return
			}
		}
	}
}

// Describe names the bucket: "gs://bucket".
func (s *Store) Describe() string { return "gs://" + s.cfg.Bucket }

// String is Describe, so printing a Store shows no more than that.
func (s *Store) String() string { return s.Describe() }

// Close closes the client.
func (s *Store) Close() error { return s.client.Close() }

func isStatus(err error, status int) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == status
}

// notFound wraps objstore.ErrNotFound for a missing object. A missing
// bucket is a misconfiguration, not a missing object.
func notFound(err error) error {
	if errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("%w (%v)", objstore.ErrNotFound, err)
	}
	return err
}
