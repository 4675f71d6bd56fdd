package ebfake

import (
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// parseRequest reads a PutEvents request body of the plain shape clients
// send: an object with Entries (objects of string members, Resources a
// list of strings, Time a number) and optionally EndpointId, nothing else.
// It is the fake's fast path, so that in benchmarks the fake costs less
// than the client it measures; ok is false for anything else (other
// members, nulls, unusual strings, malformed JSON), and then the strict
// encoding/json decoder decides, with its error for the answer.
func parseRequest(b []byte) (req request, ok bool) {
	s := scanner{b: b}
	if !s.consume('{') {
		return req, false
	}
	if s.consume('}') {
		return req, s.end()
	}
	for {
		key, ok := s.key()
		if !ok {
			return req, false
		}
		switch key {
		case "Entries":
			if !s.consume('[') {
				return req, false
			}
			req.Entries = []entryJSON{}
			if !s.consume(']') {
				for {
					e, ok := s.entry()
					if !ok {
						return req, false
					}
					req.Entries = append(req.Entries, e)
					if s.consume(']') {
						break
					}
					if !s.consume(',') {
						return req, false
					}
				}
			}
		case "EndpointId":
			v, ok := s.str()
			if !ok {
				return req, false
			}
			req.EndpointID = &v
		default:
			return req, false
		}
		if s.consume('}') {
			return req, s.end()
		}
		if !s.consume(',') {
			return req, false
		}
	}
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *scanner) key() (string, bool) {
	k, ok := s.str()
	if !ok || !s.consume(':') {
		return "", false
	}
	return k, true
}

func (s *scanner) entry() (entryJSON, bool) {
	var e entryJSON
	if !s.consume('{') {
		return e, false
	}
	if s.consume('}') {
		return e, true
	}
	for {
		key, ok := s.key()
		if !ok {
			return e, false
		}
		var dst **string
		switch key {
		case "Source":
			dst = &e.Source
		case "DetailType":
			dst = &e.DetailType
		case "Detail":
			dst = &e.Detail
		case "EventBusName":
			dst = &e.EventBusName
		case "TraceHeader":
			dst = &e.TraceHeader
		case "Resources":
			if !s.consume('[') {
				return e, false
			}
			e.Resources = []string{}
			if !s.consume(']') {
				for {
					r, ok := s.str()
					if !ok {
						return e, false
					}
					e.Resources = append(e.Resources, r)
					if s.consume(']') {
						break
					}
					if !s.consume(',') {
						return e, false
					}
				}
			}
		case "Time":
			n, ok := s.number()
			if !ok {
				return e, false
			}
			e.Time = &n
		default:
			return e, false
		}
		if dst != nil {
			v, ok := s.str()
			if !ok {
				return e, false
			}
			*dst = &v
		}
		if s.consume('}') {
			return e, true
		}
		if !s.consume(',') {
			return e, false
		}
	}
}

// number reads a JSON number.
func (s *scanner) number() (json.Number, bool) {
	s.ws()
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.i++
			continue
		}
		break
	}
	n := s.b[start:s.i]
	if !validNumber(n) {
		return "", false
	}
	if _, err := strconv.ParseFloat(string(n), 64); err != nil {
		return "", false
	}
	return json.Number(n), true
}

// validNumber follows JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(n []byte) bool {
	i := 0
	if i < len(n) && n[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i < len(n) && n[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(n) && n[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(n) && (n[i] == 'e' || n[i] == 'E') {
		i++
		if i < len(n) && (n[i] == '+' || n[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(n)
}

// str reads a JSON string: valid UTF-8, no control characters, the escapes
// JSON defines (a lone surrogate declines).
func (s *scanner) str() (string, bool) {
	if !s.consume('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !utf8.Valid(v) {
				return "", false
			}
			return string(v), true
		case c == '\\':
			return s.escaped(start)
		case c < 0x20:
			return "", false
		}
		s.i++
	}
	return "", false
}

// escaped finishes a string that holds escapes, from its start.
func (s *scanner) escaped(start int) (string, bool) {
	out := make([]byte, 0, s.i-start+64)
	out = append(out, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				return "", false
			}
			// out is this string's own buffer, never written again
			return unsafe.String(unsafe.SliceData(out), len(out)), true
		case c < 0x20:
			return "", false
		case c != '\\':
			// copy the run up to the next quote or backslash
			j := s.i
			for j < len(s.b) && s.b[j] != '"' && s.b[j] != '\\' && s.b[j] >= 0x20 {
				j++
			}
			out = append(out, s.b[s.i:j]...)
			s.i = j
			continue
		}
		if s.i+1 >= len(s.b) {
			return "", false
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				if s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
					return "", false
				}
				s.i += 2
				r2, ok := s.hex4()
				if !ok {
					return "", false
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", false
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}
