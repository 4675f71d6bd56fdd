package destinations

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
)

// Connection types. Only the type string is checked here; each forwarder
// checks the settings of its own type.
const (
	TypeDatadog     = "datadog"
	TypeEventBridge = "eventbridge"
	TypeOTLP        = "otlp"
	TypeStorage     = "storage"
)

// Types lists the known connection types.
var Types = []string{TypeDatadog, TypeEventBridge, TypeOTLP, TypeStorage}

// Wildcard is the account of a route that applies to every account.
const Wildcard = "*"

// Limits that keep a table's memory bounded by the file, not by traffic.
const (
	// MaxAccountIDLength is the event rule's limit on an account id.
	MaxAccountIDLength = 128
	// MaxNameLength bounds a connection name.
	MaxNameLength = 63
	// MaxConnectionsPerAccount bounds how many connections one account's
	// events fan out to, its own routes and the "*" routes together. It also
	// bounds the per-account slices a Table precomputes.
	MaxConnectionsPerAccount = 64
	// MaxFileBytes bounds the destinations file.
	MaxFileBytes = config.MaxFileBytes
)

// Load reads and parses the destinations file at path.
func Load(path string) (*Table, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read destinations: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read destinations %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("destinations file %s is larger than %d bytes", path, MaxFileBytes)
	}
	return data, nil
}

// Parse checks a destinations file and builds its Table. It reports every
// problem at once, each with the path of the field at fault, and never
// quotes a settings value.
func Parse(data []byte) (*Table, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("destinations file is larger than %d bytes", MaxFileBytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return buildTable(nil, nil), nil
		}
		err = sanitize(err)
		if strings.Contains(err.Error(), "did not find expected alphabetic or numeric character") {
			// "account: *" reads as an alias with no name
			err = fmt.Errorf("%w (is a \"*\" account quoted?)", err)
		}
		return nil, fmt.Errorf("parse destinations: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse destinations: more than one YAML document")
	}
	conns, routes, err := parseRoot(&doc)
	if err != nil {
		return nil, fmt.Errorf("invalid destinations: %w", err)
	}
	return buildTable(conns, routes), nil
}

func parseRoot(doc *yaml.Node) ([]*Connection, []Route, error) {
	var errs config.Errors
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		return nil, nil, nil
	}
	if root.Kind != yaml.MappingNode {
		errs.Addf("(root)", "line %d: must be a mapping with connections and routes", root.Line)
		return nil, nil, errs.Err()
	}
	var connsNode, routesNode *yaml.Node
	forPairs(root, "", &errs, func(key string, k, value *yaml.Node) {
		switch key {
		case "connections":
			connsNode = value
		case "routes":
			routesNode = value
		default:
			errs.Addf(key, "line %d: unknown field (known: connections, routes)", k.Line)
		}
	})
	conns := parseConnections(connsNode, &errs)
	routes := parseRoutes(routesNode, &errs)
	checkRoutes(conns, routes, &errs)
	if err := errs.Err(); err != nil {
		return nil, nil, err
	}
	return conns, routes, nil
}

func parseConnections(n *yaml.Node, errs *config.Errors) []*Connection {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		errs.Addf("connections", "line %d: must be a mapping of connection names to connections", n.Line)
		return nil
	}
	var conns []*Connection
	forPairs(n, "connections", errs, func(name string, keyNode, value *yaml.Node) {
		path := "connections." + name
		if !validName(name) {
			errs.Addf(path, "line %d: a connection name is 1-%d characters of [a-z0-9-_.] starting with a letter or digit", keyNode.Line, MaxNameLength)
		}
		c := &Connection{Name: name, Enabled: true, line: keyNode.Line, policy: &policyCache{}}
		value = deref(value)
		if value.Kind != yaml.MappingNode {
			errs.Addf(path, "line %d: must be a mapping with type, enabled, settings, filter, redact and redaction_key", value.Line)
			return
		}
		var hasType bool
		forPairs(value, path, errs, func(key string, k, v *yaml.Node) {
			p := path + "." + key
			switch key {
			case "type":
				hasType = true
				s, ok := scalarString(v)
				switch {
				case !ok || s == "":
					errs.Addf(p, "line %d: must be one of %s", v.Line, strings.Join(Types, ", "))
				case !slices.Contains(Types, s):
					errs.Addf(p, "line %d: %q is not one of %s", v.Line, truncate(s), strings.Join(Types, ", "))
				default:
					c.Type = s
				}
			case "enabled":
				b, ok := scalarBool(v)
				if !ok {
					errs.Addf(p, "line %d: must be true or false", v.Line)
				}
				c.Enabled = b
			case "settings":
				s := deref(v)
				switch {
				case isNull(s):
				case s.Kind != yaml.MappingNode:
					errs.Addf(p, "line %d: must be a mapping", v.Line)
				default:
					c.settings = v
				}
			case "filter":
				s, ok := scalarString(v)
				if !ok || deref(v).ShortTag() != "!!str" {
					errs.Addf(p, "line %d: must be a CEL expression (a string)", v.Line)
					return
				}
				if _, err := eventfilter.CompileFilter(s); err != nil {
					errs.Addf(p, "line %d: %v", v.Line, err)
					return
				}
				c.filter = s
			case "redact":
				c.redact, c.redactLines = parseRedact(v, p, errs)
			case "redaction_key":
				if err := deref(v).Decode(&c.redactionKey); err != nil {
					errs.Addf(p, "%v", sanitize(err))
					return
				}
				c.redactionKeyNode = v
			default:
				errs.Addf(p, "line %d: unknown field (known: type, enabled, settings, filter, redact, redaction_key)", k.Line)
			}
		})
		if !hasType {
			errs.Addf(path+".type", "line %d: is required (one of %s)", value.Line, strings.Join(Types, ", "))
		}
		checkRedact(c, path, errs)
		conns = append(conns, c)
	})
	return conns
}

