package datadog

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"

	"github.com/auditstream/auditstream/services/internal/config"
)

func TestSiteURLs(t *testing.T) {
	for site, want := range map[string]string{
		"":                  "https://http-intake.logs.datadoghq.com",
		"datadoghq.com":     "https://http-intake.logs.datadoghq.com",
		"us3.datadoghq.com": "https://http-intake.logs.us3.datadoghq.com",
		"us5.datadoghq.com": "https://http-intake.logs.us5.datadoghq.com",
		"datadoghq.eu":      "https://http-intake.logs.datadoghq.eu",
		"ap1.datadoghq.com": "https://http-intake.logs.ap1.datadoghq.com",
		"ap2.datadoghq.com": "https://http-intake.logs.ap2.datadoghq.com",
		"uk1.datadoghq.com": "https://http-intake.logs.uk1.datadoghq.com",
		"ddog-gov.com":      "https://http-intake.logs.ddog-gov.com",
		"us2.ddog-gov.com":  "https://http-intake.logs.us2.ddog-gov.com",
		" DatadogHQ.EU ":    "https://http-intake.logs.datadoghq.eu",
	} {
		cfg := Config{Site: site, APIKey: config.SecretLiteral("k")}
		if got := cfg.IntakeURL(); got != want {
			t.Errorf("%q: IntakeURL %s, want %s", site, got, want)
		}
		s, err := New(cfg, Options{})
		if err != nil {
			t.Errorf("%q: %v", site, err)
			continue
		}
		if s.URL() != want+"/api/v2/logs" {
			t.Errorf("%q: URL %s", site, s.URL())
		}
	}
	for base, want := range map[string]string{
		"http://127.0.0.1:8080":               "http://127.0.0.1:8080/api/v2/logs",
		"https://proxy.internal/datadog/":     "https://proxy.internal/datadog/api/v2/logs",
		"https://http-intake.logs.datadog.eu": "https://http-intake.logs.datadog.eu/api/v2/logs",
	} {
		s, err := New(Config{Site: "anything.example", BaseURL: base, APIKey: config.SecretLiteral("k")}, Options{})
		if err != nil {
			t.Errorf("%s: %v", base, err)
			continue
		}
		if s.URL() != want {
			t.Errorf("%s: URL %s, want %s", base, s.URL(), want)
		}
	}
}

// TestSitesMatchClient: the sites accepted are the ones the client knows
// for the logs intake.
func TestSitesMatchClient(t *testing.T) {
	servers := datadog.NewConfiguration().OperationServers[submitLogOp]
	enum := slices.Clone(servers[0].Variables["site"].EnumValues)
	ours := slices.Clone(Sites)
	slices.Sort(enum)
	slices.Sort(ours)
	if !slices.Equal(slices.Compact(enum), ours) {
		t.Errorf("client sites %v, ours %v", enum, ours)
	}
	if _, err := New(Config{Site: "datadoghq.co", APIKey: config.SecretLiteral("k")}, Options{}); err == nil {
		t.Error("unknown site accepted")
	}
}

func TestValidate(t *testing.T) {
	if err := (Config{APIKey: config.SecretLiteral("k")}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if err := (Config{Site: "my.proxy", BaseURL: "http://127.0.0.1:1", APIKey: config.SecretEnv("DD_KEY"), TagPrefix: "scalr", Source: "scalr.io", Timeout: time.Second, Compression: "none", CompressionLevel: 9}).Validate(); err != nil {
		t.Errorf("valid: %v", err)
	}
	bad := Config{
		Site:             "datadoghq.co",
		TagPrefix:        "Scalr",
		Source:           "1source",
		Timeout:          -time.Second,
		Compression:      "zstd",
		CompressionLevel: 12,
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"site:", "api_key:", "tag_prefix:", "source:", "timeout:", "compression:", "compression_level:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 7 {
		t.Errorf("%d errors joined, want 7", n)
	}
	for base, want := range map[string]string{
		"ftp://host":                  "scheme",
		"http://":                     "host",
		"https://user:pass@host":      "credentials",
		"https://host/?api_key=x":     "query",
		"://nope":                     "not a URL",
		"https://host/path#fragement": "fragment",
	} {
		err := Config{BaseURL: base, APIKey: config.SecretLiteral("k")}.Validate()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "base_url:") {
			t.Errorf("%s: %v", base, err)
		}
		if err != nil && strings.Contains(err.Error(), "pass") {
			t.Errorf("%s: password in %v", base, err)
		}
	}
	if _, err := New(bad, Options{}); err == nil || !strings.HasPrefix(err.Error(), "datadog connection:") {
		t.Errorf("New: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Site != DefaultSite || c.TagPrefix != "auditstream" || c.Source != "auditstream" || c.Timeout != DefaultTimeout || c.Compression != CompressionGzip || c.CompressionLevel != DefaultCompressionLevel {
		t.Errorf("%+v", c)
	}
	if c := (Config{TagPrefix: "scalr"}).WithDefaults(); c.Source != "scalr" {
		t.Errorf("source %q, want the prefix", c.Source)
	}
	if got := fmt.Sprintf("%v %+v %#v", Config{APIKey: config.SecretLiteral("hunter2")}, Config{APIKey: config.SecretLiteral("hunter2")}, Config{APIKey: config.SecretLiteral("hunter2")}); strings.Contains(got, "hunter2") {
		t.Errorf("key printed: %s", got)
	}
}
