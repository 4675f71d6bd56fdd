// Package ebfake is an in-process Amazon EventBridge for tests: an HTTP
// server on 127.0.0.1 answering PutEvents in the AWS JSON 1.1 protocol
// under the real service's contract, recording what it accepts per event
// bus, and scriptable to fail. STS (AssumeRole) has a fake of its own here
// too, so assumed-role credentials can be tested end to end.
//
// What it enforces, in this order:
//  1. POST to / with X-Amz-Target AWSEvents.PutEvents and Content-Type
//     application/x-amz-json-1.1: 400 UnknownOperationException or
//     SerializationException otherwise;
//  2. Slow delays the answer;
//  3. a SigV4 Authorization header ("AWS4-HMAC-SHA256 Credential=...") for
//     the service "events": 403 MissingAuthenticationTokenException or
//     InvalidSignatureException otherwise. The signature is verified for
//     keys added with AddKey; RequireKnownKeys refuses other keys with 400
//     UnrecognizedClientException, as AWS refuses a key it does not know;
//  4. scripted answers: FailNext and Throttle answer the next calls whole
//     (500 InternalException, 400 ThrottlingException, ...);
//  5. the body must be a PutEvents request: 400 SerializationException;
//  6. 1 to 10 entries (400 ValidationException) of at most 256 KiB in all,
//     counted as AWS counts (Entry.Size): 400 ValidationException;
//  7. DenyBus: a call with an entry for a denied bus fails whole with 400
//     AccessDeniedException, as it does for a bus the caller may not write;
//  8. each entry: Source, DetailType and Detail present (InvalidArgument),
//     DetailType at most 128 characters (InvalidArgument), Detail a JSON
//     object (MalformedDetail), Source not starting with "aws."
//     (NotAuthorizedForSourceException); then FailEntries may fail it with
//     any code. Failed entries get ErrorCode and ErrorMessage in the
//     answer and are not recorded;
//
// then it records the accepted entries with an EventId and answers 200
// with FailedEntryCount and one result per entry, in order.
package ebfake

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The real service's limits and names.
const (
	MaxEntries    = 10
	MaxCallBytes  = 256 * 1024
	TimeBytes     = 14
	MaxDetailType = 128
	Target        = "AWSEvents.PutEvents"
	ContentType   = "application/x-amz-json-1.1"
	Account       = "123456789012"
	DefaultBus    = "default"
	maxBodyBytes  = 4 << 20
)

// Entry is one PutEvents request entry as the fake received it.
type Entry struct {
	Source       string
	DetailType   string
	Detail       string
	EventBusName string
	Resources    []string
	Time         *time.Time
	TraceHeader  string

	// Bus is the name of the bus the entry is for: EventBusName, or the
	// name inside it when it is an ARN, or "default".
	Bus string
	// EventID is the id the fake gave an accepted entry.
	EventID string
	// Region is the region of the call's credential scope.
	Region string
	// Received is when the fake accepted it.
	Received time.Time
}

