// Package ddfake is an in-process Datadog logs intake for tests: an HTTP
// server on 127.0.0.1 answering POST /api/v2/logs under the real intake's
// contract, recording what it accepts per API key, and scriptable to fail.
//
// What it enforces, in this order:
//  1. scripted behaviour: Slow delays every answer, FailNext answers the
//     next requests with a status and headers, Always answers one key's
//     requests with a status for good;
//  2. DD-API-KEY must be a key the fake knows: 403 otherwise, missing
//     included (the real intake answers 403 for an invalid key);
//  3. Content-Type must be application/json: 400 otherwise;
//  4. Content-Encoding gzip or deflate is decoded (400 when the body does
//     not decode), identity or none is read as is, anything else is 400;
//  5. the uncompressed body must be at most MaxRequestBytes: 413;
//  6. the body must be a JSON array of objects: 400;
//  7. at most MaxEntries entries: 413;
//  8. every entry at most MaxEntryBytes: 400 for the whole request by
//     default. The real intake accepts and truncates such a log; answering
//     400 makes a client that would let Datadog truncate audit data fail
//     its tests. SetOversizedEntries(Truncate) mimics the real intake;
//  9. RejectEntries: 400 when any entry matches;
//
// then it records the entries and answers 202 with {}.
package ddfake

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// The real intake's limits, read as decimal megabytes.
const (
	MaxEntries      = 1000
	MaxRequestBytes = 5_000_000
	MaxEntryBytes   = 1_000_000
)

// maxWireBytes bounds the body as sent: compression never makes a body
// within MaxRequestBytes this much larger.
const maxWireBytes = MaxRequestBytes + 64<<10

// LogsPath is the intake's path.
const LogsPath = "/api/v2/logs"

// Oversize says what the fake does with an entry over MaxEntryBytes.
type Oversize int

const (
	// Reject answers 400 for the whole request (the default).
	Reject Oversize = iota
	// Truncate accepts the request and records the entry cut to
	// MaxEntryBytes, as the real intake does; Truncated counts them.
	Truncate
)

// Request is one request as the fake saw it.
type Request struct {
	APIKey string
	// Status is what the fake answered.
	Status int
	// Entries is the number of entries in the body, when it was read.
	Entries int
	// Bytes is the size of the uncompressed body; WireBytes as sent.
	Bytes, WireBytes int
	// ContentEncoding and UserAgent are the request's headers.
	ContentEncoding string
	UserAgent       string
	// At is when the answer was written, or the client was found gone
	// (Status 0).
	At time.Time
}

type failure struct {
	status  int
	headers http.Header
}

// Server is the fake intake. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu        sync.Mutex
	keys      map[string]bool
	entries   map[string][][]byte
	requests  []Request
	failNext  []failure
	always    map[string]failure
	slow      time.Duration
	reject    func(entry []byte) bool
	oversize  Oversize
	truncated int
	observe   func(Observed)
	// requests being answered now, and the most at once since New or Reset
	inFlight, maxInFlight int
}

// Observed is one answered request, as an Observe function sees it.
type Observed struct {
	Request
	// Entries are the accepted entries (Status 202 only); they are valid
	// only during the call.
	Entries [][]byte
	// Unanswered is true when the client had gone before the answer was
	// written: a client that timed out sends accepted entries again.
	Unanswered bool
}

// New starts a fake intake on 127.0.0.1 that accepts the given API keys.
// Close it when done.
func New(apiKeys ...string) *Server {
	s := &Server{keys: map[string]bool{}, entries: map[string][][]byte{}, always: map[string]failure{}}
	for _, k := range apiKeys {
		s.keys[k] = true
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's base URL, for Config.BaseURL.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server, first ending any request still waiting in Slow.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// AddKey makes key valid; RemoveKey makes it invalid (a revoked key).
func (s *Server) AddKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = true
}

// RemoveKey makes key invalid.
func (s *Server) RemoveKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
}

