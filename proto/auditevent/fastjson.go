package auditevent

import (
	"bytes"
	"encoding/binary"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// decodeJSONFast reads the event's JSON form in one pass, straight into the
// protobuf message. It takes only input it is sure about: one object of the
// known keys, each spelled exactly as the schema spells it and present at
// most once per object, holding strings (any escapes, valid UTF-8), plain
// integers in range, objects and a timestamp that parses. For that input
// decodeJSONReference succeeds with an equal message. Anything else (null,
// a key that differs in case or is unknown, a duplicate key, a number with a
// fraction or exponent, a value of the wrong type, invalid UTF-8, malformed
// or trailing data, a bad timestamp) returns ok false, and the caller runs
// decodeJSONReference, which gives the answer and the exact error.
func decodeJSONFast(data []byte) (ev *auditlogv1.AuditEvent, ok bool) {
	d := fastDecoders.Get().(*fastDecoder)
	ev, ok = d.decode(data, false)
	d.reset()
	fastDecoders.Put(d)
	return ev, ok
}

// DecodeJSONObject decodes the JSON object at the start of data (JSON
// whitespace may precede it) and returns its length n: data[:n] ends with
// the object's closing '}', and DecodeJSON(data[:n], opts) returns an
// event equal to ev for any opts. Whatever follows the object is not read.
//
// It takes only what DecodeJSON's fast path takes. ok false says nothing
// about data: the object may still be valid, and a caller that needs the
// answer finds the object's end by other means and calls DecodeJSON. A
// caller reading a sequence of objects (a JSON array, say) uses it to
// decode each object without a separate pass to find where it ends.
func DecodeJSONObject(data []byte) (ev *auditlogv1.AuditEvent, n int, ok bool) {
	d := fastDecoders.Get().(*fastDecoder)
	ev, ok = d.decode(data, true)
	n = d.pos
	d.reset()
	fastDecoders.Put(d)
	if !ok {
		return nil, 0, false
	}
	return ev, n, true
}

var fastDecoders = sync.Pool{New: func() any { return new(fastDecoder) }}

// maxPooledDecoderBytes bounds the buffers a pooled decoder keeps, so
// one huge event does not pin its memory.
const maxPooledDecoderBytes = 64 << 10

// fastDecoder is the state of one decodeJSONFast call. The decoded strings
// are collected in out; when the whole object has been read, out is copied
// into one string that all fields share, instead of a string allocation
// each. out stays with the decoder for the next call.
type fastDecoder struct {
	data []byte
	pos  int

	out   []byte
	strs  [32]fastString // string fields to set from out; each is set at most once
	nstrs int
	extra []fastSpan // key, value, key, value, ... of "extra", in out

	hasExtra bool
	// scratch holds a string's contents when it has escapes.
	scratch []byte
}

type fastSpan struct{ start, end int }

type fastString struct {
	dst  *string
	span fastSpan
}

func (d *fastDecoder) reset() {
	d.data = nil
	d.out = d.out[:0]
	if cap(d.out) > maxPooledDecoderBytes {
		d.out = nil
	}
	if cap(d.scratch) > maxPooledDecoderBytes {
		d.scratch = nil
	}
	clear(d.strs[:d.nstrs])
	d.nstrs = 0
	if cap(d.extra) > maxPooledDecoderBytes/16 {
		d.extra = nil
	}
	d.extra = d.extra[:0]
	d.hasExtra = false
}

// eventBlock holds every message of one decoded event, so they take one
// allocation. Messages the JSON leaves out stay unreferenced (nil in the
// event), as the reference decoder leaves them.
type eventBlock struct {
	event       auditlogv1.AuditEvent
	actor       auditlogv1.Actor
	accessToken auditlogv1.AccessToken
	request     auditlogv1.Request
	outcome     auditlogv1.Outcome
	target      auditlogv1.Target
	context     auditlogv1.Context
	account     auditlogv1.Ref
	environment auditlogv1.Ref
	workspace   auditlogv1.Ref
	timestamp   timestamppb.Timestamp
}

// Bits of the keys already seen in one object: a repeated key makes
// encoding/json merge or overwrite, which the fast path leaves to it.
const (
	seenID = 1 << iota
	seenSchemaVersion
	seenActor
	seenRequest
	seenHostname
	seenService
	seenOutcome
	seenTarget
	seenTimestamp
	seenExtra
)

// Bits of nested objects' keys; each object uses its own set of seen bits.
const (
	seen0 = 1 << iota
	seen1
	seen2
	seen3
	seen4
)

// decode reads the object at the start of data. With prefix false only JSON
// whitespace may follow it; with prefix true nothing after it is read, and
// d.pos is left just past its closing '}'.
func (d *fastDecoder) decode(data []byte, prefix bool) (*auditlogv1.AuditEvent, bool) {
	d.data = data
	d.pos = 0
	more, ok := d.objectStart()
	if !ok {
		return nil, false
	}
	blk := new(eventBlock)
	ev := &blk.event
	var seen uint32
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			break
		}
		var bit uint32
		switch string(key) {
		case "id":
			bit = seenID
			ok = d.str(&ev.Id)
		case "schema-version":
			bit = seenSchemaVersion
			var v uint64
			v, ok = d.uint(1<<32 - 1)
			ev.SchemaVersion = uint32(v)
		case "actor":
			bit = seenActor
			ev.Actor = &blk.actor
			ok = d.actor(blk)
		case "request":
			bit = seenRequest
			ev.Request = &blk.request
			ok = d.request(&blk.request)
		case "hostname":
			bit = seenHostname
			ok = d.str(&ev.Hostname)
		case "service":
			bit = seenService
			ok = d.str(&ev.Service)
		case "outcome":
			bit = seenOutcome
			ev.Outcome = &blk.outcome
			ok = d.outcome(&blk.outcome)
		case "target":
			bit = seenTarget
			ev.Target = &blk.target
			ok = d.target(blk)
		case "timestamp":
			bit = seenTimestamp
			ev.Timestamp = &blk.timestamp
			ok = d.timestamp(&blk.timestamp)
		case "extra":
			bit = seenExtra
			ok = d.extraObject()
		default:
			return nil, false
		}
		if !ok || seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		more, ok = d.next()
	}
	if !ok {
		return nil, false
	}
	if !prefix {
		// Only JSON whitespace may follow the object.
		end := d.pos
		d.skipSpace()
		if d.pos != len(d.data) {
			return nil, false
		}
		d.pos = end
	}
	d.finish(ev)
	return ev, true
}