// parseRedact reads a connection's redact list: each entry a mapping of
// path, action and keep, checked against the event schema.
func parseRedact(n *yaml.Node, path string, errs *config.Errors) ([]eventfilter.Rule, []int) {
	n = deref(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		errs.Addf(path, "line %d: must be a list of {path, action, keep}", n.Line)
		return nil, nil
	}
	if len(n.Content) > eventfilter.MaxRules {
		errs.Addf(path, "line %d: %d rules is over the limit of %d", n.Line, len(n.Content), eventfilter.MaxRules)
		return nil, nil
	}
	rules := make([]eventfilter.Rule, 0, len(n.Content))
	lines := make([]int, 0, len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		item = deref(item)
		if item.Kind != yaml.MappingNode {
			errs.Addf(p, "line %d: must be a mapping with path, action and keep", item.Line)
			continue
		}
		var r eventfilter.Rule
		fieldLine := map[string]int{}
		ok := true
		forPairs(item, p, errs, func(key string, k, v *yaml.Node) {
			fieldLine[key] = v.Line
			switch key {
			case "path", "action":
				s, isStr := scalarString(v)
				if !isStr {
					errs.Addf(p+"."+key, "line %d: must be a string", v.Line)
					ok = false
					return
				}
				if key == "path" {
					r.Path = s
				} else {
					r.Action = s
				}
			case "keep":
				if err := deref(v).Decode(&r.Keep); err != nil {
					errs.Addf(p+".keep", "line %d: must be a number of characters", v.Line)
					ok = false
				}
			default:
				errs.Addf(p+"."+key, "line %d: unknown field (known: path, action, keep)", k.Line)
				ok = false
			}
		})
		for _, key := range []string{"path", "action"} {
			if _, set := fieldLine[key]; !set {
				errs.Addf(p+"."+key, "line %d: is required", item.Line)
				ok = false
			}
		}
		if !ok {
			continue
		}
		// Checked alone, with a stand-in key: whether a hash has its key
		// is the connection's question (checkRedact).
		if _, err := eventfilter.CompileRedaction([]eventfilter.Rule{r}, []byte("check")); err != nil {
			for _, one := range config.Flatten(err) {
				field, msg, _ := strings.Cut(strings.TrimPrefix(one.Error(), "[0]."), ": ")
				line := fieldLine[field]
				if line == 0 {
					line = item.Line
				}
				errs.Addf(p+"."+field, "line %d: %s", line, msg)
			}
			continue
		}
		rules = append(rules, r)
		lines = append(lines, item.Line)
	}
	return rules, lines
}

// checkRedact checks what spans a connection's rules: a path redacted
// twice, a hash without the connection's redaction key.
func checkRedact(c *Connection, path string, errs *config.Errors) {
	seen := map[string]int{}
	for i, r := range c.redact {
		p := fmt.Sprintf("%s.redact[%d]", path, i)
		if j, dup := seen[r.Path]; dup {
			errs.Addf(p+".path", "line %d: %q is redacted by redact[%d] already", c.redactLines[i], r.Path, j)
		}
		seen[r.Path] = i
		if r.Action == eventfilter.Hash && !c.redactionKey.IsSet() {
			errs.Addf(p+".action", "line %d: hash needs the connection's redaction_key", c.redactLines[i])
		}
	}
}

