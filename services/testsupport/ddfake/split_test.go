package ddfake

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// stringBodies are arrays of a string that puts each byte that matters to
// the eight-byte scan at each place of its first two words and at the
// very end, with and without an escape before it.
func stringBodies() []string {
	var out []string
	specials := []string{`"`, `\"`, `\\`, `\/`, `\n`, `\u00e9`, `\u12`, `\x`, `\`, "\x00", "\x1f", " ", "~", "\x7f",
		"\x80", "\xa2", "\xdc", "\xc3\xa9", "\xe6\x97", "\xff"}
	for _, sp := range specials {
		for n := 0; n <= 17; n++ {
			for _, pre := range []string{"", `\t`} {
				s := `"` + pre + strings.Repeat("a", n) + sp + strings.Repeat("b", 17-n) + `"`
				out = append(out, "["+s+"]", "["+s+`,"x"]`, "["+s, `[{`+s+`:1}]`)
			}
		}
	}
	return out
}

func TestSplitValidArrayStrings(t *testing.T) {
	for _, s := range stringBodies() {
		checkSplitValid(t, []byte(s))
	}
}

// splitValidArray takes exactly the bodies json.Valid accepts that hold an
// array, with the elements encoding/json and splitArray find; it declines
// everything else.
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
	for _, s := range stringBodies() {
		f.Add([]byte(s))
	}
	f.Fuzz(checkSplitValid)
}

func checkSplitValid(t *testing.T, b []byte) {
	items, ok := splitValidArray(b)
	t0 := bytes.TrimLeft(b, " \t\r\n")
	want := json.Valid(b) && len(t0) > 0 && t0[0] == '['
	if ok != want {
		t.Fatalf("splitValidArray(%q) ok = %v; json.Valid and an array: %v", b, ok, want)
	}
	if !ok {
		return
	}
	// Both cut where encoding/json does.
	var ref []json.RawMessage
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("json.Unmarshal(%q) into elements: %v", b, err)
	}
	if len(items) != len(ref) {
		t.Fatalf("splitValidArray(%q): %d elements, encoding/json %d", b, len(items), len(ref))
	}
	for i := range items {
		if !bytes.Equal(items[i], ref[i]) {
			t.Fatalf("splitValidArray(%q): element %d = %q, encoding/json %q", b, i, items[i], ref[i])
		}
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
}

// benchEntry is a log entry shaped as the forwarder sends them, about 1.6 KB.
func benchEntry(i int) string {
	return fmt.Sprintf(`{"ddsource":"scalr","ddtags":"scalr-workspace-name:demo-ws,scalr-environment-name:cs-m,scalr-workspace:ws-v0o370ouv5kbjmk9h,scalr-user-email:[email protected],scalr-action:discard-run,scalr-environment:org-sscctbkdgkdrqg0,source:scalr",`+
		`"message":"[email protected] discard-run runs run-v0o370pcff0e53: SUCCESS","audit-id":"bench-%08d",`+
		`"actor":{"id":"user-stp8qjepev3a123","access-token":{"type":"session","token":"...B6wifA"},"type":"user","email":"[email protected]"},`+
		`"request":{"ip-address":"69.206.111.123","action":"discard-run","id":"a3a473d725c730382558c25d52bd1234","source":"ui","user-agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36"},`+
		`"hostname":"docs.scalr.io","service":"audit-log","outcome":{"result":"SUCCESS","status-code":202},`+
		`"target":{"display-name":"run-v0o370pcff0e53123","context":{"environment":{"display-name":"CS-M","id":"org-sscctbkdgkdrqg0"},"workspace":{"display-name":"demo-ws","id":"ws-v0o370ouv5kbjmk9h"},"account":{"display-name":"docs","id":"acc-sscctbisjkl3123"}},"id":"run-v0o370pcff0e53","type":"runs"},`+
		`"timestamp":"2024-02-16T12:58:38.577846",`+
		`"extra":{"change-summary":"variables \"region\" and \"zone\" updated\nby the run's plan","client":"terraform/1.7.3 (+https://www.terraform.io) terraform-provider-scalr/1.9.0","note":"café über 日本 — ok","run-url":"https://docs.scalr.io/v2/e/org-sscctbkdgkdrqg0/workspaces/ws-v0o370ouv5kbjmk9h/runs/run-v0o370pcff0e53/","reason":"Discarded from the UI: the plan would replace the production database instance",`+
		`"trace":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}`, i)
}

// BenchmarkSplitValidArray scans a body of 100 typical entries; ns/entry is
// the cost per log entry.
func BenchmarkSplitValidArray(b *testing.B) {
	const n = 100
	var body bytes.Buffer
	body.WriteByte('[')
	for i := range n {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(benchEntry(i))
	}
	body.WriteByte(']')
	raw := body.Bytes()
	if items, ok := splitValidArray(raw); !ok || len(items) != n || !json.Valid(raw) {
		b.Fatalf("bench body refused: ok %v, %d items", ok, len(items))
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		splitValidArray(raw)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}
