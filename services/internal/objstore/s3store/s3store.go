// Package s3store is an objstore.Store in an Amazon S3 bucket (or an
// S3-compatible store at an endpoint), through aws-sdk-go-v2.
//
// Create is conditional on both upload paths: PutObject with If-None-Match: *
// for bodies up to the multipart threshold, and for larger ones
// CreateMultipartUpload, UploadPart (a few parts in parallel, each read
// from the body with a SectionReader) and CompleteMultipartUpload with
// If-None-Match: *, so a racing writer's object is never replaced. A
// multipart upload that fails or is refused is aborted; its parts never
// become an object. S3 answers a failed condition with 412
// PreconditionFailed, and a conditional write racing another one on the
// same key with 409 ConditionalRequestConflict. The SDK retries failed
// requests; a retry whose first attempt did create the object reports
// ErrExists, which is right for the archive, whose names and bytes are
// functions of the events.
//
// With CreateOptions.SHA256 the checksum is sent as x-amz-checksum-sha256
// (whole body on PutObject; per part on multipart uploads, created with
// the SHA256 algorithm, after the whole body was checked here) so S3
// rejects a body that changed on the way. It is also kept as the
// metadata "sha256".
//
// Info.Version is the ETag, with "@" and the version id on versioned
// buckets. ListObjectsV2 gives no version ids, so List's Versions are the
// bare ETags.
package s3store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/internal/upload"
)

func init() {
	objstore.Register(objstore.KindS3, func(ctx context.Context, s objstore.Settings) (objstore.Store, error) {
		return New(ctx, *s.S3, Options{})
	})
}

// S3's limits.
const (
	maxParts        = 10000
	defaultPageSize = 1000
)

// abortTimeout bounds the AbortMultipartUpload sent after a failed upload,
// whose own context may already be over.
const abortTimeout = 30 * time.Second

// Options tune a Store beyond its settings.
type Options struct {
	// HTTPClient sends the requests; nil shares one between every store of
	// the process.
	HTTPClient aws.HTTPClient
	// DefaultChain supplies the AWS default configuration to stores without
	// static keys; nil uses one shared by the process.
	DefaultChain *awsauth.DefaultChain
	// ListPageSize is how many keys one ListObjectsV2 call asks for (1 to
	// 1000, default 1000).
	ListPageSize int
}

var (
	sharedChain      = awsauth.NewDefaultChain()
	sharedHTTPClient = sync.OnceValue(func() aws.HTTPClient {
		return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = objstore.MaxUploadConcurrency
		})
	})
)

// Store is one bucket.
type Store struct {
	cfg      objstore.S3Settings
	client   *s3.Client
	bucket   *string
	pageSize int32
}

// New returns the store for the bucket the settings name. Credentials are
// obtained when the first request needs them.
func New(_ context.Context, cfg objstore.S3Settings, opts Options) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3 store: %w", err)
	}
	chain := opts.DefaultChain
	if chain == nil {
		chain = sharedChain
	}
	base, err := awsauth.BaseConfig(cfg.Credentials, chain)
	if err != nil {
		return nil, fmt.Errorf("s3 store: %w", err)
	}
	base.Region = cfg.Region
	base.HTTPClient = opts.HTTPClient
	if base.HTTPClient == nil {
		base.HTTPClient = sharedHTTPClient()
	}
	creds, err := awsauth.Provider(cfg.Credentials, base, nil)
	if err != nil {
		return nil, fmt.Errorf("s3 store: %w", err)
	}
	base.Credentials = creds
	client := s3.NewFromConfig(base, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Checksums only where asked for (SHA-256), never the SDK's CRC32
		// defaults: a multipart upload's parts must all use the algorithm
		// it was created with.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	pageSize := opts.ListPageSize
	if pageSize <= 0 || pageSize > defaultPageSize {
		pageSize = defaultPageSize
	}
	return &Store{cfg: cfg, client: client, bucket: aws.String(cfg.Bucket), pageSize: int32(pageSize)}, nil
}

// Create stores the body under key unless an object is there.
func (s *Store) Create(ctx context.Context, key string, body io.ReaderAt, size int64, opts objstore.CreateOptions) (objstore.Info, error) {
	if err := objstore.ValidKey(key); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	if err := upload.CheckOptions(size, opts); err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	var info objstore.Info
	var err error
	if size <= int64(s.cfg.MultipartThreshold) {
		info, err = s.put(ctx, key, body, size, opts)
	} else {
		info, err = s.multipart(ctx, key, body, size, opts)
	}
	if err != nil {
		return objstore.Info{}, fmt.Errorf("create %s: %w", key, s.createError(ctx, key, err))
	}
	return info, nil
}

