package archiver

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/objstore"
	_ "github.com/auditstream/auditstream/services/internal/objstore/all"
	"github.com/auditstream/auditstream/services/testsupport/azuritetest"
	"github.com/auditstream/auditstream/services/testsupport/s3fake"
)

// bucket is one empty bucket (or directory): the settings of a storage
// connection to it, and a store on it for the test's own checks.
type bucket struct {
	settings string // the YAML under `settings:`, indented six spaces
	st       objstore.Store
}

// backend makes buckets of one kind, each test starting its own peer.
type backend struct {
	name      string
	newBucket func(t testing.TB) bucket
}

var bucketSeq atomic.Int64

func openBucket(t testing.TB, s objstore.Settings, yaml string) bucket {
	t.Helper()
	st, err := objstore.Open(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return bucket{settings: yaml, st: st}
}

func localBackend() backend {
	return backend{name: "local", newBucket: func(t testing.TB) bucket {
		dir := t.TempDir()
		return openBucket(t, objstore.Settings{Kind: objstore.KindLocal, Local: &objstore.LocalSettings{Dir: dir}},
			fmt.Sprintf("      kind: local\n      local: {dir: %q}\n", dir))
	}}
}

// s3Backend keeps the fake it started so crash tests can hook it.
func s3Backend(fake **s3fake.Fake) backend {
	return backend{name: "s3", newBucket: func(t testing.TB) bucket {
		if *fake == nil {
			*fake = s3fake.New(t)
		}
		s := (*fake).Settings(t)
		yaml := fmt.Sprintf("      kind: s3\n      prefix: audit\n      s3:\n        region: %s\n        bucket: %s\n        endpoint: %s\n        path_style: true\n        multipart_threshold: %d\n        part_size: %d\n        credentials: {access_key_id: %s, secret_access_key: %s}\n",
			s.Region, s.Bucket, s.Endpoint, int64(s.MultipartThreshold), int64(s.PartSize), s3fake.KeyID, s3fake.Secret)
		return openBucket(t, objstore.Settings{Kind: objstore.KindS3, Prefix: "audit", S3: &s}, yaml)
	}}
}

func gcsBackend() backend {
	var srv *fakestorage.Server
	return backend{name: "gcs", newBucket: func(t testing.TB) bucket {
		if srv == nil {
			var err error
			srv, err = fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Port: 0, Scheme: "http", PublicHost: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Stop)
		}
		name := fmt.Sprintf("archive-%d", bucketSeq.Add(1))
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
		endpoint := srv.URL() + "/storage/v1/"
		return openBucket(t, objstore.Settings{Kind: objstore.KindGCS, GCS: &objstore.GCSSettings{Bucket: name, Endpoint: endpoint}},
			fmt.Sprintf("      kind: gcs\n      gcs: {bucket: %s, endpoint: %q}\n", name, endpoint))
	}}
}

func azureBackend() backend {
	var az *azuritetest.Azurite
	return backend{name: "azure", newBucket: func(t testing.TB) bucket {
		if az == nil {
			az = azuritetest.Start(t)
		}
		name := fmt.Sprintf("archive-%d", bucketSeq.Add(1))
		cred, err := container.NewSharedKeyCredential(azuritetest.AccountName, azuritetest.AccountKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := container.NewClientWithSharedKeyCredential(az.URL+"/"+name, cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Create(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		s := objstore.Settings{Kind: objstore.KindAzure, Azure: &objstore.AzureSettings{AccountURL: az.URL, Container: name,
			SharedKey: &objstore.AzureSharedKey{AccountName: azuritetest.AccountName, AccountKey: config.SecretLiteral(azuritetest.AccountKey)}}}
		yaml := fmt.Sprintf("      kind: azure\n      azure:\n        account_url: %s\n        container: %s\n        shared_key: {account_name: %s, account_key: %q}\n",
			az.URL, name, azuritetest.AccountName, azuritetest.AccountKey)
		return openBucket(t, s, yaml)
	}}
}

// allBackends is the suite every archive test runs against.
func allBackends() []backend {
	var s3 *s3fake.Fake
	return []backend{localBackend(), s3Backend(&s3), gcsBackend(), azureBackend()}
}

// route sends every account's events to b.
func (e *env) route(b bucket) {
	e.t.Helper()
	yaml := "connections:\n  bucket:\n    type: storage\n    settings:\n" + b.settings + "routes:\n  - account: \"*\"\n    connections: [bucket]\n"
	if err := os.WriteFile(e.destFile, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func forEachBackend(t *testing.T, test func(t *testing.T, be backend)) {
	for _, be := range allBackends() {
		t.Run(be.name, func(t *testing.T) { test(t, be) })
	}
}
