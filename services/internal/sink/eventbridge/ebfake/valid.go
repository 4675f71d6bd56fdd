package ebfake

import "github.com/auditstream/auditstream/services/internal/sink/internal/jsonscan"

// MaxDetailDepth is how deeply nested a Detail may be: PutEvents processes
// nested JSON up to 1100 levels deep.
const MaxDetailDepth = 1100

// validObject reports whether s is one JSON object (surrounding whitespace
// allowed) nested at most MaxDetailDepth deep. It accepts what json.Valid
// accepts for an object, in one pass without allocating; the fake checks
// every Detail with it.
func validObject(s string) bool {
	v := validator{s: s}
	v.ws()
	if v.i >= len(s) || s[v.i] != '{' {
		return false
	}
	if !v.value(0) {
		return false
	}
	v.ws()
	return v.i == len(s)
}

type validator struct {
	s string
	i int
}

func (v *validator) ws() {
	for v.i < len(v.s) {
		switch v.s[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return
		}
	}
}

func (v *validator) value(depth int) bool {
	v.ws()
	if v.i >= len(v.s) {
		return false
	}
	switch c := v.s[v.i]; {
	case c == '{':
		if depth >= MaxDetailDepth {
			return false
		}
		v.i++
		v.ws()
		if v.i < len(v.s) && v.s[v.i] == '}' {
			v.i++
			return true
		}
		for {
			v.ws()
			if v.i >= len(v.s) || v.s[v.i] != '"' || !v.str() {
				return false
			}
			v.ws()
			if v.i >= len(v.s) || v.s[v.i] != ':' {
				return false
			}
			v.i++
			if !v.value(depth + 1) {
				return false
			}
			v.ws()
			if v.i >= len(v.s) {
				return false
			}
			switch v.s[v.i] {
			case ',':
				v.i++
			case '}':
				v.i++
				return true
			default:
				return false
			}
		}
	case c == '[':
		if depth >= MaxDetailDepth {
			return false
		}
		v.i++
		v.ws()
		if v.i < len(v.s) && v.s[v.i] == ']' {
			v.i++
			return true
		}
		for {
			if !v.value(depth + 1) {
				return false
			}
			v.ws()
			if v.i >= len(v.s) {
				return false
			}
			switch v.s[v.i] {
			case ',':
				v.i++
			case ']':
				v.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		return v.str()
	case c == 't':
		return v.lit("true")
	case c == 'f':
		return v.lit("false")
	case c == 'n':
		return v.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return v.num()
	}
	return false
}

func (v *validator) lit(l string) bool {
	if len(v.s)-v.i < len(l) || v.s[v.i:v.i+len(l)] != l {
		return false
	}
	v.i += len(l)
	return true
}

// str reads a string at the opening quote. Eight bytes at a time it skips
// what holds no quote, backslash or control character; like encoding/json
// it takes any byte from 0x80 up.
func (v *validator) str() bool {
	end, ok := jsonscan.String(v.s, v.i)
	v.i = end
	return ok
}

func (v *validator) num() bool {
	start := v.i
	for v.i < len(v.s) {
		c := v.s[v.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			v.i++
			continue
		}
		break
	}
	return validNumber([]byte(v.s[start:v.i]))
}
