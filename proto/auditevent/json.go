package auditevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The JSON shape mirrors the `attributes` object of the seed's example log,
// key for key. Field order here is the order Encode writes.
type jsonEvent struct {
	ID            string            `json:"id"`
	SchemaVersion uint32            `json:"schema-version"`
	Actor         *jsonActor        `json:"actor"`
	Request       *jsonRequest      `json:"request"`
	Hostname      string            `json:"hostname"`
	Service       string            `json:"service"`
	Outcome       *jsonOutcome      `json:"outcome"`
	Target        *jsonTarget       `json:"target"`
	Timestamp     *string           `json:"timestamp"`
	Extra         map[string]string `json:"extra"`
}

type jsonActor struct {
	ID          string           `json:"id"`
	Type        string           `json:"type"`
	Email       string           `json:"email"`
	AccessToken *jsonAccessToken `json:"access-token"`
}

type jsonAccessToken struct {
	Type  string `json:"type"`
	Token string `json:"token"`
}

type jsonRequest struct {
	IPAddress string `json:"ip-address"`
	Action    string `json:"action"`
	ID        string `json:"id"`
	Source    string `json:"source"`
	UserAgent string `json:"user-agent"`
}

type jsonOutcome struct {
	Result     string `json:"result"`
	StatusCode int32  `json:"status-code"`
}

type jsonTarget struct {
	ID          string       `json:"id"`
	Type        string       `json:"type"`
	DisplayName string       `json:"display-name"`
	Context     *jsonContext `json:"context"`
}

type jsonContext struct {
	Account     *jsonRef `json:"account"`
	Environment *jsonRef `json:"environment"`
	Workspace   *jsonRef `json:"workspace"`
}

type jsonRef struct {
	ID          string `json:"id"`
	DisplayName string `json:"display-name"`
}

// DecodeOptions says how strictly JSON is read.
type DecodeOptions struct {
	// DisallowUnknownFields rejects keys the schema does not know. Ingest sets
	// it so a typo such as "ip_address" is an error, not silently dropped data;
	// consumers leave it off so events from a newer schema still flow.
	DisallowUnknownFields bool
}

// DecodeJSON reads one event in its JSON form. It does not validate the
// result (see Validate) and does not assign an id or mask tokens (see Prepare).
// Errors are *FieldError values naming the offending field.
func DecodeJSON(data []byte, opts DecodeOptions) (*auditlogv1.AuditEvent, error) {
	// The fast path takes the usual, well-formed events; it declines the
	// rest, which the reference decoder answers with the exact error.
	if ev, ok := decodeJSONFast(data); ok {
		return ev, nil
	}
	return decodeJSONReference(data, opts)
}

// decodeJSONReference is DecodeJSON by encoding/json: the definition of what
// DecodeJSON returns, and the path for every input decodeJSONFast declines.
func decodeJSONReference(data []byte, opts DecodeOptions) (*auditlogv1.AuditEvent, error) {
	if !utf8.Valid(data) {
		return nil, &FieldError{Index: -1, Reason: ReasonInvalidUTF8, Message: fmt.Sprintf("event is not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(data))}
	}
	trimmed := bytes.Trim(data, jsonSpace)
	if len(trimmed) == 0 {
		return nil, &FieldError{Index: -1, Reason: ReasonMalformedJSON, Message: "event is empty"}
	}
	if trimmed[0] != '{' {
		return nil, &FieldError{Index: -1, Reason: ReasonWrongType, Message: "event must be a JSON object"}
	}
	var je jsonEvent
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if opts.DisallowUnknownFields {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(&je); err != nil {
		return nil, jsonFieldError(err, trimmed)
	}
	// Decoder.More is not enough here: it reports no more data before a
	// stray '}' or ']', so check the bytes after the object instead.
	if rest := trimmed[dec.InputOffset():]; len(bytes.TrimLeft(rest, jsonSpace)) > 0 {
		return nil, &FieldError{Index: -1, Reason: ReasonMalformedJSON, Message: fmt.Sprintf("unexpected data after the event object at offset %d", dec.InputOffset())}
	}
	return je.toProto()
}

// jsonSpace is the whitespace JSON allows between tokens.
const jsonSpace = " \t\r\n"

func jsonFieldError(err error, data []byte) *FieldError {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return &FieldError{
			Index:   -1,
			Field:   typeErr.Field,
			Reason:  ReasonWrongType,
			Message: fmt.Sprintf("%s: expected %s, got JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value),
		}
	case errors.As(err, &syntaxErr):
		return &FieldError{Index: -1, Reason: ReasonMalformedJSON, Message: fmt.Sprintf("malformed JSON at offset %d: %s", syntaxErr.Offset, strings.TrimPrefix(syntaxErr.Error(), "json: "))}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Index: -1, Reason: ReasonMalformedJSON, Message: "malformed JSON: unexpected end of input"}
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if name, ok := strings.CutPrefix(msg, "unknown field "); ok {
		// encoding/json names only the key; find its path in the event.
		if path, found := unknownFieldPath(data, eventSchema(), ""); found {
			name = path
		} else if n, err := strconv.Unquote(name); err == nil {
			name = n
		}
		return &FieldError{Index: -1, Field: name, Reason: ReasonUnknownField, Message: fmt.Sprintf("unknown field %q (see docs/record-format.md for the schema)", name)}
	}
	return &FieldError{Index: -1, Reason: ReasonMalformedJSON, Message: "malformed JSON: " + msg}
}

// schemaNode lists the JSON keys of one object of the event's JSON form;
// a nil child is a value the walk does not descend into.
type schemaNode map[string]schemaNode

// eventSchema is the key tree of jsonEvent, read from its struct tags.
var eventSchema = sync.OnceValue(func() schemaNode { return schemaOf(reflect.TypeFor[jsonEvent]()) })

func schemaOf(t reflect.Type) schemaNode {
	node := schemaNode{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		var child schemaNode
		if ft := f.Type; ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			child = schemaOf(ft.Elem())
		}
		node[name] = child
	}
	return node
}

// unknownFieldPath returns the path of the first key in the JSON object data
// that node does not know, matching keys the way encoding/json does (ASCII
// case-insensitively). It runs only after a strict decode failed, on input
// encoding/json has already found well-formed.
func unknownFieldPath(data []byte, node schemaNode, prefix string) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return "", false
		}
		name, child, known := node.lookup(key)
		if !known {
			return prefix + key, true
		}
		if child != nil {
			if path, found := unknownFieldPath(value, child, prefix+name+"."); found {
				return path, true
			}
		}
	}
	return "", false
}

