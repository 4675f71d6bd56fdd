package auditevent_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"google.golang.org/protobuf/proto"
)

// fastSeeds are inputs for FuzzDecodeJSONFastMatchesReference besides the
// seed attributes and jsonSeeds: the corners where the fast path must either
// decode exactly as encoding/json does or decline.
var fastSeeds = []string{
	// Whitespace and empty objects.
	" \t\r\n{ \t\r\n} \t\r\n",
	`{"actor":{},"request":{},"outcome":{},"target":{"context":{"account":{},"environment":{},"workspace":{}}},"extra":{}}`,
	`{"actor":{"access-token":{}}}`,
	"{\"id\" : \"a\" ,\n\"hostname\"\t:\r\"h\" }",
	"{\"id\":\"a\"}\u00a0",
	"{\"id\":\"a\"}\x00",

	// Escapes.
	`{"hostname":"a\"b\\c\/d\be\ff\ng\rh\ti"}`,
	`{"hostname":"\u00e9\u00E9\u2028\u2029\u0000\u001f\u007f\uffff\ufffd"}`,
	`{"hostname":"\ud83d\udd11"}`,
	`{"hostname":"\ud800"}`,
	`{"hostname":"\ud800x"}`,
	`{"hostname":"\udc00\ud800"}`,
	`{"hostname":"\ud800\u0041"}`,
	`{"hostname":"\ud800\ud800\udc00"}`,
	`{"hostname":"\ud800\\u0041"}`,
	`{"hostname":"\ud800\"}`,
	`{"hostname":"\ud800\udc0"}`,
	`{"hostname":"\x"}`,
	`{"hostname":"\u12"}`,
	`{"hostname":"\u12G4"}`,
	`{"hostname":"\'"}`,
	`{"hostname":"\`,
	`{"hostname":"\u`,
	`{"extra":{"k\u0000\n":"v\"\u00e9","\ud83d\udd11":"\udbff\udfff"}}`,
	`{"i\u0064":"a"}`,
	`{"actor":{"access-token":{"token":"\u0041BCDEFGHIJKLMNOP\n"}}}`,
	"{\"hostname\":\"tab\there\"}",
	"{\"hostname\":\"nl\nhere\"}",
	"{\"hostname\":\"del\x7fhere\"}",

	// Unicode and invalid UTF-8.
	`{"hostname":"café ключ 日本 🔑","extra":{"ключ":"日本"}}`,
	"{\"hostname\":\"\xed\xa0\x80\"}",
	"{\"hostname\":\"\xf4\x90\x80\x80\"}",
	"{\"hostname\":\"\xc0\xaf\"}",
	"{\"extra\":{\"\xff\":\"x\"}}",
	"{\"id\":\"a\"}\xff",
	"\xef\xbb\xbf{}",

	// Nulls.
	`{"id":null}`,
	`{"schema-version":null}`,
	`{"actor":null}`,
	`{"actor":{"access-token":null}}`,
	`{"outcome":{"status-code":null}}`,
	`{"target":{"context":null}}`,
	`{"target":{"context":{"account":null}}}`,
	`{"timestamp":null}`,
	`{"extra":null}`,
	`{"extra":{"a":null}}`,
	`{"id":"a","id":null}`,

	// Keys in other case, other spellings and unknown keys.
	`{"ID":"a"}`,
	`{"Hostname":"h","SERVICE":"s"}`,
	`{"actor":{"Email":"e","access-TOKEN":{"Token":"t"}}}`,
	`{"target":{"Context":{"Account":{"Id":"a","DISPLAY-NAME":"d"}}}}`,
	"{\"\u017fervice\":\"s\"}",
	"{\"actor\":{\"access-to\u212aen\":{\"token\":\"x\"}}}",
	`{"schema_version":1}`,
	`{"unknown":1}`,
	`{"unknown":{"a":[1,2,{"b":null}],"c":"d"},"id":"a"}`,
	`{"actor":{"x":{}}}`,
	`{"target":{"context":{"account":{"id":"a","region":"eu"}}}}`,
	`{"":""}`,

	// Duplicate keys.
	`{"id":"a","id":"b"}`,
	`{"actor":{"id":"a"},"actor":{"type":"b"}}`,
	`{"actor":{"id":"a","id":"b"}}`,
	`{"extra":{"a":"1"},"extra":{"b":"2"}}`,
	`{"extra":{"a":"1","a":"2"}}`,
	`{"timestamp":"2024-02-16T12:58:38","timestamp":"2024-02-16T12:58:39"}`,
	`{"outcome":{"status-code":1,"status-code":2}}`,
	`{"target":{"context":{"account":{"id":"a"},"account":{"display-name":"b"}}}}`,
	`{"id":"a","ID":"b"}`,

	// Numbers.
	`{"outcome":{"status-code":0}}`,
	`{"outcome":{"status-code":-0}}`,
	`{"outcome":{"status-code":2.0}}`,
	`{"outcome":{"status-code":1e2}}`,
	`{"outcome":{"status-code":1E2}}`,
	`{"outcome":{"status-code":1.0e0}}`,
	`{"outcome":{"status-code":2147483647}}`,
	`{"outcome":{"status-code":2147483648}}`,
	`{"outcome":{"status-code":-2147483648}}`,
	`{"outcome":{"status-code":-2147483649}}`,
	`{"outcome":{"status-code":99999999999999999999}}`,
	`{"outcome":{"status-code":00}}`,
	`{"outcome":{"status-code":01}}`,
	`{"outcome":{"status-code":-}}`,
	`{"outcome":{"status-code":- 1}}`,
	`{"outcome":{"status-code":+1}}`,
	`{"outcome":{"status-code":.5}}`,
	`{"outcome":{"status-code":true}}`,
	`{"schema-version":0}`,
	`{"schema-version":-0}`,
	`{"schema-version":1.0}`,
	`{"schema-version":4294967295}`,
	`{"schema-version":4294967296}`,
	`{"schema-version":9999999999}`,
	`{"schema-version":10000000000}`,
	`{"schema-version":2,"schema-version":1}`,

	// Wrong types.
	`{"id":1}`,
	`{"id":true}`,
	`{"id":[]}`,
	`{"id":{}}`,
	`{"actor":"x"}`,
	`{"actor":[]}`,
	`{"actor":{"access-token":"x"}}`,
	`{"extra":[]}`,
	`{"extra":"x"}`,
	`{"extra":{"a":1}}`,
	`{"extra":{"a":{}}}`,
	`{"timestamp":1708088318}`,
	`{"timestamp":{}}`,
	`{"target":{"context":[]}}`,

	// Timestamps.
	`{"timestamp":"2024-02-16T12:58:38"}`,
	`{"timestamp":"2024-02-16T12:58:38Z"}`,
	`{"timestamp":"2024-02-16T12:58:38.5"}`,
	`{"timestamp":"2024-02-16T12:58:38.577846Z"}`,
	`{"timestamp":"2024-02-16T12:58:38.123456789+02:00"}`,
	`{"timestamp":"2024-02-16T12:58:38.1234567891"}`,
	`{"timestamp":"2024-02-16T12:58:38.1234567891Z"}`,
	`{"timestamp":"2024-02-16T12:58:38,5"}`,
	`{"timestamp":"2024-02-16T12:58:38."}`,
	`{"timestamp":"2024-02-16T12:58:38-23:59"}`,
	`{"timestamp":"2024-02-16T12:58:38+24:00"}`,
	`{"timestamp":"2024-02-16T12:58:38+02:60"}`,
	`{"timestamp":"2024-02-16T12:58:38+0200"}`,
	`{"timestamp":"2024-02-16T12:58:38z"}`,
	`{"timestamp":"2024-02-16t12:58:38"}`,
	`{"timestamp":"2024-02-16 12:58:38"}`,
	`{"timestamp":"2024-02-29T00:00:00"}`,
	`{"timestamp":"2023-02-29T00:00:00"}`,
	`{"timestamp":"2100-02-29T00:00:00"}`,
	`{"timestamp":"2000-02-29T00:00:00"}`,
	`{"timestamp":"2024-04-31T00:00:00"}`,
	`{"timestamp":"2024-13-01T00:00:00"}`,
	`{"timestamp":"2024-00-01T00:00:00"}`,
	`{"timestamp":"2024-01-00T00:00:00"}`,
	`{"timestamp":"2024-02-16T24:00:00"}`,
	`{"timestamp":"2024-02-16T12:60:00"}`,
	`{"timestamp":"2024-02-16T12:58:60"}`,
	`{"timestamp":"2024-2-16T12:58:38"}`,
	`{"timestamp":"2024-02-16T1:58:38"}`,
	`{"timestamp":"2024-02-16T12:58:38 "}`,
	`{"timestamp":" 2024-02-16T12:58:38"}`,
	`{"timestamp":"+2024-02-16T12:58:38"}`,
	`{"timestamp":"0000-01-01T00:00:00"}`,
	`{"timestamp":"0001-01-01T00:00:00"}`,
	`{"timestamp":"0001-01-01T00:00:00+00:01"}`,
	`{"timestamp":"0001-01-01T00:00:00-00:01"}`,
	`{"timestamp":"9999-12-31T23:59:59.999999999"}`,
	`{"timestamp":"9999-12-31T23:59:59-00:01"}`,
	`{"timestamp":"9999-12-31T23:59:59+00:01"}`,
	`{"timestamp":"1970-01-01T00:00:00"}`,
	`{"timestamp":"1969-12-31T23:59:59.999999999"}`,
	`{"timestamp":"2024-02-16T12:58:38\u002e5Z"}`,
	`{"timestamp":""}`,
	`{"timestamp":"yesterday"}`,

	// Malformed and trailing data.
	`{`,
	`{"`,
	`{"id"`,
	`{"id":`,
	`{"id":"a"`,
	`{"id":"a",`,
	`{"id":"a",}`,
	`{,"id":"a"}`,
	`{"id":"a" "hostname":"h"}`,
	`{"id" "a"}`,
	`{"id"::"a"}`,
	`{id:"a"}`,
	`{'id':'a'}`,
	`{"id":"a"}}`,
	`{"id":"a"}]`,
	`{"id":"a"},`,
	`{"id":"a"} {}`,
	`{"id":"a"} x`,
	`{"actor":{"id":"a"}`,
	`{"actor":{"id":"a",}}`,
	`{"extra":{"a":"b",}}`,
	`{"extra":{"a"}}`,
	`{"extra":{"a":"b" "c":"d"}}`,
	`{"extra":{a:"b"}}`,
	`{"extra":{"a":"b"}`,
	`{"outcome":{"status-code":1`,
	`{"outcome":{"status-code":1}`,
	`[{}]`,
	`"{}"`,
	`{}{}`,
	"\u00a0{}",
}

// fastSeedInputs returns every seed of FuzzDecodeJSONFastMatchesReference.
func fastSeedInputs(tb testing.TB) [][]byte {
	tb.Helper()
	seed := seedAttributes(tb)
	inputs := [][]byte{seed, benchJSON(tb), []byte(strings.ReplaceAll(string(seed), "\n", ""))}
	// The seed cut short at every tenth byte.
	for n := 0; n < len(seed); n += 10 {
		inputs = append(inputs, seed[:n])
	}
	for _, s := range jsonSeeds {
		inputs = append(inputs, []byte(s))
	}
	for _, s := range fastSeeds {
		inputs = append(inputs, []byte(s))
	}
	return inputs
}

// benchJSON is BenchmarkDecodeJSON's input: the prepared seed event with
// extra attributes.
func benchJSON(tb testing.TB) []byte {
	tb.Helper()
	ev := seedEvent(tb)
	if err := auditevent.Prepare(ev, time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC)); err != nil {
		tb.Fatal(err)
	}
	ev.Extra = map[string]string{}
	for i := range 4 {
		ev.Extra[fmt.Sprintf("attribute-%d", i)] = "value of extra attribute"
	}
	return auditevent.EncodeJSON(ev)
}

