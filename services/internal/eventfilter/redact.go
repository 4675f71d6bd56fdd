package eventfilter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"strings"
	"sync"
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
	steps  []msgAccess                    // typed access to fields[:len-1], when all have one
	leaf   *strAccess                     // typed access to a string leaf
	extra  string                         // the extra attribute's name, if any
	action string
	keep   int
}

// Redactor applies a connection's redaction rules. It is safe for
// concurrent use.
type Redactor struct {
	rules []compiledRule
	key   []byte
	// macs holds keyed HMACs: hmac.New derives the key's pads each time,
	// which was a third of a hash's cost.
	macs sync.Pool
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
			if f.FullName() != "auditlog.v1.AuditEvent.extra" {
				return c, fmt.Errorf("path %q: only the event's extra map can be redacted by attribute", rule.Path)
			}
			c.extra = parts[i+1]
			return c, nil
		}
		msg = f.Message()
	}
	c.typed()
	last := c.fields[len(c.fields)-1]
	if rule.Action != Drop && last.Kind() != protoreflect.StringKind {
		return c, fmt.Errorf("path %q is not a string: only drop applies to it", rule.Path)
	}
	if last.Cardinality() == protoreflect.Repeated {
		return c, fmt.Errorf("path %q is a list", rule.Path)
	}
	return c, nil
}

// typed picks the hand-written accessors for the rule's path, when there
// are some for every step (see shallow.go).
func (c *compiledRule) typed() {
	steps := make([]msgAccess, 0, len(c.fields))
	for _, f := range c.fields[:len(c.fields)-1] {
		a, ok := msgFields[f.FullName()]
		if !ok {
			return
		}
		steps = append(steps, a)
	}
	c.steps = steps
	if a, ok := strFields[c.fields[len(c.fields)-1].FullName()]; ok {
		c.leaf = &a
	}
}

// Apply returns ev redacted. ev is not changed (an event is shared by the
// connections it goes to): when a rule applies, a copy is returned. The
// copy is made on write: only the messages on a rule's path (and the extra
// map, when a rule names one of its attributes) are copied; the rest is
// shared with ev, which is safe because neither is changed afterwards.
func (r *Redactor) Apply(ev *auditlogv1.AuditEvent) *auditlogv1.AuditEvent {
	if r == nil || len(r.rules) == 0 {
		return ev
	}
	var buf [8]proto.Message
	w := cow{copied: buf[:0]}
	out := w.copy(ev).(*auditlogv1.AuditEvent)
	for _, rule := range r.rules {
		r.apply(&w, out, rule)
	}
	return out
}

// cow tracks what one Apply has copied, so a message two rules reach is
// copied once.
type cow struct {
	copied   []proto.Message
	extraCut bool // the event's extra map is a copy
}

func (w *cow) copy(m proto.Message) proto.Message {
	c := shallow(m)
	w.copied = append(w.copied, c)
	return c
}

func (w *cow) owns(m proto.Message) bool {
	for _, c := range w.copied {
		if c == m {
			return true
		}
	}
	return false
}

// walk follows rule's path from the event to the message holding its leaf,
// copying each message on the way into its (copied) parent. It returns
// nil when a message on the path is absent: there is nothing to redact.
func (w *cow) walk(out *auditlogv1.AuditEvent, rule compiledRule) proto.Message {
	var m proto.Message = out
	if rule.steps != nil {
		for _, s := range rule.steps {
			c := s.get(m)
			if c == nil {
				return nil
			}
			if !w.owns(c) {
				c = w.copy(c)
				s.set(m, c)
			}
			m = c
		}
		return m
	}
	for _, f := range rule.fields[:len(rule.fields)-1] {
		pm := m.ProtoReflect()
		if !pm.Has(f) {
			return nil
		}
		c := pm.Get(f).Message().Interface()
		if !w.owns(c) {
			c = w.copy(c)
			pm.Set(f, protoreflect.ValueOfMessage(c.ProtoReflect()))
		}
		m = c
	}
	return m
}

func (r *Redactor) apply(w *cow, out *auditlogv1.AuditEvent, rule compiledRule) {
	m := w.walk(out, rule)
	if m == nil {
		return
	}
	if rule.extra != "" { // the schema's one map is the event's extra
		v, ok := out.Extra[rule.extra]
		if !ok {
			return
		}
		if !w.extraCut {
			out.Extra = maps.Clone(out.Extra)
			w.extraCut = true
		}
		if rule.action == Drop {
			delete(out.Extra, rule.extra)
			return
		}
		out.Extra[rule.extra] = r.transform(rule, v)
		return
	}
	if rule.leaf != nil {
		v := rule.leaf.get(m)
		if v == "" {
			return
		}
		if rule.action == Drop {
			v = ""
		} else {
			v = r.transform(rule, v)
		}
		rule.leaf.set(m, v)
		return
	}
	pm := m.ProtoReflect()
	last := rule.fields[len(rule.fields)-1]
	if !pm.Has(last) {
		return
	}
	if rule.action == Drop {
		pm.Clear(last)
		return
	}
	pm.Set(last, protoreflect.ValueOfString(r.transform(rule, pm.Get(last).String())))
}

func (r *Redactor) transform(rule compiledRule, v string) string {
	if rule.action == Hash {
		mac, _ := r.macs.Get().(hash.Hash)
		if mac == nil {
			mac = hmac.New(sha256.New, r.key)
		}
		mac.Write([]byte(v))
		var sum [sha256.Size]byte
		out := hex.EncodeToString(mac.Sum(sum[:0]))
		mac.Reset()
		r.macs.Put(mac)
		return out
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
