package s3store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/s3store"
	"github.com/auditstream/auditstream/services/internal/objstore/storetest"
)

const (
	testKeyID  = "AKIDSTORETEST0000001"
	testSecret = "s3-secret-never-printed-7f3a"
)

// fake is gofakes3 behind a layer that makes it answer as S3 does where the
// fake does not:
//   - CompleteMultipartUpload with If-None-Match: * on an existing key is
//     refused with 412 (gofakes3 ignores the header; PutObject it honours);
//   - a PutObject or UploadPart whose x-amz-checksum-sha256 does not match
//     its body is refused with 400 BadDigest (gofakes3 ignores the header);
//   - a write without If-None-Match: * is refused outright, so a store
//     that forgot the condition fails here rather than in production.
//
// Writes of objects are serialized so the check and the write are one
// step, as they are in S3. It also counts what it saw and can fail the
// next requests of a kind.
type fake struct {
	backend *s3mem.Backend
	next    http.Handler
	srv     *httptest.Server

	writes  sync.Mutex // one object write (PUT object, complete) at a time
	buckets atomic.Int64

	parts, completes, refusedCompletes, refusedPuts, aborts atomic.Int64

	mu       sync.Mutex
	headers  map[string]http.Header // by operation: put, create-multipart
	failures map[string][]failure   // by operation
}

type failure struct {
	status int
	code   string
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{backend: s3mem.New(), headers: map[string]http.Header{}, failures: map[string][]failure{}}
	f.next = gofakes3.New(f.backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	f.srv = httptest.NewServer(f) // 127.0.0.1, an ephemeral port
	t.Cleanup(f.srv.Close)
	return f
}

// failNext makes the next request of op (put, part, complete) fail.
func (f *fake) failNext(op string, status int, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[op] = append(f.failures[op], failure{status, code})
}

func (f *fake) lastHeaders(op string) http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.headers[op]
}