func (s *Store) put(ctx context.Context, key string, body io.ReaderAt, size int64, opts objstore.CreateOptions) (objstore.Info, error) {
	// Checked here as well as by S3 so a wrong checksum is refused the same
	// way by every store, before anything is sent.
	if len(opts.SHA256) > 0 {
		if _, err := upload.Digest(ctx, body, size, opts.SHA256); err != nil {
			return objstore.Info{}, err
		}
	}
	in := &s3.PutObjectInput{
		Bucket:        s.bucket,
		Key:           aws.String(key),
		Body:          io.NewSectionReader(body, 0, size),
		ContentLength: aws.Int64(size),
		IfNoneMatch:   aws.String("*"),
		Metadata:      upload.Metadata(opts),
	}
	s.headers(&in.ContentType, &in.ContentEncoding, &in.ServerSideEncryption, &in.SSEKMSKeyId, &in.StorageClass, opts)
	if len(opts.SHA256) > 0 {
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(opts.SHA256))
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return objstore.Info{}, err
	}
	return objstore.Info{Key: key, Size: size, Version: version(out.ETag, out.VersionId)}, nil
}

// headers fills what PutObject and CreateMultipartUpload share.
func (s *Store) headers(contentType, encoding **string, sse *types.ServerSideEncryption, kmsKey **string, class *types.StorageClass, opts objstore.CreateOptions) {
	if opts.ContentType != "" {
		*contentType = aws.String(opts.ContentType)
	}
	if opts.ContentEncoding != "" {
		*encoding = aws.String(opts.ContentEncoding)
	}
	if s.cfg.SSEKMSKeyID != "" {
		*sse = types.ServerSideEncryptionAwsKms
		*kmsKey = aws.String(s.cfg.SSEKMSKeyID)
	}
	if s.cfg.StorageClass != "" {
		*class = types.StorageClass(s.cfg.StorageClass)
	}
}

func (s *Store) multipart(ctx context.Context, key string, body io.ReaderAt, size int64, opts objstore.CreateOptions) (objstore.Info, error) {
	// The whole body is checked first: S3 checks each part's checksum, not
	// the object's.
	if len(opts.SHA256) > 0 {
		if _, err := upload.Digest(ctx, body, size, opts.SHA256); err != nil {
			return objstore.Info{}, err
		}
	}
	create := &s3.CreateMultipartUploadInput{
		Bucket:   s.bucket,
		Key:      aws.String(key),
		Metadata: upload.Metadata(opts),
	}
	s.headers(&create.ContentType, &create.ContentEncoding, &create.ServerSideEncryption, &create.SSEKMSKeyId, &create.StorageClass, opts)
	if len(opts.SHA256) > 0 {
		create.ChecksumAlgorithm = types.ChecksumAlgorithmSha256
	}
	started, err := s.client.CreateMultipartUpload(ctx, create)
	if err != nil {
		return objstore.Info{}, err
	}
	uploadID := started.UploadId
	parts := upload.Parts(size, int64(s.cfg.PartSize), maxParts)
	completed := make([]types.CompletedPart, len(parts))
	err = upload.Each(ctx, parts, s.cfg.UploadConcurrency, func(ctx context.Context, p upload.Part) error {
		in := &s3.UploadPartInput{
			Bucket:        s.bucket,
			Key:           aws.String(key),
			UploadId:      uploadID,
			PartNumber:    aws.Int32(int32(p.Number)),
			Body:          io.NewSectionReader(body, p.Offset, p.Size),
			ContentLength: aws.Int64(p.Size),
		}
		if len(opts.SHA256) > 0 {
			sums, err := upload.Digest(ctx, io.NewSectionReader(body, p.Offset, p.Size), p.Size, nil)
			if err != nil {
				return err
			}
			in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(sums.SHA256))
		}
		out, err := s.client.UploadPart(ctx, in)
		if err != nil {
			return fmt.Errorf("part %d: %w", p.Number, err)
		}
		completed[p.Number-1] = types.CompletedPart{ETag: out.ETag, PartNumber: in.PartNumber, ChecksumSHA256: in.ChecksumSHA256}
		return nil
	})
	if err != nil {
		s.abort(ctx, key, uploadID)
		return objstore.Info{}, err
	}
	out, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          s.bucket,
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
		IfNoneMatch:     aws.String("*"),
		MpuObjectSize:   aws.Int64(size),
	})
	if err != nil {
		s.abort(ctx, key, uploadID)
		return objstore.Info{}, err
	}
	// The Info is the one Stat gives: not every S3-compatible store
	// answers CompleteMultipartUpload with the ETag it reports later.
	if info, err := s.Stat(ctx, key); err == nil {
		return info, nil
	}
	return objstore.Info{Key: key, Size: size, Version: version(out.ETag, out.VersionId)}, nil
}

