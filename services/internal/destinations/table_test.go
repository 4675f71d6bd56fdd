package destinations

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func mustParse(t testing.TB, src string) *Table {
	t.Helper()
	tab, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, src)
	}
	return tab
}

func TestRouteExcludesDisabled(t *testing.T) {
	tab := mustParse(t, `
connections:
  on:  {type: datadog}
  off: {type: datadog, enabled: false}
  all: {type: datadog}
  all-off: {type: datadog, enabled: false}
routes:
  - {account: acc-1, connections: [on, off]}
  - {account: acc-2, connections: [on], enabled: false}
  - {account: acc-3, connections: [off]}
  - {account: "*", connections: [all, all-off]}
  - {account: "*", connections: [on], enabled: false}
`)
	for account, want := range map[string][]string{
		"acc-1": {"all", "on"},
		"acc-2": {"all"},
		"acc-3": {"all"},
		"acc-4": {"all"},
	} {
		if got := names(tab.Route(account)); !slices.Equal(got, want) {
			t.Errorf("Route(%s) = %v, want %v", account, got, want)
		}
	}
}

func TestRouteSharesAndProtectsSlices(t *testing.T) {
	tab := loadTestdata(t, "valid/full.yaml")
	other, nobody := tab.Route("acc-000"), tab.Route("acc-999")
	if &other[0] != &nobody[0] {
		t.Error("accounts without routes of their own should share the \"*\" slice")
	}
	own := tab.Route("acc-123")
	if cap(own) != len(own) || cap(other) != len(other) {
		t.Errorf("cap = %d/%d, want the lengths %d/%d", cap(own), cap(other), len(own), len(other))
	}
	// An append by a careless caller must not change the table.
	_ = append(other, tab.Lookup("dd-acme"))
	if got := names(tab.Route("acc-999")); !slices.Equal(got, []string{"dd-all"}) {
		t.Errorf("after a caller's append, Route(acc-999) = %v", got)
	}
}

func TestRouteDoesNotAllocate(t *testing.T) {
	tab := loadTestdata(t, "valid/full.yaml")
	accounts := []string{"acc-123", "acc-000", "12345", "", "bad account"}
	n := testing.AllocsPerRun(1000, func() {
		for _, a := range accounts {
			_ = tab.Route(a)
			_ = tab.ForType(TypeDatadog).Route(a)
		}
	})
	if n != 0 {
		t.Errorf("Route allocates %.1f times per run", n)
	}
	var nilTable *Table
	if nilTable.Route("acc-1") != nil || nilTable.ForType(TypeDatadog) != nil || nilTable.Version() != "" || nilTable.Connections() != nil {
		t.Error("a nil table should route nothing")
	}
}

func TestForType(t *testing.T) {
	tab := loadTestdata(t, "valid/full.yaml")
	tests := []struct {
		typ         string
		connections []string
		route       map[string][]string
	}{
		{TypeDatadog, []string{"dd-acme", "dd-all", "dd-off"}, map[string][]string{
			"acc-123": {"dd-acme", "dd-all"}, "acc-456": {"dd-all"}, "acc-000": {"dd-all"},
		}},
		{TypeEventBridge, []string{"eb-acme"}, map[string][]string{
			"acc-123": {"eb-acme"}, "acc-456": nil, "acc-000": nil,
		}},
		{TypeStorage, []string{"s3-globex"}, map[string][]string{
			"acc-123": nil, "acc-456": {"s3-globex"}, "acc-000": nil,
		}},
		{"kafka", nil, map[string][]string{"acc-123": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			view := tab.ForType(tt.typ)
			if view.Type() != tt.typ {
				t.Errorf("Type() = %q", view.Type())
			}
			if got := names(view.Connections()); !slices.Equal(got, tt.connections) && len(got)+len(tt.connections) > 0 {
				t.Errorf("Connections() = %v, want %v", got, tt.connections)
			}
			for account, want := range tt.route {
				if got := names(view.Route(account)); !slices.Equal(got, want) && len(got)+len(want) > 0 {
					t.Errorf("Route(%s) = %v, want %v", account, got, want)
				}
			}
			for _, r := range view.Routes() {
				for _, name := range r.Connections {
					if c := tab.Lookup(name); c.Type != tt.typ {
						t.Errorf("route of %s keeps %s of type %s", r.Account, name, c.Type)
					}
				}
			}
			if view.ForType(tt.typ) != view {
				t.Error("ForType of a view of the same type should be the view")
			}
			other := TypeStorage
			if tt.typ == TypeStorage {
				other = TypeDatadog
			}
			if got := view.ForType(other).Connections(); len(got) != 0 {
				t.Errorf("a %s view of a %s view has %v", other, tt.typ, names(got))
			}
		})
	}
	// The views share the table's connections, so a runtime can compare them.
	if tab.ForType(TypeDatadog).Lookup("dd-acme") != tab.Lookup("dd-acme") {
		t.Error("a view should hold the table's own connections")
	}
}

