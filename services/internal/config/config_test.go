package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"
)

// sample is a config with one field of every kind Load handles.
type sample struct {
	Name     string          `yaml:"name"`
	Size     config.ByteSize `yaml:"size"`
	Timeout  time.Duration   `yaml:"timeout"`
	Tags     []string        `yaml:"tags"`
	Enabled  bool            `yaml:"enabled"`
	Ratio    float64         `yaml:"ratio"`
	Count    int             `yaml:"count"`
	Port     uint32          `yaml:"port"`
	Password config.Secret   `yaml:"password"`
	Inner    inner           `yaml:"inner"`
	Skipped  string          `yaml:"-"`
	NoTag    string
}

type inner struct {
	Level    string          `yaml:"level"`
	MaxBytes config.ByteSize `yaml:"max_bytes"`
}

func (i inner) Validate() error {
	var errs config.Errors
	if i.Level != "info" && i.Level != "debug" {
		errs.Addf("level", "%q is not info or debug", i.Level)
	}
	if i.MaxBytes > 1<<30 {
		errs.Addf("max_bytes", "must be at most 1GiB")
	}
	return errs.Err()
}

func (s *sample) Validate() error {
	var errs config.Errors
	if s.Name == "" {
		errs.Addf("name", "must not be empty")
	}
	if s.Count < 0 {
		errs.Addf("count", "must not be negative")
	}
	errs.Add("inner", s.Inner.Validate())
	return errs.Err()
}

func defaults() sample {
	return sample{Name: "default", Size: 5 << 20, Timeout: 10 * time.Second, Tags: []string{"d"}, Count: 1, Port: 80, Inner: inner{Level: "info", MaxBytes: 1 << 20}}
}

func load(t *testing.T, file string, env ...string) (sample, error) {
	t.Helper()
	s := defaults()
	path := ""
	if file != "" {
		path = filepath.Join("testdata", file)
	}
	err := config.Load(path, env, &s)
	return s, err
}