// FailNext answers the next n requests, whatever their key, with status
// and headers (for example 500 storms, or 429 with Retry-After or
// X-RateLimit-Reset), before checking the key or the body. Calls queue up.
func (s *Server) FailNext(n, status int, headers http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, failure{status, headers.Clone()})
	}
}

// Always answers every request with key with status (and headers) until
// Reset, for example 403 for a key that was revoked.
func (s *Server) Always(key string, status int, headers http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always[key] = failure{status, headers.Clone()}
}

// Recover ends Always for key: its requests are answered as usual again,
// and what was recorded stays.
func (s *Server) Recover(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.always, key)
}

// Slow delays every answer by d (0 to stop); the wait ends early when the
// client gives up.
func (s *Server) Slow(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow = d
}

// RejectEntries answers 400 for any request holding an entry for which
// fn returns true; nil stops it. fn gets the entry's raw JSON.
func (s *Server) RejectEntries(fn func(entry []byte) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = fn
}

// SetOversizedEntries says what to do with an entry over MaxEntryBytes.
func (s *Server) SetOversizedEntries(o Oversize) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oversize = o
}

// Observe has fn see every request once it is answered, instead of the
// fake recording it: with fn set, Count, Entries, Logs, Requests and
// Truncated stay empty, so a long benchmark holds only its own counts. nil
// goes back to recording. fn runs on the request's goroutine and must not
// keep Entries.
func (s *Server) Observe(fn func(Observed)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observe = fn
}

// Reset forgets the recorded entries and requests and every script; the
// keys stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = map[string][][]byte{}
	s.requests = nil
	s.failNext = nil
	s.always = map[string]failure{}
	s.slow = 0
	s.reject = nil
	s.oversize = Reject
	s.truncated = 0
	s.maxInFlight = s.inFlight
}

// MaxInFlight is the most requests the fake was answering at once since
// New or Reset.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// Entries returns the raw JSON of every entry accepted for key, in order.
func (s *Server) Entries(key string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(s.entries[key]))
	for i, e := range s.entries[key] {
		out[i] = bytes.Clone(e)
	}
	return out
}

// Logs returns the entries accepted for key, decoded (numbers as
// json.Number).
func (s *Server) Logs(key string) []map[string]any {
	raw := s.Entries(key)
	out := make([]map[string]any, 0, len(raw))
	for _, e := range raw {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(e))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			panic("ddfake: recorded entry does not decode: " + err.Error()) // checked when received
		}
		out = append(out, m)
	}
	return out
}

// Count is the number of entries accepted for key.
func (s *Server) Count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries[key])
}

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Truncated is the number of entries cut under Truncate.
func (s *Server) Truncated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.truncated
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != LogsPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answer(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	key := r.Header.Get("DD-API-KEY")
	rec := Request{APIKey: key, ContentEncoding: r.Header.Get("Content-Encoding"), UserAgent: r.Header.Get("User-Agent")}

	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	slow := s.slow
	var scripted *failure
	if len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		scripted = &f
	} else if f, ok := s.always[key]; ok {
		scripted = &f
	}
	known := s.keys[key]
	reject := s.reject
	oversize := s.oversize
	observe := s.observe
	s.mu.Unlock()

	// Read the body first: the server notices a client that gave up only
	// once the body has been read. Neither body outlives the request under
	// Observe (its fn must not keep Entries), so both buffers are reused
	// then; recorded entries point into the decompressed one, which is new.
	wireBuf := getBuf()
	defer putBuf(wireBuf)
	var rawBuf *bytes.Buffer
	if observe != nil {
		rawBuf = getBuf()
		defer putBuf(rawBuf)
	}
	wire, rerr := readAll(wireBuf, r.Body, maxWireBytes+1, r.ContentLength)
	if slow > 0 {
		t := time.NewTimer(slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.finish(w, r, observe, rec, 0, "", "", nil, 0)
			return
		}
	}
	if scripted != nil {
		for k, v := range scripted.headers {
			w.Header()[k] = v
		}
		s.finish(w, r, observe, rec, scripted.status, http.StatusText(scripted.status), "", nil, 0)
		return
	}
	if !known {
		s.finish(w, r, observe, rec, http.StatusForbidden, "Forbidden", "", nil, 0)
		return
	}
	if rawBuf == nil {
		rawBuf = new(bytes.Buffer)
	}
	status, msg, entries, trunc := s.read(r, wire, rerr, rawBuf, &rec, reject, oversize)
	s.finish(w, r, observe, rec, status, msg, key, entries, trunc)
}

