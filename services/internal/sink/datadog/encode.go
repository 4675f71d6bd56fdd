package datadog

import (
	"fmt"
	"slices"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/sink"
)

// Datadog logs intake limits. Datadog states them as "5MB" and "1MB"; the
// decimal reading is the smaller, so it is the one that is always safe.
const (
	// MaxEntries is the most entries one request may carry.
	MaxEntries = 1000
	// MaxRequestBytes bounds a request's uncompressed body, the JSON array.
	MaxRequestBytes = 5_000_000
	// MaxEntryBytes bounds one entry. Datadog truncates a larger log, which
	// would silently lose audit data, so such an event is dead-lettered.
	MaxEntryBytes = 1_000_000
	// MaxTagBytes is Datadog's limit on one tag (name:value).
	MaxTagBytes = 200
)

// Reasons are stable, machine-readable causes of a dead-lettered entry; see
// RejectError.
const (
	// ReasonEntryTooLarge: the entry is over MaxEntryBytes, or the intake
	// answered 413 for it alone.
	ReasonEntryTooLarge = "entry_too_large"
	// ReasonRejected: the intake answered 400 (or another non-retryable
	// 4xx) for a request holding this entry alone.
	ReasonRejected = "rejected_by_intake"
	// ReasonEmptyEntry: the sink was handed an empty entry.
	ReasonEmptyEntry = "empty_entry"
)

// RejectError says why an entry can never be delivered. It is the Err of a
// Permanent *sink.SendError; errors.As finds it for the dead-letter
// reason header.
type RejectError struct {
	Reason  string
	Message string
}

func (e *RejectError) Error() string { return e.Reason + ": " + e.Message }

// Encoder turns audit events into Datadog log entries for one connection's
// tag prefix and source. It is safe for concurrent use.
//
// An entry is one JSON object of the intake's array:
//
//	{"ddsource":"scalr",
//	 "ddtags":"scalr-workspace-name:demo-ws,scalr-environment-name:cs-m,...,source:scalr",
//	 "message":"<actor> <action> <target type> <target id>: <result>",
//	 "service":"audit-log",          // only when the event has no service
//	 "audit-id":"<event id>",        // when the event has one
//	 "actor":{...},"request":{...},"hostname":"...","service":"...",
//	 "outcome":{...},"target":{...},"timestamp":"...",  // as in the event's JSON form
//	 "extra":{...}}                  // when the event has extra attributes
//
// Datadog reads hostname, service and timestamp as the log's reserved
// attributes and keeps every other member as an attribute, which gives the
// seed's log. The event id is sent as "audit-id" because Datadog reserves a
// top-level "id" for its own log id.
//
// Tags, in the seed's order, each left out when its value is empty:
//
//	<prefix>-workspace-name:  target.context.workspace.display-name
//	<prefix>-environment-name: target.context.environment.display-name
//	<prefix>-workspace:       target.context.workspace.id
//	<prefix>-user-email:      actor.email
//	<prefix>-action:          request.action
//	<prefix>-environment:     target.context.environment.id
//	source:<source>
//
// Values are lower-cased as Datadog itself does, so what is sent is what
// Datadog shows. ',' (the tag separator), '"', '\' and control characters
// become '_', and a tag is cut to MaxTagBytes. The seed's example shows
// "scalr-environment:org-sscctbkdgkdr123" next to the environment id
// "org-sscctbkdgkdrqg0": the documentation's example was edited by hand, and
// the tag is the environment id. Datadog adds
// "datadog.submission_auth:private_api_key" on its own; it is not sent.
type Encoder struct {
	names  [6]string // "<prefix>-workspace-name:" ...
	source string
	srcTag string // "source:<source>"
}

