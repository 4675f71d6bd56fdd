package destinations

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
)

// Connection is one named destination: a Datadog site and key, an
// EventBridge bus, a storage profile. A Connection belongs to a Table and,
// like it, must not be modified.
type Connection struct {
	// Name is the key in the file's connections mapping.
	Name string
	// Type is datadog, eventbridge, otlp or storage.
	Type string
	// Enabled is false for a connection switched off: no route reaches it.
	Enabled bool
	// Fingerprint is a hash of the connection's name, type, settings,
	// filter, redaction rules and redaction key reference (not of Enabled, nor of comments or key order). It changes when and
	// only when what a client is built from changes, so a runtime rebuilds
	// the client of a changed connection (a new site, another key file) and
	// keeps the others. It is a one-way hash (SHA-256), yet a guessable
	// inline secret could be confirmed against it, so logs name changed
	// connections rather than print fingerprints.
	Fingerprint string
	// Account is the account a connection configured through the
	// destinations API belongs to (its Name is then qualified, see
	// QualifiedConnection); empty for a connection of the file.
	Account string

	settings *yaml.Node // nil when the file gives none
	line     int

	// the destination's filter and redaction (Policy)
	filter       string
	redact       []eventfilter.Rule
	redactLines  []int
	redactionKey config.Secret
	// an API-managed resource's key, sealed: opened on first use
	redactionKeySealed json.RawMessage
	// what the key is as written, for the fingerprint (an inline key
	// changes it like an inline settings secret does)
	redactionKeyNode *yaml.Node
	policy           *policyCache
	resolve          *resolver // API-managed: settings with secrets opened on use
}

// Route is one entry of the file's routes list.
type Route struct {
	// Account is an account id, or Wildcard for every account.
	Account string
	// Connections are connection names.
	Connections []string
	// Enabled is false for a route switched off.
	Enabled bool

	line  int
	lines []routeRef // the position of each name, for errors
}

type routeRef struct{ index, line int }

// Table is an immutable snapshot of the destinations file. Its methods are
// safe for concurrent use; a nil *Table routes nothing.
type Table struct {
	conns    []*Connection // sorted by name
	byName   map[string]*Connection
	routes   []Route
	accounts map[string][]*Connection // accounts with routes of their own: their routes plus "*"
	wildcard []*Connection            // what the "*" routes reach: every other account's slice
	version  string
	typ      string            // "" for the whole file
	byType   map[string]*Table // precomputed ForType views of the whole file
	api      *apiSet           // accounts configured through the destinations API
}

// buildTable builds the whole-file table and its per-type views. conns and
// routes have passed the checks of Parse.
func buildTable(conns []*Connection, routes []Route) *Table {
	for _, c := range conns {
		c.Fingerprint = fingerprint(c)
	}
	t := newTable(conns, routes, "")
	t.byType = make(map[string]*Table, len(Types))
	for _, typ := range Types {
		t.byType[typ] = t.filter(typ)
	}
	return t
}

func newTable(conns []*Connection, routes []Route, typ string) *Table {
	conns = slices.Clone(conns)
	slices.SortFunc(conns, func(a, b *Connection) int { return cmp.Compare(a.Name, b.Name) })
	t := &Table{conns: conns, byName: make(map[string]*Connection, len(conns)), routes: routes, typ: typ}
	for _, c := range conns {
		t.byName[c.Name] = c
	}

	// Enabled connections of enabled routes, per account.
	reach := map[string][]*Connection{}
	for _, r := range routes {
		if !r.Enabled {
			continue
		}
		for _, name := range r.Connections {
			if c := t.byName[name]; c != nil && c.Enabled {
				reach[r.Account] = append(reach[r.Account], c)
			}
		}
	}
	t.wildcard = sortedUnique(reach[Wildcard], nil)
	t.accounts = make(map[string][]*Connection, len(reach))
	for account, own := range reach {
		if account == Wildcard {
			continue
		}
		s := sortedUnique(own, t.wildcard)
		if len(s) == len(t.wildcard) {
			s = t.wildcard // nothing beyond "*": share its slice
		}
		t.accounts[account] = s
	}
	t.version = tableVersion(t)
	return t
}

// sortedUnique merges a and b, sorted by name without duplicates, into a
// slice whose capacity is its length, so a caller's append copies rather
// than writing into memory the table shares.
func sortedUnique(a, b []*Connection) []*Connection {
	if len(a)+len(b) == 0 {
		return nil
	}
	s := make([]*Connection, 0, len(a)+len(b))
	s = append(append(s, a...), b...)
	slices.SortFunc(s, func(x, y *Connection) int { return cmp.Compare(x.Name, y.Name) })
	s = slices.CompactFunc(s, func(x, y *Connection) bool { return x == y })
	return s[:len(s):len(s)]
}