// finish answers status (none when 0: the client is gone) and records the
// request, before answering, so that a client that got its answer finds
// the entries recorded; or, under Observe, hands it to the observer once
// answered. observe is the observer the request started under.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, observe func(Observed), rec Request, status int, msg, key string, entries [][]byte, trunc int) {
	if observe == nil {
		s.record(rec, status, key, entries, trunc)
		if status != 0 {
			answer(w, status, msg)
		}
		return
	}
	// A client that left before its answer was written never sees it; one
	// that leaves later may have read it, so only the first counts.
	unanswered := status == 0 || r.Context().Err() != nil
	if status != 0 {
		answer(w, status, msg)
	}
	rec.Status, rec.At = status, time.Now()
	if status != http.StatusAccepted {
		entries = nil
	}
	observe(Observed{Request: rec, Entries: entries, Unanswered: unanswered})
}

// read checks the body and returns the status to answer, an error message,
// and the entries to record on success, which point into rawBuf.
func (s *Server) read(r *http.Request, wire []byte, rerr error, rawBuf *bytes.Buffer, rec *Request, reject func([]byte) bool, oversize Oversize) (int, string, [][]byte, int) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return http.StatusBadRequest, "Content-Type must be application/json", nil, 0
	}
	if rerr != nil {
		return http.StatusBadRequest, "cannot read body", nil, 0
	}
	rec.WireBytes = len(wire)
	if len(wire) > maxWireBytes {
		return http.StatusRequestEntityTooLarge, "payload is above " + strconv.Itoa(MaxRequestBytes) + " bytes", nil, 0
	}
	var body io.Reader = bytes.NewReader(wire)
	size := int64(len(wire))
	switch strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))) {
	case "", "identity":
	case "gzip":
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(body)
		} else {
			err = zr.Reset(body)
		}
		if err != nil {
			return http.StatusBadRequest, "body is not gzip", nil, 0
		}
		defer gzipReaders.Put(zr)
		body = zr
		// The trailer's ISIZE is the (last member's) size uncompressed: a
		// hint for the buffer, bounded by the limit.
		if n := len(wire); n >= 4 {
			size = int64(binary.LittleEndian.Uint32(wire[n-4:]))
		}
	case "deflate":
		zr, err := zlib.NewReader(body)
		if err != nil {
			return http.StatusBadRequest, "body is not deflate", nil, 0
		}
		body = zr
	default:
		return http.StatusBadRequest, "unsupported Content-Encoding", nil, 0
	}
	raw, err := readAll(rawBuf, body, MaxRequestBytes+1, size)
	if err != nil {
		return http.StatusBadRequest, "body does not decode: " + err.Error(), nil, 0
	}
	rec.Bytes = len(raw)
	if len(raw) > MaxRequestBytes {
		return http.StatusRequestEntityTooLarge, "payload is above " + strconv.Itoa(MaxRequestBytes) + " bytes", nil, 0
	}
	// One scan that validates and splits: the fake shares the machine with
	// what it measures, so it must not cost more than the intake's contract
	// needs. A body it declines gets json.Valid's verdict and error.
	items, ok := splitValidArray(raw)
	if !ok {
		if !json.Valid(raw) {
			var probe any
			err := json.Unmarshal(raw, &probe)
			return http.StatusBadRequest, "malformed JSON: " + err.Error(), nil, 0
		}
		t := bytes.TrimLeft(raw, " \t\r\n")
		if t[0] != '[' {
			return http.StatusBadRequest, "body must be a JSON array", nil, 0
		}
		items = splitArray(t)
	}
	rec.Entries = len(items)
	if len(items) > MaxEntries {
		return http.StatusRequestEntityTooLarge, "more than " + strconv.Itoa(MaxEntries) + " entries", nil, 0
	}
	entries := make([][]byte, len(items))
	trunc := 0
	for i, it := range items {
		if len(it) == 0 || it[0] != '{' {
			return http.StatusBadRequest, "entry " + strconv.Itoa(i) + " is not a JSON object", nil, 0
		}
		if len(it) > MaxEntryBytes {
			if oversize == Reject {
				return http.StatusBadRequest, "entry " + strconv.Itoa(i) + " is above " + strconv.Itoa(MaxEntryBytes) + " bytes", nil, 0
			}
			// Keep a decodable stand-in for the cut log.
			it = json.RawMessage(`{"truncated":true,"size":` + strconv.Itoa(len(it)) + `}`)
			trunc++
		}
		if reject != nil && reject(it) {
			return http.StatusBadRequest, "entry " + strconv.Itoa(i) + " rejected", nil, 0
		}
		entries[i] = it
	}
	return http.StatusAccepted, "", entries, trunc
}

