// Package otlpfake is a project-written OTLP/HTTP logs receiver for tests:
// an HTTP server on 127.0.0.1 answering POST /v1/logs under the OTLP/HTTP
// specification, recording the records it accepts per tenant
// (X-Scope-OrgID), and scriptable for what a real receiver will not do on
// demand: partial success, 429 with Retry-After, 503 storms, 400 for one
// record, 401, slow answers, a missing tenant.
//
// What it enforces, in this order:
//  1. scripted behaviour: Slow delays every answer, FailNext answers the
//     next requests with a status and headers, Always answers one
//     tenant's requests with a status for good;
//  2. RequireAuthorization: the Authorization header must be one of the
//     values given, 401 otherwise; RequireTenant: X-Scope-OrgID must be
//     set, 401 otherwise (Loki's "no org id");
//  3. Content-Type must be application/x-protobuf or application/json:
//     415 otherwise; Content-Encoding gzip is decoded, none is read as is,
//     anything else is 400;
//  4. the uncompressed body must be at most MaxRequestBytes: 413;
//  5. the body must be an ExportLogsServiceRequest: 400;
//  6. Reject: records that match are refused, either with a 400 for the
//     whole request or with a 200 whose partial_success counts them (and,
//     as OTLP allows, does not say which);
//
// then it records the accepted records and answers 200 with an
// ExportLogsServiceResponse in the request's encoding. Error answers carry
// a google.rpc.Status in the request's encoding, as the specification says.
package otlpfake

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// LogsPath is the receiver's path.
const LogsPath = "/v1/logs"

// DefaultMaxRequestBytes is the fake's limit on an uncompressed body.
const DefaultMaxRequestBytes = 4 << 20

// Rejection is how Reject refuses matching records.
type Rejection int

const (
	// BadRequest answers 400 for a request holding any matching record.
	BadRequest Rejection = iota
	// PartialSuccess accepts the others and answers 200 with
	// partial_success.rejected_log_records = the number that matched.
	PartialSuccess
)

// Record is one accepted log record, flattened for assertions.
type Record struct {
	Tenant    string
	Resource  map[string]any
	Scope     string
	EventID   string // the log.record.uid attribute
	Body      string
	Severity  plog.SeverityNumber
	SevText   string
	EventName string
	Time      time.Time
	Observed  time.Time
	Attrs     map[string]any
}

// Request is one request as the fake saw it.
type Request struct {
	Tenant          string
	Authorization   string
	Status          int
	Records         int // in the body, when it was read
	Rejected        int // refused under Reject
	Bytes           int // uncompressed
	WireBytes       int
	ContentType     string
	ContentEncoding string
	UserAgent       string
	Header          http.Header
	// At is when the answer was written (or the client was found gone:
	// Status 0).
	At time.Time
}

type failure struct {
	status  int
	headers http.Header
}

// Server is the fake receiver. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu            sync.Mutex
	records       map[string][]Record
	requests      []Request
	failNext      []failure
	always        map[string]failure
	slow          time.Duration
	auth          map[string]bool
	requireTenant bool
	reject        func(Record) bool
	rejection     Rejection
	maxBytes      int
	tally         func(Tally)
	onAccepted    func(Accepted)
	inFlight      int
	maxInFlight   int
}

// New starts a fake receiver on 127.0.0.1 (an ephemeral port). Close it
// when done.
func New() *Server {
	s := &Server{records: map[string][]Record{}, always: map[string]failure{}, maxBytes: DefaultMaxRequestBytes}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's base URL, for Config.Endpoint (with allow_http).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// RequireAuthorization makes the fake answer 401 unless the Authorization
// header is one of values; none turns the check off.
func (s *Server) RequireAuthorization(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = nil
	if len(values) > 0 {
		s.auth = map[string]bool{}
		for _, v := range values {
			s.auth[v] = true
		}
	}
}

// RequireTenant makes the fake answer 401 to a request without
// X-Scope-OrgID, as a multi-tenant Loki does.
func (s *Server) RequireTenant(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requireTenant = on
}

// FailNext answers the next n requests with status and headers.
func (s *Server) FailNext(n, status int, headers http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, failure{status, headers})
	}
}

// Always answers every request of tenant with status (0 stops it).
func (s *Server) Always(tenant string, status int, headers http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.always, tenant)
		return
	}
	s.always[tenant] = failure{status, headers}
}

// Slow delays every answer by d (0 stops it).
func (s *Server) Slow(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow = d
}

// Reject refuses the records fn matches, as how says; nil stops it.
func (s *Server) Reject(fn func(Record) bool, how Rejection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject, s.rejection = fn, how
}

// SetMaxRequestBytes sets the limit on an uncompressed body.
func (s *Server) SetMaxRequestBytes(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxBytes = n
}

