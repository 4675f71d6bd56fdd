package auditevent

import (
	"slices"
	"strconv"
	"unicode/utf8"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// EncodeJSON writes the event in its JSON form (the seed's kebab-case shape).
// Empty fields are left out, so decoding and encoding again gives equal JSON.
func EncodeJSON(ev *auditlogv1.AuditEvent) []byte {
	return AppendJSON(make([]byte, 0, 2048), ev)
}

// AppendJSON is EncodeJSON appending to dst; hot paths reuse dst.
func AppendJSON(dst []byte, ev *auditlogv1.AuditEvent) []byte {
	w := ObjectWriter{buf: append(dst, '{')}
	w.Str("id", ev.GetId())
	if v := ev.GetSchemaVersion(); v != 0 {
		w.Key("schema-version")
		w.buf = strconv.AppendUint(w.buf, uint64(v), 10)
	}
	AppendAttributes(&w, ev)
	if extra := ev.GetExtra(); len(extra) > 0 {
		w.Key("extra")
		keys := make([]string, 0, len(extra))
		for k := range extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		x := w.Object()
		for _, k := range keys {
			// empty values are kept: the producer set them on purpose
			x.Key(k)
			x.buf = AppendString(x.buf, extra[k])
		}
		w.End(x)
	}
	return append(w.buf, '}')
}

// AppendAttributes writes the fields of the seed's `attributes` object
// (actor, request, hostname, service, outcome, target, timestamp) into an
// object being written; sinks that wrap the event (Datadog) share it.
func AppendAttributes(w *ObjectWriter, ev *auditlogv1.AuditEvent) {
	AppendAttributesWithoutTimestamp(w, ev)
	AppendTimestampMember(w, ev)
}

// AppendAttributesWithoutTimestamp is AppendAttributes up to the
// timestamp, for a sink that writes members of its own before it.
func AppendAttributesWithoutTimestamp(w *ObjectWriter, ev *auditlogv1.AuditEvent) {
	if a := ev.GetActor(); a != nil {
		w.Key("actor")
		x := w.Object()
		x.Str("id", a.GetId())
		x.Str("type", a.GetType())
		x.Str("email", a.GetEmail())
		if t := a.GetAccessToken(); t != nil {
			x.Key("access-token")
			y := x.Object()
			y.Str("type", t.GetType())
			y.Str("token", t.GetToken())
			x.End(y)
		}
		w.End(x)
	}
	if r := ev.GetRequest(); r != nil {
		w.Key("request")
		x := w.Object()
		x.Str("ip-address", r.GetIpAddress())
		x.Str("action", r.GetAction())
		x.Str("id", r.GetId())
		x.Str("source", r.GetSource())
		x.Str("user-agent", r.GetUserAgent())
		w.End(x)
	}
	w.Str("hostname", ev.GetHostname())
	w.Str("service", ev.GetService())
	if o := ev.GetOutcome(); o != nil {
		w.Key("outcome")
		x := w.Object()
		x.Str("result", o.GetResult())
		if c := o.GetStatusCode(); c != 0 {
			x.Key("status-code")
			x.buf = strconv.AppendInt(x.buf, int64(c), 10)
		}
		w.End(x)
	}
	if t := ev.GetTarget(); t != nil {
		w.Key("target")
		x := w.Object()
		x.Str("id", t.GetId())
		x.Str("type", t.GetType())
		x.Str("display-name", t.GetDisplayName())
		if c := t.GetContext(); c != nil {
			x.Key("context")
			y := x.Object()
			y.ref("account", c.GetAccount())
			y.ref("environment", c.GetEnvironment())
			y.ref("workspace", c.GetWorkspace())
			x.End(y)
		}
		w.End(x)
	}
}

// AppendTimestampMember writes the event's "timestamp" member, if it has a
// timestamp, as AppendAttributes does.
func AppendTimestampMember(w *ObjectWriter, ev *auditlogv1.AuditEvent) {
	if ts := ev.GetTimestamp(); ts != nil {
		w.Key("timestamp")
		w.buf = append(w.buf, '"')
		w.buf = AppendTimestamp(w.buf, ts.AsTime())
		w.buf = append(w.buf, '"')
	}
}

// ObjectWriter appends the members of one JSON object, handling commas.
type ObjectWriter struct {
	buf   []byte
	count int
}

// NewObjectWriter starts writing members into an object whose opening brace
// the caller has already appended to buf; Bytes returns the result without
// the closing brace.
func NewObjectWriter(buf []byte) *ObjectWriter { return &ObjectWriter{buf: buf} }

// Bytes returns the buffer written so far.
func (w *ObjectWriter) Bytes() []byte { return w.buf }

// Key writes a member name; the value follows with Raw, String or Object.
func (w *ObjectWriter) Key(k string) {
	if w.count > 0 {
		w.buf = append(w.buf, ',')
	}
	w.count++
	w.buf = AppendString(w.buf, k)
	w.buf = append(w.buf, ':')
}

// Str writes a string member, skipping empty values.
func (w *ObjectWriter) Str(k, v string) {
	if v == "" {
		return
	}
	w.Key(k)
	w.buf = AppendString(w.buf, v)
}

func (w *ObjectWriter) ref(k string, r *auditlogv1.Ref) {
	if r == nil {
		return
	}
	w.Key(k)
	x := w.Object()
	x.Str("id", r.GetId())
	x.Str("display-name", r.GetDisplayName())
	w.End(x)
}

// Raw appends an already-encoded JSON value after Key.
func (w *ObjectWriter) Raw(v []byte) { w.buf = append(w.buf, v...) }

// Object starts a nested object after Key; finish it with End.
func (w *ObjectWriter) Object() *ObjectWriter {
	return &ObjectWriter{buf: append(w.buf, '{')}
}

// End closes a nested object started with Object.
func (w *ObjectWriter) End(x *ObjectWriter) {
	w.buf = append(x.buf, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, so
// the output is always valid JSON.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight plain bytes (printable ASCII, no quote or backslash) at a time.
		for i+8 <= len(s) && plainWord(stringWord(s, i)) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript string literals; escape them as
		// encoding/json does.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// stringWord loads s[i:i+8] little-endian; the compiler makes it one load.
func stringWord(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}