func TestVersionAndFingerprint(t *testing.T) {
	base := `
connections:
  dd-a:
    type: datadog
    settings:
      site: datadoghq.eu
      api_key: {file: /keys/a}
  dd-b:
    type: datadog
    settings: {site: datadoghq.com}
routes:
  - {account: acc-1, connections: [dd-a]}
`
	tab := mustParse(t, base)
	fp := func(tab *Table, name string) string { return tab.Lookup(name).Fingerprint }
	tests := []struct {
		name             string
		src              string
		sameVersion      bool
		sameA, sameB     bool
		sameDatadogView  bool
		sameStorageViews bool
	}{
		{"comments and key order", `
# a comment
routes:
  - {connections: [dd-a], account: acc-1}   # reordered
connections:
  dd-b: {settings: {site: "datadoghq.com"}, type: datadog}
  dd-a:
    settings:
      api_key: {file: /keys/a}
      site: datadoghq.eu
    type: datadog
`, true, true, true, true, true},
		{"rotated key file path", strings.Replace(base, "/keys/a", "/keys/a2", 1), false, false, true, false, true},
		{"disabled connection", strings.Replace(base, "type: datadog\n    settings: {site", "type: datadog\n    enabled: false\n    settings: {site", 1), false, true, true, false, true},
		{"new route", base + "  - {account: acc-2, connections: [dd-b]}\n", false, true, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := mustParse(t, tt.src)
			if got := other.Version() == tab.Version(); got != tt.sameVersion {
				t.Errorf("same Version = %v, want %v", got, tt.sameVersion)
			}
			if got := fp(other, "dd-a") == fp(tab, "dd-a"); got != tt.sameA {
				t.Errorf("same dd-a Fingerprint = %v, want %v", got, tt.sameA)
			}
			if got := fp(other, "dd-b") == fp(tab, "dd-b"); got != tt.sameB {
				t.Errorf("same dd-b Fingerprint = %v, want %v", got, tt.sameB)
			}
			if got := other.ForType(TypeDatadog).Version() == tab.ForType(TypeDatadog).Version(); got != tt.sameDatadogView {
				t.Errorf("same datadog view Version = %v, want %v", got, tt.sameDatadogView)
			}
			if got := other.ForType(TypeStorage).Version() == tab.ForType(TypeStorage).Version(); got != tt.sameStorageViews {
				t.Errorf("same storage view Version = %v, want %v", got, tt.sameStorageViews)
			}
		})
	}
	// Same settings under another name: another connection.
	if a, b := mustParse(t, "connections: {x: {type: storage}}"), mustParse(t, "connections: {y: {type: storage}}"); fp(a, "x") == fp(b, "y") {
		t.Error("fingerprints of differently named connections should differ")
	}
	// A scalar's tag counts: 80 and "80" may decode differently.
	if a, b := mustParse(t, "connections: {x: {type: storage, settings: {p: 80}}}"), mustParse(t, `connections: {x: {type: storage, settings: {p: "80"}}}`); fp(a, "x") == fp(b, "x") {
		t.Error("fingerprints of 80 and \"80\" should differ")
	}
}

// genFile is a destinations file as the random tests write it.
type genFile struct {
	Connections map[string]genConn `yaml:"connections"`
	Routes      []genRoute         `yaml:"routes"`
}

type genConn struct {
	Type     string            `yaml:"type"`
	Enabled  bool              `yaml:"enabled"`
	Settings map[string]string `yaml:"settings,omitempty"`
}

type genRoute struct {
	Account     string   `yaml:"account"`
	Connections []string `yaml:"connections"`
	Enabled     bool     `yaml:"enabled"`
}

const accountChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"