// filter is the view of the whole-file table t with only connections of typ.
func (t *Table) filter(typ string) *Table {
	var conns []*Connection
	for _, c := range t.conns {
		if c.Type == typ {
			conns = append(conns, c)
		}
	}
	var routes []Route
	for _, r := range t.routes {
		var names []string
		for _, name := range r.Connections {
			if c := t.byName[name]; c != nil && c.Type == typ {
				names = append(names, name)
			}
		}
		if len(names) > 0 {
			routes = append(routes, Route{Account: r.Account, Connections: names, Enabled: r.Enabled, line: r.line})
		}
	}
	return newTable(conns, routes, typ)
}

// Route returns the connections an event of account goes to: the enabled
// connections of the account's enabled routes and of the enabled "*"
// routes, each once, sorted by name. An account id that breaks the event
// rule (empty, too long, bad characters, "*") gets none: such an event is
// dead-lettered before routing, never fanned out to "*" connections.
//
// Route does not allocate. The slice is shared: do not modify it.
func (t *Table) Route(account string) []*Connection {
	if t == nil || !ValidAccountID(account) {
		return nil
	}
	if a := t.api.get(account); a != nil {
		return a.routed[t.typ]
	}
	if s, ok := t.accounts[account]; ok {
		return s
	}
	return t.wildcard
}

// ForType returns the view of the table a forwarder of type typ works with:
// only connections of that type, and routes cut down to them. Views are
// precomputed, so ForType is cheap; a view of a type with no connections
// routes nothing. Calling ForType on a view of another type returns an empty
// table.
func (t *Table) ForType(typ string) *Table {
	switch {
	case t == nil:
		return nil
	case t.typ == typ:
		return t
	case t.typ == "" && t.byType[typ] != nil:
		return t.byType[typ]
	}
	return newTable(nil, nil, typ)
}

// Type is the type a ForType view keeps, or "" for the whole file.
func (t *Table) Type() string {
	if t == nil {
		return ""
	}
	return t.typ
}

// Lookup returns the connection named name, or nil; a qualified name
// finds a connection configured through the destinations API.
func (t *Table) Lookup(name string) *Connection {
	if t == nil {
		return nil
	}
	if account, _, ok := strings.Cut(name, "/"); ok {
		for _, c := range t.AccountConnections(account) {
			if c.Name == name {
				return c
			}
		}
		return nil
	}
	return t.byName[name]
}

// Connections returns every connection, enabled or not, sorted by name.
func (t *Table) Connections() []*Connection {
	if t == nil {
		return nil
	}
	return slices.Clone(t.conns)
}

// Routes returns the routes as written (in a view, cut down to its type).
func (t *Table) Routes() []Route {
	if t == nil {
		return nil
	}
	out := make([]Route, len(t.routes))
	for i, r := range t.routes {
		out[i] = Route{Account: r.Account, Connections: slices.Clone(r.Connections), Enabled: r.Enabled}
	}
	return out
}

// Accounts returns, sorted, the accounts that have enabled routes of their
// own reaching an enabled connection. Every other valid account gets what
// the "*" routes reach.
func (t *Table) Accounts() []string {
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.accounts))
	for a := range t.accounts {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Version is a hash of the table's content: connections (with their
// fingerprints and enabled flags) and routes. Two tables with the same
// Version route alike; comments and formatting do not change it.
func (t *Table) Version() string {
	if t == nil {
		return ""
	}
	return t.version
}

// CountByType counts the connections of each type, enabled ones only when
// enabledOnly is set.
func (t *Table) CountByType(enabledOnly bool) map[string]int {
	out := map[string]int{}
	if t == nil {
		return out
	}
	for _, c := range t.conns {
		if c.Enabled || !enabledOnly {
			out[c.Type]++
		}
	}
	return out
}

func tableVersion(t *Table) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	field("auditstream.destinations.table.v1")
	field(t.typ)
	for _, c := range t.conns {
		field("c")
		field(c.Name)
		field(c.Type)
		field(strconv.FormatBool(c.Enabled))
		field(c.Fingerprint)
	}
	for _, r := range t.routes {
		field("r")
		field(r.Account)
		field(strconv.FormatBool(r.Enabled))
		field(strconv.Itoa(len(r.Connections)))
		for _, name := range r.Connections {
			field(name)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