// gzipReaders keeps gzip readers (tens of KB of state each) between
// requests.
var gzipReaders sync.Pool

// readAll reads r up to limit bytes into buf, grown first by the hint
// (bounded by limit), instead of io.ReadAll's growing and copying.
func readAll(buf *bytes.Buffer, r io.Reader, limit, hint int64) ([]byte, error) {
	hint = min(max(hint, 0), limit)
	buf.Reset()
	buf.Grow(int(hint) + bytes.MinRead)
	_, err := buf.ReadFrom(io.LimitReader(r, limit))
	return buf.Bytes(), err
}

// bufs keeps request body buffers between requests: the fake shares the
// CPUs with what it measures, and a new buffer per request is garbage the
// forwarder's collector pays for.
var bufs sync.Pool

func getBuf() *bytes.Buffer {
	if b, ok := bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 2*MaxRequestBytes {
		bufs.Put(b)
	}
}

func (s *Server) record(rec Request, status int, key string, entries [][]byte, trunc int) {
	rec.Status, rec.At = status, time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, rec)
	if status == http.StatusAccepted {
		s.entries[key] = append(s.entries[key], entries...)
		s.truncated += trunc
	}
}

// answer writes the intake's answers: {} for 202, and the API's error shape
// otherwise.
func answer(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusAccepted {
		io.WriteString(w, "{}")
		return
	}
	b, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"status": strconv.Itoa(status), "title": http.StatusText(status), "detail": msg}}})
	w.Write(b)
}

// splitArray returns the elements of a JSON array that json.Valid accepted.
func splitArray(arr []byte) []json.RawMessage {
	var items []json.RawMessage
	depth, start, inString, escaped := 0, -1, false, false
	for i, c := range arr {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			if depth == 1 && start < 0 {
				start = i
			}
		case '[', '{':
			if depth == 1 && start < 0 {
				start = i
			}
			depth++
		case ']', '}':
			depth--
			if depth == 0 && start >= 0 {
				items = append(items, bytes.TrimRight(arr[start:i], " \t\r\n"))
				start = -1
			}
		case ',':
			if depth == 1 && start >= 0 {
				items = append(items, bytes.TrimRight(arr[start:i], " \t\r\n"))
				start = -1
			}
		case ' ', '\t', '\r', '\n':
		default:
			if depth == 1 && start < 0 {
				start = i
			}
		}
	}
	return items
}
