package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// String agrees with encoding/json on where a string ends and whether it
// is valid, for strings and byte slices alike.
func FuzzString(f *testing.F) {
	for _, s := range []string{
		`""`, `"plain ascii text that runs past a word"`, `"a\"b"`, `"\\"`, `"\u00e9\u20AC"`, `"\u12G4"`,
		`"tab	inside"`, "\"nul\x00\"", "\"\x7f\x80\xff\"", `"cut`, `"\`, `"\u12`, `"\x"`, `"ends"trailing`,
		`"` + strings.Repeat(`abcdefg\"`, 5) + `"`, "\"\x1f0123456\"", `"01234567"`, `"0123456\"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		end, ok := String(s, 0)
		endB, okB := String([]byte(s), 0)
		if end != endB || ok != okB {
			t.Fatalf("string (%d, %v) and bytes (%d, %v) disagree on %q", end, ok, endB, okB, s)
		}
		// encoding/json's verdict on the shortest prefix that is one
		// string: the first valid prefix starting with a quote.
		want := -1
		if len(s) > 0 && s[0] == '"' {
			for j := 2; j <= len(s); j++ {
				if s[j-1] == '"' && json.Valid([]byte(s[:j])) {
					want = j
					break
				}
			}
		}
		if ok != (want >= 0) || ok && end != want {
			t.Fatalf("String(%q) = (%d, %v); encoding/json ends it at %d", s, end, ok, want)
		}
	})
}

func TestStops(t *testing.T) {
	for i := range 8 {
		for _, c := range []byte{'"', '\\', 0, 0x1f} {
			w := []byte("abcdefgh")
			w[i] = c
			if m := Stops(Load64(w, 0)); m == 0 || int(bitsTrailing(m)) != i {
				t.Errorf("%q: first stop at %d, want %d", w, bitsTrailing(m), i)
			}
		}
		w := []byte("abcdefgh")
		w[i] = 0xc3
		if Stops(Load64(w, 0)) != 0 || StopsOrHigh(Load64(w, 0)) == 0 {
			t.Errorf("%q: a high byte is no stop, but StopsOrHigh marks it", w)
		}
	}
}

func bitsTrailing(m uint64) int {
	n := 0
	for m&0x80 == 0 && n < 8 {
		m >>= 8
		n++
	}
	return n
}

// Value, over a whole input with whitespace around it, agrees with
// json.Valid, for strings and byte slices alike; and it refuses nesting
// past maxDepth.
func FuzzValue(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, ` {"a":[1,-2.5e+3,true,false,null,"x"]} `, `{"a":}`, `{"a" 1}`, `[1,]`, `[,1]`, `{,}`,
		`-`, `-0`, `01`, `1.`, `1.e3`, `1e`, `1e+`, `.5`, `tru`, `nulll`, `"\u12G4"`, `[[[[]]]]`, `{"a":{"b":{}}}`,
		"[\"\x1f\"]", `{"a":1,"a":2}`, `[1 2]`, `{"a":1}}`, ` `, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		const maxDepth = 10000
		end, ok := Value(s, Space(s, 0), 0, maxDepth)
		endB, okB := Value([]byte(s), Space(s, 0), 0, maxDepth)
		if end != endB || ok != okB {
			t.Fatalf("string (%d, %v) and bytes (%d, %v) disagree on %q", end, ok, endB, okB, s)
		}
		if got, want := ok && Space(s, end) == len(s), json.Valid([]byte(s)); got != want {
			t.Fatalf("Value(%q) = (%d, %v); json.Valid says %v", s, end, ok, want)
		}
	})
}

func TestValueDepth(t *testing.T) {
	nested := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	if _, ok := Value(nested(5), 0, 0, 5); !ok {
		t.Error("5 levels refused at a bound of 5")
	}
	if _, ok := Value(nested(6), 0, 0, 5); ok {
		t.Error("6 levels accepted at a bound of 5")
	}
	if _, ok := Value(`{"a":`+nested(4)+`}`, 0, 0, 5); !ok {
		t.Error("an object holding 4 levels refused at a bound of 5")
	}
	if _, ok := Value(`{"a":`+nested(5)+`}`, 0, 0, 5); ok {
		t.Error("an object holding 5 levels accepted at a bound of 5")
	}
}
