package s3store_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"

	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/s3store"
	"github.com/auditstream/auditstream/services/testsupport/s3fake"
	"github.com/auditstream/auditstream/services/testsupport/storetest"
)

const testSecret = s3fake.Secret

type fake struct{ *s3fake.Fake }

func newFake(t *testing.T) *fake { return &fake{s3fake.New(t)} }

func (f *fake) store(t *testing.T, cfg objstore.S3Settings) *s3store.Store {
	t.Helper()
	st, err := s3store.New(t.Context(), cfg, s3store.Options{ListPageSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	f := newFake(t)
	storetest.Suite{
		NewStore: func(t *testing.T) objstore.Store { return f.store(t, f.Settings(t)) },
		Secrets:  []string{testSecret},
	}.Run(t)
	// Without these the multipart cases proved nothing.
	if f.Parts.Load() == 0 || f.RefusedCompletes.Load() == 0 || f.Aborts.Load() == 0 {
		t.Errorf("parts %d, refused completes %d, aborts %d: the multipart path was not exercised",
			f.Parts.Load(), f.RefusedCompletes.Load(), f.Aborts.Load())
	}
	if f.RefusedPuts.Load() == 0 {
		t.Error("no PutObject was refused: the single-request path was not exercised")
	}
}

// On a versioned bucket (as Object Lock needs) every Version carries the
// version id, the same from Create, Open and Stat.
func TestConformanceVersioned(t *testing.T) {
	f := newFake(t)
	versioned := func(t *testing.T) objstore.Store {
		cfg := f.Settings(t)
		if err := f.Backend.SetVersioningConfiguration(cfg.Bucket, gofakes3.VersioningConfiguration{Status: gofakes3.VersioningEnabled}); err != nil {
			t.Fatal(err)
		}
		return f.store(t, cfg)
	}
	storetest.Suite{NewStore: versioned, Secrets: []string{testSecret}}.Run(t)

	st := versioned(t)
	for _, size := range []int64{10, storetest.DefaultLargeSize} {
		key := fmt.Sprint("v", size)
		b := storetest.NewBody(size, 1)
		info := storetest.MustCreate(t, st, key, b)
		if !strings.Contains(info.Version, "@") {
			t.Errorf("version %q has no version id", info.Version)
		}
		storetest.Expect(t, st, key, b.Data, info.Version)
	}
}

// Through objstore.Open, with every key under a prefix.
func TestConformanceThroughOpen(t *testing.T) {
	f := newFake(t)
	storetest.Suite{
		NewStore: func(t *testing.T) objstore.Store {
			cfg := f.Settings(t)
			st, err := objstore.Open(t.Context(), objstore.Settings{Kind: objstore.KindS3, Prefix: "audit/acme", S3: &cfg})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := st.Describe(), "s3://"+cfg.Bucket+"/audit/acme"; got != want {
				t.Errorf("describe %q, want %q", got, want)
			}
			return st
		},
		Secrets: []string{testSecret},
	}.Run(t)
}

// What the requests carry: the condition, SSE-KMS, the storage class, the
// content headers, the checksum and its metadata, on both paths.
func TestRequestHeaders(t *testing.T) {
	f := newFake(t)
	cfg := f.Settings(t)
	cfg.SSEKMSKeyID = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
	cfg.StorageClass = "STANDARD_IA"
	st := f.store(t, cfg)
	small := storetest.NewBody(1000, 1)
	small.Opts.ContentType, small.Opts.ContentEncoding = "application/x-ndjson", "gzip"
	large := storetest.NewBody(storetest.DefaultLargeSize, 2)
	for _, c := range []struct {
		op   string
		body storetest.Body
	}{{"put", small}, {"create-multipart", large}} {
		storetest.MustCreate(t, st, "h/"+c.op, c.body)
		h := f.LastHeaders(c.op)
		sum := c.body.Opts.SHA256
		want := map[string]string{
			"X-Amz-Server-Side-Encryption":                "aws:kms",
			"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": cfg.SSEKMSKeyID,
			"X-Amz-Storage-Class":                         "STANDARD_IA",
			"X-Amz-Meta-Sha256":                           fmt.Sprintf("%x", sum),
			"Content-Type":                                c.body.Opts.ContentType,
		}
		if c.op == "put" {
			want["If-None-Match"] = "*"
			want["Content-Encoding"] = "gzip"
			want["X-Amz-Checksum-Sha256"] = base64.StdEncoding.EncodeToString(sum)
		} else {
			want["X-Amz-Checksum-Algorithm"] = "SHA256"
		}
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("%s: %s is %q, want %q", c.op, k, got, v)
			}
		}
	}
	if h := f.LastHeaders("complete"); h.Get("If-None-Match") != "*" {
		t.Errorf("complete without If-None-Match: %v", h)
	}
	if h := f.LastHeaders("part"); h.Get("X-Amz-Checksum-Sha256") == "" {
		t.Errorf("part without its checksum: %v", h)
	}
}

// How S3's answers to a failed write map to errors.
func TestCreateErrors(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.Settings(t))
	storetest.MustCreate(t, st, "exists", storetest.NewBody(10, 1))
	small, large := storetest.NewBody(100, 2), storetest.NewBody(storetest.DefaultLargeSize, 3)
	cases := []struct {
		name    string
		op      string
		status  int
		code    string
		key     string
		body    storetest.Body
		want    error // nil: some other error
		missing bool  // the key must still be missing afterwards
	}{
		{"412 on put", "put", 412, "PreconditionFailed", "k1", small, objstore.ErrExists, true},
		{"412 on complete", "complete", 412, "PreconditionFailed", "k2", large, objstore.ErrExists, true},
		{"409 conflict, the other writer lost", "put", 409, "ConditionalRequestConflict", "k3", small, nil, true},
		{"409 conflict, the other writer won", "put", 409, "ConditionalRequestConflict", "exists", small, objstore.ErrExists, false},
		{"409 conflict on complete", "complete", 409, "ConditionalRequestConflict", "k4", large, nil, true},
		{"bad digest", "put", 400, "BadDigest", "k5", small, objstore.ErrChecksumMismatch, true},
		{"part refused", "part", 403, "AccessDenied", "k6", large, nil, true},
		{"server error", "put", 501, "NotImplemented", "k7", small, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			aborts := f.Aborts.Load()
			f.FailNext(c.op, c.status, c.code)
			_, err := storetest.Create(t.Context(), st, c.key, c.body)
			switch {
			case err == nil:
				t.Fatal("create succeeded")
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("got %v, want %v", err, c.want)
			case c.want == nil && (errors.Is(err, objstore.ErrExists) || errors.Is(err, objstore.ErrChecksumMismatch)):
				t.Fatalf("got %v, want neither ErrExists nor ErrChecksumMismatch", err)
			}
			if !strings.Contains(err.Error(), c.key) {
				t.Errorf("error %q does not name the key", err)
			}
			if c.missing {
				storetest.ExpectMissing(t, st, c.key)
			}
			if c.body.Data != nil && int64(len(c.body.Data)) > int64(objstore.S3MinPartSize) && f.Aborts.Load() == aborts {
				t.Error("the failed multipart upload was not aborted")
			}
		})
	}
}

func TestNotFoundVersusMissingBucket(t *testing.T) {
	f := newFake(t)
	cfg := f.Settings(t)
	cfg.Bucket = "no-such-bucket"
	st := f.store(t, cfg)
	_, _, err := st.Open(t.Context(), "k")
	if err == nil || errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("open in a missing bucket: %v; want an error that is not ErrNotFound", err)
	}
}