// DecodeJSON tries a fast path first; whatever it returns, event or error,
// must be what the encoding/json reference returns.
func FuzzDecodeJSONFastMatchesReference(f *testing.F) {
	for _, in := range fastSeedInputs(f) {
		f.Add(in, true)
		f.Add(in, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, disallowUnknown bool) {
		checkFastMatchesReference(t, data, auditevent.DecodeOptions{DisallowUnknownFields: disallowUnknown})
	})
}

func checkFastMatchesReference(t *testing.T, data []byte, opts auditevent.DecodeOptions) {
	t.Helper()
	want, wantErr := auditevent.DecodeJSONReference(data, opts)
	got, gotErr := auditevent.DecodeJSON(data, opts)
	if wantErr != nil {
		if gotErr == nil {
			t.Fatalf("DecodeJSON(%q) = %v; the reference fails with %v", data, got, wantErr)
		}
		gotFE, wantFE := asFieldError(t, gotErr), asFieldError(t, wantErr)
		if !reflect.DeepEqual(gotFE, wantFE) {
			t.Fatalf("DecodeJSON(%q) error\n got %#v\nwant %#v", data, gotFE, wantFE)
		}
		if fast, ok := auditevent.DecodeJSONFast(data); ok {
			t.Fatalf("fast path took %q (giving %v); the reference fails with %v", data, fast, wantErr)
		}
		return
	}
	if gotErr != nil {
		t.Fatalf("DecodeJSON(%q) fails with %v; the reference gives %v", data, gotErr, want)
	}
	checkSameEvent(t, data, got, want)
	if fast, ok := auditevent.DecodeJSONFast(data); ok {
		checkSameEvent(t, data, fast, want)
	}
}

