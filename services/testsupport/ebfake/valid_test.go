package ebfake

import (
	"encoding/json"
	"strings"
	"testing"
)

var objectSamples = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n","d":true,"e":false,"f":-0.5e+3}`,
	`{"a":"\ud83d\ude80"}`, `{"a":"x\"y"}`, `[]`, `"s"`, `1`, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`,
	`{"a":01}`, `{"a":1.}`, `{"a":tru}`, `{"a":"\x"}`, `{"a":"` + "\x01" + `"}`, `{"a":1} x`, `{"a":[1,]}`,
	`{"a":"\u12"}`, `{`, `{"a":{"b":{"c":[[[]]]}}}`, "{\"a\":\"\xff\"}", `{"a":1}{}`,
}

// The fake's validator agrees with encoding/json on objects.
func TestValidObjectAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range objectSamples {
		checkValid(t, s)
	}
	deep := strings.Repeat(`{"a":`, MaxDetailDepth) + "1" + strings.Repeat("}", MaxDetailDepth)
	if !validObject(deep) {
		t.Errorf("an object %d deep refused", MaxDetailDepth)
	}
	deeper := strings.Repeat(`{"a":`, MaxDetailDepth+1) + "1" + strings.Repeat("}", MaxDetailDepth+1)
	if validObject(deeper) {
		t.Errorf("an object %d deep accepted", MaxDetailDepth+1)
	}
}

func FuzzValidObject(f *testing.F) {
	for _, s := range objectSamples {
		f.Add(s)
	}
	f.Fuzz(checkValid)
}

func checkValid(t *testing.T, s string) {
	want := json.Valid([]byte(s)) && strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{") && strings.Count(s, "{")+strings.Count(s, "[") <= MaxDetailDepth
	if got := validObject(s); got != want {
		t.Fatalf("validObject(%q) = %v, encoding/json says %v", s, got, want)
	}
}
