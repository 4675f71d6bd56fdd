package destinations

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/auditstream/auditstream/services/internal/config"
)

// Opener opens a secret the destinations API sealed; aad is the context it
// was sealed under (SecretContext). The service wires it to its key ring.
type Opener func(ctx context.Context, sealed json.RawMessage, aad map[string]string) ([]byte, error)

// Collections of an account's resources, as they appear in the API's paths
// and in a sealed secret's context.
const (
	CollectionConnections     = "connections"
	CollectionStorageProfiles = "storage-profiles"
)

// SecretContext is the authenticated data a secret of an API-managed
// resource is sealed under: a ciphertext moved to another account, resource
// or field fails to open.
func SecretContext(account, collection, name, field string) map[string]string {
	return map[string]string{"account": account, "resource": collection + "/" + name, "field": field}
}

// openRetry is how long a failure to open a connection's secrets is kept
// before the next attempt, so a missing key does not cost a KMS call for
// every record routed to the connection.
const openRetry = 10 * time.Second

// resolver turns an API-managed resource's stored settings into the YAML
// settings a forwarder decodes, opening its sealed secrets on first use.
type resolver struct {
	account, collection, name string
	raw                       json.RawMessage
	open                      Opener

	mu    sync.Mutex
	node  *yaml.Node
	lines map[int]string // line of each key and value in node -> settings path
	err   error
	errAt time.Time
}

func (r *resolver) settings() (*yaml.Node, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.node != nil {
		return r.node, nil
	}
	if r.err != nil && time.Since(r.errAt) < openRetry {
		return nil, r.err
	}
	n, lines, err := r.resolve()
	if err != nil {
		r.err, r.errAt = err, time.Now()
		return nil, err
	}
	r.node, r.lines, r.err = n, lines, nil
	return n, nil
}

func (r *resolver) resolve() (*yaml.Node, map[int]string, error) {
	if len(bytes.TrimSpace(r.raw)) == 0 {
		return nil, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(r.raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, fmt.Errorf("settings are not JSON: %w", err)
	}
	v, err := r.openSecrets(v)
	if err != nil {
		return nil, nil, err
	}
	b := nodeBuilder{lines: map[int]string{}}
	return b.node(v, ""), b.lines, nil
}

// nodeBuilder turns decoded JSON into the YAML node a settings struct is
// decoded from, with tags from the JSON types (so "yes" stays a string) and
// one line for each key and scalar, so that a decoding error's line names
// the settings path at fault.
type nodeBuilder struct {
	line  int
	lines map[int]string
}

func (b *nodeBuilder) next(path string) int {
	b.line++
	b.lines[b.line] = path
	return b.line
}

func (b *nodeBuilder) node(v any, path string) *yaml.Node {
	switch x := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: b.next(path)}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := joinPath(path, k)
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k, Line: b.next(p)}, b.node(x[k], p))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: b.next(path)}
		for i, e := range x {
			n.Content = append(n.Content, b.node(e, fmt.Sprintf("%s[%d]", path, i)))
		}
		return n
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: x, Line: b.next(path)}
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(x), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(x), Line: b.next(path)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(x), Line: b.next(path)}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: b.next(path)}
}

// SettingsField names the settings path at a line of a decoding error of
// a connection the API manages ("" when unknown): its settings arrive as
// JSON, whose lines mean nothing to the caller.
func (c *Connection) SettingsField(line int) string {
	if c.resolve == nil {
		return ""
	}
	c.resolve.mu.Lock()
	defer c.resolve.mu.Unlock()
	return c.resolve.lines[line]
}

