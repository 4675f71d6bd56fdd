package azstore_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/objstore/azstore"
	"github.com/auditstream/auditstream/services/testsupport/azuritetest"
	"github.com/auditstream/auditstream/services/testsupport/storetest"
)

// blockSize makes storetest's large bodies three blocks.
const blockSize = 4 << 20

// counter is a client transport that counts what the stores sent and what
// they were told.
type counter struct {
	blocks, commits, refused atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.URL.Query().Get("comp") {
	case "block":
		c.blocks.Add(1)
	case "blocklist":
		if r.Method == http.MethodPut {
			c.commits.Add(1)
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && (resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusPreconditionFailed) {
		c.refused.Add(1)
	}
	return resp, err
}

type env struct {
	az         *azuritetest.Azurite
	containers atomic.Int64
	count      counter
}

func (e *env) settings() objstore.AzureSettings {
	return objstore.AzureSettings{
		AccountURL:            e.az.URL,
		SharedKey:             &objstore.AzureSharedKey{AccountName: azuritetest.AccountName, AccountKey: config.SecretLiteral(azuritetest.AccountKey)},
		SingleUploadThreshold: blockSize,
		BlockSize:             blockSize,
		UploadConcurrency:     3,
	}
}

// newContainer creates a container and returns its settings.
func (e *env) newContainer(t *testing.T) objstore.AzureSettings {
	t.Helper()
	cfg := e.settings()
	cfg.Container = fmt.Sprintf("archive-%d", e.containers.Add(1))
	cred, err := container.NewSharedKeyCredential(azuritetest.AccountName, azuritetest.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(e.az.URL+"/"+cfg.Container, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (e *env) store(t *testing.T, cfg objstore.AzureSettings) *azstore.Store {
	t.Helper()
	st, err := azstore.New(t.Context(), cfg, azstore.Options{HTTPClient: &http.Client{Transport: &e.count}, ListPageSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// sasToken is a container SAS with only the permissions the archive needs:
// create and write (Put Block and Put Block List need write), read and
// list. Not delete.
func (e *env) sasToken(t *testing.T, containerName string) string {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(azuritetest.AccountName, azuritetest.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(e.az.URL+"/"+containerName, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	sasURL, err := c.GetSASURL(sas.ContainerPermissions{Create: true, Write: true, Read: true, List: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(sasURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.RawQuery
}

// One Azurite serves every case; each store has its own container.
func TestAzurite(t *testing.T) {
	e := &env{az: azuritetest.Start(t)}

	t.Run("shared key", func(t *testing.T) {
		storetest.Suite{
			NewStore: func(t *testing.T) objstore.Store { return e.store(t, e.newContainer(t)) },
			Secrets:  []string{azuritetest.AccountKey},
		}.Run(t)
		// Without these the large cases proved nothing.
		if e.count.blocks.Load() == 0 || e.count.commits.Load() == 0 || e.count.refused.Load() == 0 {
			t.Errorf("blocks %d, commits %d, refused %d: the staged path was not exercised",
				e.count.blocks.Load(), e.count.commits.Load(), e.count.refused.Load())
		}
	})

	t.Run("through Open", func(t *testing.T) {
		storetest.Suite{
			NewStore: func(t *testing.T) objstore.Store {
				cfg := e.newContainer(t)
				st, err := objstore.Open(t.Context(), objstore.Settings{Kind: objstore.KindAzure, Prefix: "audit/acme", Azure: &cfg})
				if err != nil {
					t.Fatal(err)
				}
				if got, want := st.Describe(), e.az.URL+"/"+cfg.Container+"/audit/acme"; got != want {
					t.Errorf("describe %q, want %q", got, want)
				}
				return st
			},
			Secrets: []string{azuritetest.AccountKey},
		}.Run(t)
	})

	t.Run("SAS token without delete", func(t *testing.T) {
		var (
			mu     sync.Mutex // the conformance cases make stores in parallel
			tokens []string
		)
		newStore := func(t *testing.T) objstore.Store {
			cfg := e.newContainer(t)
			token := e.sasToken(t, cfg.Container)
			mu.Lock()
			tokens = append(tokens, token)
			mu.Unlock()
			cfg.SharedKey = nil
			cfg.SASToken = config.SecretLiteral("?" + token)
			return e.store(t, cfg)
		}
		st := newStore(t)
		b := storetest.NewBody(3*blockSize+17, 1)
		info := storetest.MustCreate(t, st, "sas/large", b)
		storetest.Expect(t, st, "sas/large", b.Data, info.Version)
		_, err := storetest.Create(t.Context(), st, "sas/large", storetest.NewBody(10, 2))
		if err == nil || !strings.Contains(err.Error(), objstore.ErrExists.Error()) {
			t.Fatalf("second create with a SAS: %v", err)
		}
		sig := tokens[0][strings.Index(tokens[0], "sig="):]
		for _, text := range []string{err.Error(), st.Describe(), fmt.Sprint(st)} {
			if strings.Contains(text, sig) || strings.Contains(text, "sig=") {
				t.Errorf("the SAS shows in %q", text)
			}
		}
		storetest.Suite{NewStore: newStore}.Run(t)
	})
}

func TestSettingsErrors(t *testing.T) {
	base := objstore.AzureSettings{AccountURL: "http://127.0.0.1:1/devstoreaccount1", Container: "archive"}
	cases := []struct {
		name string
		edit func(c *objstore.AzureSettings)
		want string
	}{
		{"bad key", func(c *objstore.AzureSettings) {
			c.SharedKey = &objstore.AzureSharedKey{AccountName: "devstoreaccount1", AccountKey: config.SecretLiteral("not base64 !!")}
		}, "not a base64 account key"},
		{"missing key file", func(c *objstore.AzureSettings) {
			c.SharedKey = &objstore.AzureSharedKey{AccountName: "devstoreaccount1", AccountKey: config.SecretFile("/nonexistent/key")}
		}, "/nonexistent/key"},
		{"bad container", func(c *objstore.AzureSettings) { c.Container = "Bad--Name" }, "container"},
	}
	for _, c := range cases {
		cfg := base
		c.edit(&cfg)
		_, err := azstore.New(t.Context(), cfg, azstore.Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "not base64 !!") {
			t.Errorf("%s: error shows the key: %v", c.name, err)
		}
	}
}
