package objstore_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/objstore"
	_ "github.com/auditstream/auditstream/services/internal/objstore/all"
)

// decode reads path, a destinations file with one storage connection named
// archive, and decodes its settings as the archiver does: strictly,
// validated, with defaults.
func decode(t *testing.T, path string) (objstore.Settings, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	table, err := destinations.Parse(data)
	if err != nil {
		t.Fatalf("%s is not a destinations file: %v", path, err)
	}
	conn := table.Lookup("archive")
	if conn == nil || conn.Type != destinations.TypeStorage {
		t.Fatalf("%s has no storage connection named archive", path)
	}
	var s objstore.Settings
	if err := conn.Decode(&s); err != nil {
		return s, err
	}
	return s.WithDefaults(), nil
}

// Secrets in the test files; no error or description may show them.
var secrets = []string{"never-printed", "sig=", "url-password"}

type validCase struct {
	file  string
	check func(t *testing.T, s objstore.Settings)
	// describe is what the opened store calls itself; empty: not opened
	// here (it needs ambient credentials or network).
	describe string
}

var validCases = []validCase{
	{"s3-static-keys.yaml", func(t *testing.T, s objstore.Settings) {
		if s.S3.PartSize != objstore.DefaultPartSize || s.S3.MultipartThreshold != objstore.DefaultPartSize || s.S3.UploadConcurrency != 4 {
			t.Errorf("defaults %+v", s.S3)
		}
	}, "s3://acme-audit-archive/auditstream/acme"},
	{"s3-assume-role.yaml", func(t *testing.T, s objstore.Settings) {
		cr := s.S3.Credentials
		if s.S3.PartSize != 8<<20 || s.S3.MultipartThreshold != 64<<20 || cr.RoleSessionName != objstore.DefaultRoleSessionName || cr.STSRegion != "us-east-2" {
			t.Errorf("settings %+v", s.S3)
		}
	}, ""},
	{"s3-compatible.yaml", func(t *testing.T, s objstore.Settings) {
		if !s.S3.PathStyle || s.S3.Endpoint != "http://127.0.0.1:9000" {
			t.Errorf("settings %+v", s.S3)
		}
	}, "s3://audit"},
	{"gcs.yaml", func(t *testing.T, s objstore.Settings) {
		if s.GCS.ChunkSize != 8<<20 || s.Prefix != "audit/" {
			t.Errorf("settings %+v", s.GCS)
		}
	}, ""},
	{"gcs-emulator.yaml", func(t *testing.T, s objstore.Settings) {
		if s.GCS.ChunkSize != objstore.DefaultChunkSize {
			t.Errorf("chunk size %d", s.GCS.ChunkSize)
		}
	}, "gs://audit"},
	{"azure-shared-key.yaml", func(t *testing.T, s objstore.Settings) {
		if s.Azure.BlockSize != 8<<20 || s.Azure.SingleUploadThreshold != objstore.DefaultPartSize {
			t.Errorf("settings %+v", s.Azure)
		}
	}, "https://acmeaudit.blob.core.windows.net/audit-archive/acme"},
	{"azure-sas.yaml", nil, ""},
	{"azure-azurite.yaml", nil, "http://127.0.0.1:10000/devstoreaccount1/audit"},
	{"azure-default-credential.yaml", nil, ""},
	{"local.yaml", nil, "file://<cwd>/.data/archive/dev"},
}