func TestLoadPrecedence(t *testing.T) {
	t.Run("defaults only", func(t *testing.T) {
		got, err := load(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := defaults(); !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("file over defaults", func(t *testing.T) {
		got, err := load(t, "sample.yaml")
		if err != nil {
			t.Fatal(err)
		}
		want := defaults()
		want.Name, want.Size, want.Timeout, want.Count, want.Tags, want.Inner.Level = "from-file", 256<<10, 30*time.Second, 3, []string{"f1", "f2"}, "debug"
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("env over file", func(t *testing.T) {
		got, err := load(t, "sample.yaml",
			"AUDITSTREAM_NAME=from-env",
			"AUDITSTREAM_INNER_MAX_BYTES=2MB",
			"AUDITSTREAM_TAGS= x, y,,z ",
			"AUDITSTREAM_ENABLED=true",
			"AUDITSTREAM_RATIO=0.25",
			"AUDITSTREAM_PORT=8080",
			"AUDITSTREAM_TIMEOUT=1m30s",
			"AUDITSTREAM_NOTAG=untagged",
			"AUDITSTREAM_PASSWORD=from-env-secret",
			"PATH=/usr/bin", // not ours
			"NOEQUALSSIGN",  // not a variable
			"auditstream_name=lower-case is another variable",
		)
		if err != nil {
			t.Fatal(err)
		}
		want := defaults()
		want.Name, want.Size, want.Timeout, want.Count, want.Inner.Level = "from-env", 256<<10, 90*time.Second, 3, "debug"
		want.Inner.MaxBytes, want.Tags, want.Enabled, want.Ratio, want.Port, want.NoTag = 2<<20, []string{"x", "y", "z"}, true, 0.25, 8080, "untagged"
		want.Password = config.SecretLiteral("from-env-secret")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
		if v, err := got.Password.Value(); err != nil || v != "from-env-secret" {
			t.Errorf("secret from env: %q %v", v, err)
		}
	})
	t.Run("env alone over defaults", func(t *testing.T) {
		got, err := load(t, "", "AUDITSTREAM_COUNT=7")
		if err != nil || got.Count != 7 || got.Name != "default" {
			t.Errorf("got %+v %v", got, err)
		}
	})
	t.Run("empty env list value empties the list", func(t *testing.T) {
		got, err := load(t, "sample.yaml", "AUDITSTREAM_TAGS=")
		if err != nil || len(got.Tags) != 0 {
			t.Errorf("tags %q %v", got.Tags, err)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  []string
		want []string // every one is in the error
	}{
		{"unknown nested YAML key", "unknown-key.yaml", nil, []string{"parse config", "lvl", "not found"}},
		{"unknown top YAML key", "unknown-top-key.yaml", nil, []string{"nmae", "not found"}},
		{"malformed YAML", "malformed.yaml", nil, []string{"parse config"}},
		{"wrong type", "wrong-type.yaml", nil, []string{"parse config", "many"}},
		{"two documents", "two-documents.yaml", nil, []string{"more than one YAML document"}},
		{"missing file", "nope.yaml", nil, []string{"read config", "nope.yaml"}},
		{"every problem, with its path", "invalid-values.yaml", nil, []string{"invalid config", "name: must not be empty", "count: must not be negative", `inner.level: "shouty" is not info or debug`}},
		{"env value breaks validation", "sample.yaml", []string{"AUDITSTREAM_INNER_MAX_BYTES=2GB"}, []string{"inner.max_bytes: must be at most 1GiB"}},
		{"unknown env variables, all named", "", []string{"AUDITSTREAM_NAEM=x", "AUDITSTREAM_INNER=x", "AUDITSTREAM_SKIPPED=x"}, []string{"AUDITSTREAM_INNER, AUDITSTREAM_NAEM, AUDITSTREAM_SKIPPED matches no config key"}},
		{"bad env bool", "", []string{"AUDITSTREAM_ENABLED=maybe"}, []string{"AUDITSTREAM_ENABLED: not a boolean"}},
		{"bad env int", "", []string{"AUDITSTREAM_COUNT=1.5"}, []string{"AUDITSTREAM_COUNT: not an integer"}},
		{"bad env uint", "", []string{"AUDITSTREAM_PORT=-1"}, []string{"AUDITSTREAM_PORT: not a non-negative integer"}},
		{"env uint overflow", "", []string{"AUDITSTREAM_PORT=4294967296"}, []string{"AUDITSTREAM_PORT"}},
		{"bad env float", "", []string{"AUDITSTREAM_RATIO=half"}, []string{"AUDITSTREAM_RATIO: not a number"}},
		{"bad env duration", "", []string{"AUDITSTREAM_TIMEOUT=10"}, []string{"AUDITSTREAM_TIMEOUT: not a duration"}},
		{"bad env size", "", []string{"AUDITSTREAM_SIZE=lots"}, []string{"AUDITSTREAM_SIZE", "not a size"}},
		{"several env problems at once", "", []string{"AUDITSTREAM_COUNT=x", "AUDITSTREAM_ENABLED=x", "AUDITSTREAM_TYPO=x"}, []string{"AUDITSTREAM_COUNT", "AUDITSTREAM_ENABLED", "AUDITSTREAM_TYPO"}},
		{"hostile size in YAML", "size-hostile.yaml", nil, []string{"not a size"}},
		{"list for a size", "size-list.yaml", nil, []string{"a size must be a number or a string"}},
		{"secret with both sources", "secret-both.yaml", nil, []string{"exactly one of file or env"}},
		{"list for a secret", "secret-list.yaml", nil, []string{"a secret is a string"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.file, tc.env...)
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadJoinsEveryProblem(t *testing.T) {
	_, err := load(t, "invalid-values.yaml")
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %v is not a joined error", err)
	}
	if n := len(joined.Unwrap()); n != 3 {
		t.Errorf("%d problems, want 3: %v", n, err)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 3 {
		t.Errorf("%d lines: %q", len(lines), err)
	}
}

func TestLoadEmptyFilesKeepDefaults(t *testing.T) {
	for _, f := range []string{"empty.yaml", "comments-only.yaml"} {
		got, err := load(t, f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if !reflect.DeepEqual(got, defaults()) {
			t.Errorf("%s changed the defaults: %+v", f, got)
		}
	}
}

func TestLoadFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) string {
		// a valid YAML file of n bytes: comment lines
		line := "# " + strings.Repeat("x", 61) + "\n"
		body := strings.Repeat(line, n/len(line))
		body += strings.Repeat("#", n-len(body))
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := defaults()
	if err := config.Load(write("at-limit.yaml", config.MaxFileBytes), nil, &s); err != nil {
		t.Errorf("a file of exactly %d bytes: %v", config.MaxFileBytes, err)
	}
	err := config.Load(write("over.yaml", config.MaxFileBytes+1), nil, &s)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a file over the limit: %v", err)
	}
}

func TestParseDirect(t *testing.T) {
	var s sample
	if err := config.Parse([]byte("name: direct\ninner: {level: info}\n"), &s); err != nil || s.Name != "direct" {
		t.Errorf("%+v %v", s, err)
	}
	if err := config.Parse(nil, &s); err != nil {
		t.Errorf("empty input: %v", err)
	}
}

func TestByteSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"007", 7, true},
		{"+5", 5, true},
		{"5B", 5, true},
		{"5b", 5, true},
		{"5K", 5 << 10, true},
		{"5KB", 5 << 10, true},
		{"5kb", 5 << 10, true},
		{"5KiB", 5 << 10, true},
		{"5kib", 5 << 10, true},
		{"256KiB", 256 << 10, true},
		{"5M", 5 << 20, true},
		{"5MB", 5 << 20, true},
		{"5MiB", 5 << 20, true},
		{" 5 mb ", 5 << 20, true},
		{"1GB", 1 << 30, true},
		{"1GiB", 1 << 30, true},
		{"1g", 1 << 30, true},
		{"1125899906842624", 1 << 50, true}, // the largest size allowed
		{"1048576GB", 1 << 50, true},
		{"1125899906842625", 0, false},
		{"1048577GB", 0, false},
		{"9223372036854775807", 0, false},
		{"9223372036854775808", 0, false},
		{"99999999999999999999999999999GB", 0, false},
		{"", 0, false},
		{"   ", 0, false},
		{"MB", 0, false},
		{"B", 0, false},
		{"-1", 0, false},
		{"-1MB", 0, false},
		{"1.5MB", 0, false},
		{"1e6", 0, false},
		{"0x10", 0, false},
		{"5TB", 0, false},
		{"5 M B", 0, false},
		{"5MBB", 0, false},
		{"5\x00MB", 0, false},
		{"５MB", 0, false}, // full-width digit
		{"5МB", 0, false}, // Cyrillic М
		{"NaN", 0, false},
		{"Inf", 0, false},
		{strings.Repeat("9", 10000), 0, false},
	}
	for _, tc := range cases {
		var b config.ByteSize
		err := b.UnmarshalText([]byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && int64(b) != tc.want) {
			t.Errorf("%q: got %d, %v; want %d ok=%v", truncate(tc.in), b, err, tc.want, tc.ok)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("%q: the error repeats the whole input (%d bytes)", truncate(tc.in), len(err.Error()))
		}
	}
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

func TestByteSizeYAMLAndText(t *testing.T) {
	var v struct {
		A config.ByteSize `yaml:"a"`
		B config.ByteSize `yaml:"b"`
		C config.ByteSize `yaml:"c"`
	}
	if err := config.Parse([]byte("a: 1024\nb: 5MB\nc: '256KiB'\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 1024 || v.B != 5<<20 || v.C != 256<<10 {
		t.Errorf("%+v", v)
	}
	for _, bad := range []string{"a: -5\n", "a: 1.5\n", "a: {x: 1}\n", "a: true\n"} {
		if err := config.Parse([]byte(bad), &v); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	text, err := config.ByteSize(5 << 20).MarshalText()
	if err != nil || string(text) != "5242880" {
		t.Errorf("MarshalText %q %v", text, err)
	}
	// the text form reads back
	var back config.ByteSize
	if err := back.UnmarshalText(text); err != nil || back != 5<<20 {
		t.Errorf("round trip %d %v", back, err)
	}
}

func TestSecretSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	if err := os.WriteFile(file, []byte("from-file-pw\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("s"), config.MaxSecretBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONFIGTEST_PASSWORD", "from-env-pw")
	t.Setenv("CONFIGTEST_EMPTY", "")

	cases := []struct {
		name    string
		s       config.Secret
		value   string
		errPart string
		source  string
	}{
		{"literal", config.SecretLiteral("literal-pw"), "literal-pw", "", "inline"},
		{"file, trailing newline trimmed", config.SecretFile(file), "from-file-pw", "", "file " + file},
		{"env", config.SecretEnv("CONFIGTEST_PASSWORD"), "from-env-pw", "", "env CONFIGTEST_PASSWORD"},
		{"missing file", config.SecretFile(filepath.Join(dir, "absent")), "", "read secret", "file " + filepath.Join(dir, "absent")},
		{"file too large", config.SecretFile(big), "", "larger than", "file " + big},
		{"env not set", config.SecretEnv("CONFIGTEST_UNSET_VARIABLE"), "", "CONFIGTEST_UNSET_VARIABLE is not set", "env CONFIGTEST_UNSET_VARIABLE"},
		{"env empty", config.SecretEnv("CONFIGTEST_EMPTY"), "", "is not set", "env CONFIGTEST_EMPTY"},
		{"unset", config.Secret{}, "", "not set", "unset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.s.Value()
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("error %v, want %q", err, tc.errPart)
				}
				if tc.s.Check() == nil {
					t.Error("Check passed")
				}
			} else if err != nil || v != tc.value || tc.s.Check() != nil {
				t.Fatalf("value %q %v, want %q", v, err, tc.value)
			}
			if got := tc.s.Source(); got != tc.source {
				t.Errorf("source %q, want %q", got, tc.source)
			}
			if tc.s.IsSet() != (tc.source != "unset") {
				t.Errorf("IsSet %v", tc.s.IsSet())
			}
		})
	}

	// a rotated file is read again at the next use
	if err := os.WriteFile(file, []byte("rotated-pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, _ := config.SecretFile(file).Value(); v != "rotated-pw" {
		t.Errorf("after rotation: %q", v)
	}
	// a value of the same size, rotated as a Kubernetes Secret is: a new
	// file behind a swapped symlink
	link := filepath.Join(dir, "current")
	for i, v := range []string{"key-aaaa", "key-bbbb", "key-cccc"} {
		target := filepath.Join(dir, fmt.Sprintf("data-%d", i))
		if err := os.WriteFile(target, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if got, err := config.SecretFile(link).Value(); got != v || err != nil {
			t.Errorf("rotation %d: %q, %v, want %q", i, got, err, v)
		}
	}
	// a file rewritten in place, at once, with a value of the same size
	for _, v := range []string{"key-dddd", "key-eeee"} {
		if err := os.WriteFile(link, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := config.SecretFile(link).Value(); got != v || err != nil {
			t.Errorf("rewritten in place: %q, %v, want %q", got, err, v)
		}
	}
	// and a removed one is an error again, not the last value read
	os.Remove(link)
	if got, err := config.SecretFile(link).Value(); err == nil || got != "" {
		t.Errorf("after removal: %q, %v", got, err)
	}
}

func TestSecretFromYAML(t *testing.T) {
	t.Setenv("CONFIGTEST_PASSWORD", "yaml-env-pw")
	got, err := load(t, "secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := got.Password.Value(); err != nil || v != "yaml-env-pw" || got.Password.Source() != "env CONFIGTEST_PASSWORD" {
		t.Errorf("secret %q %v %s", v, err, got.Password.Source())
	}
	// the environment overrides a secret from the file with a literal
	got, err = load(t, "secrets.yaml", "AUDITSTREAM_PASSWORD=override-pw")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := got.Password.Value(); v != "override-pw" || got.Password.Source() != "inline" {
		t.Errorf("overridden secret %q from %s", v, got.Password.Source())
	}
	var s struct {
		P config.Secret `yaml:"p"`
	}
	for in, want := range map[string]string{
		"p: plain\n":           "inline",
		"p: 12345\n":           "inline",
		"p: {file: /run/pw}\n": "file /run/pw",
		"p: {env: PW}\n":       "env PW",
	} {
		if err := config.Parse([]byte(in), &s); err != nil || s.P.Source() != want {
			t.Errorf("%q: %s %v", in, s.P.Source(), err)
		}
	}
	for _, bad := range []string{"p: {}\n", "p: {file: ''}\n", "p: {other: x}\n", "p: [x]\n"} {
		if err := config.Parse([]byte(bad), &s); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestSecretNeverPrinted formats secrets every way a log line, an error or
// an encoder might, alone and inside structs.
func TestSecretNeverPrinted(t *testing.T) {
	const value = "hunter2-very-secret"
	t.Setenv("CONFIGTEST_SECRET", value)
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	type holder struct {
		User     string
		Password config.Secret `json:"password" yaml:"password"`
	}
	secrets := map[string]config.Secret{
		"literal": config.SecretLiteral(value),
		"file":    config.SecretFile(file),
		"env":     config.SecretEnv("CONFIGTEST_SECRET"),
	}
	for name, s := range secrets {
		t.Run(name, func(t *testing.T) {
			h := holder{User: "u", Password: s}
			var outputs []string
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
				outputs = append(outputs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h), fmt.Sprintf(verb, []config.Secret{s}), fmt.Sprintf(verb, map[string]config.Secret{"k": s}))
			}
			outputs = append(outputs, s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintln(h), fmt.Errorf("wrapped: %v", s).Error())
			text, _ := s.MarshalText()
			outputs = append(outputs, string(text))
			for _, v := range []any{s, h, &h, map[string]any{"s": s}} {
				j, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				outputs = append(outputs, string(j))
				y, err := yaml.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				outputs = append(outputs, string(y))
			}
			var logged bytes.Buffer
			log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logged), zap.DebugLevel))
			log.Info("secret", zap.Any("any", s), zap.Stringer("stringer", s), zap.Any("holder", h), zap.Reflect("reflect", h))
			outputs = append(outputs, logged.String())
			for _, out := range outputs {
				if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) || strings.Contains(out, fmt.Sprintf("%X", value)) {
					t.Errorf("the value leaks: %s", out)
				}
			}
			if !strings.Contains(fmt.Sprint(h), "[redacted]") || !strings.Contains(logged.String(), "[redacted]") {
				t.Errorf("redaction marker missing: %v / %s", h, logged.String())
			}
			for verb, want := range map[string]string{"%v": "[redacted]", "%s": "[redacted]", "%d": "[redacted]", "%q": `"[redacted]"`, "%#v": "config.Secret([redacted])"} {
				if got := fmt.Sprintf(verb, s); got != want {
					t.Errorf("%s: %q, want %q", verb, got, want)
				}
			}
			// and it still resolves
			if v, err := s.Value(); err != nil || v != value {
				t.Errorf("value %q %v", v, err)
			}
		})
	}
}

func TestSecretErrorsNeverHoldTheValue(t *testing.T) {
	var s sample
	const value = "env-secret-value-42"
	err := config.ApplyEnv(&s, []string{"AUDITSTREAM_PASSWORD=" + value, "AUDITSTREAM_PASSWORDS=" + value})
	if err == nil || strings.Contains(err.Error(), value) {
		t.Errorf("error %v", err)
	}
	// a value given to a non-secret field is not echoed either
	err = config.ApplyEnv(&s, []string{"AUDITSTREAM_COUNT=" + value, "AUDITSTREAM_TIMEOUT=" + value, "AUDITSTREAM_ENABLED=" + value})
	if err == nil || strings.Contains(err.Error(), value) {
		t.Errorf("error %v", err)
	}
}

func TestEnvName(t *testing.T) {
	for path, want := range map[string]string{
		"kafka.brokers":         "AUDITSTREAM_KAFKA_BROKERS",
		"kafka.tls.ca_file":     "AUDITSTREAM_KAFKA_TLS_CA_FILE",
		"ingest.max-bytes":      "AUDITSTREAM_INGEST_MAX_BYTES",
		"log":                   "AUDITSTREAM_LOG",
		"http.shutdown_Timeout": "AUDITSTREAM_HTTP_SHUTDOWN_TIMEOUT",
	} {
		if got := config.EnvName(path); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	var none config.Errors
	if none.Err() != nil {
		t.Error("no problems, yet an error")
	}
	none.Add("section", nil)
	if none.Err() != nil {
		t.Error("adding nil made an error")
	}

	var inner config.Errors
	inner.Addf("a", "bad %d", 1)
	inner.Addf("b.c", "bad %s", "two")
	var deeper config.Errors
	deeper.Add("sub", inner.Err())
	var outer config.Errors
	outer.Add("top", deeper.Err())
	outer.Add("plain", errors.New("oops"))
	outer.Addf("last", "bad")
	var lines []string
	for _, e := range outer.Err().(interface{ Unwrap() []error }).Unwrap() {
		lines = append(lines, e.Error())
	}
	want := []string{"top.sub.a: bad 1", "top.sub.b.c: bad two", "plain.oops", "last: bad"}
	if !slices.Equal(lines, want) {
		t.Errorf("got %q, want %q", lines, want)
	}
}

// Kubernetes injects <SERVICE>_SERVICE_HOST and friends for every Service in
// the namespace; a Service named auditstream-ingest must not stop a pod.
func TestApplyEnvIgnoresKubernetesServiceLinks(t *testing.T) {
	links := []string{
		"AUDITSTREAM_INGEST_SERVICE_HOST=10.0.0.1",
		"AUDITSTREAM_INGEST_SERVICE_PORT=8080",
		"AUDITSTREAM_INGEST_SERVICE_PORT_HTTP=8080",
		"AUDITSTREAM_INGEST_PORT=tcp://10.0.0.1:8080",
		"AUDITSTREAM_INGEST_PORT_8080_TCP=tcp://10.0.0.1:8080",
		"AUDITSTREAM_INGEST_PORT_8080_TCP_PROTO=tcp",
		"AUDITSTREAM_INGEST_PORT_8080_TCP_PORT=8080",
		"AUDITSTREAM_INGEST_PORT_8080_TCP_ADDR=10.0.0.1",
	}
	var c struct {
		Name string `yaml:"name"`
	}
	if err := config.ApplyEnv(&c, links); err != nil {
		t.Fatalf("service-link variables rejected: %v", err)
	}
	// a typo that only looks similar is still caught
	if err := config.ApplyEnv(&c, []string{"AUDITSTREAM_NAME_PORTS=1"}); err == nil {
		t.Fatal("unknown variable accepted")
	}
}
