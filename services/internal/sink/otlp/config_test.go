package otlp

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

// TestConfigCases reads testdata/config: valid-*.yaml must pass Validate;
// invalid-*.yaml must fail with exactly the fields its first line names
// ("# error: a, b"), and no message may hold a secret's value.
func TestConfigCases(t *testing.T) {
	files, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil || len(files) < 10 {
		t.Fatalf("cases: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c Config
			err = config.Parse(data, &c)
			if err == nil {
				err = c.Validate()
			}
			name := filepath.Base(f)
			if strings.HasPrefix(name, "valid-") {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want := strings.Split(strings.TrimPrefix(first, "# error: "), ", ")
			if err == nil {
				t.Fatalf("want errors on %v, got none", want)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("secret in message: %v", err)
			}
			if want[0] == "parse" {
				if !strings.Contains(err.Error(), "parse config") {
					t.Errorf("want a parse error, got %v", err)
				}
				return
			}
			var got []string
			for _, one := range config.Flatten(err) {
				field, _, _ := strings.Cut(one.Error(), ": ")
				got = append(got, field)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("fields %v, want %v; errors:\n%v", got, want, err)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	c := Config{Endpoint: " https://otlp.example.com/otlp/ "}.WithDefaults()
	if c.Encoding != EncodingProtobuf || c.Compression != CompressionGzip || c.MaxRequestBytes != 4<<20 || c.Timeout != 30*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	if got := c.URL(); got != "https://otlp.example.com/otlp/v1/logs" {
		t.Errorf("URL %s", got)
	}
	if got := (Config{Endpoint: "https://h:4318"}).URL(); got != "https://h:4318/v1/logs" {
		t.Errorf("URL %s", got)
	}
	for a, want := range map[*Auth]string{
		{}: AuthNone,
		{Username: "1", Password: config.SecretLiteral("p")}: AuthBasic,
		{Token: config.SecretEnv("T")}:                       AuthBearer,
	} {
		if got := a.Mode(); got != want {
			t.Errorf("%+v: mode %s, want %s", a, got, want)
		}
	}
}