func TestValidSettings(t *testing.T) {
	t.Setenv("ARCHIVE_TEST_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("ARCHIVE_TEST_AZURE_KEY", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
	dir, err := filepath.Abs(filepath.Join("testdata", "valid"))
	if err != nil {
		t.Fatal(err)
	}
	cwd := t.TempDir() // local.yaml's relative directory lands here
	t.Chdir(cwd)
	for _, c := range validCases {
		t.Run(c.file, func(t *testing.T) {
			s, err := decode(t, filepath.Join(dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(); err != nil {
				t.Fatalf("valid after decoding, invalid with defaults: %v", err)
			}
			if c.check != nil {
				c.check(t, s)
			}
			if c.describe == "" {
				return
			}
			st, err := objstore.Open(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			want := strings.ReplaceAll(c.describe, "<cwd>", filepath.ToSlash(cwd))
			if got := st.Describe(); got != want {
				t.Errorf("describe %q, want %q", got, want)
			}
		})
	}
}

type invalidCase struct {
	file string
	want []string // each is in the error
}

var invalidCases = []invalidCase{
	{"unknown-key.yaml", []string{"settings.s3.buckett: line 9: unknown field"}},
	{"unknown-top-key.yaml", []string{"settings.compression: line 7: unknown field"}},
	{"prefix-in-block.yaml", []string{"settings.gcs.prefix: line 8: unknown field"}},
	{"wrong-kind.yaml", []string{"gcs: is required with kind gcs", `s3: only applies with kind s3 (kind is "gcs")`}},
	{"unknown-kind.yaml", []string{`kind: "ftp" is not one of s3, gcs, azure, local`, "local: only applies with kind local"}},
	{"no-kind.yaml", []string{"kind: is required"}},
	{"missing-bucket.yaml", []string{"s3.region: is required", "s3.bucket: is required", "s3.credentials.access_key_id: access_key_id and secret_access_key go together"}},
	{"two-credentials.yaml", []string{"azure.sas_token: give one credential: shared_key or sas_token, not both"}},
	{"bad-urls.yaml", []string{"azure.account_url: ftp://acmeaudit.blob.core.windows.net: scheme must be http or https; must not hold credentials; must not have a query"}},
	{"sas-over-http.yaml", []string{"azure.account_url: must be https with sas_token"}},
	{"bad-endpoints.yaml", []string{"s3.endpoint:", "scheme must be http or https", "s3.credentials.sts_endpoint:", "must not have a query or fragment"}},
	{"hostile-values.yaml", []string{
		`prefix: "../../escape": has a ".." segment`,
		`s3.region: "eu-west-1\nX-Injected: 1" is not an AWS region`,
		`s3.bucket: "../../etc/passwd" is not an S3 bucket name`,
		"s3.sse_kms_key_id:", `s3.storage_class: "COLD" is not one of`,
		"s3.multipart_threshold: must be between", "s3.part_size: must be between 5MiB and 5GiB",
		"s3.upload_concurrency: must be between 1 and 32",
	}},
	{"hostile-gcs.yaml", []string{"prefix:", "gcs.bucket:", "gcs.endpoint:", "gcs.chunk_size: must be a multiple of 256KiB"}},
	{"hostile-local.yaml", []string{"prefix:", "starts with a slash", "local.dir: must not be the root directory"}},
	{"secret-of-wrong-type.yaml", []string{"line 10: a secret is a string, {file: path} or {env: NAME}"}},
	{"secret-with-two-sources.yaml", []string{"line 8: a secret needs exactly one of file or env"}},
	{"size-of-wrong-type.yaml", []string{`line 9: "lots" is not a size`}},
	{"number-of-wrong-type.yaml", []string{"line 9: cannot unmarshal !!str into int", "line 10: cannot unmarshal !!str into bool"}},
	{"azure-missing-parts.yaml", []string{"azure.account_url: is required", "azure.container: is required",
		`azure.shared_key.account_name: "Bad_Name" is not a storage account name`, "azure.shared_key.account_key: is required"}},
}

func TestInvalidSettings(t *testing.T) {
	for _, c := range invalidCases {
		t.Run(c.file, func(t *testing.T) {
			s, err := decode(t, filepath.Join("testdata", "invalid", c.file))
			if err == nil {
				// Decoding passed: the same settings must fail Open.
				_, err = objstore.Open(t.Context(), s)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			for _, secret := range secrets {
				if strings.Contains(msg, secret) {
					t.Errorf("error shows a secret (%q):\n%s", secret, msg)
				}
			}
		})
	}
}

// Every file in testdata is a case above, and every case has its file.
func TestEveryTestdataFileIsACase(t *testing.T) {
	var valid, invalid []string
	for _, c := range validCases {
		valid = append(valid, c.file)
	}
	for _, c := range invalidCases {
		invalid = append(invalid, c.file)
	}
	for dir, files := range map[string][]string{"valid": valid, "invalid": invalid} {
		entries, err := os.ReadDir(filepath.Join("testdata", dir))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		slices.Sort(files)
		if !slices.Equal(names, files) {
			t.Errorf("testdata/%s holds %q, the cases name %q", dir, names, files)
		}
	}
}
