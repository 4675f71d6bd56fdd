package otlp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/internal/version"
	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// DefaultMaxBisectRequests bounds the extra requests one WriteBatch makes to
// isolate rejected entries (after a 400 or a partial success).
const DefaultMaxBisectRequests = 128

// Options tune a Sink beyond its Config.
type Options struct {
	// HTTPClient sends the requests; nil uses a client of its own.
	// Redirects are never followed (the auth header would go with them),
	// and Config.Timeout bounds each request through its context.
	HTTPClient *http.Client
	// Now is the clock for Retry-After dates; nil is time.Now.
	Now func() time.Time
	// MaxBisectRequests bounds the requests one WriteBatch spends
	// splitting after a 400 or a partial success (default
	// DefaultMaxBisectRequests). Entries still unresolved when it runs out
	// fail Retryable, so the runtime resends them in a smaller batch.
	MaxBisectRequests int
}

// Sink delivers entries from an Encoder to one OTLP/HTTP logs receiver. It
// implements sink.Sink[Entry] and is safe for concurrent use.
type Sink struct {
	cfg      Config
	url      string
	client   *http.Client
	now      func() time.Time
	maxSplit int
	maxBytes int
}

// New returns a Sink for the connection. cfg must pass Validate.
func New(cfg Config, opts Options) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("otlp connection: %w", err)
	}
	cfg = cfg.WithDefaults()
	client := &http.Client{Transport: defaultTransport()}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s := &Sink{cfg: cfg, url: cfg.URL(), client: client, now: opts.Now, maxSplit: opts.MaxBisectRequests, maxBytes: int(cfg.MaxRequestBytes)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxSplit <= 0 {
		s.maxSplit = DefaultMaxBisectRequests
	}
	return s, nil
}

var defaultTransport = sync.OnceValue(func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 8
	return t
})

var gzips = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression)
	return zw
}}

// URL is where the sink posts logs.
func (s *Sink) URL() string { return s.url }

// String names the sink by its URL, never its secrets.
func (s *Sink) String() string { return "otlp.Sink(" + s.url + ")" }

// GoString keeps %#v as short and as safe as String.
func (s *Sink) GoString() string { return s.String() }

// EntrySize is what an entry counts against max_request_bytes in protobuf:
// its own bytes (the ResourceLogs it holds is merged with its account's, so
// a request is at most the sum). JSON requests are measured once encoded.
func EntrySize(entry Entry) int { return len(entry.proto) }

// WriteBatch sends entries from an Encoder and reports the outcome under the
// sink.Sink contract:
//   - nil: every entry was accepted;
//   - *sink.BatchError: the listed entries failed, the others were
//     accepted;
//   - any other error: no entry was accepted, all for the same reason.
//
// Entries are merged into requests, one ResourceLogs per account, of at
// most max_request_bytes before compression (a request found larger once
// encoded is halved; an entry over the limit alone is dead-lettered with
// reason entry_too_large). Answers, following the OTLP/HTTP specification:
//   - 200 without partial_success.rejected_log_records: delivered;
//   - 200 with rejected_log_records: the receiver kept the others. OTLP
//     gives a count, not which records, so they are found by counting
//     bisection (see isolate): the left half is sent again and its count
//     tells how many of the count are in the right half, which is not
//     resent. The rejected records are dead-lettered (Permanent, reason
//     rejected_in_partial_success, with the receiver's error_message).
//     Records resent on the way arrive twice; log.record.uid lets a
//     consumer drop the duplicates, and Loki drops a line identical in
//     timestamp and content by itself. When all were rejected, all are
//     dead-lettered without a resend;
//   - 400 (or 422): bisected the same way; the entries refused alone are
//     dead-lettered with reason rejected_by_receiver and the receiver's
//     google.rpc.Status message;
//   - 413: halved until the request fits; alone, entry_too_large;
//   - 429, 502, 503, 504, other 5xx, 408, timeouts and network errors:
//     Retryable, with the wait Retry-After asks for. OTLP names the first
//     four retryable and says not to retry other 5xx, but dropping an audit
//     event on a guess is worse than a retry that ends on the retry topic;
//   - 401, 403: Unhealthy; so are redirects and other 4xx such as 404,
//     which say the endpoint is wrong rather than an entry.
//
// After a Retryable or Unhealthy answer the batch's remaining requests are
// not tried.
func (s *Sink) WriteBatch(ctx context.Context, entries []sink.Entry[Entry]) error {
	if len(entries) == 0 {
		return nil
	}
	r := &batchRun{s: s, ctx: ctx, Halving: sink.NewHalving(len(entries), s.maxSplit), entries: entries}
	idx := make([]int, 0, len(entries))
	for i, e := range entries {
		if len(e.Value.proto) == 0 {
			r.BE.Fail(i, permanent(0, ReasonBadEntry, fmt.Sprintf("entry %d was not made by the otlp Encoder", i)))
			continue
		}
		idx = append(idx, i)
	}
	size := func(i int) int { return EntrySize(entries[i].Value) }
	for _, chunk := range sink.Split(idx, size, 0, s.maxBytes) {
		r.send(chunk, nil)
	}
	return r.Err()
}

