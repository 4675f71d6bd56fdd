// Package s3fake is an S3 endpoint for tests: gofakes3 behind a layer that
// answers as S3 does where gofakes3 does not.
package s3fake

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
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
)

// The fake's credentials: any signature is accepted, but stores need keys.
const (
	KeyID  = "AKIDSTORETEST0000001"
	Secret = "s3-secret-never-printed-7f3a"
)

// Fake is gofakes3 behind a layer that makes it answer as S3 does where the
// fake does not:
//   - CompleteMultipartUpload with If-None-Match: * on an existing key is
//     refused with 412 (gofakes3 ignores the header; PutObject it honours);
//   - a PutObject or UploadPart whose x-amz-checksum-sha256 does not match
//     its body is refused with 400 BadDigest (gofakes3 ignores the header);
//   - a write without If-None-Match: * is refused outright, so a store
//     that forgot the condition fails here rather than in production.
//
// Writes of one key are serialized so the check and the write are one
// step, as they are in S3. It also counts what it saw and can fail the
// next requests of a kind.
type Fake struct {
	// Backend is the in-memory bucket store behind the fake.
	Backend *s3mem.Backend
	next    http.Handler
	srv     *httptest.Server
	// URL is the fake's endpoint, http://127.0.0.1:<port>.
	URL string
	// OnRequest, when set, is called with each request's operation (put,
	// part, create-multipart, complete, abort, or "") before it is
	// handled: tests kill a client process mid-upload from it.
	OnRequest func(op string, r *http.Request)

	keyLocks sync.Map // bucket/key → *sync.Mutex: one write of a key at a time
	buckets  atomic.Int64

	// Counters of what the fake saw.
	Parts, Completes, RefusedCompletes, RefusedPuts, Aborts atomic.Int64

	mu       sync.Mutex
	headers  map[string]http.Header // by operation: put, create-multipart
	failures map[string][]failure   // by operation
}

type failure struct {
	status int
	code   string
}

// New starts a fake on 127.0.0.1 (an ephemeral port), closed when the test
// ends.
func New(t testing.TB) *Fake {
	t.Helper()
	f := &Fake{Backend: s3mem.New(), headers: map[string]http.Header{}, failures: map[string][]failure{}}
	f.next = gofakes3.New(f.Backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	f.srv = httptest.NewServer(f)
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// FailNext makes the next request of op (put, part, complete) fail.
func (f *Fake) FailNext(op string, status int, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[op] = append(f.failures[op], failure{status, code})
}

// LastHeaders are the headers of the last request of op.
func (f *Fake) LastHeaders(op string) http.Header {
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

// ServeHTTP answers as S3 would.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := operation(r)
	if f.OnRequest != nil {
		f.OnRequest(op, r)
	}
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
		f.Parts.Add(1)
		if !f.checkSum(w, r) {
			return
		}
	case "abort":
		f.Aborts.Add(1)
	case "put", "complete":
		if r.Header.Get("If-None-Match") != "*" {
			writeError(w, http.StatusBadRequest, "MissingCondition")
			return
		}
		if op == "put" && !f.checkSum(w, r) {
			return
		}
		bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		// The existence check and the write are one step per key, as in S3;
		// writes of different keys go on in parallel.
		l, _ := f.keyLocks.LoadOrStore(bucket+"/"+key, new(sync.Mutex))
		l.(*sync.Mutex).Lock()
		defer l.(*sync.Mutex).Unlock()
		if op == "complete" {
			f.Completes.Add(1)
			if _, err := f.Backend.HeadObject(bucket, key); err == nil {
				f.RefusedCompletes.Add(1)
				writeError(w, http.StatusPreconditionFailed, "PreconditionFailed")
				return
			}
		} else if _, err := f.Backend.HeadObject(bucket, key); err == nil {
			f.RefusedPuts.Add(1) // gofakes3 answers these itself; counted here
		}
	}
	if r.Method == http.MethodHead {
		// s3mem reports a version id on HEAD even when the bucket is not
		// versioned (GET and PUT do not); S3 does not.
		bucket, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if v, err := f.Backend.VersioningConfiguration(bucket); err == nil && !v.Enabled() {
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
func (f *Fake) checkSum(w http.ResponseWriter, r *http.Request) bool {
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

// Settings are a new bucket's, with the smallest parts S3 allows.
func (f *Fake) Settings(t testing.TB) objstore.S3Settings {
	t.Helper()
	bucket := fmt.Sprintf("archive-%d", f.buckets.Add(1))
	if err := f.Backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	return objstore.S3Settings{
		Region:             "eu-west-1",
		Bucket:             bucket,
		Endpoint:           f.URL,
		PathStyle:          true,
		MultipartThreshold: objstore.S3MinPartSize,
		PartSize:           objstore.S3MinPartSize,
		UploadConcurrency:  3,
		Credentials: awsauth.Credentials{
			AccessKeyID:     config.SecretLiteral(KeyID),
			SecretAccessKey: config.SecretLiteral(Secret),
		},
	}
}
