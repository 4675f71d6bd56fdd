package ebfake

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/auditstream/auditstream/services/testsupport/internal/jsonscan"
)

// parseRequest reads a PutEvents request body of the plain shape clients
// send: an object with Entries (objects of string members, Resources a
// list of strings, Time a number) and optionally EndpointId, nothing else.
// It is the fake's fast path, so that in benchmarks the fake costs less
// than the client it measures; ok is false for anything else (other
// members, nulls, unusual strings, malformed JSON), and then the strict
// encoding/json decoder decides, with its error for the answer.
func parseRequest(b []byte) (req request, ok bool) {
	bp := scratchBufs.Get().(*[]byte)
	s := scanner{b: b, buf: (*bp)[:0]}
	defer func() {
		if cap(s.buf) <= maxScratch {
			*bp = s.buf[:0]
			scratchBufs.Put(bp)
		}
	}()
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
		switch string(key) {
		case "Entries":
			if !s.consume('[') {
				return req, false
			}
			req.Entries = make([]entryJSON, 0, MaxEntries)
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
	// buf holds the last string read that had escapes, unescaped.
	buf []byte
	// seen is the last short string each entry member's slot held.
	seen [numSlots]string
}

// scratchBufs keeps scanners' buffers between requests; one over
// maxScratch is dropped.
var scratchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxScratch = 64 << 10

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

// key reads a member's name and the colon after it; the name is valid
// until the next string is read.
func (s *scanner) key() ([]byte, bool) {
	k, ok := s.strBytes()
	if !ok || !s.consume(':') {
		return nil, false
	}
	return k, true
}

// entryValues holds one entry's strings (indexed by the members' slots)
// and time, so that an entry costs one allocation for them rather than one
// each.
type entryValues struct {
	strs [numSlots]string
	time json.Number
}

// The slots of an entry's string members.
const (
	slotSource = iota
	slotDetailType
	slotDetail
	slotEventBusName
	slotTraceHeader
	numSlots
)

// maxShared bounds the strings intern compares and keeps.
const maxShared = 256

// intern returns raw as a string, the same one as the last time this slot
// held these bytes: a call's entries mostly share their Source, DetailType
// and bus.
func (s *scanner) intern(slot int, raw []byte) string {
	if len(raw) > maxShared {
		return string(raw)
	}
	if p := &s.seen[slot]; string(raw) == *p {
		return *p
	}
	v := string(raw)
	s.seen[slot] = v
	return v
}

func (s *scanner) entry() (entryJSON, bool) {
	var e entryJSON
	if !s.consume('{') {
		return e, false
	}
	if s.consume('}') {
		return e, true
	}
	v := new(entryValues)
	for {
		key, ok := s.key()
		if !ok {
			return e, false
		}
		var dst **string
		var slot int
		switch string(key) {
		case "Source":
			dst, slot = &e.Source, slotSource
		case "DetailType":
			dst, slot = &e.DetailType, slotDetailType
		case "Detail":
			dst, slot = &e.Detail, slotDetail
		case "EventBusName":
			dst, slot = &e.EventBusName, slotEventBusName
		case "TraceHeader":
			dst, slot = &e.TraceHeader, slotTraceHeader
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
			v.time = n
			e.Time = &v.time
		default:
			return e, false
		}
		if dst != nil {
			raw, ok := s.strBytes()
			if !ok {
				return e, false
			}
			v.strs[slot] = s.intern(slot, raw)
			*dst = &v.strs[slot]
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
	if !validNumber(s.b[start:s.i]) {
		return "", false
	}
	n := string(s.b[start:s.i])
	if _, err := strconv.ParseFloat(n, 64); err != nil {
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
	v, ok := s.strBytes()
	if !ok {
		return "", false
	}
	return string(v), true
}

// strBytes reads a string as str does, in one pass: its bytes are the
// body's own when it holds no escape, else s.buf's (valid until the next
// string). Eight bytes at a time it skips plain ASCII; at a byte from 0x80
// up it checks that one UTF-8 sequence starts there. Checking each run of
// bytes between escapes on its own is checking the whole string: what an
// escape gives is whole characters, and no run's sequence can go on past a
// quote or backslash.
func (s *scanner) strBytes() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	b := s.b
	i := s.i
	run := i // the first byte not yet copied to out
	out, escaped := s.buf[:0], false
	for {
		for i+8 <= len(b) {
			if m := jsonscan.StopsOrHigh(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return nil, false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			if !escaped {
				return b[run:i], true
			}
			out = append(out, b[run:i]...)
			s.buf = out
			return out, true
		case c == '\\':
			escaped = true
			out = append(out, b[run:i]...)
			if i+1 >= len(b) {
				return nil, false
			}
			e := b[i+1]
			i += 2
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
				r, ok := hex4(b, i)
				if !ok {
					return nil, false
				}
				i += 4
				if utf16.IsSurrogate(r) {
					if i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
						return nil, false
					}
					r2, ok := hex4(b, i+2)
					if !ok {
						return nil, false
					}
					i += 6
					if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
						return nil, false
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return nil, false
			}
			run = i
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false
			}
			i += n
		default:
			i++
		}
	}
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
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
	return r, true
}