func randomAccounts(r *rand.Rand, n int) []string {
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		b := make([]byte, 1+r.IntN(24))
		for i := range b {
			b[i] = accountChars[r.IntN(len(accountChars))]
		}
		a := string(b)
		if !ValidAccountID(a) || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

// randomFile draws connections and routes over accounts: some accounts with
// several routes, some with none, zero to three "*" routes, a fifth of
// everything disabled.
func randomFile(r *rand.Rand, accounts []string) genFile {
	f := genFile{Connections: map[string]genConn{}}
	var conns []string
	for i := range 1 + r.IntN(40) {
		name := fmt.Sprintf("c%d", i)
		conns = append(conns, name)
		f.Connections[name] = genConn{Type: Types[r.IntN(len(Types))], Enabled: r.IntN(5) != 0, Settings: map[string]string{"id": name}}
	}
	pick := func(account string, used map[[2]string]bool) []string {
		var out []string
		for range 1 + r.IntN(4) {
			c := conns[r.IntN(len(conns))]
			if !used[[2]string{account, c}] {
				used[[2]string{account, c}] = true
				out = append(out, c)
			}
		}
		return out
	}
	used := map[[2]string]bool{}
	for range r.IntN(4) {
		if cs := pick(Wildcard, used); len(cs) > 0 {
			f.Routes = append(f.Routes, genRoute{Account: Wildcard, Connections: cs, Enabled: r.IntN(5) != 0})
		}
	}
	for range r.IntN(2 * len(accounts)) {
		a := accounts[r.IntN(len(accounts))]
		if cs := pick(a, used); len(cs) > 0 {
			f.Routes = append(f.Routes, genRoute{Account: a, Connections: cs, Enabled: r.IntN(5) != 0})
		}
	}
	r.Shuffle(len(f.Routes), func(i, j int) { f.Routes[i], f.Routes[j] = f.Routes[j], f.Routes[i] })
	return f
}

// want is the routing rule stated directly: the enabled connections of the
// enabled routes of account or "*".
func (f genFile) want(account, typ string) []string {
	set := map[string]bool{}
	for _, r := range f.Routes {
		if !r.Enabled || (r.Account != account && r.Account != Wildcard) {
			continue
		}
		for _, c := range r.Connections {
			if conn := f.Connections[c]; conn.Enabled && (typ == "" || conn.Type == typ) {
				set[c] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// TestRoutingIsolation draws random tables over 200 random accounts and
// delivers one event per account along Route: every connection receives
// events only of accounts routed to it (by name or by "*"), and every
// account reaches all of its enabled connections, each once.
func TestRoutingIsolation(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	accounts := randomAccounts(r, 200)
	strangers := randomAccounts(r, 20) // may collide with accounts: then they are routed, which want covers
	for round := range 60 {
		f := randomFile(r, accounts)
		src, err := yaml.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := Parse(src)
		if err != nil {
			t.Fatalf("round %d: Parse: %v\n%s", round, err, src)
		}
		// routedTo[c] holds the accounts whose routes (or "*") name c.
		routedTo := map[string]map[string]bool{}
		for _, rt := range f.Routes {
			for _, c := range rt.Connections {
				if routedTo[c] == nil {
					routedTo[c] = map[string]bool{}
				}
				routedTo[c][rt.Account] = true
			}
		}
		received := map[string][]string{} // connection → accounts of the events it got
		for _, a := range slices.Concat(accounts, strangers) {
			got := tab.Route(a)
			for _, c := range got {
				received[c.Name] = append(received[c.Name], a)
			}
			if want := f.want(a, ""); !slices.Equal(names(got), want) {
				t.Fatalf("round %d: Route(%q) = %v, want %v\n%s", round, a, names(got), want, src)
			}
			for _, typ := range Types {
				view := tab.ForType(typ).Route(a)
				if want := f.want(a, typ); !slices.Equal(names(view), want) {
					t.Fatalf("round %d: ForType(%s).Route(%q) = %v, want %v\n%s", round, typ, a, names(view), want, src)
				}
			}
		}
		for c, got := range received {
			conn := tab.Lookup(c)
			if !conn.Enabled {
				t.Fatalf("round %d: disabled connection %s received events", round, c)
			}
			for _, a := range got {
				if !routedTo[c][a] && !routedTo[c][Wildcard] {
					t.Fatalf("round %d: connection %s received an event of account %s, which is not routed to it", round, c, a)
				}
			}
		}
	}
}