// finish turns the collected string contents into one string and points
// the string fields and the extra map into it.
func (d *fastDecoder) finish(ev *auditlogv1.AuditEvent) {
	all := string(d.out)
	for _, s := range d.strs[:d.nstrs] {
		*s.dst = all[s.span.start:s.span.end]
	}
	if d.hasExtra {
		ev.Extra = make(map[string]string, len(d.extra)/2)
		for i := 0; i+1 < len(d.extra); i += 2 {
			k, v := d.extra[i], d.extra[i+1]
			ev.Extra[all[k.start:k.end]] = all[v.start:v.end]
		}
	}
}

func (d *fastDecoder) actor(blk *eventBlock) bool {
	a := &blk.actor
	var seen uint32
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			return false
		}
		var bit uint32
		switch string(key) {
		case "id":
			bit, ok = seen0, d.str(&a.Id)
		case "type":
			bit, ok = seen1, d.str(&a.Type)
		case "email":
			bit, ok = seen2, d.str(&a.Email)
		case "access-token":
			a.AccessToken = &blk.accessToken
			bit, ok = seen3, d.accessToken(&blk.accessToken)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		more, ok = d.next()
	}
	return ok
}

func (d *fastDecoder) accessToken(t *auditlogv1.AccessToken) bool {
	var seen uint32
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			return false
		}
		var bit uint32
		switch string(key) {
		case "type":
			bit, ok = seen0, d.str(&t.Type)
		case "token":
			// The token gets a string of its own, so that masking it
			// leaves nothing of the secret referenced by the event.
			bit = seen1
			var b []byte
			if b, ok = d.strBytes(); ok {
				t.Token = string(b)
			}
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		more, ok = d.next()
	}
	return ok
}

