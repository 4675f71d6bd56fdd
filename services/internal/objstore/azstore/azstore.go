// Package azstore is an objstore.Store in an Azure Blob Storage container,
// through azblob.
//
// Create is conditional with If-None-Match: * on both upload paths: Put
// Blob for bodies up to the single-upload threshold, and for larger ones
// Put Block for each block (a few in parallel, each read from the body with
// a SectionReader) and Put Block List. Staged blocks are not a blob until
// the block list is committed, and the commit carries the condition, so a
// failed or refused upload leaves no blob (Azure discards uncommitted
// blocks after a week). Azure answers 409 BlobAlreadyExists, or 412
// ConditionNotMet, when a blob is there.
//
// Azure does not check SHA-256: Create reads the body once before sending
// it, to verify CreateOptions.SHA256 and the body's size, and keeps the
// checksum as the metadata "sha256". Info.Version is the ETag.
package azstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/internal/upload"
)

func init() {
	objstore.Register(objstore.KindAzure, func(ctx context.Context, s objstore.Settings) (objstore.Store, error) {
		return New(ctx, *s.Azure, Options{})
	})
}

// maxBlocks is Azure's limit on the blocks of one blob.
const maxBlocks = 50000

// Options tune a Store beyond its settings.
type Options struct {
	// HTTPClient sends the requests; nil is the SDK's own.
	HTTPClient *http.Client
	// ListPageSize is how many blobs one List Blobs call asks for (1 to
	// 5000, default 5000).
	ListPageSize int
}

// Store is one container.
type Store struct {
	name      string // account URL and container, for Describe
	container *container.Client
	cfg       objstore.AzureSettings
	pageSize  int32
}

// New returns the store for the container the settings name. The shared
// key or SAS token is read from its Secret here, once: a rotated key
// applies to stores made after the rotation.
func New(_ context.Context, cfg objstore.AzureSettings, opts Options) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("azure store: %w", err)
	}
	containerURL := strings.TrimSuffix(cfg.AccountURL, "/") + "/" + cfg.Container
	copts := &container.ClientOptions{}
	if opts.HTTPClient != nil {
		copts.Transport = opts.HTTPClient
	}
	copts.PerCallPolicies = []policy.Policy{storedBytes{}}
	var client *container.Client
	var err error
	switch {
	case cfg.SharedKey != nil:
		key, kerr := cfg.SharedKey.AccountKey.Value()
		if kerr != nil {
			return nil, fmt.Errorf("azure store: shared_key.account_key: %w", kerr)
		}
		cred, kerr := container.NewSharedKeyCredential(cfg.SharedKey.AccountName, key)
		if kerr != nil {
			// Its message may quote the key's decoding problem, not the
			// key; it is replaced all the same.
			return nil, errors.New("azure store: shared_key.account_key is not a base64 account key")
		}
		client, err = container.NewClientWithSharedKeyCredential(containerURL, cred, copts)
	case cfg.SASToken.IsSet():
		sas, serr := cfg.SASToken.Value()
		if serr != nil {
			return nil, fmt.Errorf("azure store: sas_token: %w", serr)
		}
		client, err = container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(strings.TrimSpace(sas), "?"), copts)
	default:
		cred, cerr := azidentity.NewDefaultAzureCredential(nil)
		if cerr != nil {
			return nil, fmt.Errorf("azure store: default credential: %w", cerr)
		}
		client, err = container.NewClient(containerURL, cred, copts)
	}
	if err != nil {
		// The URL may hold the SAS: the SDK's error is not passed on.
		return nil, fmt.Errorf("azure store: cannot make a client for %s", containerURL)
	}
	pageSize := opts.ListPageSize
	if pageSize <= 0 || pageSize > 5000 {
		pageSize = 5000
	}
	return &Store{name: containerURL, container: client, cfg: cfg, pageSize: int32(pageSize)}, nil
}

// storedBytes asks for blobs as stored. Without an Accept-Encoding of its
// own, Go's HTTP client asks for gzip and then gunzips a gzip blob (Content-
// Encoding: gzip) on the way, which would hand back other bytes than were
// stored. Azure itself never transcodes.
type storedBytes struct{}

func (storedBytes) Do(req *policy.Request) (*http.Response, error) {
	req.Raw().Header.Set("Accept-Encoding", "identity")
	return req.Next()
}

// Create stores the body under key unless a blob is there.
func (s *Store) Create(ctx context.Context, key string, body io.ReaderAt, size int64, opts objstore.CreateOptions) (objstore.Info, error) {
	if err := objstore.ValidKey(key); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	if err := upload.CheckOptions(size, opts); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	// Read once before sending, with or without a checksum: a body shorter
	// than its size is found here, not by the SDK, which would retry it as
	// a network failure.
	if _, err := upload.Digest(ctx, body, size, opts.SHA256); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	bb := s.container.NewBlockBlobClient(key)
	headers := &blob.HTTPHeaders{}
	if opts.ContentType != "" {
		headers.BlobContentType = &opts.ContentType
	}
	if opts.ContentEncoding != "" {
		headers.BlobContentEncoding = &opts.ContentEncoding
	}
	var meta map[string]*string
	for k, v := range upload.Metadata(opts) {
		meta = map[string]*string{k: &v}
	}
	anyETag := azcore.ETagAny
	ifNone := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &anyETag}}

	var etag *azcore.ETag
	var err error
	if size <= int64(s.cfg.SingleUploadThreshold) {
		var resp blockblob.UploadResponse
		resp, err = bb.Upload(ctx, streaming.NopCloser(io.NewSectionReader(body, 0, size)), &blockblob.UploadOptions{
			HTTPHeaders: headers, Metadata: meta, AccessConditions: ifNone,
		})
		etag = resp.ETag
	} else {
		etag, err = s.staged(ctx, bb, body, size, headers, meta, ifNone)
	}
	if err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, s.createError(ctx, key, err))
	}
	return objstore.Info{Key: key, Size: size, Version: version(etag)}, nil
}

