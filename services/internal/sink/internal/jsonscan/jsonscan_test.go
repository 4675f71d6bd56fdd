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
