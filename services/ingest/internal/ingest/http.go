package ingest

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"go.uber.org/zap"
)

const (
	mediaJSON   = "application/json"
	mediaNDJSON = "application/x-ndjson"
)

// handleEvents is POST /v1/events: one JSON event, a JSON array of events, or
// NDJSON, optionally gzip-compressed.
func (s *Service) handleEvents(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := s.serveEvents(w, r)
	s.metrics.requests.WithLabelValues("http", strconv.Itoa(code)).Inc()
	s.metrics.requestLatency.WithLabelValues("http").Observe(time.Since(start).Seconds())
}

func (s *Service) serveEvents(w http.ResponseWriter, r *http.Request) int {
	p, why := s.auth.Authenticate(r.Header)
	if p == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="auditstream"`)
		s.metrics.rejected.WithLabelValues("unauthorized").Inc()
		return writeError(w, &apiError{status: http.StatusUnauthorized, code: "unauthorized", message: why})
	}
	media, err := mediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return writeError(w, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: err.Error()})
	}
	limits := s.cfg.Limits
	maxBody := int64(limits.MaxBodyBytes)
	if r.ContentLength > maxBody {
		s.metrics.rejected.WithLabelValues(auditevent.ReasonTooLarge).Inc()
		return writeError(w, tooLarge(fmt.Sprintf("body of %d bytes is over the %d byte limit", r.ContentLength, maxBody)))
	}
	reserve := maxBody
	if r.ContentLength > 0 && r.Header.Get("Content-Encoding") == "" {
		reserve = r.ContentLength
	}
	if !s.inflight.TryAcquire(reserve) {
		s.metrics.rejected.WithLabelValues("overloaded").Inc()
		return writeError(w, &apiError{status: http.StatusServiceUnavailable, code: "overloaded", message: "too many bytes in flight; nothing was written, retry shortly", retryAfter: time.Second})
	}
	s.metrics.inflightBytes.Add(float64(reserve))
	defer func() {
		s.inflight.Release(reserve)
		s.metrics.inflightBytes.Sub(float64(reserve))
	}()

	body, aerr := readBody(w, r, maxBody)
	if aerr != nil {
		if aerr.status == http.StatusRequestEntityTooLarge {
			s.metrics.rejected.WithLabelValues(auditevent.ReasonTooLarge).Inc()
		}
		return writeError(w, aerr)
	}
	var events []*auditlogv1.AuditEvent
	if media == mediaNDJSON {
		events, aerr = parseNDJSON(body, limits)
	} else {
		events, aerr = parseJSON(body, limits)
	}
	// The events and errors hold copies of what they took from the body.
	putBody(body)
	if aerr != nil {
		for _, d := range aerr.details {
			s.metrics.rejected.WithLabelValues(d.Reason).Inc()
		}
		if len(aerr.details) == 0 && aerr.status == http.StatusRequestEntityTooLarge {
			s.metrics.rejected.WithLabelValues(auditevent.ReasonTooLarge).Inc() // too many events
		}
		if aerr.batchRejected > 0 {
			s.metrics.rejected.WithLabelValues("batch_rejected").Add(float64(aerr.batchRejected))
		}
		return writeError(w, aerr)
	}
	ids, aerr := s.publish(r.Context(), p, events, true)
	if aerr != nil {
		return writeError(w, aerr)
	}
	return writeJSON(w, http.StatusAccepted, struct {
		IDs []string `json:"ids"`
	}{ids})
}

func mediaType(header string) (string, error) {
	if header == "" {
		return "", errors.New("Content-Type is required: application/json (one event or an array) or application/x-ndjson")
	}
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return "", fmt.Errorf("Content-Type %q cannot be parsed", truncate(header))
	}
	switch mt {
	case mediaJSON:
		return mediaJSON, nil
	case mediaNDJSON, "application/jsonl", "application/x-jsonlines":
		return mediaNDJSON, nil
	}
	return "", fmt.Errorf("Content-Type %q is not supported: use application/json (one event or an array) or application/x-ndjson", truncate(mt))
}

// readBody reads at most max bytes of the (decompressed) body.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *apiError) {
	var src io.Reader = http.MaxBytesReader(w, r.Body, max)
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, &apiError{status: http.StatusBadRequest, code: "malformed_body", message: "Content-Encoding is gzip but the body is not gzip: " + err.Error()}
		}
		defer zr.Close()
		// bound the decompressed size too: a small bomb must not fill memory
		src = io.LimitReader(zr, max+1)
	default:
		return nil, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: fmt.Sprintf("Content-Encoding %q is not supported: use gzip or none", truncate(enc))}
	}
	// Size the buffer from Content-Length: io.ReadAll's doubling was a third
	// of all bytes ingest allocated.
	size := int64(bytes.MinRead)
	if r.ContentLength > 0 {
		size = min(r.ContentLength, max) + bytes.MinRead
	}
	buf := bytes.NewBuffer(getBody(int(size)))
	_, err := buf.ReadFrom(src)
	body := buf.Bytes()
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr) || int64(len(body)) > max:
		putBody(body)
		return nil, tooLarge(fmt.Sprintf("body is over the %d byte limit", max))
	case err != nil:
		putBody(body)
		return nil, &apiError{status: http.StatusBadRequest, code: "malformed_body", message: "read body: " + err.Error()}
	}
	return body, nil
}

// Request bodies of more than minPooledBody bytes are read into pooled
// buffers: allocating (and zeroing) a new one per request was the largest
// share of the bytes ingest allocated. A buffer goes back once the body is
// parsed; the decoded events copy what they keep. Pooled buffers come in
// power-of-two sizes up to maxPooledBody, so a body never holds more than
// twice its size; larger bodies are left to the collector, and the pools
// themselves empty as the collector runs.
var bodyPools [bodyClasses]sync.Pool

const (
	minPooledBodyShift = 16 // 64 KiB
	bodyClasses        = 5  // 64 KiB to 1 MiB
	minPooledBody      = 1 << minPooledBodyShift
	maxPooledBody      = minPooledBody << (bodyClasses - 1)
)

// bodyClass returns the pool for buffers of at least size bytes, or -1.
func bodyClass(size int) int {
	if size <= minPooledBody/2 || size > maxPooledBody {
		return -1
	}
	c := 0
	for minPooledBody<<c < size {
		c++
	}
	return c
}

// getBody returns an empty buffer with room for size bytes.
func getBody(size int) []byte {
	c := bodyClass(size)
	if c < 0 {
		return make([]byte, 0, size)
	}
	if p, ok := bodyPools[c].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, minPooledBody<<c)
}

// putBody gives a buffer from getBody back to its pool; nothing may use it
// after.
func putBody(b []byte) {
	if c := bodyClass(cap(b)); c >= 0 && cap(b) == minPooledBody<<c {
		b = b[:0]
		bodyPools[c].Put(&b)
	}
}

func tooLarge(msg string) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large", message: msg + "; nothing was written"}
}

// eventParser decodes events one at a time and collects every error, so a
// producer learns about all bad events of a request at once.
type eventParser struct {
	limits Limits
	events []*auditlogv1.AuditEvent
	index  []int // request index of each decoded event
	errs   []*auditevent.FieldError
	bad    int
	large  bool
}

func (ep *eventParser) add(i int, raw []byte) {
	if int64(len(raw)) > int64(ep.limits.MaxEventBytes) {
		ep.large = true
		ep.fail(&auditevent.FieldError{Index: i, Reason: auditevent.ReasonTooLarge, Message: fmt.Sprintf("event is %d bytes; the limit is %d", len(raw), ep.limits.MaxEventBytes)})
		return
	}
	ev, err := auditevent.DecodeJSON(raw, auditevent.DecodeOptions{DisallowUnknownFields: true})
	if err != nil {
		var fe *auditevent.FieldError
		if !errors.As(err, &fe) {
			fe = &auditevent.FieldError{Reason: auditevent.ReasonMalformedJSON, Message: err.Error()}
		}
		ep.fail(fe.AtIndex(i))
		return
	}
	ep.events = append(ep.events, ev)
	ep.index = append(ep.index, i)
}

func (ep *eventParser) fail(fe *auditevent.FieldError) {
	ep.bad++
	if len(ep.errs) < maxErrorDetails {
		ep.errs = append(ep.errs, fe)
	}
}

func (ep *eventParser) result(total int) ([]*auditlogv1.AuditEvent, *apiError) {
	if total == 0 {
		return nil, &apiError{status: http.StatusBadRequest, code: "invalid_events", message: "the request holds no events", details: []*auditevent.FieldError{{Index: -1, Reason: auditevent.ReasonRequired, Message: "at least one event is required"}}}
	}
	if total > ep.limits.MaxEvents {
		return nil, tooLarge(fmt.Sprintf("the request holds more than %d events", ep.limits.MaxEvents))
	}
	if ep.bad == 0 {
		return ep.events, nil
	}
	status, code := http.StatusBadRequest, "invalid_events"
	if ep.large {
		status, code = http.StatusRequestEntityTooLarge, "payload_too_large"
	} else {
		ep.checkDecoded()
	}
	return nil, &apiError{status: status, code: code, message: fmt.Sprintf("%d of %d events are invalid; nothing was written", ep.bad, total), details: ep.errs, batchRejected: total - ep.bad}
}

// checkDecoded applies the rules publish checks to the events that did
// decode, so an answer that rejects the request for some undecodable events
// also names the decoded ones that are invalid.
func (ep *eventParser) checkDecoded() {
	errs := producer.Prepare(ep.events, time.Now())
	if len(errs) == 0 {
		return
	}
	for _, err := range errs {
		var fe *auditevent.FieldError
		if !errors.As(err, &fe) || fe.Index < 0 || fe.Index >= len(ep.index) {
			continue
		}
		ep.bad++
		ep.errs = append(ep.errs, fe.AtIndex(ep.index[fe.Index]))
	}
	slices.SortStableFunc(ep.errs, func(a, b *auditevent.FieldError) int { return cmp.Compare(a.Index, b.Index) })
	if len(ep.errs) > maxErrorDetails {
		ep.errs = ep.errs[:maxErrorDetails]
	}
}

func parseJSON(body []byte, limits Limits) ([]*auditlogv1.AuditEvent, *apiError) {
	ep := &eventParser{limits: limits}
	trimmed := bytes.TrimSpace(body)
	if events, ok := parseJSONArrayFast(trimmed, limits); ok {
		return events, nil
	}
	if len(trimmed) == 0 {
		return ep.result(0)
	}
	switch trimmed[0] {
	case '{':
		ep.add(0, trimmed)
		return ep.result(1)
	case '[':
	default:
		return nil, malformed(-1, "body must be a JSON object or an array of objects (or NDJSON with Content-Type application/x-ndjson)")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil {
		return nil, malformed(-1, "malformed JSON array: "+err.Error())
	}
	n := 0
	for ; dec.More(); n++ {
		if n >= limits.MaxEvents {
			return ep.result(n + 1)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed(n, "malformed JSON: "+err.Error())
		}
		ep.add(n, raw)
	}
	if _, err := dec.Token(); err != nil {
		return nil, malformed(n, "malformed JSON array: "+err.Error())
	}
	if dec.More() || dec.InputOffset() != int64(len(trimmed)) {
		return nil, malformed(-1, "unexpected data after the JSON array")
	}
	return ep.result(n)
}

// parseJSONArrayFast decodes a JSON array of events that is accepted as a
// whole: well-formed, not empty, within the limits, every event valid. It
// decodes each element where it stands with auditevent.DecodeJSONObject,
// which reports where the element ends, instead of running encoding/json
// over the array twice (once to find the element, once to copy it out)
// before each event is decoded. An element DecodeJSONObject declines is
// found by counting braces and brackets outside strings, then decoded by
// DecodeJSON. Any other input returns ok false, and parseJSON's exact path
// answers it, so the answer to every request, errors included, is
// unchanged.
//
// The result is the same because, when ok is true, body is '[', then
// elements separated by ',' with only JSON whitespace around them, then
// ']'; each element runs from '{' to its matching '}' and DecodeJSON takes
// it as exactly one JSON object. The array is then valid JSON, and
// encoding/json would yield the same element bytes, in the same order,
// under the same limits.
func parseJSONArrayFast(body []byte, limits Limits) ([]*auditlogv1.AuditEvent, bool) {
	if len(body) < 2 || body[0] != '[' {
		return nil, false
	}
	var events []*auditlogv1.AuditEvent
	i := skipJSONSpace(body, 1)
	for {
		if i >= len(body) || body[i] != '{' || len(events) >= limits.MaxEvents {
			return nil, false
		}
		ev, n, ok := auditevent.DecodeJSONObject(body[i:])
		end := i + n
		if !ok {
			if end, ok = scanJSONObject(body, i); !ok {
				return nil, false
			}
			var err error
			if ev, err = auditevent.DecodeJSON(body[i:end], auditevent.DecodeOptions{DisallowUnknownFields: true}); err != nil {
				return nil, false
			}
		}
		if int64(end-i) > int64(limits.MaxEventBytes) {
			return nil, false
		}
		if events == nil {
			// Most requests are uniform: guess the count from the first event.
			events = make([]*auditlogv1.AuditEvent, 0, min(len(body)/(end-i+1)+1, limits.MaxEvents))
		}
		events = append(events, ev)
		i = skipJSONSpace(body, end)
		if i >= len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipJSONSpace(body, i+1)
		case ']':
			return events, i == len(body)-1
		default:
			return nil, false
		}
	}
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanJSONObject returns the index just past the '}' that closes the object
// starting at b[i], counting nested objects and arrays and skipping strings.
// It does not validate anything else; ok is false when b[i] is not '{' or
// the object does not close.
func scanJSONObject(b []byte, i int) (end int, ok bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, b[i] == '}'
			}
		}
	}
	return 0, false
}

func parseNDJSON(body []byte, limits Limits) ([]*auditlogv1.AuditEvent, *apiError) {
	ep := &eventParser{limits: limits}
	n := 0
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if n >= limits.MaxEvents {
			return ep.result(n + 1)
		}
		ep.add(n, line)
		n++
	}
	return ep.result(n)
}

func malformed(index int, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_events", message: msg + "; nothing was written",
		details: []*auditevent.FieldError{{Index: index, Reason: auditevent.ReasonMalformedJSON, Message: msg}}}
}

type errorBody struct {
	Error struct {
		Code    string                   `json:"code"`
		Message string                   `json:"message"`
		Details []*auditevent.FieldError `json:"details,omitempty"`
	} `json:"error"`
	// IDs, Written and Failed answer a partial write: the ids of every
	// event in request order (so a producer that let ingest assign them can
	// retry the failed events with the same ids), and which were written.
	IDs     []string `json:"ids,omitempty"`
	Written []string `json:"written,omitempty"`
	Failed  []string `json:"failed,omitempty"`
}

func writeError(w http.ResponseWriter, e *apiError) int {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Details = e.code, e.message, e.details
	b.IDs, b.Written, b.Failed = e.ids, e.written, e.failed
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(e.retryAfter.Seconds(), 1))))
	}
	return writeJSON(w, e.status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		zap.L().Debug("write response", zap.Error(err))
	}
	return status
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
