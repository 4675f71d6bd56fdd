package ddfake

import (
	"encoding/json"

	"github.com/auditstream/auditstream/services/internal/sink/internal/jsonscan"
)

// splitValidArray checks in one pass that b is what the intake takes as a
// body, JSON whitespace then an array then JSON whitespace, valid exactly
// as json.Valid judges it, and returns the array's elements as splitArray
// returns them. ok is false for any other input, for which read runs
// json.Valid and splitArray (and answers with their error): this only
// saves the second pass over bodies that are valid.
//
// Like encoding/json it accepts any byte from 0x20 up in strings (it does
// not check UTF-8), and refuses nesting deeper than maxScanDepth.
func splitValidArray(b []byte) (items []json.RawMessage, ok bool) {
	s := scanner{b: b}
	s.space()
	if !s.consume('[') {
		return nil, false
	}
	s.space()
	if !s.consume(']') {
		for {
			start := s.i
			if !s.value(1) {
				return nil, false
			}
			items = append(items, b[start:s.i])
			s.space()
			if s.consume(',') {
				s.space()
				continue
			}
			if !s.consume(']') {
				return nil, false
			}
			break
		}
	}
	s.space()
	return items, s.i == len(b)
}

// maxScanDepth is encoding/json's limit on nesting: json.Valid refuses
// deeper input. The array itself is depth 1.
const maxScanDepth = 10000

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// value reads one JSON value that sits at nesting depth (its container's
// depth).
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.str()
	case c == '{':
		if depth >= maxScanDepth {
			return false
		}
		s.i++
		s.space()
		if s.consume('}') {
			return true
		}
		for {
			if !s.str() {
				return false
			}
			s.space()
			if !s.consume(':') {
				return false
			}
			s.space()
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			if s.consume(',') {
				s.space()
				continue
			}
			return s.consume('}')
		}
	case c == '[':
		if depth >= maxScanDepth {
			return false
		}
		s.i++
		s.space()
		if s.consume(']') {
			return true
		}
		for {
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			if s.consume(',') {
				s.space()
				continue
			}
			return s.consume(']')
		}
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// str reads a string: no byte below 0x20, escapes as JSON defines them.
// Eight bytes at a time it skips what holds no quote, backslash or control
// character; bytes from 0x80 up are string bytes like any other.
func (s *scanner) str() bool {
	end, ok := jsonscan.String(s.b, s.i)
	s.i = end
	return ok
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	s.consume('-')
	switch {
	case s.consume('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.consume('.') && !s.digits() {
		return false
	}
	if s.consume('e') || s.consume('E') {
		if !s.consume('+') {
			s.consume('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits reads [0-9]* and reports whether there was one.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