// batchRun is the state of one WriteBatch.
type batchRun struct {
	s       *Sink
	ctx     context.Context
	entries []sink.Entry[Entry]
	sink.Halving
}

// send posts the entries at idx. parent is the failure of the request they
// were split from (nil for the batch's own cut); bisection is paid for from
// the budget, halving for size is not, as it ends after log2(n) steps.
func (r *batchRun) send(idx []int, parent *sink.SendError) {
	if r.GivenUp(r.ctx, idx) {
		return
	}
	if parent != nil && parent.Class != sink.TooLarge {
		if r.Budget <= 0 {
			r.FailAll(idx, &sink.SendError{Class: sink.Retryable, Status: parent.Status,
				Err: fmt.Errorf("rejected entries not isolated within %d split requests; resend in a smaller batch: %w", r.s.maxSplit, parent.Err)})
			return
		}
		r.Budget--
	}
	body, err := r.s.encode(r.entries, idx)
	if err != nil {
		r.Abort = &sink.SendError{Class: sink.Unhealthy, Err: fmt.Errorf("encode otlp request: %w", err)}
		r.FailAll(idx, r.Abort)
		return
	}
	if len(body) > r.s.maxBytes {
		if len(idx) == 1 {
			r.BE.Fail(idx[0], permanent(0, ReasonEntryTooLarge, fmt.Sprintf("the event's request is %d bytes, over max_request_bytes %d", len(body), r.s.maxBytes)))
			return
		}
		tooLarge := &sink.SendError{Class: sink.TooLarge, Err: errors.New("request over max_request_bytes")}
		h := len(idx) / 2
		r.send(idx[:h], tooLarge)
		r.send(idx[h:], tooLarge)
		return
	}
	res, err := r.s.post(r.ctx, body)
	if err == nil {
		r.isolate(idx, int(min(res.rejected, int64(len(idx)))), res.message)
		return
	}
	if se := r.Failed(idx, err, refusedAlone); se != nil {
		h := len(idx) / 2
		r.send(idx[:h], se)
		r.send(idx[h:], se)
	}
}

// refusedAlone is the error of an entry the receiver refused when sent alone.
func refusedAlone(se *sink.SendError) error {
	if se.Class == sink.TooLarge {
		return permanent(se.Status, ReasonEntryTooLarge, sink.RefusedAlone("the receiver", se))
	}
	return permanent(se.Status, ReasonRejected, sink.RefusedAlone("the receiver", se))
}

