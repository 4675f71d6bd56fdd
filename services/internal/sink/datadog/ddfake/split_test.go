package ddfake

import (
	"bytes"
	"encoding/json"
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