// Tally is what a counting fake hands on for each accepted request.
type Tally struct {
	Tenant string
	// IDs and Times are each record's log.record.uid and time_unix_nano;
	// they are valid only during the call.
	IDs   []string
	Times []time.Time
	// At is when the request was decoded.
	At time.Time
}

// Count makes the fake hand each accepted request's record ids and times
// to fn instead of keeping the records (Records and Count then stay
// empty, and Reject does not apply): benchmarks send millions of records.
// nil goes back to keeping them.
func (s *Server) Count(fn func(Tally)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tally = fn
}

// Accepted is one record the fake accepted, as OnAccepted hands it on.
type Accepted struct {
	Tenant        string // X-Scope-OrgID
	Authorization string // the request's Authorization header
	EventID       string // the log.record.uid attribute, "" without one
	Body          string // the record's body as a string
	// At is when the answer was written.
	At time.Time
	// Unanswered is true when the client had gone before the answer was
	// written: a client that timed out sends the records again.
	Unanswered bool
}

// OnAccepted has fn see every record the fake accepts, once its request is
// answered, instead of the fake keeping it: with fn set, Records,
// EventIDs, Accepted and Requests stay empty, so a long run holds only the
// observer's own state. fn runs on the request's goroutine,
// outside the fake's lock. nil goes back to keeping records.
func (s *Server) OnAccepted(fn func(Accepted)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onAccepted = fn
}

// Records are the records accepted for tenant, in arrival order.
func (s *Server) Records(tenant string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records[tenant]...)
}

// EventIDs are the log.record.uid of the records accepted for tenant.
func (s *Server) EventIDs(tenant string) []string {
	var out []string
	for _, r := range s.Records(tenant) {
		out = append(out, r.EventID)
	}
	return out
}

// Accepted is the number of records accepted for tenant.
func (s *Server) Accepted(tenant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records[tenant])
}

// Requests are the requests answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// MaxInFlight is the most requests answered at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// Reset forgets records, requests and scripts.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = map[string][]Record{}
	s.requests = nil
	s.failNext = nil
	s.always = map[string]failure{}
	s.slow = 0
	s.reject = nil
	s.maxInFlight = s.inFlight
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != LogsPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	tenant := r.Header.Get("X-Scope-OrgID")
	rec := Request{Tenant: tenant, Authorization: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"), UserAgent: r.Header.Get("User-Agent"), Header: r.Header.Clone()}
	jsonBody := mediaType(rec.ContentType) == "application/json"

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
	} else if f, ok := s.always[tenant]; ok {
		scripted = &f
	}
	auth, requireTenant, reject, rejection, maxBytes, tally, onAccepted := s.auth, s.requireTenant, s.reject, s.rejection, s.maxBytes, s.tally, s.onAccepted
	s.mu.Unlock()

	wire, rerr := io.ReadAll(io.LimitReader(r.Body, int64(maxBytes)*2+1))
	rec.WireBytes = len(wire)
	if slow > 0 {
		t := time.NewTimer(slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.record(rec, 0, nil)
			return
		}
	}
	fail := func(status int, msg string) {
		s.record(rec, status, nil)
		writeStatus(w, jsonBody, status, msg)
	}
	switch {
	case scripted != nil:
		for k, v := range scripted.headers {
			w.Header()[k] = v
		}
		fail(scripted.status, http.StatusText(scripted.status))
		return
	case auth != nil && !auth[rec.Authorization]:
		fail(http.StatusUnauthorized, "invalid credentials")
		return
	case requireTenant && tenant == "":
		fail(http.StatusUnauthorized, "no org id")
		return
	case rerr != nil:
		fail(http.StatusBadRequest, "read body: "+rerr.Error())
		return
	}
	switch mediaType(rec.ContentType) {
	case "application/x-protobuf", "application/json":
	default:
		fail(http.StatusUnsupportedMediaType, "unsupported content type "+rec.ContentType)
		return
	}
	body := wire
	switch rec.ContentEncoding {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(wire))
		if err == nil {
			body, err = io.ReadAll(io.LimitReader(zr, int64(maxBytes)+1))
		}
		if err != nil {
			fail(http.StatusBadRequest, "gzip: "+err.Error())
			return
		}
	default:
		fail(http.StatusBadRequest, "unsupported content encoding "+rec.ContentEncoding)
		return
	}
	rec.Bytes = len(body)
	if len(body) > maxBytes {
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("request over %d bytes", maxBytes))
		return
	}
	req := plogotlp.NewExportRequest()
	var err error
	if jsonBody {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		fail(http.StatusBadRequest, "not an ExportLogsServiceRequest: "+err.Error())
		return
	}
	if tally != nil {
		t := Tally{Tenant: tenant, At: time.Now()}
		rls := req.Logs().ResourceLogs()
		for i := range rls.Len() {
			sls := rls.At(i).ScopeLogs()
			for j := range sls.Len() {
				lrs := sls.At(j).LogRecords()
				for k := range lrs.Len() {
					lr := lrs.At(k)
					id, _ := lr.Attributes().Get("log.record.uid")
					t.IDs = append(t.IDs, id.Str())
					t.Times = append(t.Times, lr.Timestamp().AsTime())
				}
			}
		}
		rec.Records = len(t.IDs)
		s.record(rec, http.StatusOK, nil)
		tally(t)
		writeExport(w, jsonBody, 0)
		return
	}
	all := Flatten(tenant, req.Logs())
	rec.Records = len(all)
	kept := all[:0:0]
	for _, x := range all {
		if reject != nil && reject(x) {
			rec.Rejected++
			continue
		}
		kept = append(kept, x)
	}
	if rec.Rejected > 0 && rejection == BadRequest {
		fail(http.StatusBadRequest, fmt.Sprintf("%d log records are invalid", rec.Rejected))
		return
	}
	if onAccepted == nil {
		s.record(rec, http.StatusOK, kept)
		writeExport(w, jsonBody, rec.Rejected)
		return
	}
	writeExport(w, jsonBody, rec.Rejected)
	// A client that left before its answer was written never sees it; one
	// that leaves later may have read it, so only the first counts.
	at, unanswered := time.Now(), r.Context().Err() != nil
	for _, x := range kept {
		onAccepted(Accepted{Tenant: tenant, Authorization: rec.Authorization, EventID: x.EventID, Body: x.Body, At: at, Unanswered: unanswered})
	}
}