// staged uploads the body as blocks and commits them.
func (s *Store) staged(ctx context.Context, bb *blockblob.Client, body io.ReaderAt, size int64, headers *blob.HTTPHeaders, meta map[string]*string, cond *blob.AccessConditions) (*azcore.ETag, error) {
	parts := upload.Parts(size, int64(s.cfg.BlockSize), maxBlocks)
	// Block ids are this upload's own (a racing writer's blocks for the same
	// name do not mix in) and all of one length, as Azure requires.
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	ids := make([]string, len(parts))
	for i, p := range parts {
		ids[i] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%x-%06d", nonce, p.Number))
	}
	err := upload.Each(ctx, parts, s.cfg.UploadConcurrency, func(ctx context.Context, p upload.Part) error {
		_, err := bb.StageBlock(ctx, ids[p.Number-1], streaming.NopCloser(io.NewSectionReader(body, p.Offset, p.Size)), nil)
		if err != nil {
			return fmt.Errorf("block %d: %w", p.Number, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{HTTPHeaders: headers, Metadata: meta, AccessConditions: cond})
	if err != nil {
		return nil, err
	}
	return resp.ETag, nil
}

// createError maps Azure's answers to a failed conditional write. A commit
// whose blocks were discarded because a racing writer committed first
// fails with InvalidBlockList: the blob exists then.
func (s *Store) createError(ctx context.Context, key string, err error) error {
	switch {
	case bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) || status(err) == http.StatusPreconditionFailed:
		return fmt.Errorf("%w (%s)", objstore.ErrExists, describe(err))
	case bloberror.HasCode(err, bloberror.InvalidBlockList):
		if _, serr := s.Stat(ctx, key); serr == nil {
			return fmt.Errorf("%w (after a concurrent create)", objstore.ErrExists)
		}
	case bloberror.HasCode(err, bloberror.MD5Mismatch, bloberror.CRC64Mismatch):
		return fmt.Errorf("%w: %s", objstore.ErrChecksumMismatch, describe(err))
	}
	return err
}

// Open returns the blob's bytes as stored.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	if err := objstore.ValidKey(key); err != nil {
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, err)
	}
	resp, err := s.container.NewBlobClient(key).DownloadStream(ctx, nil)
	if err != nil {
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, notFound(err))
	}
	var size int64
	if resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	return resp.Body, objstore.Info{Key: key, Size: size, Version: version(resp.ETag)}, nil
}

// Stat returns the blob's Info.
func (s *Store) Stat(ctx context.Context, key string) (objstore.Info, error) {
	if err := objstore.ValidKey(key); err != nil {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	resp, err := s.container.NewBlobClient(key).GetProperties(ctx, nil)
	if err != nil {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, notFound(err))
	}
	var size int64
	if resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	return objstore.Info{Key: key, Size: size, Version: version(resp.ETag)}, nil
}

// List yields the blobs under prefix in name order, a page at a time.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[objstore.Info, error] {
	return func(yield func(objstore.Info, error) bool) {
		if err := objstore.ValidPrefix(prefix); err != nil {
			yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
			return
		}
		pages := s.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix, MaxResults: &s.pageSize})
		for pages.More() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
				return
			}
			if page.Segment == nil {
				continue
			}
			for _, b := range page.Segment.BlobItems {
				if b == nil || b.Name == nil {
					continue
				}
				info := objstore.Info{Key: *b.Name}
				if p := b.Properties; p != nil {
					if p.ContentLength != nil {
						info.Size = *p.ContentLength
					}
					info.Version = version(p.ETag)
				}
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// Describe names the container by its URL, without credentials.
func (s *Store) Describe() string { return s.name }

// String is Describe, so printing a Store shows no more than that.
func (s *Store) String() string { return s.Describe() }

// Close releases nothing: connections are pooled by the HTTP client.
func (s *Store) Close() error { return nil }

func version(etag *azcore.ETag) string {
	if etag == nil {
		return ""
	}
	return strings.Trim(string(*etag), `"`)
}

func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// notFound wraps objstore.ErrNotFound for a missing blob. A missing
// container is a misconfiguration, not a missing blob.
func notFound(err error) error {
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return err
	}
	if bloberror.HasCode(err, bloberror.BlobNotFound) || status(err) == http.StatusNotFound {
		return fmt.Errorf("%w (%s)", objstore.ErrNotFound, describe(err))
	}
	return err
}

// describe is an Azure error's status and code. The SDK's full message
// repeats the request URL, which holds a SAS when one is used.
func describe(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("HTTP %d %s", re.StatusCode, re.ErrorCode)
	}
	return err.Error()
}
