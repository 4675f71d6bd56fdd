package logging_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/logging"
	"go.uber.org/zap"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		c     logging.Config
		wrong []string // fields at fault
	}{
		{"default", logging.Default(), nil},
		{"debug console", logging.Config{Level: "debug", Format: "console"}, nil},
		{"warn", logging.Config{Level: "warn", Format: "json"}, nil},
		{"error", logging.Config{Level: "error", Format: "json"}, nil},
		{"unknown level", logging.Config{Level: "verbose", Format: "json"}, []string{"level"}},
		{"fatal silences errors", logging.Config{Level: "fatal", Format: "json"}, []string{"level"}},
		{"dpanic", logging.Config{Level: "dpanic", Format: "json"}, []string{"level"}},
		{"unknown format", logging.Config{Level: "info", Format: "xml"}, []string{"format"}},
		{"empty format", logging.Config{Level: "info", Format: ""}, []string{"format"}},
		{"format is case sensitive", logging.Config{Level: "info", Format: "JSON"}, []string{"format"}},
		{"both wrong", logging.Config{Level: "loud", Format: "yaml"}, []string{"level", "format"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if len(tc.wrong) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.wrong) {
				t.Errorf("%d problems, want %d: %q", len(lines), len(tc.wrong), err)
			}
			for i, w := range tc.wrong {
				if i < len(lines) && !strings.HasPrefix(lines[i], w+": ") {
					t.Errorf("problem %d %q is not about %s", i, lines[i], w)
				}
			}
		})
	}
}

func TestDefault(t *testing.T) {
	if d := logging.Default(); d.Level != "info" || d.Format != "json" {
		t.Errorf("%+v", d)
	}
}

// captureStderr runs fn with os.Stderr sent to a file and returns what was
// written. Loggers built inside fn keep writing to that file.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = f
	defer func() { os.Stderr = old }()
	fn()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJSONOutput(t *testing.T) {
	out := captureStderr(t, func() {
		log, err := logging.New(logging.Config{Level: "info", Format: "json"}, "ingest")
		if err != nil {
			t.Fatal(err)
		}
		log.Debug("hidden below info")
		log.Info("hello", zap.String("k", "v"), zap.Duration("took", 1500*time.Millisecond))
		log.Named("kafka").Warn("named")
		log.Error("failed")
		_ = log.Sync()
	})
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3 (debug is filtered):\n%s", len(lines), out)
	}
	for _, m := range lines {
		for _, key := range []string{"ts", "level", "msg", "service"} {
			if _, ok := m[key]; !ok {
				t.Errorf("line %v lacks %q", m, key)
			}
		}
		if m["service"] != "ingest" {
			t.Errorf("service %v", m["service"])
		}
		ts, _ := m["ts"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("ts %q is not RFC 3339: %v", ts, err)
		}
	}
	if l := lines[0]; l["level"] != "info" || l["msg"] != "hello" || l["k"] != "v" || l["took"] != "1.5s" {
		t.Errorf("info line %v", l)
	}
	if l := lines[1]; l["level"] != "warn" || l["logger"] != "kafka" {
		t.Errorf("named line %v", l)
	}
	if l := lines[2]; l["level"] != "error" || l["stacktrace"] == nil {
		t.Errorf("error line %v has no stack trace", l)
	}
}

func TestLevels(t *testing.T) {
	out := captureStderr(t, func() {
		log, err := logging.New(logging.Config{Level: "warn", Format: "json"}, "svc")
		if err != nil {
			t.Fatal(err)
		}
		log.Info("not shown")
		log.Warn("shown")
		_ = log.Sync()
	})
	if strings.Contains(out, "not shown") || !strings.Contains(out, "shown") {
		t.Errorf("warn level wrote %q", out)
	}
}

func TestConsoleOutput(t *testing.T) {
	out := captureStderr(t, func() {
		log, err := logging.New(logging.Config{Level: "debug", Format: "console"}, "svc")
		if err != nil {
			t.Fatal(err)
		}
		log.Debug("console line", zap.Int("n", 7))
		_ = log.Sync()
	})
	if !strings.Contains(out, "console line") || !strings.Contains(out, `"service": "svc"`) || strings.HasPrefix(out, "{") {
		t.Errorf("console output %q", out)
	}
}

func TestNewRejectsBadLevel(t *testing.T) {
	if _, err := logging.New(logging.Config{Level: "chatty", Format: "json"}, "svc"); err == nil {
		t.Error("New accepted an unknown level")
	}
}