// FuzzDecodeJSONFastStructured builds whole events from fuzzed values, so
// most inputs are well-formed and the fast path's decoding, not only its
// declining, is compared with the reference: strings written raw, escaped
// by encoding/json or with every non-ASCII rune as \u escapes (surrogate
// pairs included), keys in varying order with varying whitespace, numbers
// and timestamps as given.
func FuzzDecodeJSONFastStructured(f *testing.F) {
	f.Add("user-1", "Mozilla/5.0 (X11)", "acc-1", int64(202), "2024-02-16T12:58:38.577846", uint32(0))
	f.Add("caf\u00e9 \U0001f511", "a\"b\\c\n", "\u2028", int64(-1), "2024-02-16T12:58:38Z", uint32(0x5555))
	f.Add("\xff", "\xed\xa0\x80", "", int64(2147483648), "2024-02-30T00:00:00", uint32(0xaaaa))
	f.Add("<&>", "\x00\x1f\x7f", "\ufffd", int64(0), "9999-12-31T23:59:59-01:00", uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, a, b, c string, n int64, ts string, flags uint32) {
		vals := []string{a, b, c}
		str := func(i int) string {
			v := vals[i%len(vals)]
			switch (flags >> (2 * (i % 8))) & 3 {
			case 0:
				return `"` + v + `"`
			case 1:
				return quoteUnicodeEscapes(v)
			default:
				out, _ := json.Marshal(v)
				return string(out)
			}
		}
		space := func(i int) string { return []string{"", " ", "\n\t", "\r\n  "}[(flags>>(i%16))&3] }
		obj := func(members ...string) string {
			if flags&(1<<20) != 0 {
				slices.Reverse(members)
			}
			return "{" + space(1) + strings.Join(members, ","+space(2)) + space(3) + "}"
		}
		member := func(k, v string) string { return `"` + k + `"` + space(4) + ":" + space(5) + v }
		num := strconv.FormatInt(n, 10)
		ev := obj(
			member("id", str(0)),
			member("schema-version", num),
			member("actor", obj(member("id", str(1)), member("type", str(2)), member("email", str(3)),
				member("access-token", obj(member("type", str(4)), member("token", str(5)))))),
			member("request", obj(member("ip-address", str(6)), member("action", str(7)), member("id", str(8)),
				member("source", str(9)), member("user-agent", str(10)))),
			member("hostname", str(11)),
			member("service", str(12)),
			member("outcome", obj(member("result", str(13)), member("status-code", num))),
			member("target", obj(member("id", str(14)), member("type", str(15)), member("display-name", str(16)),
				member("context", obj(
					member("account", obj(member("id", str(17)), member("display-name", str(18)))),
					member("environment", obj(member("id", str(19)))),
					member("workspace", obj(member("display-name", str(20)))))))),
			member("timestamp", `"`+ts+`"`),
			member("extra", obj(member("k", str(21)), member(a, str(22)), member(b, str(23)))),
		)
		for _, opts := range []auditevent.DecodeOptions{strict, {}} {
			checkFastMatchesReference(t, []byte(ev), opts)
		}
	})
}