func (d *fastDecoder) request(r *auditlogv1.Request) bool {
	var seen uint32
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			return false
		}
		var bit uint32
		switch string(key) {
		case "ip-address":
			bit, ok = seen0, d.str(&r.IpAddress)
		case "action":
			bit, ok = seen1, d.str(&r.Action)
		case "id":
			bit, ok = seen2, d.str(&r.Id)
		case "source":
			bit, ok = seen3, d.str(&r.Source)
		case "user-agent":
			bit, ok = seen4, d.str(&r.UserAgent)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		more, ok = d.next()
	}
	return ok
}

func (d *fastDecoder) outcome(o *auditlogv1.Outcome) bool {
	var seen uint32
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			return false
		}
		var bit uint32
		switch string(key) {
		case "result":
			bit, ok = seen0, d.str(&o.Result)
		case "status-code":
			bit = seen1
			o.StatusCode, ok = d.int32()
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		more, ok = d.next()
	}
	return ok
}

func (d *fastDecoder) target(blk *eventBlock) bool {
	t := &blk.target
	var seen uint32
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			return false
		}
		var bit uint32
		switch string(key) {
		case "id":
			bit, ok = seen0, d.str(&t.Id)
		case "type":
			bit, ok = seen1, d.str(&t.Type)
		case "display-name":
			bit, ok = seen2, d.str(&t.DisplayName)
		case "context":
			t.Context = &blk.context
			bit, ok = seen3, d.context(blk)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		more, ok = d.next()
	}
	return ok
}

func (d *fastDecoder) context(blk *eventBlock) bool {
	c := &blk.context
	var seen uint32
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			return false
		}
		var bit uint32
		switch string(key) {
		case "account":
			c.Account = &blk.account
			bit, ok = seen0, d.ref(&blk.account)
		case "environment":
			c.Environment = &blk.environment
			bit, ok = seen1, d.ref(&blk.environment)
		case "workspace":
			c.Workspace = &blk.workspace
			bit, ok = seen2, d.ref(&blk.workspace)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		more, ok = d.next()
	}
	return ok
}

func (d *fastDecoder) ref(r *auditlogv1.Ref) bool {
	var seen uint32
	more, ok := d.objectStart()
	for ok && more {
		var key []byte
		if key, ok = d.key(); !ok {
			return false
		}
		var bit uint32
		switch string(key) {
		case "id":
			bit, ok = seen0, d.str(&r.Id)
		case "display-name":
			bit, ok = seen1, d.str(&r.DisplayName)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		more, ok = d.next()
	}
	return ok
}

// extraObject reads "extra": an object of strings under any keys. A key
// given twice keeps its last value, as encoding/json keeps it.
func (d *fastDecoder) extraObject() bool {
	d.hasExtra = true
	more, ok := d.objectStart()
	for ok && more {
		var k, v fastSpan
		if k, ok = d.strOut(); !ok {
			return false
		}
		d.skipSpace()
		if !d.consume(':') {
			return false
		}
		d.skipSpace()
		if v, ok = d.strOut(); !ok {
			return false
		}
		d.extra = append(d.extra, k, v)
		more, ok = d.next()
	}
	return ok
}

// timestamp reads the "timestamp" string as ParseTimestamp does.
func (d *fastDecoder) timestamp(ts *timestamppb.Timestamp) bool {
	b, ok := d.strBytes()
	if !ok {
		return false
	}
	sec, nsec, ok := parseTimestampFast(b)
	if !ok {
		// A form parseTimestampFast does not read: ask ParseTimestamp. An
		// error is the reference decoder's to report.
		t, err := ParseTimestamp(string(b))
		if err != nil {
			return false
		}
		sec, nsec = t.Unix(), int32(t.Nanosecond())
	}
	ts.Seconds, ts.Nanos = sec, nsec
	return true
}

// Tokens.

func (d *fastDecoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *fastDecoder) consume(c byte) bool {
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// objectStart reads an object's '{' and reports whether a member follows
// ('"' is next) or the object is empty ("{}", now read).
func (d *fastDecoder) objectStart() (more, ok bool) {
	d.skipSpace()
	if !d.consume('{') {
		return false, false
	}
	d.skipSpace()
	if d.consume('}') {
		return false, true
	}
	return true, true
}

// next reads what follows a member's value: ',' and the next key, or the
// object's closing '}'.
func (d *fastDecoder) next() (more, ok bool) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return false, false
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		d.skipSpace()
		// A key must follow: "{...,}" is malformed.
		return true, d.pos < len(d.data) && d.data[d.pos] == '"'
	case '}':
		d.pos++
		return false, true
	}
	return false, false
}

