package auditevent_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestDecodeJSONErrors(t *testing.T) {
	deepArrays := `{"extra":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`
	deepObjects := `{"unknown":` + strings.Repeat(`{"a":`, 100000) + `1` + strings.Repeat("}", 100000) + `}`
	tests := []struct {
		name   string
		in     string
		field  string
		reason string
	}{
		{"empty", ``, "", auditevent.ReasonMalformedJSON},
		{"whitespace only", " \n\t", "", auditevent.ReasonMalformedJSON},
		{"missing value", `{"id": }`, "", auditevent.ReasonMalformedJSON},
		{"single quotes", `{'id': 'x'}`, "", auditevent.ReasonMalformedJSON},
		{"trailing comma", `{"id":"x",}`, "", auditevent.ReasonMalformedJSON},
		{"truncated after value", `{"id":"x"`, "", auditevent.ReasonMalformedJSON},
		{"truncated in string", `{"id":"x`, "", auditevent.ReasonMalformedJSON},
		{"truncated nested", `{"actor":{"id":"x"}`, "", auditevent.ReasonMalformedJSON},
		{"open brace only", `{`, "", auditevent.ReasonMalformedJSON},
		{"status-code as string", `{"outcome":{"status-code":"202"}}`, "outcome.status-code", auditevent.ReasonWrongType},
		{"status-code fractional", `{"outcome":{"status-code":202.5}}`, "outcome.status-code", auditevent.ReasonWrongType},
		{"status-code exponent", `{"outcome":{"status-code":1e2}}`, "outcome.status-code", auditevent.ReasonWrongType},
		{"status-code overflows int32", `{"outcome":{"status-code":99999999999}}`, "outcome.status-code", auditevent.ReasonWrongType},
		{"actor as string", `{"actor":"x"}`, "actor", auditevent.ReasonWrongType},
		{"actor as array", `{"actor":[]}`, "actor", auditevent.ReasonWrongType},
		{"id as number", `{"id":7}`, "id", auditevent.ReasonWrongType},
		{"hostname as bool", `{"hostname":true}`, "hostname", auditevent.ReasonWrongType},
		{"negative schema-version", `{"schema-version":-1}`, "schema-version", auditevent.ReasonWrongType},
		{"schema-version as string", `{"schema-version":"1"}`, "schema-version", auditevent.ReasonWrongType},
		{"timestamp as number", `{"timestamp":1708088318}`, "timestamp", auditevent.ReasonWrongType},
		{"account id as number", `{"target":{"context":{"account":{"id":1}}}}`, "target.context.account.id", auditevent.ReasonWrongType},
		{"extra value as number", `{"extra":{"a":1}}`, "extra", auditevent.ReasonWrongType},
		{"extra as array", `{"extra":["a"]}`, "extra", auditevent.ReasonWrongType},
		{"unknown top-level field", `{"ip_address":"1.2.3.4"}`, "ip_address", auditevent.ReasonUnknownField},
		{"unknown nested field", `{"request":{"ip_address":"1.2.3.4"}}`, "request.ip_address", auditevent.ReasonUnknownField},
		{"unknown deep field", `{"target":{"id":"t","context":{"account":{"id":"a","name":"x"}}}}`, "target.context.account.name", auditevent.ReasonUnknownField},
		{"unknown field in access-token", `{"actor":{"access-token":{"token":"...abcdef","expires":1}}}`, "actor.access-token.expires", auditevent.ReasonUnknownField},
		{"unknown after known keys", `{"id":"a","actor":{"id":"u"},"request":{"action":"x","verb":"y"}}`, "request.verb", auditevent.ReasonUnknownField},
		{"unknown after case-folded key", `{"Actor":{"ID":"u","nickname":"x"}}`, "actor.nickname", auditevent.ReasonUnknownField},
		{"invalid UTF-8 in a value", "{\"id\":\"\xff\"}", "", auditevent.ReasonInvalidUTF8},
		{"invalid UTF-8 in a key", "{\"\xc3\":\"x\"}", "", auditevent.ReasonInvalidUTF8},
		{"truncated multi-byte rune", "{\"hostname\":\"caf\xc3\"}", "", auditevent.ReasonInvalidUTF8},
		{"array instead of object", `[{"id":"x"}]`, "", auditevent.ReasonWrongType},
		{"string instead of object", `"{\"id\":\"x\"}"`, "", auditevent.ReasonWrongType},
		{"number instead of object", `42`, "", auditevent.ReasonWrongType},
		{"null instead of object", `null`, "", auditevent.ReasonWrongType},
		{"second object", `{"id":"a"} {"id":"b"}`, "", auditevent.ReasonMalformedJSON},
		{"second object after newline", "{\"id\":\"a\"}\n{\"id\":\"b\"}", "", auditevent.ReasonMalformedJSON},
		{"trailing text", `{"id":"a"} x`, "", auditevent.ReasonMalformedJSON},
		{"stray closing brace", `{"id":"a"}}`, "", auditevent.ReasonMalformedJSON},
		{"stray closing bracket", `{"id":"a"}]`, "", auditevent.ReasonMalformedJSON},
		{"trailing comma after object", `{"id":"a"},`, "", auditevent.ReasonMalformedJSON},
		{"non-JSON space before object", "\u00a0{}", "", auditevent.ReasonWrongType},
		{"deeply nested arrays in extra", deepArrays, "", auditevent.ReasonMalformedJSON},
		{"deeply nested objects in unknown field", deepObjects, "", auditevent.ReasonMalformedJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := auditevent.DecodeJSON([]byte(tt.in), strict)
			if err == nil {
				t.Fatalf("DecodeJSON(%.80q) = %v, want an error", tt.in, ev)
			}
			checkFieldError(t, err, tt.field, tt.reason)
		})
	}
}