func parseRoutes(n *yaml.Node, errs *config.Errors) []Route {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		errs.Addf("routes", "line %d: must be a list of routes", n.Line)
		return nil
	}
	routes := make([]Route, 0, len(n.Content))
	for i, item := range n.Content {
		path := fmt.Sprintf("routes[%d]", i)
		item = deref(item)
		r := Route{Enabled: true, line: item.Line}
		if item.Kind != yaml.MappingNode {
			errs.Addf(path, "line %d: must be a mapping with account, connections and enabled", item.Line)
			routes = append(routes, r)
			continue
		}
		var hasAccount, hasConns bool
		forPairs(item, path, errs, func(key string, k, v *yaml.Node) {
			p := path + "." + key
			switch key {
			case "account":
				hasAccount = true
				s, ok := scalarString(v)
				switch {
				case !ok || s == "":
					errs.Addf(p, "line %d: must be an account id or \"*\"", v.Line)
				case s != Wildcard && !ValidAccountID(s):
					errs.Addf(p, "line %d: %q is not an account id: 1-%d characters of [A-Za-z0-9._:-], not . or .., or \"*\" for every account", v.Line, truncate(s), MaxAccountIDLength)
				default:
					r.Account = s
				}
			case "connections":
				hasConns = true
				list := deref(v)
				if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
					errs.Addf(p, "line %d: must be a non-empty list of connection names", v.Line)
					return
				}
				for j, cn := range list.Content {
					name, ok := scalarString(cn)
					if !ok || name == "" {
						errs.Addf(fmt.Sprintf("%s[%d]", p, j), "line %d: must be a connection name", cn.Line)
						continue
					}
					r.Connections = append(r.Connections, name)
					r.lines = append(r.lines, routeRef{index: j, line: cn.Line})
				}
			case "enabled":
				b, ok := scalarBool(v)
				if !ok {
					errs.Addf(p, "line %d: must be true or false", v.Line)
				}
				r.Enabled = b
			default:
				errs.Addf(p, "line %d: unknown field (known: account, connections, enabled)", k.Line)
			}
		})
		if !hasAccount {
			errs.Addf(path+".account", "line %d: is required (an account id or \"*\")", item.Line)
		}
		if !hasConns {
			errs.Addf(path+".connections", "line %d: is required (a list of connection names)", item.Line)
		}
		routes = append(routes, r)
	}
	return routes
}

// checkRoutes checks what spans entries: known connection names, unique
// (account, connection) pairs and the fan-out limit.
func checkRoutes(conns []*Connection, routes []Route, errs *config.Errors) {
	known := make(map[string]bool, len(conns))
	for _, c := range conns {
		known[c.Name] = true
	}
	type pair struct{ account, conn string }
	first := map[pair]int{}
	fanout := map[string]map[string]bool{} // account → connections, "*" included
	for i, r := range routes {
		for k, name := range r.Connections {
			ref := r.lines[k]
			p := fmt.Sprintf("routes[%d].connections[%d]", i, ref.index)
			if !known[name] {
				errs.Addf(p, "line %d: no connection is named %q", ref.line, truncate(name))
				continue
			}
			if r.Account == "" {
				continue // already reported
			}
			key := pair{r.Account, name}
			if j, dup := first[key]; dup {
				if j == i {
					errs.Addf(p, "line %d: %q is listed twice in this route", ref.line, name)
				} else {
					errs.Addf(p, "line %d: account %q is already routed to %q by routes[%d]", ref.line, r.Account, name, j)
				}
				continue
			}
			first[key] = i
			if fanout[r.Account] == nil {
				fanout[r.Account] = map[string]bool{}
			}
			fanout[r.Account][name] = true
		}
	}
	// Counted regardless of enabled flags, so toggling one never makes a
	// valid file invalid.
	wild := fanout[Wildcard]
	reported := map[string]bool{}
	for i, r := range routes {
		if r.Account == "" || reported[r.Account] {
			continue
		}
		n := len(fanout[r.Account])
		if r.Account != Wildcard {
			for name := range wild {
				if !fanout[r.Account][name] {
					n++
				}
			}
		}
		if n > MaxConnectionsPerAccount {
			reported[r.Account] = true
			what := fmt.Sprintf("account %q", r.Account)
			if r.Account == Wildcard {
				what = `"*"`
			}
			errs.Addf(fmt.Sprintf("routes[%d]", i), "line %d: %s is routed to %d connections (with the \"*\" routes); at most %d are allowed", r.line, what, n, MaxConnectionsPerAccount)
		}
	}
}

// ValidAccountID reports whether s follows the event rule for account ids:
// 1-128 characters of [A-Za-z0-9._:-], and not "." or "..".
func ValidAccountID(s string) bool {
	if len(s) == 0 || len(s) > MaxAccountIDLength || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '_' && c != '.') {
			return false
		}
	}
	return true
}

// forPairs calls fn for each key of a mapping, reporting duplicate, merge and
// non-scalar keys instead.
func forPairs(n *yaml.Node, path string, errs *config.Errors, fn func(key string, keyNode, value *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := func(key string) string {
			if path == "" {
				return key
			}
			return path + "." + key
		}
		if k.Kind != yaml.ScalarNode {
			errs.Addf(p("(key)"), "line %d: keys must be plain strings", k.Line)
			continue
		}
		if k.ShortTag() == "!!merge" {
			errs.Addf(p("<<"), "line %d: merge keys are only supported inside settings", k.Line)
			continue
		}
		if line, dup := seen[k.Value]; dup {
			errs.Addf(p(k.Value), "line %d: is defined twice (first at line %d)", k.Line, line)
			continue
		}
		seen[k.Value] = k.Line
		fn(k.Value, k, v)
	}
}

// deref follows an alias to its anchor (aliases to aliases do not exist).
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// scalarString takes any non-null scalar as text, so a numeric account id
// (account: 12345) is the string "12345" as written.
func scalarString(n *yaml.Node) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return "", false
	}
	return n.Value, true
}

func scalarBool(n *yaml.Node) (bool, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, false
	}
	return b, true
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
