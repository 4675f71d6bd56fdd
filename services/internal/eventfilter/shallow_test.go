package eventfilter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// fill sets every field of m, recursively, to a value that differs by
// field, so a copy or accessor that misses or swaps a field shows.
func fill(m protoreflect.Message, seed string) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		name := seed + "." + string(f.Name())
		switch {
		case f.IsMap():
			mp := m.Mutable(f).Map()
			mp.Set(protoreflect.ValueOfString(name+"-k").MapKey(), protoreflect.ValueOfString(name+"-v"))
		case f.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(f).Message(), name)
		case f.Kind() == protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString(name))
		case f.Kind() == protoreflect.Int32Kind:
			m.Set(f, protoreflect.ValueOfInt32(int32(len(name))))
		case f.Kind() == protoreflect.Int64Kind:
			m.Set(f, protoreflect.ValueOfInt64(int64(len(name))))
		case f.Kind() == protoreflect.Uint32Kind:
			m.Set(f, protoreflect.ValueOfUint32(uint32(len(name))))
		default:
			panic(fmt.Sprintf("fill: %s has kind %s: teach fill and shallow.go about it", f.FullName(), f.Kind()))
		}
	}
}

// The hand-written copies and accessors of shallow.go stay true to the
// schema: a field added to the event and missed there fails here.
func TestAccessorsCoverTheSchema(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	var visit func(md protoreflect.MessageDescriptor)
	visit = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || !strings.HasPrefix(string(md.FullName()), "auditlog.v1.") {
			return
		}
		seen[md.FullName()] = true
		m := (&auditlogv1.AuditEvent{}).ProtoReflect()
		if md != eventDesc {
			mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
			if err != nil {
				t.Fatal(err)
			}
			m = mt.New()
		}
		fill(m, "x")
		m.SetUnknown(protoreflect.RawFields{0x98, 0x06, 0x01}) // field 99, varint 1
		c := shallow(m.Interface())
		if c == m.Interface() || !proto.Equal(c, m.Interface()) {
			t.Errorf("shallow(%s) is not an equal copy:\n%s", md.FullName(), prototext.Format(c))
		}
		fields := md.Fields()
		for i := range fields.Len() {
			f := fields.Get(i)
			switch {
			case f.IsMap() || (f.Kind() == protoreflect.MessageKind && f.Message().FullName().Parent() != "auditlog.v1"):
				// the extra map and timestamps are handled apart
			case f.Kind() == protoreflect.MessageKind:
				a, ok := msgFields[f.FullName()]
				if !ok {
					t.Errorf("msgFields has no accessor for %s", f.FullName())
					break
				}
				if a.get(m.Interface()) != m.Get(f).Message().Interface() {
					t.Errorf("msgFields[%s] reads another field", f.FullName())
				}
				n := m.Get(f).Message().New()
				a.set(m.Interface(), n.Interface())
				if m.Get(f).Message().Interface() != n.Interface() {
					t.Errorf("msgFields[%s] writes another field", f.FullName())
				}
				visit(f.Message())
			case f.Kind() == protoreflect.StringKind:
				a, ok := strFields[f.FullName()]
				if !ok {
					t.Errorf("strFields has no accessor for %s", f.FullName())
					break
				}
				if a.get(m.Interface()) != m.Get(f).String() {
					t.Errorf("strFields[%s] reads another field", f.FullName())
				}
				a.set(m.Interface(), "changed")
				if m.Get(f).String() != "changed" {
					t.Errorf("strFields[%s] writes another field", f.FullName())
				}
			}
		}
	}
	visit(eventDesc)
	if len(seen) < 8 {
		t.Fatalf("visited only %d message types", len(seen))
	}
}