// writeExport answers 200 with an ExportLogsServiceResponse counting
// rejected records, in the request's encoding.
func writeExport(w http.ResponseWriter, jsonBody bool, rejected int) {
	resp := plogotlp.NewExportResponse()
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedLogRecords(int64(rejected))
		resp.PartialSuccess().SetErrorMessage(fmt.Sprintf("%d log records rejected: timestamp too old", rejected))
	}
	var out []byte
	if jsonBody {
		out, _ = resp.MarshalJSON()
		w.Header().Set("Content-Type", "application/json")
	} else {
		out, _ = resp.MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

func (s *Server) record(rec Request, status int, kept []Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onAccepted != nil {
		return // observed, not kept
	}
	rec.Status = status
	rec.At = time.Now()
	s.requests = append(s.requests, rec)
	if status == http.StatusOK {
		s.records[rec.Tenant] = append(s.records[rec.Tenant], kept...)
	}
}

// writeStatus answers status with a google.rpc.Status in the request's
// encoding.
func writeStatus(w http.ResponseWriter, jsonBody bool, code int, msg string) {
	st := &status.Status{Code: grpcCode(code), Message: msg}
	var out []byte
	if jsonBody {
		out, _ = protojson.Marshal(st)
		w.Header().Set("Content-Type", "application/json")
	} else {
		out, _ = proto.Marshal(st)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
	w.WriteHeader(code)
	_, _ = w.Write(out)
}

// grpcCode is the gRPC code for an HTTP status, as the Collector maps them.
func grpcCode(status int) int32 {
	switch status {
	case http.StatusBadRequest:
		return 3 // InvalidArgument
	case http.StatusUnauthorized:
		return 16 // Unauthenticated
	case http.StatusForbidden:
		return 7 // PermissionDenied
	case http.StatusTooManyRequests, http.StatusRequestEntityTooLarge:
		return 8 // ResourceExhausted
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return 14 // Unavailable
	}
	return 2 // Unknown
}

func mediaType(ctype string) string {
	mt, _, _ := mime.ParseMediaType(ctype)
	return strings.ToLower(mt)
}

// Flatten lists the records of logs with their resource and scope.
func Flatten(tenant string, logs plog.Logs) []Record {
	var out []Record
	for i := 0; i < logs.ResourceLogs().Len(); i++ {
		rl := logs.ResourceLogs().At(i)
		res := rl.Resource().Attributes().AsRaw()
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			sl := rl.ScopeLogs().At(j)
			for k := 0; k < sl.LogRecords().Len(); k++ {
				lr := sl.LogRecords().At(k)
				rec := Record{
					Tenant: tenant, Resource: res, Scope: sl.Scope().Name(),
					Body: lr.Body().AsString(), Severity: lr.SeverityNumber(), SevText: lr.SeverityText(), EventName: lr.EventName(),
					Time: lr.Timestamp().AsTime(), Observed: lr.ObservedTimestamp().AsTime(), Attrs: lr.Attributes().AsRaw(),
				}
				if v, ok := lr.Attributes().Get("log.record.uid"); ok && v.Type() == pcommon.ValueTypeStr {
					rec.EventID = v.Str()
				}
				out = append(out, rec)
			}
		}
	}
	return out
}