// isolate finds the rejected records among idx, which the receiver has
// just answered with a partial success counting rejected of them. OTLP
// gives the count, not which records, so the left half is sent again: its
// answer counts the left half's rejected records, and the rest of the
// count is the right half's, which needs no resend. Each half is then
// isolated the same way until the count is none or all of a part. This
// assumes the receiver answers the same records the same way, as a
// validation failure does; a record it rejects alone is rejected for good.
// The records of the halves sent again were kept the first time: those
// are the duplicates, found by log.record.uid.
func (r *batchRun) isolate(idx []int, rejected int, msg string) {
	switch {
	case rejected <= 0:
		r.Delivered += len(idx)
		return
	case rejected >= len(idx):
		r.FailAll(idx, permanent(http.StatusOK, ReasonPartialSuccess, "the receiver accepted the request but rejected this record (partial success): "+msg))
		return
	}
	// The caller counted this part delivered but for rejected records;
	// until they are found, resend the part rather than guess.
	unresolved := func(cause error) {
		r.FailAll(idx, &sink.SendError{Class: sink.Retryable, Status: http.StatusOK,
			Err: fmt.Errorf("partial success (%d of %d records rejected: %s) not resolved; resend: %w", rejected, len(idx), msg, cause)})
	}
	if r.Abort == nil {
		r.Abort = r.ctx.Err()
	}
	if r.Abort != nil {
		unresolved(r.Abort)
		return
	}
	if r.Budget <= 0 {
		unresolved(fmt.Errorf("rejected records not isolated within %d split requests", r.s.maxSplit))
		return
	}
	r.Budget--
	h := len(idx) / 2
	left, right := idx[:h], idx[h:]
	body, err := r.s.encode(r.entries, left)
	if err != nil {
		unresolved(err)
		return
	}
	res, err := r.s.post(r.ctx, body)
	if err != nil {
		var se *sink.SendError
		if errors.As(err, &se) && (se.Class == sink.Retryable || se.Class == sink.Unhealthy) {
			r.Abort = se
			r.FailAll(idx, se)
			return
		}
		if !errors.As(err, &se) {
			r.Abort = err
		}
		unresolved(err)
		return
	}
	inLeft := int(min(max(res.rejected, 0), int64(len(left))))
	leftMsg := res.message
	if leftMsg == "" {
		leftMsg = msg
	}
	r.isolate(left, inLeft, leftMsg)
	r.isolate(right, min(max(rejected-inLeft, 0), len(right)), msg)
}

func permanent(status int, reason, msg string) error {
	return &sink.SendError{Class: sink.Permanent, Status: status, Err: &RejectError{Reason: reason, Message: msg}}
}

// encode builds the request for the entries at idx: their records under
// one ResourceLogs per resource (account) and scope, in the body's
// encoding, uncompressed.
func (s *Sink) encode(entries []sink.Entry[Entry], idx []int) ([]byte, error) {
	size := 0
	for _, i := range idx {
		r := entries[i].Value.at.record
		size += int(r.end-r.off) + 8
	}
	body := spliceRequest(make([]byte, 0, size+1024), entries, idx)
	if s.cfg.Encoding != EncodingJSON {
		return body, nil
	}
	req := plogotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		return nil, err
	}
	return req.MarshalJSON()
}

// exportResult is a 2xx answer's partial success.
type exportResult struct {
	rejected int64
	message  string
}

// post sends one request body and returns the receiver's partial success
// on a 2xx, a classified *sink.SendError, or ctx's error when ctx ended.
func (s *Sink) post(ctx context.Context, body []byte) (exportResult, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, secrets, err := s.request(rctx, body)
	if err != nil {
		return exportResult{}, &sink.SendError{Class: sink.Unhealthy, Err: err}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return exportResult{}, cerr
		}
		if rctx.Err() != nil {
			return exportResult{}, &sink.SendError{Class: sink.Retryable, Err: fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, err)}
		}
		return exportResult{}, &sink.SendError{Class: sink.Classify(err), Err: err}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ctype := resp.Header.Get("Content-Type")
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return readExportResponse(answer, ctype, secrets), nil
	}
	err = sink.CheckStatus(resp.StatusCode, resp.Header, s.now())
	var se *sink.SendError
	if errors.As(err, &se) {
		se.Err = fmt.Errorf("POST %s: %s", s.url, statusMessage(answer, ctype, secrets))
		if sink.Misdirected(resp.StatusCode) {
			se.Class = sink.Unhealthy
			se.Err = fmt.Errorf("unexpected answer from the OTLP receiver; check the endpoint: %w", se.Err)
		}
	}
	return exportResult{}, err
}

