// Package jsonscan is what the sinks' test fakes share to read JSON
// strings quickly: they share the machine with what the benchmarks
// measure, so they skip plain string bytes eight at a time.
package jsonscan

import "math/bits"

// Bytes repeated over a word, for Stops and StopsOrHigh.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// Stops marks with its high bit each byte of the little-endian word x that
// may end a run of plain string bytes: '"', '\\' or one below 0x20. The
// lowest marked byte is always one of those (a borrow can only mark bytes
// above a true one), and a word with none has no mark. Bytes from 0x80 up
// are never marked.
func Stops(x uint64) uint64 {
	q := x ^ (ones * '"')
	e := x ^ (ones * '\\')
	return ((x-ones*0x20)&^x | (q-ones)&^q | (e-ones)&^e) & highs
}

// StopsOrHigh is Stops that also marks each byte from 0x80 up, for readers
// that check UTF-8 where it appears.
func StopsOrHigh(x uint64) uint64 {
	return Stops(x) | x&highs
}

// Load64 reads the little-endian word at b[i:] (the compiler makes it one
// load).
func Load64[T ~string | ~[]byte](b T, i int) uint64 {
	b = b[i : i+8]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// String reads the JSON string whose opening quote is at b[i] and returns
// the index after its closing quote. ok is false when b[i] is no quote or
// the string is cut short, holds a byte below 0x20 or a bad escape. Like
// encoding/json it takes any byte from 0x80 up (UTF-8 is not checked).
func String[T ~string | ~[]byte](b T, i int) (end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	for i++; ; {
		for i+8 <= len(b) {
			if m := Stops(Load64(b, i)); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return i, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !IsHex(b[i+2]) || !IsHex(b[i+3]) || !IsHex(b[i+4]) || !IsHex(b[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default:
			i++
		}
	}
}