// quoteUnicodeEscapes writes s as a JSON string with every byte outside
// printable ASCII, and every quote and backslash, as \u escapes: runes
// above U+FFFF as surrogate pairs, invalid bytes as lone surrogates.
func quoteUnicodeEscapes(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f && r != '"' && r != '\\':
			b.WriteRune(r)
		case r == utf8.RuneError:
			b.WriteString(`\ud800`)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04X`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// checkSameEvent asserts got equals want, including which message fields
// are set to empty messages and whether extra is an empty map or nil.
func checkSameEvent(t *testing.T, data []byte, got, want *auditlogv1.AuditEvent) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("decoding %q:\n got %v\nwant %v", data, got, want)
	}
	if (got.Extra == nil) != (want.Extra == nil) {
		t.Fatalf("decoding %q: extra is %#v, the reference gives %#v", data, got.Extra, want.Extra)
	}
}

// The fast path must actually take the common events, or DecodeJSON is as
// slow as before with every test still passing.
func TestDecodeJSONFastTakesCommonEvents(t *testing.T) {
	inputs := [][]byte{
		seedAttributes(t),
		benchJSON(t),
		[]byte(`{}`),
		[]byte(`{"hostname":"a\"b\\c\u00e9\n\ud83d\udd11","extra":{"k\u0000":"\u2028"}}`),
		[]byte(`{"timestamp":"2024-02-16T12:58:38.577846+02:00","outcome":{"status-code":-1},"schema-version":1}`),
		// Forms ParseTimestamp reads but the fast timestamp parser leaves to it.
		[]byte(`{"timestamp":"2024-02-16T12:58:38,5"}`),
		[]byte(`{"timestamp":"2024-02-16T12:58:38.1234567891Z"}`),
	}
	for _, in := range inputs {
		fast, ok := auditevent.DecodeJSONFast(in)
		if !ok {
			t.Errorf("fast path declined %s", in)
			continue
		}
		want, err := auditevent.DecodeJSONReference(in, strict)
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		checkSameEvent(t, in, fast, want)
	}
}

// The seed token gets a string of its own, not one shared with the other
// fields, so masking it drops the secret.
func TestDecodeJSONFastMasksToken(t *testing.T) {
	in := []byte(`{"actor":{"id":"u","access-token":{"type":"session","token":"0123456789abcdefghij"}},"hostname":"h"}`)
	ev, ok := auditevent.DecodeJSONFast(in)
	if !ok {
		t.Fatal("fast path declined the event")
	}
	auditevent.MaskEvent(ev)
	if got := ev.GetActor().GetAccessToken().GetToken(); got != "...efghij" {
		t.Errorf("masked token = %q", got)
	}
}

// DecodeJSONObject decodes the object at the start of its input exactly as
// DecodeJSON decodes that object alone, whatever follows it, and takes
// every object the fast path takes.
func FuzzDecodeJSONObject(f *testing.F) {
	for _, in := range fastSeedInputs(f) {
		f.Add(in, []byte(`,{"id":"next"}]`))
		f.Add(in, []byte(" \n"))
		f.Add(in, []byte(`}"x`))
		f.Add(in, []byte{})
	}
	f.Fuzz(func(t *testing.T, data, rest []byte) {
		in := append(slices.Clip(data), rest...)
		ev, n, ok := auditevent.DecodeJSONObject(in)
		if _, fast := auditevent.DecodeJSONFast(data); fast {
			// data is one object with JSON whitespace around it.
			want := len(strings.TrimRight(string(data), " \t\r\n"))
			if !ok || n != want {
				t.Fatalf("DecodeJSONObject(%q) = n %d, ok %v; the fast path takes %q, so want n %d", in, n, ok, data, want)
			}
		}
		if !ok {
			if ev != nil || n != 0 {
				t.Fatalf("DecodeJSONObject(%q) declined with n %d and event %v", in, n, ev)
			}
			return
		}
		if n < 2 || n > len(in) || in[n-1] != '}' {
			t.Fatalf("DecodeJSONObject(%q) = n %d: not the end of an object", in, n)
		}
		for _, opts := range []auditevent.DecodeOptions{strict, {}} {
			want, err := auditevent.DecodeJSONReference(in[:n], opts)
			if err != nil {
				t.Fatalf("DecodeJSONObject(%q) took %q, which the reference rejects: %v", in, in[:n], err)
			}
			checkSameEvent(t, in[:n], ev, want)
		}
	})
}

