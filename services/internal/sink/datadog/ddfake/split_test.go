package ddfake

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// splitArray must cut exactly where encoding/json does, whatever the
// elements hold (brackets and quotes inside strings, nesting, scalars).
func TestSplitArrayMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		`[]`,
		` [ ] `,
		`[{}]`,
		`[{"a":"b"},{"c":[1,2,{"d":"]"}]}]`,
		`[ {"s":"a,b\"}]{["} , {"e":"\\"} ]`,
		`[1, "x", null, true, {"k":{"n":[[],[{}]]}}, [3,4] ]`,
		"[\n\t{\"msg\":\"line\\nbreak\"}\r\n]",
	}
	for _, c := range cases {
		var want []json.RawMessage
		if err := json.Unmarshal([]byte(c), &want); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		got := splitArray(bytes.TrimLeft([]byte(c), " \t\r\n"))
		if len(got) != len(want) {
			t.Fatalf("%s: %d elements, want %d", c, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: element %d = %s, want %s", c, i, got[i], want[i])
			}
		}
	}
}

// splitValidArray takes exactly the bodies json.Valid accepts that hold an
// array, with the elements splitArray finds; it declines everything else.
func FuzzSplitValidArray(f *testing.F) {
	for _, s := range []string{
		`[]`, ` [ ] `, "\t[\n]\r\n", `[{}]`, `[{"a":"b"},{"c":[1,2,{"d":"]"}]}]`,
		`[ {"s":"a,b\"}]{["} , {"e":"\\"} ]`, `[1, "x", null, true, false, {"k":{"n":[[],[{}]]}}, [3,4] ]`,
		"[\n\t{\"msg\":\"line\\nbreak\"}\r\n]", `[{"u":"\u00e9\uD83D\uDD11\/"}]`, "[\"\xff\xfe\x80\"]",
		`[0, -0, 1.5, -1.5e10, 2E-3, 1e+2, 10, 0.0]`,
		// Invalid or not arrays.
		``, ` `, `{}`, `"x"`, `1`, `[`, `]`, `[,]`, `[1,]`, `[1 2]`, `[{]`, `[{"a"}]`, `[{"a":}]`, `[{"a":1,}]`,
		`[{1:2}]`, `[] []`, `[]x`, `[01]`, `[1.]`, `[.5]`, `[1e]`, `[-]`, `[+1]`, `[tru]`, `[nul]`, `[True]`,
		`["\x"]`, `["\u12"]`, `["\u12G4"]`, "[\"a\x01b\"]", "[\"tab\there\"]", `["unterminated]`, `["\`,
		"\xef\xbb\xbf[]", "[]\x00", "\u00a0[]",
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		"[" + strings.Repeat(`{"a":`, 9998) + "1" + strings.Repeat("}", 9998) + "]",
		"[" + strings.Repeat(`{"a":`, 9999) + "1" + strings.Repeat("}", 9999) + "]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		items, ok := splitValidArray(b)
		t0 := bytes.TrimLeft(b, " \t\r\n")
		want := json.Valid(b) && len(t0) > 0 && t0[0] == '['
		if ok != want {
			t.Fatalf("splitValidArray(%q) ok = %v; json.Valid and an array: %v", b, ok, want)
		}
		if !ok {
			return
		}
		wantItems := splitArray(t0)
		if len(items) != len(wantItems) {
			t.Fatalf("splitValidArray(%q): %d elements, splitArray %d", b, len(items), len(wantItems))
		}
		for i := range items {
			if !bytes.Equal(items[i], wantItems[i]) {
				t.Fatalf("splitValidArray(%q): element %d = %q, splitArray %q", b, i, items[i], wantItems[i])
			}
		}
	})
}