func (n schemaNode) lookup(key string) (string, schemaNode, bool) {
	if child, ok := n[key]; ok {
		return key, child, true
	}
	for name, child := range n {
		if strings.EqualFold(name, key) {
			return name, child, true
		}
	}
	return "", nil, false
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int32", "uint32", "int", "int64":
		return "integer"
	case "ptr", "struct":
		return "object"
	case "map":
		return "object of strings"
	}
	return goKind
}

func (je *jsonEvent) toProto() (*auditlogv1.AuditEvent, error) {
	ev := &auditlogv1.AuditEvent{
		Id:            je.ID,
		SchemaVersion: je.SchemaVersion,
		Hostname:      je.Hostname,
		Service:       je.Service,
		Extra:         je.Extra,
	}
	if a := je.Actor; a != nil {
		ev.Actor = &auditlogv1.Actor{Id: a.ID, Type: a.Type, Email: a.Email}
		if t := a.AccessToken; t != nil {
			ev.Actor.AccessToken = &auditlogv1.AccessToken{Type: t.Type, Token: t.Token}
		}
	}
	if r := je.Request; r != nil {
		ev.Request = &auditlogv1.Request{IpAddress: r.IPAddress, Action: r.Action, Id: r.ID, Source: r.Source, UserAgent: r.UserAgent}
	}
	if o := je.Outcome; o != nil {
		ev.Outcome = &auditlogv1.Outcome{Result: o.Result, StatusCode: o.StatusCode}
	}
	if t := je.Target; t != nil {
		ev.Target = &auditlogv1.Target{Id: t.ID, Type: t.Type, DisplayName: t.DisplayName}
		if c := t.Context; c != nil {
			ev.Target.Context = &auditlogv1.Context{Account: c.Account.toProto(), Environment: c.Environment.toProto(), Workspace: c.Workspace.toProto()}
		}
	}
	if je.Timestamp != nil {
		ts, err := ParseTimestamp(*je.Timestamp)
		if err != nil {
			return nil, &FieldError{Index: -1, Field: "timestamp", Reason: ReasonBadTimestamp, Message: err.Error()}
		}
		ev.Timestamp = timestamppb.New(ts)
	}
	return ev, nil
}

func (r *jsonRef) toProto() *auditlogv1.Ref {
	if r == nil {
		return nil
	}
	return &auditlogv1.Ref{Id: r.ID, DisplayName: r.DisplayName}
}

// Layouts accepted for "timestamp": RFC 3339 with a zone, or the seed's form
// without one (read as UTC). Any number of fractional digits is kept.
const (
	layoutZoned = time.RFC3339Nano
	layoutLocal = "2006-01-02T15:04:05.999999999"
)

// ParseTimestamp reads an RFC 3339 timestamp; without a zone it is UTC.
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(layoutZoned, s)
	if err != nil {
		var errLocal error
		t, errLocal = time.Parse(layoutLocal, s)
		if errLocal != nil {
			return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339 (for example 2024-02-16T12:58:38.577846 or 2024-02-16T12:58:38.577Z)", truncate(s, 64))
		}
	}
	// Check the year in UTC: an offset can move a time at the edge of the
	// range out of it, where it could not be written back.
	t = t.UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("timestamp %q is outside years 0001-9999 UTC", truncate(s, 64))
	}
	return t, nil
}

// FormatTimestamp writes t the way the seed does: UTC without a zone suffix,
// microseconds when the time has them, nanoseconds only when it needs them.
func FormatTimestamp(t time.Time) string {
	return string(AppendTimestamp(nil, t))
}

// AppendTimestamp is FormatTimestamp appending to dst.
func AppendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	dst = t.AppendFormat(dst, "2006-01-02T15:04:05")
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1000 == 0:
		dst = append(dst, '.')
		dst = appendPadded(dst, ns/1000, 6)
	default:
		dst = append(dst, '.')
		dst = appendPadded(dst, ns, 9)
	}
	return dst
}

func appendPadded(dst []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}
