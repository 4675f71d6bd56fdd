package destinations

import (
	"cmp"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/auditstream/auditstream/services/internal/config"
)

// SettingsPath is the path of the connection's settings in the file, the
// prefix of every error about them: "connections.dd-acme.settings".
func (c Connection) SettingsPath() string {
	if c.resolve != nil {
		return "accounts." + c.Account + "." + c.resolve.collection + "." + c.resolve.name + ".settings"
	}
	return "connections." + c.Name + ".settings"
}

// HasSettings reports whether the connection has settings.
func (c Connection) HasSettings() bool { return c.settings != nil || c.resolve != nil }

// Decode decodes the connection's settings into into, a non-nil pointer to
// the forwarder's settings struct, which holds the defaults. Decoding is
// strict: a key that matches no field of the struct (at any depth) is an
// error, so a typo never leaves a default in place. When into implements
// config.Validator, Validate runs after a clean decode. Every error carries
// the settings path and a line number, and never a settings value. Decode
// may be called any number of times and from any goroutine.
func (c Connection) Decode(into any) error {
	path := c.SettingsPath()
	rv := reflect.ValueOf(into)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("%s: decode needs a non-nil pointer, not %T", path, into)
	}
	var errs config.Errors
	settings := c.settings
	if c.resolve != nil {
		n, err := c.resolve.settings()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		settings = n
	}
	if settings != nil {
		checkKnownFields(settings, rv.Type().Elem(), path, &errs, map[*yaml.Node]bool{})
		if err := settings.Decode(into); err != nil {
			for _, msg := range errorMessages(err) {
				errs.Addf(path, "%s", msg)
			}
		}
	}
	if err := errs.Err(); err != nil {
		return err
	}
	if v, ok := into.(config.Validator); ok {
		errs.Add(path, v.Validate())
	}
	return errs.Err()
}

// CheckType returns a check for Options.Check that decodes the settings of
// every connection of type typ, enabled or not, with decode (typically
// c.Decode into a fresh settings struct) and joins the errors. A new file
// version with a bad setting is then rejected as a whole.
func CheckType(typ string, decode func(c *Connection) error) func(*Table) error {
	return func(t *Table) error {
		var errs []error
		for _, c := range t.ForType(typ).Connections() {
			if err := decode(c); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

var (
	yamlUnmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	obsoleteUnmarshalerType = reflect.TypeFor[interface {
		UnmarshalYAML(func(any) error) error
	}]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkKnownFields reports keys of n that name no field of t, the way the
// yaml decoder's KnownFields does for a whole document (which Node.Decode
// cannot), but with the path of each key. Types that decode themselves are
// left to their own checks.
func checkKnownFields(n *yaml.Node, t reflect.Type, path string, errs *config.Errors, active map[*yaml.Node]bool) {
	if n == nil || active[n] {
		return // a self-containing anchor: the decoder reports it
	}
	active[n] = true
	defer delete(active, n)
	switch n.Kind {
	case yaml.AliasNode:
		checkKnownFields(n.Alias, t, path, errs, active)
		return
	case yaml.DocumentNode:
		for _, c := range n.Content {
			checkKnownFields(c, t, path, errs, active)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(yamlUnmarshalerType) || pt.Implements(obsoleteUnmarshalerType) {
		return
	}
	if n.Kind == yaml.ScalarNode && pt.Implements(textUnmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // a type mismatch: the decoder reports it
		}
		fields, rest := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				continue
			}
			if k.ShortTag() == "!!merge" {
				checkMerged(v, t, path, errs, active)
				continue
			}
			if ft, ok := fields[k.Value]; ok {
				checkKnownFields(v, ft, path+"."+k.Value, errs, active)
				continue
			}
			if rest != nil {
				checkKnownFields(v, rest, path+"."+k.Value, errs, active)
				continue
			}
			errs.Addf(path+"."+truncate(k.Value), "line %d: unknown field (known: %s)", k.Line, strings.Join(slices.Sorted(mapKeys(fields)), ", "))
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.ShortTag() == "!!merge" {
					checkMerged(v, t, path, errs, active)
					continue
				}
				checkKnownFields(v, t.Elem(), path+"."+truncate(k.Value), errs, active)
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				checkKnownFields(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", errs, active)
			}
		}
	}
}

// checkMerged checks the value of a merge key: a mapping, or a list of them
// (<<: [*a, *b]), merged into the mapping that holds the key.
func checkMerged(v *yaml.Node, t reflect.Type, path string, errs *config.Errors, active map[*yaml.Node]bool) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, item := range v.Content {
			checkKnownFields(item, t, path, errs, active)
		}
		return
	}
	checkKnownFields(v, t, path, errs, active)
}

// structFields maps the YAML keys of struct t to field types, following the
// yaml package's rules: the tag's name or the lower-cased field name, "-"
// skipped, ",inline" structs flattened. rest is the value type of an inline
// map, which takes every other key, or nil.
func structFields(t reflect.Type) (fields map[string]reflect.Type, rest reflect.Type) {
	fields = map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" && !strings.Contains(string(f.Tag), ":") {
			tag = string(f.Tag)
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Map:
				rest = ft.Elem()
			case reflect.Struct:
				inner, innerRest := structFields(ft)
				for k, v := range inner {
					fields[k] = v
				}
				if innerRest != nil {
					rest = innerRest
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields, rest
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// The yaml decoder quotes up to ten bytes of a value it cannot convert:
// "line 3: cannot unmarshal !!str `sk-live...` into int". A settings value
// may be a secret, so the quote is cut out.
var quotedValue = regexp.MustCompile("(cannot unmarshal \\S+) `(?s:.{0,10})` into ")

// errorMessages splits a decode error into its messages, without values.
func errorMessages(err error) []string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]string, len(te.Errors))
		for i, msg := range te.Errors {
			out[i] = quotedValue.ReplaceAllString(msg, "$1 into ")
		}
		return out
	}
	return []string{strings.TrimPrefix(quotedValue.ReplaceAllString(err.Error(), "$1 into "), "yaml: ")}
}