// Errors that are not about unknown fields are the same when decoding
// leniently; unknown fields are dropped.
func TestDecodeJSONLenient(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *auditlogv1.AuditEvent
	}{
		{"unknown top-level field", `{"hostname":"h","ip_address":"1.2.3.4"}`, &auditlogv1.AuditEvent{Hostname: "h"}},
		{"unknown nested field", `{"request":{"ip-address":"1.2.3.4","ip_address":"x"}}`,
			&auditlogv1.AuditEvent{Request: &auditlogv1.Request{IpAddress: "1.2.3.4"}}},
		{"unknown object field from a newer schema", `{"service":"s","session":{"id":"x","nested":[1,2,{"a":null}]}}`,
			&auditlogv1.AuditEvent{Service: "s"}},
		{"unknown deep field", `{"target":{"context":{"account":{"id":"a","region":"eu"}}}}`,
			&auditlogv1.AuditEvent{Target: &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: "a"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := auditevent.DecodeJSON([]byte(tt.in), strict)
			if fe := asFieldError(t, err); fe.Reason != auditevent.ReasonUnknownField {
				t.Errorf("strict DecodeJSON: %v, want reason %s", fe, auditevent.ReasonUnknownField)
			}
			ev, err := auditevent.DecodeJSON([]byte(tt.in), auditevent.DecodeOptions{})
			if err != nil {
				t.Fatalf("lenient DecodeJSON: %v", err)
			}
			if !proto.Equal(ev, tt.want) {
				t.Errorf("got %v, want %v", ev, tt.want)
			}
		})
	}

	// Everything else fails leniently too.
	for _, in := range []string{`{"outcome":{"status-code":"202"}}`, `[]`, `{"id":"a"}}`, "{\"id\":\"\xff\"}", `{"timestamp":"soon"}`} {
		if ev, err := auditevent.DecodeJSON([]byte(in), auditevent.DecodeOptions{}); err == nil {
			t.Errorf("lenient DecodeJSON(%q) = %v, want an error", in, ev)
		}
	}
}

func TestDecodeJSONValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *auditlogv1.AuditEvent
	}{
		{"empty object", `{}`, &auditlogv1.AuditEvent{}},
		{"surrounding JSON whitespace", " \r\n\t{\"id\":\"a\"}\n ", &auditlogv1.AuditEvent{Id: "a"}},
		{"nulls are absent", `{"id":null,"actor":null,"extra":null,"timestamp":null}`, &auditlogv1.AuditEvent{}},
		{"empty objects are present", `{"actor":{},"outcome":{}}`, &auditlogv1.AuditEvent{Actor: &auditlogv1.Actor{}, Outcome: &auditlogv1.Outcome{}}},
		{"escapes decoded", `{"hostname":"a\"b\\c\u00e9\n"}`, &auditlogv1.AuditEvent{Hostname: "a\"b\\cé\n"}},
		{"lone surrogate becomes U+FFFD", `{"hostname":"\ud800"}`, &auditlogv1.AuditEvent{Hostname: "\ufffd"}},
		{"negative status-code", `{"outcome":{"status-code":-1}}`, &auditlogv1.AuditEvent{Outcome: &auditlogv1.Outcome{StatusCode: -1}}},
		{"schema version", `{"schema-version":1}`, &auditlogv1.AuditEvent{SchemaVersion: 1}},
		{"extra with empty value", `{"extra":{"a":"","b":"x"}}`, &auditlogv1.AuditEvent{Extra: map[string]string{"a": "", "b": "x"}}},
		{"timestamp", `{"timestamp":"2024-02-16T12:58:38.577846"}`,
			&auditlogv1.AuditEvent{Timestamp: timestamppb.New(time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := auditevent.DecodeJSON([]byte(tt.in), strict)
			if err != nil {
				t.Fatalf("DecodeJSON(%q): %v", tt.in, err)
			}
			if !proto.Equal(ev, tt.want) {
				t.Errorf("DecodeJSON(%q) = %v, want %v", tt.in, ev, tt.want)
			}
		})
	}
}

