package destinations

import (
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

// batchSettings and backoffSettings mirror the delivery runtime's nested
// sections (which import this package) to exercise nested strict decoding.
type batchSettings struct {
	Count  int             `yaml:"count"`
	Bytes  config.ByteSize `yaml:"bytes"`
	Period time.Duration   `yaml:"period"`
}

type backoffSettings struct {
	Initial    time.Duration `yaml:"initial"`
	Max        time.Duration `yaml:"max"`
	Multiplier float64       `yaml:"multiplier"`
	Jitter     float64       `yaml:"jitter"`
}

// ddSettings stands in for a forwarder's settings struct.
type ddSettings struct {
	Site   string            `yaml:"site"`
	APIKey config.Secret     `yaml:"api_key"`
	Tags   map[string]string `yaml:"tags"`
	Batch  batchSettings     `yaml:"batch"`
	Retry  *backoffSettings  `yaml:"retry"`
	Hosts  []ddHost          `yaml:"hosts"`
	Common `yaml:",inline"`
}

type ddHost struct {
	Name string `yaml:"name"`
	Port int    `yaml:"port"`
}

type Common struct {
	Service string `yaml:"service"`
}

func (s ddSettings) Validate() error {
	var errs config.Errors
	if s.Site == "" {
		errs.Addf("site", "is required")
	}
	if !s.APIKey.IsSet() {
		errs.Addf("api_key", "is required")
	}
	return errs.Err()
}

func decodeDD(t *testing.T, settings string) (ddSettings, error) {
	t.Helper()
	src := "connections:\n  dd:\n    type: datadog\n" + settings
	tab := mustParse(t, src)
	s := ddSettings{Site: "default.example"}
	err := tab.Lookup("dd").Decode(&s)
	return s, err
}

func TestDecode(t *testing.T) {
	s, err := decodeDD(t, `    settings:
      site: datadoghq.eu
      api_key: {file: /var/run/secrets/dd/api-key}
      tags: {env: prod}
      batch: {count: 1000, bytes: 5MB, period: 2s}
      retry: {initial: 1s, max: 1m, multiplier: 2, jitter: 0.2}
      hosts: [{name: a, port: 1}]
      service: audit
`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Site != "datadoghq.eu" || s.APIKey.Source() != "file /var/run/secrets/dd/api-key" || s.Tags["env"] != "prod" ||
		s.Batch.Count != 1000 || s.Batch.Bytes != 5<<20 || s.Batch.Period != 2*time.Second ||
		s.Retry == nil || s.Retry.Max != time.Minute || len(s.Hosts) != 1 || s.Hosts[0].Port != 1 || s.Service != "audit" {
		t.Errorf("decoded %+v", s)
	}
	// No settings: the defaults stay, and Validate still runs.
	if _, err := decodeDD(t, ""); err == nil || !strings.Contains(err.Error(), "connections.dd.settings.api_key: is required") {
		t.Errorf("no settings: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	const secret = "Zq7Xv9Kp-s3cr3t-v4lue-0123456789"
	tests := []struct {
		name     string
		settings string
		want     []string
	}{
		{"unknown key", `    settings:
      sit: datadoghq.eu
      api_key: {env: DD}
`, []string{"connections.dd.settings.sit: line 5: unknown field (known: api_key, batch, hosts, retry, service, site, tags)"}},
		{"nested unknown keys", `    settings:
      site: x
      api_key: {env: DD}
      batch: {cout: 10}
      retry:
        intial: 1s
      hosts:
        - {name: a}
        - {nmae: b}
`, []string{
			"connections.dd.settings.batch.cout: line 7: unknown field (known: bytes, count, period)",
			"connections.dd.settings.retry.intial: line 9: unknown field",
			"connections.dd.settings.hosts[1].nmae: line 12: unknown field (known: name, port)",
		}},
		{"unknown key through a merge", `    settings:
      <<: {site: x, colour: red}
      api_key: {env: DD}
`, []string{"connections.dd.settings.colour: line 5: unknown field"}},
		{"type error quotes no value", `    settings:
      site: x
      api_key: {env: DD}
      batch: {count: ` + secret + `}
      hosts: [{name: a, port: "` + secret[:9] + `"}]
`, []string{
			"connections.dd.settings: line 7: cannot unmarshal !!str into int",
			"connections.dd.settings: line 8: cannot unmarshal !!str into int",
		}},
		{"a secret's own check", `    settings:
      site: x
      api_key: {file: /a, env: B}
`, []string{"connections.dd.settings: line 6: a secret needs exactly one of file or env"}},
		{"size error", `    settings:
      site: x
      api_key: {env: DD}
      batch: {bytes: lots}
`, []string{`connections.dd.settings: line 7: "lots" is not a size`}},
		{"validate", `    settings:
      tags: {a: b}
`, []string{"connections.dd.settings.api_key: is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeDD(t, tt.settings)
			if err == nil {
				t.Fatal("Decode succeeded")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), secret[:7]) {
				t.Errorf("error quotes a settings value:\n%v", err)
			}
		})
	}
}

func TestDecodeNeedsPointer(t *testing.T) {
	c := mustParse(t, "connections: {dd: {type: datadog, settings: {site: x}}}").Lookup("dd")
	for _, into := range []any{nil, ddSettings{}, (*ddSettings)(nil)} {
		if err := c.Decode(into); err == nil || !strings.Contains(err.Error(), "non-nil pointer") {
			t.Errorf("Decode(%T) = %v", into, err)
		}
	}
	var m map[string]any
	if err := c.Decode(&m); err != nil || m["site"] != "x" {
		t.Errorf("Decode(map) = %v, %v", m, err)
	}
}

func TestDecodeSelfReferenceIsAnError(t *testing.T) {
	tab, err := Parse([]byte("connections:\n  dd:\n    type: datadog\n    settings: &s {site: x, tags: *s}\n"))
	if err != nil {
		return // rejected when parsed: an error too, which is what is asked
	}
	var s ddSettings
	if err := tab.Lookup("dd").Decode(&s); err == nil {
		t.Error("Decode of a self-containing anchor succeeded")
	}
}

func TestCheckType(t *testing.T) {
	tab := loadTestdata(t, "valid/full.yaml")
	var seen []string
	check := CheckType(TypeDatadog, func(c *Connection) error {
		seen = append(seen, c.Name)
		var s ddSettings
		return c.Decode(&s)
	})
	if err := check(tab); err != nil {
		t.Errorf("check: %v", err)
	}
	if want := "dd-acme dd-all dd-off"; strings.Join(seen, " ") != want {
		t.Errorf("checked %v, want every datadog connection, disabled too: %s", seen, want)
	}
	bad := mustParse(t, "connections:\n  a: {type: datadog, settings: {sit: x}}\n  b: {type: datadog, settings: {site: x}}\n  e: {type: eventbridge, settings: {bus: x}}\n")
	err := check(bad)
	if err == nil || !strings.Contains(err.Error(), "connections.a.settings.sit: line 2: unknown field") || !strings.Contains(err.Error(), "connections.b.settings.api_key: is required") {
		t.Errorf("check(bad) = %v", err)
	}
	if strings.Contains(err.Error(), "connections.e") {
		t.Errorf("a datadog check looked at an eventbridge connection: %v", err)
	}
}
