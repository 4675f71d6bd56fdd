package gcsstore_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/gcsstore"
	"github.com/auditstream/auditstream/services/testsupport/storetest"
)

// chunkSize makes storetest's large bodies resumable uploads of a dozen
// chunks.
const chunkSize = 1 << 20

// fake is fake-gcs-server in process on a loopback port, and a client
// transport that counts what the stores sent and what they were told.
type fake struct {
	srv     *fakestorage.Server
	buckets atomic.Int64

	resumable, chunks, refused atomic.Int64
}

func newFake(t *testing.T) *fake {
	t.Helper()
	// PublicHost routes the XML API's downloads (/bucket/object) to the
	// loopback address the stores are given.
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Port: 0, Scheme: "http", PublicHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("fake listens on %s", srv.URL())
	}
	return &fake{srv: srv}
}

func (f *fake) RoundTrip(r *http.Request) (*http.Response, error) {
	q := r.URL.Query()
	switch {
	case q.Has("upload_id"): // the chunks of a resumable upload
		f.chunks.Add(1)
	case q.Get("uploadType") == "resumable":
		f.resumable.Add(1)
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusPreconditionFailed {
		f.refused.Add(1)
	}
	return resp, err
}

func (f *fake) settings() objstore.GCSSettings {
	bucket := fmt.Sprintf("archive-%d", f.buckets.Add(1))
	f.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	return objstore.GCSSettings{Bucket: bucket, Endpoint: f.srv.URL() + "/storage/v1/", ChunkSize: chunkSize}
}

func (f *fake) store(t *testing.T, cfg objstore.GCSSettings) *gcsstore.Store {
	t.Helper()
	st, err := gcsstore.New(t.Context(), cfg, gcsstore.Options{HTTPClient: &http.Client{Transport: f}, ListPageSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	f := newFake(t)
	storetest.Suite{NewStore: func(t *testing.T) objstore.Store { return f.store(t, f.settings()) }}.Run(t)
	// Without these the large cases proved nothing.
	if f.resumable.Load() == 0 || f.chunks.Load() < 10 || f.refused.Load() == 0 {
		t.Errorf("resumable uploads %d, chunks %d, refused %d: the resumable path was not exercised",
			f.resumable.Load(), f.chunks.Load(), f.refused.Load())
	}
}

// Through objstore.Open (the library's own HTTP client, unauthenticated
// at the endpoint), with every key under a prefix.
func TestConformanceThroughOpen(t *testing.T) {
	f := newFake(t)
	storetest.Run(t, func(t *testing.T) objstore.Store {
		cfg := f.settings()
		st, err := objstore.Open(t.Context(), objstore.Settings{Kind: objstore.KindGCS, Prefix: "audit/acme", GCS: &cfg})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.Describe(), "gs://"+cfg.Bucket+"/audit/acme"; got != want {
			t.Errorf("describe %q, want %q", got, want)
		}
		return st
	})
}

// Credentials are checked when the store is made, and no error shows them.
func TestCredentials(t *testing.T) {
	const secret = "-----BEGIN PRIVATE KEY-----gcs-secret-never-printed"
	cases := []struct {
		name  string
		value string
		want  string
	}{
		{"not JSON", secret, "not a JSON credentials file"},
		{"unknown type", `{"type":"gdch_service_account","private_key":"` + secret + `"}`, `"gdch_service_account" are not supported`},
		{"no type", `{"private_key":"` + secret + `"}`, `type "" are not supported`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := gcsstore.New(t.Context(), objstore.GCSSettings{Bucket: "archive", Credentials: config.SecretLiteral(c.value)}, gcsstore.Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "gcs-secret") {
				t.Fatalf("error shows the secret: %v", err)
			}
		})
	}
	_, err := gcsstore.New(t.Context(), objstore.GCSSettings{Bucket: "archive", Credentials: config.SecretFile("/nonexistent/key.json")}, gcsstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/key.json") {
		t.Fatalf("missing file: %v", err)
	}
	_, err = gcsstore.New(t.Context(), objstore.GCSSettings{Bucket: "Not_A_Bucket"}, gcsstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Fatalf("bad bucket: %v", err)
	}
}

func TestMissingBucket(t *testing.T) {
	f := newFake(t)
	cfg := f.settings()
	cfg.Bucket = "no-such-bucket"
	st := f.store(t, cfg)
	_, err := storetest.Create(t.Context(), st, "k", storetest.NewBody(10, 1))
	if err == nil || errors.Is(err, objstore.ErrExists) {
		t.Fatalf("create in a missing bucket: %v", err)
	}
}