func TestEncodeJSON(t *testing.T) {
	ts := timestamppb.New(time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC))
	tests := []struct {
		name string
		ev   *auditlogv1.AuditEvent
		want string
	}{
		{"empty event", &auditlogv1.AuditEvent{}, `{}`},
		{"field order and empty fields left out", &auditlogv1.AuditEvent{
			Extra:         map[string]string{"z": "1", "a": "", "m": "x"},
			Timestamp:     ts,
			Target:        &auditlogv1.Target{Id: "t", Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: "acc"}}},
			Outcome:       &auditlogv1.Outcome{Result: "SUCCESS"},
			Service:       "s",
			Hostname:      "h",
			Request:       &auditlogv1.Request{Action: "a"},
			Actor:         &auditlogv1.Actor{Id: "u", AccessToken: &auditlogv1.AccessToken{Token: "...abcdef"}},
			SchemaVersion: 1,
			Id:            "id1",
		}, `{"id":"id1","schema-version":1,"actor":{"id":"u","access-token":{"token":"...abcdef"}},"request":{"action":"a"},` +
			`"hostname":"h","service":"s","outcome":{"result":"SUCCESS"},"target":{"id":"t","context":{"account":{"id":"acc"}}},` +
			`"timestamp":"2024-02-16T12:58:38.577846","extra":{"a":"","m":"x","z":"1"}}`},
		{"empty messages kept", &auditlogv1.AuditEvent{Actor: &auditlogv1.Actor{}, Outcome: &auditlogv1.Outcome{}},
			`{"actor":{},"outcome":{}}`},
		{"status-code", &auditlogv1.AuditEvent{Outcome: &auditlogv1.Outcome{StatusCode: 202}}, `{"outcome":{"status-code":202}}`},
		{"epoch timestamp", &auditlogv1.AuditEvent{Timestamp: &timestamppb.Timestamp{}}, `{"timestamp":"1970-01-01T00:00:00"}`},
		{"escaped strings", &auditlogv1.AuditEvent{Hostname: "a\"b\n", Extra: map[string]string{"k\x00": "\u2028"}},
			`{"hostname":"a\"b\n","extra":{"k\u0000":"\u2028"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := auditevent.EncodeJSON(tt.ev)
			if string(got) != tt.want {
				t.Errorf("EncodeJSON:\n got %s\nwant %s", got, tt.want)
			}
			if app := auditevent.AppendJSON([]byte("prefix"), tt.ev); string(app) != "prefix"+tt.want {
				t.Errorf("AppendJSON = %s", app)
			}
			back, err := auditevent.DecodeJSON(got, strict)
			if err != nil {
				t.Fatalf("decode %s: %v", got, err)
			}
			if !proto.Equal(back, tt.ev) {
				t.Errorf("round trip changed the event:\n%v\n%v", tt.ev, back)
			}
		})
	}
}

func TestObjectWriter(t *testing.T) {
	w := auditevent.NewObjectWriter([]byte(`{`))
	w.Key("n")
	w.Raw([]byte(`1`))
	w.Str("skipped", "")
	w.Str("s", `q"`)
	w.Key("o")
	x := w.Object()
	x.Str("a", "b")
	x.Key("deeper")
	x.End(x.Object())
	w.End(x)
	w.Key("empty")
	w.End(w.Object())
	got := string(append(w.Bytes(), '}'))
	want := `{"n":1,"s":"q\"","o":{"a":"b","deeper":{}},"empty":{}}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "abc", `"abc"`},
		{"empty", "", `""`},
		{"quote", `a"b`, `"a\"b"`},
		{"backslash", `a\b`, `"a\\b"`},
		{"newline, return, tab", "\n\r\t", `"\n\r\t"`},
		{"NUL", "\x00", `"\u0000"`},
		{"other control chars", "\x01\x08\x0c\x1f", `"\u0001\u0008\u000c\u001f"`},
		{"DEL passes", "\x7f", "\"\x7f\""},
		{"no HTML escaping", "<a&b>", `"<a&b>"`},
		{"multi-byte", "café ключ 日本 🔑", `"café ключ 日本 🔑"`},
		{"line separator", "a\u2028b", `"a\u2028b"`},
		{"paragraph separator", "a\u2029b", `"a\u2029b"`},
		{"invalid byte", "a\xffb", `"a\ufffdb"`},
		{"truncated rune at end", "caf\xc3", `"caf\ufffd"`},
		{"each invalid byte replaced", "\xe2\x82", `"\ufffd\ufffd"`},
		{"surrogate encoded in UTF-8", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := auditevent.AppendString([]byte("x"), tt.in)
			if string(got) != "x"+tt.want {
				t.Errorf("AppendString(%q) = %s, want %s", tt.in, got[1:], tt.want)
			}
			if !json.Valid(got[1:]) {
				t.Errorf("AppendString(%q) = %s is not valid JSON", tt.in, got[1:])
			}
		})
	}
}

// AppendString must mean what encoding/json means for every string, valid
// UTF-8 or not.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	var all strings.Builder
	for i := 0; i < 0x80; i++ {
		all.WriteByte(byte(i))
	}
	inputs := []string{
		"", "abc", `"\`, all.String(), "\u2028\u2029", "\ufffd", "\xff\xfe", "a\xc3(b", "\xf0\x9f\x94",
		"\xf4\x90\x80\x80", "🔑\x80🔑", "</script>", strings.Repeat("é\x00", 100), "\u0085\u00a0\ufeff",
	}
	for _, in := range inputs {
		ours := auditevent.AppendString(nil, in)
		if !json.Valid(ours) {
			t.Errorf("AppendString(%q) = %s is not valid JSON", in, ours)
			continue
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(in); err != nil {
			t.Fatal(err)
		}
		var a, b string
		if err := json.Unmarshal(ours, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(buf.Bytes(), &b); err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("AppendString(%q) reads back as %q; encoding/json gives %q", in, a, b)
		}
	}
}