func operation(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "part"
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") == "" && strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1:
		return "put"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "create-multipart"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "complete"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "abort"
	}
	return ""
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := operation(r)
	f.mu.Lock()
	if op != "" {
		f.headers[op] = r.Header.Clone()
	}
	var fail *failure
	if q := f.failures[op]; len(q) > 0 {
		fail, f.failures[op] = &q[0], q[1:]
	}
	f.mu.Unlock()
	if fail != nil {
		// Read first: an answer before the body is sent makes the client
		// see a broken connection, which it retries.
		_, _ = io.Copy(io.Discard, r.Body)
		writeError(w, fail.status, fail.code)
		return
	}
	switch op {
	case "part":
		f.parts.Add(1)
		if !f.checkSum(w, r) {
			return
		}
	case "abort":
		f.aborts.Add(1)
	case "put", "complete":
		if r.Header.Get("If-None-Match") != "*" {
			writeError(w, http.StatusBadRequest, "MissingCondition")
			return
		}
		if op == "put" && !f.checkSum(w, r) {
			return
		}
		f.writes.Lock()
		defer f.writes.Unlock()
		bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if op == "complete" {
			f.completes.Add(1)
			if _, err := f.backend.HeadObject(bucket, key); err == nil {
				f.refusedCompletes.Add(1)
				writeError(w, http.StatusPreconditionFailed, "PreconditionFailed")
				return
			}
		} else if _, err := f.backend.HeadObject(bucket, key); err == nil {
			f.refusedPuts.Add(1) // gofakes3 answers these itself; counted here
		}
	}
	if r.Method == http.MethodHead {
		// s3mem reports a version id on HEAD even when the bucket is not
		// versioned (GET and PUT do not); S3 does not.
		bucket, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if v, err := f.backend.VersioningConfiguration(bucket); err == nil && !v.Enabled() {
			vw := versionless{w}
			f.next.ServeHTTP(vw, r)
			w.Header().Del("X-Amz-Version-Id") // when it wrote neither header nor body
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

// versionless drops x-amz-version-id from an answer.
type versionless struct{ http.ResponseWriter }

func (v versionless) WriteHeader(status int) {
	v.Header().Del("X-Amz-Version-Id")
	v.ResponseWriter.WriteHeader(status)
}

func (v versionless) Write(p []byte) (int, error) {
	v.Header().Del("X-Amz-Version-Id")
	return v.ResponseWriter.Write(p)
}

// checkSum refuses a body whose x-amz-checksum-sha256 does not match.
func (f *fake) checkSum(w http.ResponseWriter, r *http.Request) bool {
	want := r.Header.Get("X-Amz-Checksum-Sha256")
	if want == "" {
		return true
	}
	if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		writeError(w, http.StatusBadRequest, "UnexpectedStreamingBody") // not expected over plain HTTP
		return false
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "IncompleteBody")
		return false
	}
	sum := sha256.Sum256(body)
	if base64.StdEncoding.EncodeToString(sum[:]) != want {
		writeError(w, http.StatusBadRequest, "BadDigest")
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}

func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>test fake: %s</Message></Error>`, code, code)
}

// settings are a new bucket's, with the smallest parts S3 allows.
func (f *fake) settings(t *testing.T) objstore.S3Settings {
	t.Helper()
	bucket := fmt.Sprintf("archive-%d", f.buckets.Add(1))
	if err := f.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	return objstore.S3Settings{
		Region:             "eu-west-1",
		Bucket:             bucket,
		Endpoint:           f.srv.URL,
		PathStyle:          true,
		MultipartThreshold: objstore.S3MinPartSize,
		PartSize:           objstore.S3MinPartSize,
		UploadConcurrency:  3,
		Credentials: awsauth.Credentials{
			AccessKeyID:     config.SecretLiteral(testKeyID),
			SecretAccessKey: config.SecretLiteral(testSecret),
		},
	}
}

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
		NewStore: func(t *testing.T) objstore.Store { return f.store(t, f.settings(t)) },
		Secrets:  []string{testSecret},
	}.Run(t)
	// Without these the multipart cases proved nothing.
	if f.parts.Load() == 0 || f.refusedCompletes.Load() == 0 || f.aborts.Load() == 0 {
		t.Errorf("parts %d, refused completes %d, aborts %d: the multipart path was not exercised",
			f.parts.Load(), f.refusedCompletes.Load(), f.aborts.Load())
	}
	if f.refusedPuts.Load() == 0 {
		t.Error("no PutObject was refused: the single-request path was not exercised")
	}
}

// On a versioned bucket (as Object Lock needs) every Version carries the
// version id, the same from Create, Open and Stat.
func TestConformanceVersioned(t *testing.T) {
	f := newFake(t)
	versioned := func(t *testing.T) objstore.Store {
		cfg := f.settings(t)
		if err := f.backend.SetVersioningConfiguration(cfg.Bucket, gofakes3.VersioningConfiguration{Status: gofakes3.VersioningEnabled}); err != nil {
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
			cfg := f.settings(t)
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
	cfg := f.settings(t)
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
		h := f.lastHeaders(c.op)
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
	if h := f.lastHeaders("complete"); h.Get("If-None-Match") != "*" {
		t.Errorf("complete without If-None-Match: %v", h)
	}
	if h := f.lastHeaders("part"); h.Get("X-Amz-Checksum-Sha256") == "" {
		t.Errorf("part without its checksum: %v", h)
	}
}

// How S3's answers to a failed write map to errors.
func TestCreateErrors(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.settings(t))
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
			aborts := f.aborts.Load()
			f.failNext(c.op, c.status, c.code)
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
			if c.body.Data != nil && int64(len(c.body.Data)) > int64(objstore.S3MinPartSize) && f.aborts.Load() == aborts {
				t.Error("the failed multipart upload was not aborted")
			}
		})
	}
}

func TestNotFoundVersusMissingBucket(t *testing.T) {
	f := newFake(t)
	cfg := f.settings(t)
	cfg.Bucket = "no-such-bucket"
	st := f.store(t, cfg)
	_, _, err := st.Open(t.Context(), "k")
	if err == nil || errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("open in a missing bucket: %v; want an error that is not ErrNotFound", err)
	}
}