// key reads a member's key and the ':' after it. The caller matches the key
// against the schema's names, which are printable ASCII without escapes, so
// a key holding a backslash (an escape, or an escaped quote that ends it
// early here), a control character or other bytes matches none of them and
// fails there.
func (d *fastDecoder) key() ([]byte, bool) {
	if !d.consume('"') {
		return nil, false
	}
	q := bytes.IndexByte(d.data[d.pos:], '"')
	if q < 0 {
		return nil, false
	}
	key := d.data[d.pos : d.pos+q]
	d.pos += q + 1
	d.skipSpace()
	if !d.consume(':') {
		return nil, false
	}
	d.skipSpace()
	return key, true
}

// str reads a string value into the field dst.
func (d *fastDecoder) str(dst *string) bool {
	sp, ok := d.strOut()
	if !ok || d.nstrs == len(d.strs) {
		return false
	}
	d.strs[d.nstrs] = fastString{dst: dst, span: sp}
	d.nstrs++
	return true
}

// strOut reads a JSON string into out and returns where it is there.
func (d *fastDecoder) strOut() (fastSpan, bool) {
	b, ok := d.strBytes()
	if !ok {
		return fastSpan{}, false
	}
	start := len(d.out)
	d.out = append(d.out, b...)
	return fastSpan{start, len(d.out)}, true
}

// strBytes reads a JSON string and returns its contents: part of the input
// when it has no escapes, else decoded into scratch (valid until the next
// call). Escapes are decoded as encoding/json decodes them, a lone or
// reversed surrogate becoming U+FFFD. A control character, a malformed
// escape or invalid UTF-8 fails.
func (d *fastDecoder) strBytes() ([]byte, bool) {
	if !d.consume('"') {
		return nil, false
	}
	data := d.data
	i := d.pos
	// Most strings are printable ASCII without escapes: find the closing
	// quote and check the bytes before it.
	if q := bytes.IndexByte(data[i:], '"'); q >= 0 && plainASCII(data[i:i+q]) {
		d.pos = i + q + 1
		return data[i : i+q], true
	}
	d.scratch = d.scratch[:0]
	escaped := false
	run := i // start of bytes to copy as they are
	for i < len(data) {
		// Skip eight plain bytes at a time: no quote, backslash, control
		// character or byte of a multi-byte rune among them.
		if i+8 <= len(data) && plainWord(binary.LittleEndian.Uint64(data[i:])) {
			i += 8
			continue
		}
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			if !escaped {
				return data[run:i], true
			}
			d.scratch = append(d.scratch, data[run:i]...)
			return d.scratch, true
		case c == '\\':
			escaped = true
			d.scratch = append(d.scratch, data[run:i]...)
			n, ok := d.escape(data[i:])
			if !ok {
				return nil, false
			}
			i += n
			run = i
		case c < 0x20:
			return nil, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false
			}
			i += size
		}
	}
	return nil, false
}

// plainWord reports whether none of the eight bytes in w is '"', '\\', below
// 0x20 or above 0x7f. (The tests below may flag a plain byte next to a
// flagged one, never miss one; a flagged word is read byte by byte.)
func plainWord(w uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	// (v - ones) &^ v has a byte's high bit set for a zero byte of v (the
	// lowest one at least); likewise (w - 0x20*ones) &^ w for a byte of w
	// below 0x20.
	q := w ^ '"'*ones
	bs := w ^ '\\'*ones
	return ((w-0x20*ones)&^w|(q-ones)&^q|(bs-ones)&^bs|w)&highs == 0
}