// referenceApply is redaction as plainly as it can be written: a deep
// copy, then protoreflect along each path. Apply must agree with it.
func referenceApply(rules []Rule, key []byte, ev *auditlogv1.AuditEvent) *auditlogv1.AuditEvent {
	out := proto.Clone(ev).(*auditlogv1.AuditEvent)
	for _, rule := range rules {
		parts := strings.Split(rule.Path, ".")
		m := out.ProtoReflect()
		absent := false
		for _, name := range parts[:len(parts)-1] {
			f := m.Descriptor().Fields().ByName(protoreflect.Name(name))
			if f.IsMap() {
				break
			}
			if !m.Has(f) {
				absent = true
				break
			}
			m = m.Get(f).Message()
		}
		if absent {
			continue
		}
		transform := func(v string) string {
			switch rule.Action {
			case Hash:
				mac := hmac.New(sha256.New, key)
				mac.Write([]byte(v))
				return hex.EncodeToString(mac.Sum(nil))
			case Mask:
				keep := rule.Keep
				if keep == 0 {
					keep = DefaultKeep
				}
				r := []rune(v)
				if len(r) <= keep {
					return "..."
				}
				return "..." + string(r[len(r)-keep:])
			}
			return ""
		}
		if parts[0] == "extra" {
			v, ok := out.Extra[parts[1]]
			if !ok {
				continue
			}
			if rule.Action == Drop {
				delete(out.Extra, parts[1])
			} else {
				out.Extra[parts[1]] = transform(v)
			}
			continue
		}
		f := m.Descriptor().Fields().ByName(protoreflect.Name(parts[len(parts)-1]))
		if !m.Has(f) {
			continue
		}
		if rule.Action == Drop {
			m.Clear(f)
		} else {
			m.Set(f, protoreflect.ValueOfString(transform(m.Get(f).String())))
		}
	}
	return out
}

// redactablePaths are the paths a fuzzed rule picks from.
var redactablePaths = []string{
	"actor.id", "actor.type", "actor.email", "actor.access_token", "actor.access_token.token", "actor.access_token.type",
	"request.ip_address", "request.action", "request.id", "request.source", "request.user_agent", "request",
	"hostname", "service", "outcome.result", "outcome.status_code", "outcome",
	"target.id", "target.type", "target.display_name", "target.context.workspace.id", "target.context.workspace",
	"target.context.environment.display_name", "target.context.account.display_name", "extra.ticket", "extra.note", "schema_version",
}

func FuzzRedactionMatchesReference(f *testing.F) {
	seed, _ := proto.Marshal(seedEvent())
	f.Add(seed, []byte{2, 0, 6, 1, 24, 2, 3, 4})
	f.Add([]byte{}, []byte{0, 0})
	key := []byte("reference-key")
	f.Fuzz(func(t *testing.T, data, pick []byte) {
		ev := &auditlogv1.AuditEvent{}
		if proto.Unmarshal(data, ev) != nil {
			return
		}
		var rules []Rule
		used := map[string]bool{}
		for i := 0; i+1 < len(pick) && len(rules) < 6; i += 2 {
			path := redactablePaths[int(pick[i])%len(redactablePaths)]
			action := []string{Drop, Mask, Hash}[int(pick[i+1])%3]
			if used[path] {
				continue
			}
			rule := Rule{Path: path, Action: action}
			if action == Mask {
				rule.Keep = int(pick[i+1])%5 + 1
			}
			if _, err := CompileRedaction([]Rule{rule}, key); err != nil {
				continue // e.g. mask on a message: refused on load
			}
			used[path] = true
			rules = append(rules, rule)
		}
		r, err := CompileRedaction(rules, key)
		if err != nil {
			t.Fatalf("rules %v: %v", rules, err)
		}
		orig := proto.Clone(ev)
		got := r.Apply(ev)
		if !proto.Equal(ev, orig) {
			t.Fatal("Apply changed its input")
		}
		want := ev
		if len(rules) > 0 {
			want = referenceApply(rules, key, orig.(*auditlogv1.AuditEvent))
		}
		if !proto.Equal(got, want) {
			t.Fatalf("rules %v:\ngot  %s\nwant %s", rules, prototext.Format(got), prototext.Format(want))
		}
		if !utf8.ValidString(got.GetActor().GetId()) && utf8.ValidString(ev.GetActor().GetId()) {
			t.Fatal("a mask cut a character in two")
		}
	})
}