// NewEncoder returns an Encoder for the connection's tag prefix and source,
// with empty values read as their defaults.
func NewEncoder(tagPrefix, source string) *Encoder {
	if tagPrefix == "" {
		tagPrefix = DefaultTagPrefix
	}
	if source == "" {
		source = tagPrefix
	}
	e := &Encoder{source: source}
	for i, n := range []string{"workspace-name", "environment-name", "workspace", "user-email", "action", "environment"} {
		e.names[i] = tagPrefix + "-" + n + ":"
	}
	e.srcTag = string(appendTagValue([]byte("source:"), source, MaxTagBytes))
	return e
}

// Encoder returns the connection's Encoder.
func (c Config) Encoder() *Encoder {
	c = c.WithDefaults()
	return NewEncoder(c.TagPrefix, c.Source)
}

type encodeState struct {
	buf, tags, msg, tmp []byte
}

var encodeStates = sync.Pool{New: func() any {
	return &encodeState{buf: make([]byte, 0, 4096), tags: make([]byte, 0, 512), msg: make([]byte, 0, 256), tmp: make([]byte, 0, 256)}
}}

// EncodeEntry is Encode as the sink takes it: the entry with its size and
// the event's time, which the sink judges Datadog's window by.
func (e *Encoder) EncodeEntry(ev *auditlogv1.AuditEvent) (sink.Entry[[]byte], error) {
	b, err := e.Encode(ev)
	return sink.EntryOf(ev, b, len(b)), err
}

// Encode returns the event's log entry in a new slice of exactly its size.
// An entry over MaxEntryBytes is a Permanent *sink.SendError whose Err is
// a *RejectError with reason entry_too_large.
func (e *Encoder) Encode(ev *auditlogv1.AuditEvent) ([]byte, error) {
	st := encodeStates.Get().(*encodeState)
	var out []byte
	var err error
	st.buf, err = e.appendEntry(st, st.buf[:0], ev)
	if err == nil {
		out = make([]byte, len(st.buf))
		copy(out, st.buf)
	}
	putState(st)
	return out, err
}

// putState returns st to the pool unless an unusual event grew its buffers:
// one huge event must not pin memory.
func putState(st *encodeState) {
	const limit = 64 << 10
	if cap(st.buf) <= limit && cap(st.tags) <= limit && cap(st.msg) <= limit && cap(st.tmp) <= limit {
		encodeStates.Put(st)
	}
}

// AppendEntry is Encode appending to dst. On error dst is returned as given.
func (e *Encoder) AppendEntry(dst []byte, ev *auditlogv1.AuditEvent) ([]byte, error) {
	st := encodeStates.Get().(*encodeState)
	out, err := e.appendEntry(st, dst, ev)
	putState(st)
	return out, err
}

func (e *Encoder) appendEntry(st *encodeState, dst []byte, ev *auditlogv1.AuditEvent) ([]byte, error) {
	start := len(dst)
	w := auditevent.NewObjectWriter(append(dst, '{'))
	w.Str("ddsource", e.source)
	st.tags = e.appendTags(append(st.tags[:0], '"'), ev)
	if len(st.tags) > 1 {
		w.Key("ddtags")
		w.Raw(append(st.tags, '"'))
	}
	w.Key("message")
	st.msg, st.tmp = appendMessage(st.msg[:0], st.tmp, ev)
	w.Raw(st.msg)
	if ev.GetService() == "" {
		w.Str("service", DefaultService)
	}
	w.Str("audit-id", ev.GetId())
	auditevent.AppendAttributesWithoutTimestamp(w, ev)
	if extra := ev.GetExtra(); len(extra) > 0 {
		w.Key("extra")
		st.tmp = appendExtra(w, st.tmp, extra)
	}
	auditevent.AppendTimestampMember(w, ev)
	out := append(w.Bytes(), '}')
	if n := len(out) - start; n > MaxEntryBytes {
		return dst[:start], &sink.SendError{Class: sink.Permanent, Err: &RejectError{
			Reason:  ReasonEntryTooLarge,
			Message: fmt.Sprintf("log entry is %d bytes, over Datadog's %d-byte limit", n, MaxEntryBytes),
		}}
	}
	return out, nil
}