// plainASCII reports whether b holds no backslash, control character or
// byte above 0x7f.
func plainASCII(b []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		bs := w ^ '\\'*ones
		if ((w-0x20*ones)&^w|(bs-ones)&^bs|w)&highs != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

// escape decodes the escape sequence at the start of s into scratch and
// returns its length.
func (d *fastDecoder) escape(s []byte) (int, bool) {
	if len(s) < 2 {
		return 0, false
	}
	var c byte
	switch s[1] {
	case '"', '\\', '/':
		c = s[1]
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		r := hex4(s)
		if r < 0 {
			return 0, false
		}
		n := 6
		if utf16.IsSurrogate(r) {
			// A pair decodes to one rune; anything else is U+FFFD, and
			// what follows is read on its own.
			if dec := utf16.DecodeRune(r, hex4(s[6:])); dec != utf8.RuneError {
				r = dec
				n = 12
			} else {
				r = utf8.RuneError
			}
		}
		d.scratch = utf8.AppendRune(d.scratch, r)
		return n, true
	default:
		return 0, false
	}
	d.scratch = append(d.scratch, c)
	return 2, true
}

// hex4 returns the code unit of the escape `\uXXXX` at the start of s, or
// -1.
func hex4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// uint reads a non-negative JSON integer of at most max: "0" or digits
// without a leading zero. A sign, fraction or exponent fails (the caller's
// check of what follows the value catches the last two).
func (d *fastDecoder) uint(max uint64) (uint64, bool) {
	data := d.data
	i := d.pos
	if i >= len(data) || data[i] < '0' || data[i] > '9' {
		return 0, false
	}
	if data[i] == '0' {
		d.pos = i + 1
		return 0, true
	}
	var v uint64
	for n := 0; i < len(data) && data[i] >= '0' && data[i] <= '9'; n++ {
		if n == 10 {
			// More digits than any value in range has.
			return 0, false
		}
		v = v*10 + uint64(data[i]-'0')
		i++
	}
	if v > max {
		return 0, false
	}
	d.pos = i
	return v, true
}

// int32 reads a JSON integer in the range of int32.
func (d *fastDecoder) int32() (int32, bool) {
	neg := d.consume('-')
	limit := uint64(1<<31 - 1)
	if neg {
		limit++
	}
	v, ok := d.uint(limit)
	if !ok {
		return 0, false
	}
	if neg {
		return int32(-int64(v)), true
	}
	return int32(v), true
}

// Timestamps.

// Seconds since the Unix epoch of the first and last second ParseTimestamp
// accepts: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// parseTimestampFast reads the common forms of a timestamp,
// "2006-01-02T15:04:05" with an optional fraction of 1 to 9 digits and an
// optional "Z" or "+07:00"-style zone, giving the UTC time ParseTimestamp
// gives. It returns ok false for every other input, valid or not; the
// caller then asks ParseTimestamp.
func parseTimestampFast(b []byte) (sec int64, nsec int32, ok bool) {
	if len(b) < len("2006-01-02T15:04:05") || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	second, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(month, year) ||
		hour > 23 || minute > 59 || second > 59 {
		return 0, 0, false
	}
	rest := b[19:]
	var frac int
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n < 2 || n > 10 {
			return 0, 0, false
		}
		frac, _ = digits(rest[1:n])
		for range 10 - n {
			frac *= 10
		}
		rest = rest[n:]
	}
	var offset int
	switch {
	case len(rest) == 0, len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		hh, okh := digits(rest[1:3])
		mm, okm := digits(rest[4:6])
		if !okh || !okm || hh > 23 || mm > 59 {
			return 0, 0, false
		}
		offset = (hh*60 + mm) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, 0, false
	}
	sec = time.Date(year, time.Month(month), day, hour, minute, second, 0, time.UTC).Unix() - int64(offset)
	if sec < minTimestampSeconds || sec > maxTimestampSeconds {
		return 0, 0, false
	}
	return sec, int32(frac), true
}

// digits reads b as a decimal number of ASCII digits only.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysInMonth(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