// abort drops an upload's parts, best effort: without
// s3:AbortMultipartUpload they stay until the bucket's lifecycle rule
// (AbortIncompleteMultipartUpload) removes them. They are never visible as
// an object either way.
func (s *Store) abort(ctx context.Context, key string, uploadID *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, _ = s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: s.bucket, Key: aws.String(key), UploadId: uploadID})
}

// createError maps S3's answers to a failed conditional write. A 409
// ConditionalRequestConflict means another conditional write of the key was
// in flight: the key exists only if that one won, which a HEAD tells.
func (s *Store) createError(ctx context.Context, key string, err error) error {
	code, status := errorCode(err)
	switch {
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		return fmt.Errorf("%w (%s)", objstore.ErrExists, describe(err))
	case code == "ConditionalRequestConflict" || status == http.StatusConflict:
		if _, serr := s.Stat(ctx, key); serr == nil {
			return fmt.Errorf("%w (after a concurrent create)", objstore.ErrExists)
		}
		return fmt.Errorf("a concurrent create of the key is in flight; retry: %s", describe(err))
	case code == "BadDigest" || code == "XAmzContentChecksumMismatch" || code == "InvalidDigest":
		return fmt.Errorf("%w: %s", objstore.ErrChecksumMismatch, describe(err))
	}
	return err
}

// Open returns the object's bytes as stored.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	if err := objstore.ValidKey(key); err != nil {
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: s.bucket, Key: aws.String(key)})
	if err != nil {
		return nil, objstore.Info{}, fmt.Errorf("open %s: %w", key, notFound(err))
	}
	return out.Body, objstore.Info{Key: key, Size: aws.ToInt64(out.ContentLength), Version: version(out.ETag, out.VersionId)}, nil
}

// Stat returns the object's Info.
func (s *Store) Stat(ctx context.Context, key string) (objstore.Info, error) {
	if err := objstore.ValidKey(key); err != nil {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: s.bucket, Key: aws.String(key)})
	if err != nil {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, notFound(err))
	}
	return objstore.Info{Key: key, Size: aws.ToInt64(out.ContentLength), Version: version(out.ETag, out.VersionId)}, nil
}

// List yields the objects under prefix in key order (S3 lists keys in
// UTF-8 binary order), a page at a time.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[objstore.Info, error] {
	return func(yield func(objstore.Info, error) bool) {
		if err := objstore.ValidPrefix(prefix); err != nil {
			yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
			return
		}
		pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
			Bucket:  s.bucket,
			Prefix:  aws.String(prefix),
			MaxKeys: aws.Int32(s.pageSize),
		})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(objstore.Info{}, fmt.Errorf("list %s: %w", prefix, err))
				return
			}
			for _, o := range page.Contents {
				if !yield(objstore.Info{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), Version: version(o.ETag, nil)}, nil) {
					return
				}
			}
		}
	}
}

// Describe names the bucket: "s3://bucket".
func (s *Store) Describe() string { return "s3://" + s.cfg.Bucket }

// String is Describe, so printing a Store shows no more than that.
func (s *Store) String() string { return s.Describe() }

// Close releases nothing: connections are pooled by the HTTP client.
func (s *Store) Close() error { return nil }

func version(etag, versionID *string) string {
	v := strings.Trim(aws.ToString(etag), `"`)
	if id := aws.ToString(versionID); id != "" && id != "null" {
		v += "@" + id
	}
	return v
}

func errorCode(err error) (code string, status int) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

// notFound wraps objstore.ErrNotFound for a missing key. A missing bucket
// is a misconfiguration, not a missing object.
func notFound(err error) error {
	code, status := errorCode(err)
	if code == "NoSuchBucket" {
		return err
	}
	if code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound {
		return fmt.Errorf("%w (%s)", objstore.ErrNotFound, describe(err))
	}
	return err
}

// describe is an S3 error's code and message without the SDK's operation
// wrapping.
func describe(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return strings.TrimSpace(ae.ErrorCode() + ": " + ae.ErrorMessage())
	}
	return err.Error()
}