// Objects in a row, as in a JSON array, are decoded one after the other.
func TestDecodeJSONObjectInSequence(t *testing.T) {
	one, two := seedAttributes(t), benchJSON(t)
	in := slices.Concat([]byte("  "), one, []byte(" ,\n"), two, []byte("]"))
	ev, n, ok := auditevent.DecodeJSONObject(in)
	if !ok || n != 2+len(bytesTrimSpace(one)) {
		t.Fatalf("first object: n %d, ok %v; want n %d", n, ok, 2+len(bytesTrimSpace(one)))
	}
	want, err := auditevent.DecodeJSON(one, strict)
	if err != nil {
		t.Fatal(err)
	}
	checkSameEvent(t, one, ev, want)
	rest := in[n+len(" ,\n"):]
	if ev, n, ok = auditevent.DecodeJSONObject(rest); !ok || n != len(rest)-1 {
		t.Fatalf("second object: n %d, ok %v; want n %d", n, ok, len(rest)-1)
	}
	if want, err = auditevent.DecodeJSON(two, strict); err != nil {
		t.Fatal(err)
	}
	checkSameEvent(t, two, ev, want)
}

func bytesTrimSpace(b []byte) []byte { return []byte(strings.TrimSpace(string(b))) }

func TestParseTimestampFastMatchesParseTimestamp(t *testing.T) {
	for _, s := range timestampSeeds {
		checkTimestampFast(t, s)
	}
}