// sanitize strips quoted values from a yaml error.
func sanitize(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(errorMessages(err), "; "))
	}
	return err
}

// fingerprint hashes what a client is built from: the connection's name,
// type and settings. Settings are hashed by structure (kind, resolved tag,
// value; mapping entries in any order), so comments, quoting style and key
// order do not count, and aliases hash as what they point to.
func fingerprint(c *Connection) string {
	h := sha256.New()
	for _, s := range []string{"auditstream.destinations.connection.v1", c.Name, c.Type} {
		h.Write([]byte(strconv.Itoa(len(s)) + ":" + s))
	}
	if c.settings != nil {
		sum := nodeHash(c.settings, map[*yaml.Node][32]byte{}, map[*yaml.Node]bool{})
		h.Write(sum[:])
	}
	writePolicy(h, c)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// nodeHash is a Merkle hash of a node; memo keeps aliases from costing more
// than their anchor, however often they are repeated.
func nodeHash(n *yaml.Node, memo map[*yaml.Node][32]byte, active map[*yaml.Node]bool) [32]byte {
	if n == nil {
		return sha256.Sum256([]byte("nil"))
	}
	if n.Kind == yaml.AliasNode {
		return nodeHash(n.Alias, memo, active)
	}
	if sum, ok := memo[n]; ok {
		return sum
	}
	if active[n] {
		return sha256.Sum256([]byte("cycle"))
	}
	active[n] = true
	defer delete(active, n)
	h := sha256.New()
	h.Write([]byte{byte(n.Kind)})
	switch n.Kind {
	case yaml.ScalarNode:
		tag, value := n.ShortTag(), n.Value
		h.Write([]byte(strconv.Itoa(len(tag)) + ":" + tag + strconv.Itoa(len(value)) + ":" + value))
	case yaml.MappingNode:
		pairs := make([][32]byte, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := nodeHash(n.Content[i], memo, active), nodeHash(n.Content[i+1], memo, active)
			pairs = append(pairs, sha256.Sum256(append(k[:], v[:]...)))
		}
		slices.SortFunc(pairs, func(a, b [32]byte) int { return cmp.Compare(string(a[:]), string(b[:])) })
		for _, p := range pairs {
			h.Write(p[:])
		}
	default: // sequences and documents: order matters
		for _, c := range n.Content {
			sum := nodeHash(c, memo, active)
			h.Write(sum[:])
		}
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	memo[n] = sum
	return sum
}

// DecodeSettings reads a connection's settings strictly into a T with its
// defaults filled in. Connection.Decode already runs T's Validate, so the
// settings are checked once, where the error gets its path and line.
func DecodeSettings[T interface{ WithDefaults() T }](c *Connection) (T, error) {
	var s T
	if err := c.Decode(&s); err != nil {
		return s, err
	}
	return s.WithDefaults(), nil
}