// Size is the entry's size as EventBridge computes it: 14 bytes for Time
// when present, plus the UTF-8 bytes of Source, DetailType, Detail and each
// resource.
func (e Entry) Size() int {
	n := len(e.Source) + len(e.DetailType) + len(e.Detail)
	if e.Time != nil {
		n += TimeBytes
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

// Event is the entry as EventBridge delivers it to a rule's targets.
func (e Entry) Event() map[string]any {
	var detail any
	_ = json.Unmarshal([]byte(e.Detail), &detail)
	t := e.Received
	if e.Time != nil {
		t = *e.Time
	}
	res := []any{}
	for _, r := range e.Resources {
		res = append(res, r)
	}
	return map[string]any{
		"version":     "0",
		"id":          e.EventID,
		"detail-type": e.DetailType,
		"source":      e.Source,
		"account":     Account,
		"time":        t.UTC().Format("2006-01-02T15:04:05Z"),
		"region":      e.Region,
		"resources":   res,
		"detail":      detail,
	}
}

// Call is one call as the fake saw it.
type Call struct {
	// Status is what the fake answered; ErrorType its __type when not 200.
	Status    int
	ErrorType string
	// AccessKeyID and Region are from the credential scope.
	AccessKeyID string
	Region      string
	// Entries as received, when the body was read; Codes holds each one's
	// ErrorCode in a 200 answer ("" when accepted).
	Entries []Entry
	Codes   []string
	// Bytes is the entries' summed Size.
	Bytes int
}

// Failed is the number of entries of a 200 answer that failed.
func (c Call) Failed() int {
	n := 0
	for _, code := range c.Codes {
		if code != "" {
			n++
		}
	}
	return n
}

type scripted struct {
	status int
	typ    string
	msg    string
}

// Server is the fake EventBridge. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server
	now func() time.Time

	mu          sync.Mutex
	keys        keyring
	entries     map[string][]Entry
	counts      map[string]int
	calls       []Call
	failNext    []scripted
	denied      map[string]bool
	failEntries func(call, i int, e Entry) string
	slow        time.Duration
	keep        bool
	onAccepted  func(e Entry)
	entryCalls  int
	inFlight    int
	maxInFlight int
	stats       Stats
}

// Stats count what the fake saw since New or Reset, kept or not.
type Stats struct {
	// Calls received, and of them those answered 200.
	Calls, OK int
	// Accepted and Failed entries of calls answered 200.
	Accepted, Failed int
	// Bytes of the accepted entries, as Entry.Size counts them.
	Bytes int64
}

// New starts a fake EventBridge on 127.0.0.1. Close it when done.
func New() *Server {
	s := &Server{now: time.Now, keep: true}
	s.resetLocked()
	s.keys.keys = map[string]Key{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's endpoint, for an endpoint override.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server, first ending any call still waiting in Slow.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// AddKey makes k a known key: calls signed with it have their signature
// (and session token, when k has one) verified.
func (s *Server) AddKey(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys.keys[k.AccessKeyID] = k
}

func (s *Server) lookupKey(id string) (Key, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys.keys[id]
	return k, ok, s.keys.require
}

// RemoveKey forgets a key (a revoked one, with RequireKnownKeys).
func (s *Server) RemoveKey(accessKeyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys.keys, accessKeyID)
}

// RequireKnownKeys refuses calls signed with a key AddKey did not add.
func (s *Server) RequireKnownKeys(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys.require = on
}

// FailNext answers the next n calls with status and an error body
// ({"__type": typ, "message": msg}). An empty typ is chosen by status:
// InternalException for 500, ServiceUnavailableException for 503,
// ThrottlingException for 429, else UnknownError.
func (s *Server) FailNext(n, status int, typ, msg string) {
	if typ == "" {
		switch status {
		case http.StatusInternalServerError:
			typ = "InternalException"
		case http.StatusServiceUnavailable:
			typ = "ServiceUnavailableException"
		case http.StatusTooManyRequests:
			typ = "ThrottlingException"
		default:
			typ = "UnknownError"
		}
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, scripted{status, typ, msg})
	}
}

// Throttle answers the next n calls 400 ThrottlingException "Rate
// exceeded", as EventBridge does past the account's PutEvents quota.
func (s *Server) Throttle(n int) {
	s.FailNext(n, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
}

// DenyBus makes every call with an entry for bus (a name, or an ARN's
// name) fail with 400 AccessDeniedException.
func (s *Server) DenyBus(bus string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[busName(bus)] = true
}

// AllowBus undoes DenyBus.
func (s *Server) AllowBus(bus string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.denied, busName(bus))
}

// FailEntries fails entries of calls that pass every other check: fn gets
// the call's number (counted from 0 among such calls), the entry's index
// in the call and the entry, and returns an error code ("" to accept),
// e.g. ThrottlingException, InternalFailure, InvalidArgument,
// MalformedDetail or AccessDeniedException. nil stops it.
func (s *Server) FailEntries(fn func(call, i int, e Entry) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failEntries = fn
}

// Slow delays every answer by d (0 to stop); the wait ends early when the
// client gives up.
func (s *Server) Slow(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow = d
}

// KeepEntries says whether accepted entries and calls are kept (the
// default) or only counted, for long runs.
func (s *Server) KeepEntries(keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = keep
}

// OnAccepted calls fn for every accepted entry, outside the fake's lock;
// nil stops it.
func (s *Server) OnAccepted(fn func(e Entry)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onAccepted = fn
}

// Reset forgets the recorded entries, counts and calls and every script;
// keys stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Server) resetLocked() {
	s.entries = map[string][]Entry{}
	s.counts = map[string]int{}
	s.calls = nil
	s.failNext = nil
	s.denied = map[string]bool{}
	s.failEntries = nil
	s.slow = 0
	s.entryCalls = 0
	s.maxInFlight = s.inFlight
	s.stats = Stats{}
}

// Stats returns the counts since New or Reset.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Entries returns the entries accepted for bus (a name), in order.
func (s *Server) Entries(bus string) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.entries[busName(bus)]...)
}

// Events returns the entries accepted for bus as EventBridge delivers
// them to targets (see Entry.Event).
func (s *Server) Events(bus string) []map[string]any {
	var out []map[string]any
	for _, e := range s.Entries(bus) {
		out = append(out, e.Event())
	}
	return out
}