func FuzzParseTimestampFast(f *testing.F) {
	for _, s := range timestampSeeds {
		f.Add(s)
	}
	f.Fuzz(checkTimestampFast)
}

var timestampSeeds = []string{
	"2024-02-16T12:58:38.577846", "2024-02-16T12:58:38Z", "2024-02-16T12:58:38.5+02:00", "2024-02-16T12:58:38-23:59",
	"2024-02-16T12:58:38.123456789", "2024-02-16T12:58:38.1234567891", "2024-02-16T12:58:38,5", "2024-02-16T12:58:38.",
	"2024-02-29T00:00:00", "2023-02-29T00:00:00", "2100-02-29T00:00:00", "2000-02-29T23:59:59", "2024-04-31T00:00:00",
	"0000-12-31T23:59:59+00:00", "0001-01-01T00:00:00", "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59.999999999",
	"9999-12-31T23:59:59-00:01", "1969-12-31T23:59:59.999999999Z", "2024-02-16T24:00:00", "2024-02-16T12:58:60",
	"2024-02-16T12:58:38+24:00", "2024-02-16T12:58:38+00:60", "2024-02-16T12:58:38z", "2024-02-16t12:58:38", "",
}

func checkTimestampFast(t *testing.T, s string) {
	sec, nsec, ok := auditevent.ParseTimestampFast([]byte(s))
	if !ok {
		return
	}
	want, err := auditevent.ParseTimestamp(s)
	if err != nil {
		t.Fatalf("ParseTimestampFast(%q) = %d.%09d; ParseTimestamp fails: %v", s, sec, nsec, err)
	}
	if sec != want.Unix() || nsec != int32(want.Nanosecond()) {
		t.Fatalf("ParseTimestampFast(%q) = %d.%09d; ParseTimestamp gives %d.%09d", s, sec, nsec, want.Unix(), want.Nanosecond())
	}
}

// BenchmarkDecodeJSONReference is BenchmarkDecodeJSON's input through the
// encoding/json path alone, the cost of an event the fast path declines.
func BenchmarkDecodeJSONReference(b *testing.B) {
	data := benchJSON(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := auditevent.DecodeJSONReference(data, strict); err != nil {
			b.Fatal(err)
		}
	}
}