// request builds the POST with the connection's headers; secrets are the
// values to mask should the receiver echo them.
func (s *Sink) request(ctx context.Context, body []byte) (*http.Request, []string, error) {
	var secrets []string
	var auth string
	switch a := s.cfg.Auth; a.Mode() {
	case AuthBasic:
		pw, err := a.Password.Value()
		if err == nil && pw == "" {
			err = errors.New("secret is empty")
		}
		if err != nil {
			// The secret's errors name its source, never its value.
			return nil, nil, fmt.Errorf("otlp auth.password (%s): %w", a.Password.Source(), err)
		}
		secrets = append(secrets, pw)
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(a.Username+":"+pw))
	case AuthBearer:
		tok, err := a.Token.Value()
		if err == nil && tok == "" {
			err = errors.New("secret is empty")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("otlp auth.token (%s): %w", a.Token.Source(), err)
		}
		secrets = append(secrets, tok)
		auth = "Bearer " + tok
	}
	payload := body
	if s.cfg.Compression == CompressionGzip {
		var buf bytes.Buffer
		buf.Grow(len(body) / 4)
		zw := gzips.Get().(*gzip.Writer)
		zw.Reset(&buf)
		_, err := zw.Write(body)
		if err == nil {
			err = zw.Close()
		}
		gzips.Put(zw)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip otlp request: %w", err)
		}
		payload = buf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(payload))
	if err != nil {
		return nil, nil, fmt.Errorf("build otlp request: %w", err)
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if s.cfg.Encoding == EncodingJSON {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
	}
	if s.cfg.Compression == CompressionGzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if s.cfg.TenantID != "" {
		req.Header.Set("X-Scope-OrgID", s.cfg.TenantID)
	}
	req.Header.Set("User-Agent", "auditstream-otlp-forwarder/"+version.Version)
	return req, secrets, nil
}

// readExportResponse reads a 2xx answer's ExportLogsServiceResponse. An
// answer that does not parse (an empty body; a proxy's text) says nothing
// was rejected: the receiver accepted the request.
func readExportResponse(body []byte, ctype string, secrets []string) exportResult {
	if len(body) == 0 {
		return exportResult{}
	}
	resp := plogotlp.NewExportResponse()
	var err error
	if isJSON(ctype) {
		err = resp.UnmarshalJSON(body)
	} else {
		err = resp.UnmarshalProto(body)
	}
	if err != nil {
		return exportResult{}
	}
	ps := resp.PartialSuccess()
	return exportResult{rejected: max(ps.RejectedLogRecords(), 0), message: printable(ps.ErrorMessage(), secrets)}
}

// statusMessage is the message of a failed answer's google.rpc.Status, or
// the start of the answer when it is not one.
func statusMessage(body []byte, ctype string, secrets []string) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return "empty answer"
	}
	var st status.Status
	var err error
	if isJSON(ctype) {
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, &st)
	} else if isProto(ctype) {
		err = proto.Unmarshal(body, &st)
	} else {
		err = errors.New("not a status")
	}
	if err == nil && st.GetMessage() != "" {
		return "answer " + printable(st.GetMessage(), secrets)
	}
	return "answer " + printable(string(body), secrets)
}

func isJSON(ctype string) bool {
	mt, _, _ := mime.ParseMediaType(ctype)
	return mt == "application/json"
}

func isProto(ctype string) bool {
	mt, _, _ := mime.ParseMediaType(ctype)
	return mt == "application/x-protobuf" || mt == "application/protobuf"
}

// printable masks the secrets should a receiver or proxy echo them, keeps
// printable ASCII only and cuts the text short.
func printable(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return sink.AnswerText(s)
}
