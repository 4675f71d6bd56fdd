package destinations

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func loadTestdata(t *testing.T, name string) *Table {
	t.Helper()
	tab, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return tab
}

func names(conns []*Connection) []string {
	out := make([]string, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.Name)
	}
	return out
}

func TestValidFiles(t *testing.T) {
	tests := []struct {
		file        string
		connections []string
		routes      int
		route       map[string][]string // account → connection names
	}{
		{
			file:        "full.yaml",
			connections: []string{"dd-acme", "dd-all", "dd-off", "eb-acme", "s3-globex"},
			routes:      5,
			route: map[string][]string{
				"acc-123": {"dd-acme", "dd-all", "eb-acme"},
				"acc-456": {"dd-all", "s3-globex"}, // dd-off is disabled
				"acc-789": {"dd-all"},              // its own route is disabled
				"12345":   {"dd-acme", "dd-all"},   // numeric id; dd-all once though routed twice
				"acc-000": {"dd-all"},              // no routes of its own
				"":        nil,                     // not an account: not even "*"
				"*":       nil,
				"..":      nil,
				"acc 123": nil,
			},
		},
		{file: "empty.yaml", route: map[string][]string{"acc-1": nil}},
		{file: "comments-only.yaml", route: map[string][]string{"acc-1": nil}},
		{file: "null-sections.yaml", route: map[string][]string{"acc-1": nil}},
		{file: "connections-no-routes.yaml", connections: []string{"dd-staging"}, route: map[string][]string{"acc-1": nil}},
		{
			file:        "anchors.yaml",
			connections: []string{"dd-a", "dd-b"},
			routes:      1,
			route:       map[string][]string{"acc:a.1_x-Y": {"dd-a", "dd-b"}, "acc-1": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			tab := loadTestdata(t, filepath.Join("valid", tt.file))
			if got := names(tab.Connections()); !slices.Equal(got, tt.connections) && len(got)+len(tt.connections) > 0 {
				t.Errorf("Connections() = %v, want %v", got, tt.connections)
			}
			if got := len(tab.Routes()); got != tt.routes {
				t.Errorf("len(Routes()) = %d, want %d", got, tt.routes)
			}
			for account, want := range tt.route {
				if got := names(tab.Route(account)); !slices.Equal(got, want) && len(got)+len(want) > 0 {
					t.Errorf("Route(%q) = %v, want %v", account, got, want)
				}
			}
			if tab.Version() == "" {
				t.Error("Version() is empty")
			}
		})
	}
}

func TestValidFileDetails(t *testing.T) {
	tab := loadTestdata(t, "valid/full.yaml")
	acme := tab.Lookup("dd-acme")
	if acme == nil || acme.Type != TypeDatadog || !acme.Enabled || !acme.HasSettings() || len(acme.Fingerprint) != 32 {
		t.Fatalf("dd-acme = %+v", acme)
	}
	if off := tab.Lookup("dd-off"); off == nil || off.Enabled {
		t.Errorf("dd-off = %+v, want disabled", off)
	}
	if s3 := tab.Lookup("s3-globex"); s3 == nil || s3.HasSettings() {
		t.Errorf("s3-globex = %+v, want no settings", s3)
	}
	if tab.Lookup("nope") != nil {
		t.Error("Lookup(nope) found something")
	}
	routes := tab.Routes()
	want := Route{Account: "acc-789", Connections: []string{"dd-acme"}, Enabled: false}
	if r := routes[3]; r.Account != want.Account || !slices.Equal(r.Connections, want.Connections) || r.Enabled {
		t.Errorf("routes[3] = %+v, want %+v", r, want)
	}
	if got, want := tab.Accounts(), []string{"12345", "acc-123", "acc-456"}; !slices.Equal(got, want) {
		t.Errorf("Accounts() = %v, want %v", got, want)
	}
	counts := tab.CountByType(true)
	if counts[TypeDatadog] != 2 || counts[TypeEventBridge] != 1 || counts[TypeStorage] != 1 {
		t.Errorf("CountByType(true) = %v", counts)
	}
	if all := tab.CountByType(false); all[TypeDatadog] != 3 {
		t.Errorf("CountByType(false) = %v", all)
	}
}

func TestInvalidFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string // each a line of the error: path, then message
	}{
		{"unknown-connection.yaml", []string{`routes[0].connections[1]: line 6: no connection is named "dd-nope"`}},
		{"duplicate-connection.yaml", []string{`connections.dd-acme: line 4: is defined twice (first at line 2)`}},
		{"bad-connection-name.yaml", []string{
			`connections.DD_Acme: line 2: a connection name is 1-63 characters`,
			`connections.-dd: line 4: a connection name`,
			`connections.: line 6: a connection name`,
		}},
		{"long-connection-name.yaml", []string{`connections.a2345678901234567890123456789012345678901234567890123456789012345`[:60]}},
		{"bad-type.yaml", []string{
			`connections.dd-acme.type: line 3: "datadgo" is not one of datadog, eventbridge, otlp, storage`,
			`connections.dd-list.type: line 5: must be one of datadog, eventbridge, otlp, storage`,
		}},
		{"missing-type.yaml", []string{`connections.dd-acme.type: line 3: is required`}},
		{"bad-account.yaml", []string{
			`routes[0].account: line 4: "acc 123" is not an account id`,
			`routes[1].account: line 6: ".." is not an account id`,
			`routes[2].account: line 8: must be an account id or "*"`,
			`routes[3].account: line 10: "acc/123" is not an account id`,
			`routes[4].account: line 12: "**" is not an account id`,
		}},
		{"long-account.yaml", []string{`routes[0].account: line 4: "aaaaaaaa`}},
		{"duplicate-pair.yaml", []string{
			`routes[1].connections[1]: line 8: account "acc-1" is already routed to "dd-a" by routes[0]`,
			`routes[2].connections[1]: line 11: "dd-b" is listed twice in this route`,
		}},
		{"empty-route-connections.yaml", []string{
			`routes[0].connections: line 5: must be a non-empty list of connection names`,
			`routes[1].connections: line 6: is required`,
			`routes[2].account: line 7: is required`,
			`routes[3].connections: line 9: must be a non-empty list of connection names`,
		}},
		{"unknown-fields.yaml", []string{
			`route: line 5: unknown field (known: connections, routes)`,
			`connections.dd-a.setting: line 4: unknown field (known: type, enabled, settings, filter, redact, redaction_key)`,
			`routes[0].connection: line 10: unknown field (known: account, connections, enabled)`,
			`routes[0].connections: line 9: is required`,
		}},
		{"bad-enabled.yaml", []string{
			`connections.dd-a.enabled: line 4: must be true or false`,
			`routes[0].enabled: line 8: must be true or false`,
		}},
		{"bad-shapes.yaml", []string{
			`connections.dd-a.settings: line 4: must be a mapping`,
			`connections.dd-b: line 5: must be a mapping with type, enabled, settings, filter, redact and redaction_key`,
			`routes: line 7: must be a list of routes`,
		}},
		{"root-list.yaml", []string{`(root): line 1: must be a mapping with connections and routes`}},
		{"two-documents.yaml", []string{`more than one YAML document`}},
		{"syntax.yaml", []string{`parse destinations: yaml: line`}},
		{"unquoted-wildcard.yaml", []string{`parse destinations: yaml: line 4:`, `(is a "*" account quoted?)`}},
		{"merge-at-top.yaml", []string{
			`base: line 1: unknown field`,
			`connections.dd-a.<<: line 4: merge keys are only supported inside settings`,
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			tab, err := Load(filepath.Join("testdata", "invalid", tt.file))
			if err == nil {
				t.Fatalf("Load succeeded: %v", names(tab.Connections()))
			}
			msg := err.Error()
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
			// one problem per line, each naming its place
			for line := range strings.SplitSeq(strings.TrimPrefix(msg, "invalid destinations: "), "\n") {
				if !strings.Contains(line, "line ") && !strings.Contains(line, "document") {
					t.Errorf("error line without a position: %q", line)
				}
			}
		})
	}
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no test case", f)
		}
	}
}

// Every problem is reported at once.
func TestInvalidReportsEverything(t *testing.T) {
	_, err := Parse([]byte(`
connections:
  dd-a: {type: nope}
  Bad: {type: datadog}
routes:
  - account: "acc 1"
    connections: [dd-x]
  - account: acc-2
    connections: [dd-a, dd-a]
`))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 5 {
		t.Errorf("got %d problems, want 5:\n%v", n, err)
	}
}

func TestFanoutLimit(t *testing.T) {
	file := func(own, wild int) string {
		var b strings.Builder
		b.WriteString("connections:\n")
		for i := range own + wild {
			fmt.Fprintf(&b, "  c%d: {type: datadog}\n", i)
		}
		b.WriteString("routes:\n  - account: acc-1\n    connections: [")
		for i := range own {
			fmt.Fprintf(&b, "c%d,", i)
		}
		b.WriteString("]\n")
		if wild > 0 {
			b.WriteString("  - account: \"*\"\n    connections: [")
			for i := range wild {
				fmt.Fprintf(&b, "c%d,", own+i)
			}
			b.WriteString("]\n")
		}
		return b.String()
	}
	if _, err := Parse([]byte(file(MaxConnectionsPerAccount-10, 10))); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	_, err := Parse([]byte(file(MaxConnectionsPerAccount-10, 11)))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("routes[0]: line %d:", MaxConnectionsPerAccount+4)) || !strings.Contains(err.Error(), `account "acc-1" is routed to 65 connections`) {
		t.Errorf("one over the limit: %v", err)
	}
	if _, err := Parse([]byte(file(0, MaxConnectionsPerAccount+1))); err == nil || !strings.Contains(err.Error(), `"*" is routed to 65 connections`) {
		t.Errorf("wildcard over the limit: %v", err)
	}
}

func TestFileTooLarge(t *testing.T) {
	big := make([]byte, MaxFileBytes+1)
	if _, err := Parse(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Parse(big) = %v", err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Load(missing) succeeded")
	}
}

func TestValidAccountID(t *testing.T) {
	for _, ok := range []string{"a", "acc-123", "A.b_c:d-e", "12345", strings.Repeat("x", 128), "..."} {
		if !ValidAccountID(ok) {
			t.Errorf("ValidAccountID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", ".", "..", "*", "a b", "a/b", "é", strings.Repeat("x", 129), "a\n"} {
		if ValidAccountID(bad) {
			t.Errorf("ValidAccountID(%q) = true", bad)
		}
	}
}