// appendExtra writes the extra attributes as an object with sorted keys, as
// the event's JSON form does (empty values kept). tmp is scratch space,
// returned for reuse.
func appendExtra(w *auditevent.ObjectWriter, tmp []byte, extra map[string]string) []byte {
	var arr [16]string
	keys := arr[:0]
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	x := w.Object()
	for _, k := range keys {
		x.Key(k)
		tmp = auditevent.AppendString(tmp[:0], extra[k])
		x.Raw(tmp)
	}
	w.End(x)
	return tmp
}

// appendTags writes the comma-separated tags, already safe inside a JSON
// string, to dst.
func (e *Encoder) appendTags(dst []byte, ev *auditlogv1.AuditEvent) []byte {
	ctx := ev.GetTarget().GetContext()
	values := [6]string{
		ctx.GetWorkspace().GetDisplayName(),
		ctx.GetEnvironment().GetDisplayName(),
		ctx.GetWorkspace().GetId(),
		ev.GetActor().GetEmail(),
		ev.GetRequest().GetAction(),
		ctx.GetEnvironment().GetId(),
	}
	first := len(dst)
	for i, v := range values {
		if v == "" {
			continue
		}
		mark := len(dst)
		if mark > first {
			dst = append(dst, ',')
		}
		name := e.names[i]
		before := len(dst)
		dst = append(dst, name...)
		dst = appendTagValue(dst, v, MaxTagBytes-len(name))
		if len(dst)-before == len(name) { // nothing left after sanitising
			dst = dst[:mark]
		}
	}
	if len(dst) > first {
		dst = append(dst, ',')
	}
	return append(dst, e.srcTag...)
}

// appendTagValue appends v lower-cased, with ',', '"', '\', control
// characters and invalid UTF-8 replaced by '_', cut to at most limit bytes
// on a character boundary. Leading and trailing spaces are dropped.
func appendTagValue(dst []byte, v string, limit int) []byte {
	end := len(dst) + max(limit, 0)
	for len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	for len(v) > 0 && v[len(v)-1] == ' ' {
		v = v[:len(v)-1]
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c < 0x20 || c == 0x7f || c == ',' || c == '"' || c == '\\':
				c = '_'
			}
			if len(dst)+1 > end {
				return dst
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case r == utf8.RuneError && size == 1, unicode.IsControl(r), r == '\u2028', r == '\u2029':
			r = '_'
		default:
			r = unicode.ToLower(r)
		}
		if len(dst)+utf8.RuneLen(r) > end {
			return dst
		}
		dst = utf8.AppendRune(dst, r)
		i += size
	}
	return dst
}

// appendMessage writes the log's message as a JSON string to dst: a short
// summary such as "jane@example.com discard-run runs run-123: SUCCESS". tmp
// is scratch space, returned for reuse.
func appendMessage(dst, tmp []byte, ev *auditlogv1.AuditEvent) ([]byte, []byte) {
	who := ev.GetActor().GetEmail()
	if who == "" {
		who = ev.GetActor().GetId()
	}
	parts := [4]string{who, ev.GetRequest().GetAction(), ev.GetTarget().GetType(), ev.GetTarget().GetId()}
	dst = append(dst, '"')
	open := len(dst)
	for _, p := range parts {
		if p == "" {
			continue
		}
		if len(dst) > open {
			dst = append(dst, ' ')
		}
		dst, tmp = appendEscaped(dst, tmp, p)
	}
	if r := ev.GetOutcome().GetResult(); r != "" {
		if len(dst) > open {
			dst = append(dst, ':', ' ')
		}
		dst, tmp = appendEscaped(dst, tmp, r)
	}
	if len(dst) == open {
		dst = append(dst, "audit event"...)
	}
	return append(dst, '"'), tmp
}

// appendEscaped appends s escaped for the inside of a JSON string.
func appendEscaped(dst, tmp []byte, s string) ([]byte, []byte) {
	tmp = auditevent.AppendString(tmp[:0], s)
	return append(dst, tmp[1:len(tmp)-1]...), tmp
}