// openSecrets replaces every sealed secret in v by its value.
func (r *resolver) openSecrets(v any) (any, error) {
	return walkSealed(v, "", func(path string, _ map[string]any, sealed json.RawMessage) (any, error) {
		if r.open == nil {
			return nil, fmt.Errorf("secret %s is sealed and no key ring is configured to open it (destinations.encryption)", path)
		}
		plain, err := r.open(context.Background(), sealed, SecretContext(r.account, r.collection, r.name, path))
		if err != nil {
			return nil, fmt.Errorf("open secret %s: %w", path, err)
		}
		return string(plain), nil
	})
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// apiAccount is one account's API configuration compiled for routing.
type apiAccount struct {
	cfg   *AccountConfig
	hash  [sha256.Size]byte
	conns []*Connection // every connection and storage profile, by name
	// routed is, per type ("" for every type), what the account's events go
	// to: its API connections in force merged with the file's routes for the
	// account and the "*" routes.
	routed map[string][]*Connection
}

// compileAccount builds the connections of an account's configuration.
func compileAccount(cfg *AccountConfig, open Opener) *apiAccount {
	a := &apiAccount{cfg: cfg, hash: cfg.Hash()}
	add := func(collection, name string, r *Resource) {
		c := NewAPIResourceConnection(cfg.Account, collection, name, r, open)
		h := sha256.New()
		for _, s := range []string{"auditstream.destinations.api-connection.v1", c.Name, r.Type} {
			fmt.Fprintf(h, "%d:%s", len(s), s)
		}
		h.Write(r.Settings)
		writePolicy(h, c)
		c.Fingerprint = hex.EncodeToString(h.Sum(nil)[:16])
		a.conns = append(a.conns, c)
	}
	for name, r := range cfg.Connections {
		add(CollectionConnections, name, r)
	}
	for name, r := range cfg.StorageProfiles {
		add(CollectionStorageProfiles, name, r)
	}
	slices.SortFunc(a.conns, func(x, y *Connection) int { return cmp.Compare(x.Name, y.Name) })
	return a
}

// inForce is what of the account's own connections its events go to.
func (a *apiAccount) inForce() []*Connection {
	var out []*Connection
	al := a.cfg.AuditLogs
	for _, c := range a.conns {
		if !c.Enabled {
			continue
		}
		name := strings.TrimPrefix(c.Name, a.cfg.Account+"/")
		switch {
		case c.Type == TypeStorage:
			if al.StorageProfile != "" && name == "storage-profiles/"+al.StorageProfile {
				out = append(out, c)
			}
		case al.Streaming && slices.Contains(al.Connections, name):
			out = append(out, c)
		}
	}
	return out
}

// route computes a.routed against the file's table.
func (a *apiAccount) route(file *Table) {
	own := a.inForce()
	a.routed = make(map[string][]*Connection, len(Types)+1)
	a.routed[""] = sortedUnique(own, file.Route(a.cfg.Account))
	for _, typ := range Types {
		var mine []*Connection
		for _, c := range own {
			if c.Type == typ {
				mine = append(mine, c)
			}
		}
		a.routed[typ] = sortedUnique(mine, file.ForType(typ).Route(a.cfg.Account))
	}
}

// apiShards splits the accounts so that applying one account's change
// copies one shard, not every account.
const apiShards = 256

// apiSet is an immutable set of compiled accounts; with returns a changed
// copy that shares every untouched shard.
type apiSet struct {
	seed   maphash.Seed
	shards [apiShards]map[string]*apiAccount
	n      int
	sum    [sha256.Size]byte // XOR of every account's hash: order-free, incremental
}

func newAPISet() *apiSet { return &apiSet{seed: maphash.MakeSeed()} }

func (s *apiSet) shard(account string) int {
	return int(maphash.String(s.seed, account) % apiShards)
}

func (s *apiSet) get(account string) *apiAccount {
	if s == nil {
		return nil
	}
	return s.shards[s.shard(account)][account]
}

// with applies changes (nil deletes) and routes changed accounts against
// file.
func (s *apiSet) with(changes map[string]*AccountConfig, open Opener, file *Table) *apiSet {
	out := *s
	copied := map[int]bool{}
	for account, cfg := range changes {
		i := s.shard(account)
		if !copied[i] {
			m := make(map[string]*apiAccount, len(s.shards[i])+1)
			for k, v := range s.shards[i] {
				m[k] = v
			}
			out.shards[i] = m
			copied[i] = true
		}
		if old := out.shards[i][account]; old != nil {
			xor(&out.sum, old.hash)
			delete(out.shards[i], account)
			out.n--
		}
		if cfg == nil {
			continue
		}
		a := compileAccount(cfg, open)
		a.route(file)
		out.shards[i][account] = a
		xor(&out.sum, a.hash)
		out.n++
	}
	return &out
}

// rerouted is s with every account routed again against a new file table.
func (s *apiSet) rerouted(file *Table) *apiSet {
	out := *s
	for i, m := range s.shards {
		if len(m) == 0 {
			continue
		}
		c := make(map[string]*apiAccount, len(m))
		for k, a := range m {
			b := *a
			b.route(file)
			c[k] = &b
		}
		out.shards[i] = c
	}
	return &out
}

func xor(dst *[sha256.Size]byte, h [sha256.Size]byte) {
	for i := range dst {
		dst[i] ^= h[i]
	}
}

// withAPI is the table file extended by the accounts of api: an account
// configured through the API routes to its own connections in force as well
// as to what the file routes it to. Views of each type share api.
func withAPI(file *Table, api *apiSet) *Table {
	if api == nil || api.n == 0 {
		return file
	}
	t := file.shallow(api)
	t.byType = make(map[string]*Table, len(file.byType))
	for typ, v := range file.byType {
		t.byType[typ] = v.shallow(api)
	}
	return t
}

// shallow is a copy of t that consults api too.
func (t *Table) shallow(api *apiSet) *Table {
	c := *t
	c.api = api
	h := sha256.New()
	h.Write([]byte(t.version))
	h.Write(api.sum[:])
	c.version = hex.EncodeToString(h.Sum(nil)[:16])
	return &c
}

// AccountConnections returns the connections an account configured through
// the destinations API, enabled or not, sorted by name; in a view, only
// those of its type.
func (t *Table) AccountConnections(account string) []*Connection {
	a := t.apiAccount(account)
	if a == nil {
		return nil
	}
	var out []*Connection
	for _, c := range a.conns {
		if t.typ == "" || c.Type == t.typ {
			out = append(out, c)
		}
	}
	return out
}

// APIAccounts returns, sorted, the accounts configured through the
// destinations API.
func (t *Table) APIAccounts() []string {
	if t == nil || t.api == nil {
		return nil
	}
	out := make([]string, 0, t.api.n)
	for _, m := range t.api.shards {
		for k := range m {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (t *Table) apiAccount(account string) *apiAccount {
	if t == nil {
		return nil
	}
	return t.api.get(account)
}

// NewAPIConnection is a connection or storage profile of account as the
// destinations API receives or stores it: settings in JSON, secrets plain
// or sealed. The API decodes it with the forwarder's own settings type to
// check it, exactly as a consumer will.
func NewAPIConnection(account, collection, name, typ string, settings json.RawMessage, open Opener) *Connection {
	qualified := QualifiedConnection(account, name)
	if collection == CollectionStorageProfiles {
		qualified = QualifiedStorageProfile(account, name)
	}
	return &Connection{Name: qualified, Type: typ, Enabled: true, Account: account, policy: &policyCache{},
		resolve: &resolver{account: account, collection: collection, name: name, raw: settings, open: open}}
}

// NewAPIResourceConnection is the connection of a stored resource: its
// settings, enabled flag and policy (filter, redaction rules and sealed
// redaction key, opened with open on first use).
func NewAPIResourceConnection(account, collection, name string, r *Resource, open Opener) *Connection {
	c := NewAPIConnection(account, collection, name, r.Type, r.Settings, open)
	c.Enabled = r.Enabled
	c.filter = r.Filter
	c.redact = r.Redact
	if r.RedactionKey != nil {
		c.redactionKeySealed = r.RedactionKey.Sealed
		// the fingerprint changes with the key's ciphertext, as it does
		// with a settings secret's
		c.redactionKeyNode = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(r.RedactionKey.Sealed)}
	}
	return c
}

var secretType = reflect.TypeFor[config.Secret]()

// SecretFields lists the dotted settings paths of every config.Secret in a
// settings struct type, as the destinations file spells them
// ("api_key", "credentials.secret_access_key", "s3.credentials.external_id").
func SecretFields(t reflect.Type) []string {
	var out []string
	var walk func(t reflect.Type, path string, depth int)
	walk = func(t reflect.Type, path string, depth int) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == secretType {
			out = append(out, path)
			return
		}
		if t.Kind() != reflect.Struct || depth > 8 {
			return
		}
		fields, _ := structFields(t)
		for name, ft := range fields {
			walk(ft, joinPath(path, name), depth+1)
		}
	}
	walk(t, "", 0)
	sort.Strings(out)
	return out
}