// Count is the number of entries accepted for bus.
func (s *Server) Count(bus string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[busName(bus)]
}

// Total is the number of entries accepted for every bus.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.counts {
		n += c
	}
	return n
}

// Calls returns every call received, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// MaxInFlight is the most calls the fake was answering at once since New
// or Reset.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

func busName(bus string) string {
	if bus == "" {
		return DefaultBus
	}
	if i := strings.LastIndex(bus, ":event-bus/"); i >= 0 && strings.HasPrefix(bus, "arn:") {
		return bus[i+len(":event-bus/"):]
	}
	return bus
}

// request is a PutEvents request body; unknown members are refused.
type request struct {
	Entries    []entryJSON `json:"Entries"`
	EndpointID *string     `json:"EndpointId"`
}

type entryJSON struct {
	Source       *string      `json:"Source"`
	DetailType   *string      `json:"DetailType"`
	Detail       *string      `json:"Detail"`
	EventBusName *string      `json:"EventBusName"`
	Resources    []string     `json:"Resources"`
	Time         *json.Number `json:"Time"`
	TraceHeader  *string      `json:"TraceHeader"`
}

type result struct {
	EventID, ErrorCode, ErrorMessage string
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	slow := s.slow
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	body, rerr := readBody(r)
	call := Call{}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		s.answerError(w, &call, http.StatusNotFound, "UnknownOperationException", "no such route")
		return
	}
	if tgt := r.Header.Get("X-Amz-Target"); tgt != Target {
		s.answerError(w, &call, http.StatusBadRequest, "UnknownOperationException", "unknown operation "+strconv.Quote(tgt))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ContentType {
		s.answerError(w, &call, http.StatusBadRequest, "SerializationException", "Content-Type must be "+ContentType)
		return
	}
	if slow > 0 {
		t := time.NewTimer(slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.record(call, nil)
			return
		}
	}

	auth, status, typ, msg := CheckAuth(r, body, "events", s.now(), s.lookupKey)
	var script *scripted
	s.mu.Lock()
	if status == 0 && len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		script = &f
	}
	s.mu.Unlock()
	call.AccessKeyID, call.Region = auth.AccessKeyID, auth.Region
	if status != 0 {
		s.answerError(w, &call, status, typ, msg)
		return
	}
	if script != nil {
		s.answerError(w, &call, script.status, script.typ, script.msg)
		return
	}
	if rerr != nil || len(body) > maxBodyBytes {
		s.answerError(w, &call, http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException", "Request Entity Too Large")
		return
	}
	req, ok := parseRequest(body)
	if !ok {
		req = request{}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		if err := dec.Decode(&req); err != nil {
			s.answerError(w, &call, http.StatusBadRequest, "SerializationException", "body is not a PutEvents request: "+err.Error())
			return
		}
		if dec.More() {
			s.answerError(w, &call, http.StatusBadRequest, "SerializationException", "body is not a PutEvents request: data after the object")
			return
		}
	}
	now := s.now()
	call.Entries = make([]Entry, 0, len(req.Entries))
	var times []time.Time // the entries' times, allocated together
	for _, in := range req.Entries {
		e := Entry{Source: deref(in.Source), DetailType: deref(in.DetailType), Detail: deref(in.Detail),
			EventBusName: deref(in.EventBusName), Resources: in.Resources, TraceHeader: deref(in.TraceHeader),
			Bus: busName(deref(in.EventBusName)), Region: auth.Region, Received: now}
		if in.Time != nil {
			f, err := in.Time.Float64()
			if err != nil {
				s.answerError(w, &call, http.StatusBadRequest, "SerializationException", "Time is not a number")
				return
			}
			if times == nil {
				times = make([]time.Time, 0, len(req.Entries))
			}
			times = append(times, time.UnixMilli(int64(f*1000+0.5)).UTC())
			e.Time = &times[len(times)-1]
		}
		call.Entries = append(call.Entries, e)
		call.Bytes += e.Size()
	}
	switch n := len(call.Entries); {
	case n == 0:
		s.answerError(w, &call, http.StatusBadRequest, "ValidationException",
			"1 validation error detected: Value '[]' at 'entries' failed to satisfy constraint: Member must have length greater than or equal to 1")
		return
	case n > MaxEntries:
		s.answerError(w, &call, http.StatusBadRequest, "ValidationException",
			"1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10")
		return
	}
	if call.Bytes > MaxCallBytes {
		s.answerError(w, &call, http.StatusBadRequest, "ValidationException", "Total size of the entries in the request is over the limit.")
		return
	}

	s.mu.Lock()
	for _, e := range call.Entries {
		if s.denied[e.Bus] {
			s.mu.Unlock()
			s.answerError(w, &call, http.StatusBadRequest, "AccessDeniedException",
				fmt.Sprintf("User: arn:aws:sts::%s:assumed-role/writer/session is not authorized to perform: events:PutEvents on resource: arn:aws:events:%s:%s:event-bus/%s because no identity-based policy allows the events:PutEvents action",
					Account, auth.Region, Account, e.Bus))
			return
		}
	}
	callNo := s.entryCalls
	s.entryCalls++
	failEntries := s.failEntries
	s.mu.Unlock()

	results := make([]result, len(call.Entries))
	call.Codes = make([]string, len(call.Entries))
	failed := 0
	accepted := make([]Entry, 0, len(call.Entries))
	for i, e := range call.Entries {
		code, msg := checkEntry(e)
		if code == "" && failEntries != nil {
			if code = failEntries(callNo, i, e); code != "" {
				msg = entryMessage(code)
			}
		}
		if code != "" {
			results[i] = result{ErrorCode: code, ErrorMessage: msg}
			call.Codes[i] = code
			failed++
			continue
		}
		e.EventID = newID()
		call.Entries[i] = e
		results[i] = result{EventID: e.EventID}
		accepted = append(accepted, e)
	}
	call.Status = http.StatusOK
	s.record(call, accepted)
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Amzn-Requestid", newID())
	b := make([]byte, 0, 64*len(results)+48)
	b = append(b, `{"Entries":[`...)
	for i, r := range results {
		if i > 0 {
			b = append(b, ',')
		}
		if r.ErrorCode == "" {
			b = append(b, `{"EventId":`...)
			b = strconv.AppendQuote(b, r.EventID)
		} else {
			b = append(b, `{"ErrorCode":`...)
			b = appendJSONString(b, r.ErrorCode)
			b = append(b, `,"ErrorMessage":`...)
			b = appendJSONString(b, r.ErrorMessage)
		}
		b = append(b, '}')
	}
	b = append(b, `],"FailedEntryCount":`...)
	b = strconv.AppendInt(b, int64(failed), 10)
	b = append(b, '}')
	_, _ = w.Write(b)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

// readBody reads the request's body, in one allocation when its length is
// announced.
func readBody(r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= maxBodyBytes {
		body := make([]byte, n)
		_, err := io.ReadFull(r.Body, body)
		return body, err
	}
	return io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// checkEntry applies EventBridge's own checks to one entry.
func checkEntry(e Entry) (code, msg string) {
	switch {
	case e.Source == "" || e.DetailType == "" || e.Detail == "":
		return "InvalidArgument", "Parameters Source, DetailType and Detail are required."
	case utf8.RuneCountInString(e.DetailType) > MaxDetailType:
		return "InvalidArgument", "Parameter DetailType is not valid. Reason: length is greater than 128."
	case len(e.Source) >= 4 && strings.EqualFold(e.Source[:4], "aws."):
		return "NotAuthorizedForSourceException", "Not authorized for the source."
	case !validObject(e.Detail):
		return "MalformedDetail", "Detail is malformed."
	}
	return "", ""
}

func entryMessage(code string) string {
	switch code {
	case "ThrottlingException":
		return "Rate exceeded."
	case "InternalFailure":
		return "The request processing has failed because of an unknown error, exception or failure."
	case "AccessDeniedException":
		return "You do not have sufficient access to perform this action."
	case "InvalidArgument":
		return "A specified parameter is not valid."
	case "MalformedDetail":
		return "Detail is malformed."
	}
	return code
}

func (s *Server) answerError(w http.ResponseWriter, call *Call, status int, typ, msg string) {
	call.Status, call.ErrorType = status, typ
	s.record(*call, nil)
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Amzn-Requestid", newID())
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"__type": typ, "message": msg})
	_, _ = w.Write(b)
}

func (s *Server) record(call Call, accepted []Entry) {
	s.mu.Lock()
	s.stats.Calls++
	if call.Status == http.StatusOK {
		s.stats.OK++
		s.stats.Accepted += len(accepted)
		s.stats.Failed += len(call.Entries) - len(accepted)
	}
	for _, e := range accepted {
		s.counts[e.Bus]++
		s.stats.Bytes += int64(e.Size())
	}
	if s.keep {
		s.calls = append(s.calls, call)
		for _, e := range accepted {
			s.entries[e.Bus] = append(s.entries[e.Bus], e)
		}
	}
	fn := s.onAccepted
	s.mu.Unlock()
	if fn != nil {
		for _, e := range accepted {
			fn(e)
		}
	}
}

// newID returns a random UUID-shaped id.
func newID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
