package eventfilter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// Redaction actions.
const (
	// Drop removes the field.
	Drop = "drop"
	// Mask keeps the last Keep characters behind "...", as the seed masks
	// access tokens ("...B6wifA").
	Mask = "mask"
	// Hash replaces the value by its HMAC-SHA256 under the connection's key,
	// in hex: the same value hashes alike within a destination, so it can
	// still be correlated there, and differently across destinations.
	Hash = "hash"
)

// MaxRules bounds a connection's redaction list.
const MaxRules = 64

// Rule is one redaction: a field path and what to do with it.
type Rule struct {
	// Path is a dotted path of the schema's field names, e.g. actor.email,
	// request.ip_address, or extra.<name> for one extra attribute.
	Path   string `yaml:"path" json:"path"`
	Action string `yaml:"action" json:"action"`
	// Keep is how many trailing characters Mask keeps (default 4).
	Keep int `yaml:"keep" json:"keep,omitempty"`
}

// DefaultKeep is how many characters Mask keeps by default.
const DefaultKeep = 4

type compiledRule struct {
	fields []protoreflect.FieldDescriptor // the path; for extra.<name>, up to extra
	extra  string                         // the extra attribute's name, if any
	action string
	keep   int
}

// Redactor applies a connection's redaction rules. It is safe for
// concurrent use.
type Redactor struct {
	rules []compiledRule
	key   []byte
}

var eventDesc = (&auditlogv1.AuditEvent{}).ProtoReflect().Descriptor()

// CompileRedaction checks every rule's path against the event schema and
// its action, and reports every problem with the rule's index. key is the
// connection's hash key; it is required when a rule hashes.
func CompileRedaction(rules []Rule, key []byte) (*Redactor, error) {
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("%d rules is over the limit of %d", len(rules), MaxRules)
	}
	var errs []error
	r := &Redactor{key: key}
	seen := map[string]bool{}
	for i, rule := range rules {
		c, field, err := compileRule(rule)
		if err == nil && seen[rule.Path] {
			field, err = "path", fmt.Errorf("path %q is redacted twice", rule.Path)
		}
		if err == nil && rule.Action == Hash && len(key) == 0 {
			field, err = "action", errors.New("hash needs the connection's redaction key (redaction_key)")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d].%s: %w", i, field, err))
			continue
		}
		seen[rule.Path] = true
		r.rules = append(r.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// compileRule checks one rule; field names the rule's field at fault
// (path, action or keep).
func compileRule(rule Rule) (compiledRule, string, error) {
	c, err := compileRuleFields(rule)
	if err != nil {
		var fe fieldError
		if errors.As(err, &fe) {
			return c, fe.field, fe.err
		}
		return c, "path", err
	}
	return c, "", nil
}

type fieldError struct {
	field string
	err   error
}

func (e fieldError) Error() string { return e.field + ": " + e.err.Error() }

func compileRuleFields(rule Rule) (compiledRule, error) {
	c := compiledRule{action: rule.Action, keep: rule.Keep}
	switch rule.Action {
	case Drop, Hash:
		if rule.Keep != 0 {
			return c, fieldError{"keep", fmt.Errorf("keep applies to %s only", Mask)}
		}
	case Mask:
		if c.keep == 0 {
			c.keep = DefaultKeep
		}
		if c.keep < 0 || c.keep > 64 {
			return c, fieldError{"keep", errors.New("keep must be between 1 and 64")}
		}
	default:
		return c, fieldError{"action", fmt.Errorf("action %q is not %s, %s or %s", truncate(rule.Action), Drop, Mask, Hash)}
	}
	switch rule.Path {
	case "id", "timestamp", "target.context.account.id":
		return c, fmt.Errorf("path %q cannot be redacted: delivery, deduplication and the archive rely on it", rule.Path)
	}
	parts := strings.Split(rule.Path, ".")
	if rule.Path == "" || len(parts) > 8 {
		return c, fmt.Errorf("path %q is not a field path", truncate(rule.Path))
	}
	msg := eventDesc
	for i, name := range parts {
		if msg == nil {
			return c, fmt.Errorf("path %q: %s is not a message", rule.Path, strings.Join(parts[:i], "."))
		}
		f := msg.Fields().ByName(protoreflect.Name(name))
		if f == nil {
			return c, fmt.Errorf("path %q: %q is not a field of %s", truncate(rule.Path), truncate(name), msg.Name())
		}
		c.fields = append(c.fields, f)
		if f.IsMap() {
			if i != len(parts)-2 {
				return c, fmt.Errorf("path %q: name one attribute of %s: %s.<name>", rule.Path, name, strings.Join(parts[:i+1], "."))
			}
			c.extra = parts[i+1]
			return c, nil
		}
		msg = f.Message()
	}
	last := c.fields[len(c.fields)-1]
	if rule.Action != Drop && last.Kind() != protoreflect.StringKind {
		return c, fmt.Errorf("path %q is not a string: only drop applies to it", rule.Path)
	}
	if last.Cardinality() == protoreflect.Repeated {
		return c, fmt.Errorf("path %q is a list", rule.Path)
	}
	return c, nil
}

// Apply returns ev redacted. ev is not changed (an event is shared by the
// connections it goes to): when a rule applies, a copy is returned.
func (r *Redactor) Apply(ev *auditlogv1.AuditEvent) *auditlogv1.AuditEvent {
	if r == nil || len(r.rules) == 0 {
		return ev
	}
	out := proto.Clone(ev).(*auditlogv1.AuditEvent)
	m := out.ProtoReflect()
	for _, rule := range r.rules {
		r.apply(m, rule)
	}
	return out
}

func (r *Redactor) apply(m protoreflect.Message, rule compiledRule) {
	for _, f := range rule.fields[:len(rule.fields)-1] {
		if !m.Has(f) {
			return // nothing there to redact
		}
		m = m.Get(f).Message()
	}
	last := rule.fields[len(rule.fields)-1]
	if rule.extra != "" {
		mp := m.Mutable(last).Map()
		k := protoreflect.ValueOfString(rule.extra).MapKey()
		if !mp.Has(k) {
			return
		}
		if rule.action == Drop {
			mp.Clear(k)
			return
		}
		mp.Set(k, protoreflect.ValueOfString(r.transform(rule, mp.Get(k).String())))
		return
	}
	if !m.Has(last) {
		return
	}
	if rule.action == Drop {
		m.Clear(last)
		return
	}
	m.Set(last, protoreflect.ValueOfString(r.transform(rule, m.Get(last).String())))
}

func (r *Redactor) transform(rule compiledRule, v string) string {
	if rule.action == Hash {
		mac := hmac.New(sha256.New, r.key)
		mac.Write([]byte(v))
		return hex.EncodeToString(mac.Sum(nil))
	}
	n := utf8.RuneCountInString(v)
	if n <= rule.keep {
		return "..." // too short to show any of it
	}
	cut := 0
	for i := range v {
		if n == rule.keep {
			cut = i
			break
		}
		n--
	}
	return "..." + v[cut:]
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
