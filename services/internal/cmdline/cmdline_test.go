package cmdline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type testConfig struct {
	Name  string `yaml:"name"`
	Limit int    `yaml:"limit"`
}

func (c *testConfig) Validate() error {
	if c.Limit < 0 {
		return errors.New("limit: must not be negative")
	}
	return nil
}

func TestServiceCommandLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "name: from-file\nlimit: 3\n")
	negative := write("negative.yaml", "limit: -1\n")
	unknown := write("unknown.yaml", "nmae: typo\n")
	var ran *testConfig
	svc := Service[testConfig, *testConfig]{
		Use:      "testsvc",
		Defaults: func() testConfig { return testConfig{Name: "default", Limit: 1} },
		Check: func(c testConfig) error {
			if c.Name == "refused" {
				return errors.New("destinations: refused")
			}
			return nil
		},
		Run: func(_ context.Context, c testConfig) error { ran = &c; return nil },
	}
	cases := []struct {
		name      string
		args, env []string
		code      int
		out, err  string
		ranWith   *testConfig
	}{
		{name: "defaults", args: nil, ranWith: &testConfig{Name: "default", Limit: 1}},
		{name: "file", args: []string{"--config", good}, ranWith: &testConfig{Name: "from-file", Limit: 3}},
		{name: "environment over file", args: []string{"--config", good}, env: []string{"AUDITSTREAM_LIMIT=7"}, ranWith: &testConfig{Name: "from-file", Limit: 7}},
		{name: "check only", args: []string{"--config", good, "--check-config"}, out: "config is valid"},
		{name: "check refuses", args: []string{"--check-config"}, env: []string{"AUDITSTREAM_NAME=refused"}, code: 1, err: "testsvc: destinations: refused"},
		{name: "invalid value", args: []string{"--config", negative}, code: 1, err: "limit: must not be negative"},
		{name: "unknown key", args: []string{"--config", unknown}, code: 1, err: "nmae"},
		{name: "missing file", args: []string{"--config", filepath.Join(dir, "absent.yaml")}, code: 1, err: "absent.yaml"},
		{name: "unknown flag", args: []string{"--confgi", good}, code: 1, err: "unknown flag"},
		{name: "stray argument", args: []string{"serve"}, code: 1, err: "testsvc:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ran = nil
			var stdout, stderr bytes.Buffer
			code := svc.Execute(context.Background(), c.args, c.env, &stdout, &stderr)
			if code != c.code {
				t.Fatalf("exit code %d, want %d; stderr %q", code, c.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), c.out) || !strings.Contains(stderr.String(), c.err) {
				t.Errorf("stdout %q, stderr %q; want %q and %q", stdout.String(), stderr.String(), c.out, c.err)
			}
			switch {
			case c.ranWith == nil && ran != nil:
				t.Errorf("ran with %+v", *ran)
			case c.ranWith != nil && (ran == nil || *ran != *c.ranWith):
				t.Errorf("ran with %+v, want %+v", ran, *c.ranWith)
			}
		})
	}
}
