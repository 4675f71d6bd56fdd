package datadog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/klauspost/compress/gzip"
)

// submitLogOp is datadog-api-client-go's operation id for the logs intake;
// its server configuration decides the URL.
const submitLogOp = "v2.LogsApi.SubmitLog"

// logsPath is the intake's path, as SubmitLog writes it.
const logsPath = "/api/v2/logs"

// MaxLogAge is how far in the past Datadog accepts a log's timestamp. Older
// entries are still sent (the intake answers 202) but Datadog may drop
// them, so the sink reports them through Options.AtRisk.
const MaxLogAge = 18 * time.Hour

// DefaultMaxBisectRequests bounds the extra requests one WriteBatch makes to
// find rejected entries or fit the intake's size limit.
const DefaultMaxBisectRequests = 128

// Options tune a Sink beyond its Config.
type Options struct {
	// HTTPClient sends the requests; nil uses a client of its own. Redirects
	// are never followed (the key header would go with them), and
	// Config.Timeout bounds each request through its context.
	HTTPClient *http.Client
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// AtRisk, when set, is called once per WriteBatch that holds entries
	// whose timestamp is older than MaxLogAge, with their number. They are
	// sent all the same. It must not block.
	AtRisk func(n int)
	// MaxBisectRequests bounds the requests one WriteBatch spends splitting
	// after a 400 or 413 (default DefaultMaxBisectRequests). Entries still
	// unresolved when it runs out fail Retryable (after a 400) or TooLarge
	// (after a 413), so the runtime resends them in a smaller batch.
	MaxBisectRequests int
}

// Sink delivers pre-encoded log entries (see Encoder) to one Datadog
// connection. It implements sink.Sink[[]byte] and is safe for
// concurrent use.
//
// Requests go through datadog-api-client-go: the client's server
// configuration for v2.LogsApi.SubmitLog picks the URL, SetAuthKeys the
// DD-API-KEY header, PrepareRequest the request's URL and headers. The
// body, already encoded (and compressed) into a pooled buffer, is attached
// to that request, which the client's HTTP client sends: SubmitLog would
// re-encode every entry through a map and reflection (see the benchmarks)
// and would pull the very large datadogV2 package into the binary, and
// PrepareRequest and CallAPI would each copy the body again, on every
// request, for retries the runtime does itself. A test sends the same
// entries with SubmitLog and checks that the intake receives the same logs.
type Sink struct {
	cfg      Config
	api      *datadog.APIClient
	url      string
	now      func() time.Time
	atRisk   func(int)
	maxSplit int
	gzips    *sync.Pool // *gzip.Writer at cfg.CompressionLevel
}

// New returns a Sink for the connection. cfg must pass Validate.
func New(cfg Config, opts Options) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("datadog connection: %w", err)
	}
	cfg = cfg.WithDefaults()
	base := cfg.IntakeURL()
	if cfg.BaseURL == "" {
		// The client's own template for the site, so the two never drift.
		u, err := logsServers().URL(0, map[string]string{"site": cfg.Site})
		if err != nil {
			return nil, fmt.Errorf("datadog connection: site: %w", err)
		}
		base = u
	}

	client := &http.Client{Transport: defaultTransport()}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	// A configuration holding only what the logs intake needs:
	// datadog.NewConfiguration describes every Datadog API and weighs
	// some 55 KB, a cost each of thousands of connections would pay.
	ddcfg := &datadog.Configuration{
		DefaultHeader:    map[string]string{},
		UserAgent:        userAgent(),
		Compress:         true,
		HTTPClient:       client,
		OperationServers: map[string]datadog.ServerConfigurations{submitLogOp: {{URL: base}}},
		// The caller owns retries; the client's own stay off.
		RetryConfiguration: datadog.RetryConfiguration{EnableRetry: false, BackOffBase: 2, BackOffMultiplier: 2, HTTPRetryTimeout: cfg.Timeout},
	}

	s := &Sink{
		cfg:      cfg,
		api:      datadog.NewAPIClient(ddcfg),
		url:      base + logsPath,
		now:      opts.Now,
		atRisk:   opts.AtRisk,
		maxSplit: opts.MaxBisectRequests,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxSplit <= 0 {
		s.maxSplit = DefaultMaxBisectRequests
	}
	s.gzips = gzipPool(cfg.CompressionLevel)
	return s, nil
}

// Request bodies and gzip writers (several hundred KB of state each) are
// pooled across sinks, so their number follows the requests in flight, not
// the number of connections.
var (
	bodyBufs  = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	gzipPools = newGzipPools() // by level; the last is DefaultCompression
)

func newGzipPools() *[gzip.BestCompression + 2]sync.Pool {
	var pools [gzip.BestCompression + 2]sync.Pool
	for i := range pools {
		level := i
		if i == len(pools)-1 {
			level = gzip.DefaultCompression
		}
		pools[i].New = func() any {
			zw, _ := gzip.NewWriterLevel(io.Discard, level)
			return zw
		}
	}
	return &pools
}

// gzipPool is the pool for a level Validate accepted.
func gzipPool(level int) *sync.Pool {
	if level == gzip.DefaultCompression {
		return &gzipPools[len(gzipPools)-1]
	}
	return &gzipPools[level]
}

// logsServers is the client's server list for the logs intake.
var logsServers = sync.OnceValue(func() datadog.ServerConfigurations {
	return datadog.NewConfiguration().OperationServers[submitLogOp]
})

var userAgent = sync.OnceValue(func() string {
	return "auditstream-datadog-forwarder " + datadog.GetUserAgent()
})

var defaultTransport = sync.OnceValue(func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 8
	return t
})

// URL is where the sink posts logs.
func (s *Sink) URL() string { return s.url }

// String names the sink by its URL. fmt cannot reach the redacting String
// of a Secret inside unexported fields, so printing a Sink must not fall
// back to walking them.
func (s *Sink) String() string { return "datadog.Sink(" + s.url + ")" }

// GoString keeps %#v as short and as safe as String.
func (s *Sink) GoString() string { return s.String() }

// EntrySize is what an entry counts against MaxRequestBytes: its bytes
// plus the comma or bracket that frames it in the request's array.
func EntrySize(entry []byte) int { return len(entry) + 1 }

// WriteBatch sends entries, each one JSON object from an Encoder, and
// reports the outcome under the sink.Sink contract:
//   - nil: every entry was accepted (202);
//   - *sink.BatchError: the listed entries failed, the others were
//     accepted;
//   - any other error (a *sink.SendError, or ctx's error): no entry was
//     accepted, all for the same reason.
//
// The batch is cut into requests of at most MaxEntries entries and
// MaxRequestBytes bytes. Answers map to classes as follows: 202 delivered;
// 413 halves the request and retries the halves; 400 (or 422) bisects the
// request until the rejected entries stand alone, which fail Permanent with
// reason rejected_by_intake, while the rest are delivered; 401/403 fail
// every entry not yet delivered Unhealthy, and so do redirects and other
// 4xx such as 404, which say the URL is wrong rather than an entry; 408,
// 429, 5xx, timeouts and network errors fail them Retryable, with the wait
// the answer's Retry-After or X-RateLimit-Reset asks for. After a Retryable
// or Unhealthy answer the batch's remaining requests are not tried. An
// entry over MaxEntryBytes, or empty, fails Permanent without being sent.
func (s *Sink) WriteBatch(ctx context.Context, entries []sink.Entry[[]byte]) error {
	if len(entries) == 0 {
		return nil
	}
	r := &batchRun{s: s, ctx: ctx, entries: entries, Halving: sink.NewHalving(len(entries), s.maxSplit)}
	// Datadog's window is judged to the second, as the entries' timestamps
	// are read.
	cutoff := s.now().Add(-MaxLogAge).Truncate(time.Second)
	atRisk := 0
	idx := make([]int, 0, len(entries))
	for i, entry := range entries {
		switch e := entry.Value; {
		case len(e) == 0:
			r.BE.Fail(i, permanent(0, ReasonEmptyEntry, "the log entry is empty"))
		case len(e) > MaxEntryBytes:
			r.BE.Fail(i, permanent(0, ReasonEntryTooLarge, fmt.Sprintf("log entry is %d bytes, over Datadog's %d-byte limit", len(e), MaxEntryBytes)))
		default:
			// an event without a timestamp gets the time Datadog
			// receives it, so it is not old
			if !entry.Time.IsZero() && entry.Time.Before(cutoff) {
				atRisk++
			}
			idx = append(idx, i)
		}
	}
	if atRisk > 0 && s.atRisk != nil {
		s.atRisk(atRisk)
	}
	size := func(i int) int { return EntrySize(entries[i].Value) }
	for _, chunk := range sink.Split(idx, size, MaxEntries, MaxRequestBytes-1) {
		r.send(chunk, nil)
	}
	return r.Err()
}

// batchRun is the state of one WriteBatch.
type batchRun struct {
	s       *Sink
	ctx     context.Context
	entries []sink.Entry[[]byte]
	sink.Halving
}

// send posts the entries at idx. parent is the failure of the request
// they were split from, nil for a request of the batch's own cut; split
// requests are paid for from the budget.
func (r *batchRun) send(idx []int, parent *sink.SendError) {
	if r.GivenUp(r.ctx, idx) {
		return
	}
	if parent != nil {
		if r.Budget <= 0 {
			r.FailAll(idx, r.unresolved(parent))
			return
		}
		r.Budget--
	}
	err := r.s.post(r.ctx, r.entries, idx)
	if err == nil {
		r.Delivered += len(idx)
		return
	}
	if se := r.Failed(idx, err, refusedAlone); se != nil {
		h := len(idx) / 2
		r.send(idx[:h], se)
		r.send(idx[h:], se)
	}
}

// refusedAlone is the error of an entry the intake refused when sent alone.
func refusedAlone(se *sink.SendError) error {
	if se.Class == sink.TooLarge {
		return permanent(se.Status, ReasonEntryTooLarge, sink.RefusedAlone("the intake", se))
	}
	return permanent(se.Status, ReasonRejected, sink.RefusedAlone("the intake", se))
}

// unresolved is the error for entries the budget left inside a request
// that failed with parent: still too large, so the runtime splits them
// further, or, after a 400, retryable, so the runtime resends them in a
// smaller batch where bisection starts afresh.
func (r *batchRun) unresolved(parent *sink.SendError) error {
	if parent.Class == sink.TooLarge {
		return parent
	}
	return &sink.SendError{Class: sink.Retryable, Status: parent.Status,
		Err: fmt.Errorf("rejected entries not isolated within %d split requests; resend in a smaller batch: %w", r.s.maxSplit, parent.Err)}
}

func permanent(status int, reason, msg string) error {
	return &sink.SendError{Class: sink.Permanent, Status: status, Err: &RejectError{Reason: reason, Message: msg}}
}

// post sends one request holding the entries at idx and returns nil on a
// 2xx, a classified *sink.SendError, or ctx's error when ctx ended.
func (s *Sink) post(ctx context.Context, entries []sink.Entry[[]byte], idx []int) error {
	key, err := s.cfg.APIKey.Value()
	if err == nil && key == "" {
		err = errors.New("secret is empty")
	}
	if err != nil {
		// The secret's errors name its source, never its value.
		return &sink.SendError{Class: sink.Unhealthy, Err: fmt.Errorf("datadog api key (%s): %w", s.cfg.APIKey.Source(), err)}
	}

	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	rctx = context.WithValue(rctx, datadog.ContextAPIKeys, map[string]datadog.APIKey{"apiKeyAuth": {Key: key}})

	req, body, err := s.prepare(rctx, entries, idx)
	if err != nil {
		return &sink.SendError{Class: sink.Unhealthy, Err: fmt.Errorf("build datadog request: %w", err)}
	}
	resp, err := s.api.Cfg.HTTPClient.Do(req)
	body.release()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if rctx.Err() != nil {
			return &sink.SendError{Class: sink.Retryable, Err: fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, err)}
		}
		return &sink.SendError{Class: sink.Classify(err), Err: err}
	}
	defer resp.Body.Close()
	// Read a little of the answer, for the error message and so the
	// connection can be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	err = sink.CheckStatus(resp.StatusCode, resp.Header, s.now())
	var se *sink.SendError
	if errors.As(err, &se) {
		se.Err = fmt.Errorf("POST %s: %s", s.url, describeBody(snippet, key))
		if sink.Misdirected(resp.StatusCode) {
			// Not an answer about the entries: bisecting would dead-letter
			// every one of them. Park them until the connection is fixed.
			se.Class = sink.Unhealthy
			se.Err = fmt.Errorf("unexpected answer from the logs intake; check the site or base_url: %w", se.Err)
		}
	}
	return err
}

// prepare builds the request as SubmitLog does, with the body already
// encoded (and compressed); the caller releases the body once the request
// is sent.
func (s *Sink) prepare(ctx context.Context, entries []sink.Entry[[]byte], idx []int) (*http.Request, *sharedBody, error) {
	base, err := s.api.Cfg.ServerURLWithContext(ctx, submitLogOp)
	if err != nil {
		return nil, nil, err
	}
	headers := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
	datadog.SetAuthKeys(ctx, &headers, [2]string{"apiKeyAuth", "DD-API-KEY"})

	buf := bodyBufs.Get().(*bytes.Buffer)
	if err := s.encodeBody(buf, entries, idx); err != nil {
		putBuf(buf)
		return nil, nil, err
	}
	req, err := s.api.PrepareRequest(ctx, base+logsPath, http.MethodPost, nil, headers, url.Values{}, url.Values{}, nil)
	if err != nil {
		putBuf(buf)
		return nil, nil, err
	}
	body := newSharedBody(buf)
	req.Body, _ = body.get()
	req.GetBody = body.get
	req.ContentLength = int64(buf.Len())
	if s.cfg.Compression == CompressionGzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	return req, body, nil
}

// sharedBody lends a pooled request body to the transport. The buffer goes
// back to the pool once the sender is done (release) and every body handed
// out is closed: the transport may still be writing a body after Do
// returns, and may ask GetBody for another (to resend a request that
// found its kept-alive connection closed) after closing the first.
type sharedBody struct {
	buf  *bytes.Buffer
	refs atomic.Int32
}

func newSharedBody(buf *bytes.Buffer) *sharedBody {
	b := &sharedBody{buf: buf}
	b.refs.Store(1) // the sender's
	return b
}

func (b *sharedBody) get() (io.ReadCloser, error) {
	b.refs.Add(1)
	return &lentBody{Reader: bytes.NewReader(b.buf.Bytes()), owner: b}, nil
}

func (b *sharedBody) release() {
	if b.refs.Add(-1) == 0 {
		putBuf(b.buf)
	}
}

type lentBody struct {
	*bytes.Reader
	owner *sharedBody
	once  sync.Once
}

func (b *lentBody) Close() error {
	b.once.Do(b.owner.release)
	return nil
}

func putBuf(buf *bytes.Buffer) {
	if buf.Cap() <= 2*MaxRequestBytes {
		buf.Reset()
		bodyBufs.Put(buf)
	}
}

// encodeBody writes the JSON array of the entries at idx to buf, through
// gzip when the connection compresses.
func (s *Sink) encodeBody(buf *bytes.Buffer, entries []sink.Entry[[]byte], idx []int) error {
	buf.Reset()
	var w io.Writer = buf
	var zw *gzip.Writer
	if s.cfg.Compression == CompressionGzip {
		zw = s.gzips.Get().(*gzip.Writer)
		defer s.gzips.Put(zw)
		zw.Reset(buf)
		w = zw
	}
	sep := []byte{'['}
	for _, i := range idx {
		if _, err := w.Write(sep); err != nil {
			return err
		}
		if _, err := w.Write(entries[i].Value); err != nil {
			return err
		}
		sep[0] = ','
	}
	if _, err := w.Write([]byte{']'}); err != nil {
		return err
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

// describeBody renders the start of an error answer for a message: the API
// key masked should an intake or proxy ever echo it, then printable ASCII
// only, cut short.
func describeBody(body []byte, key string) string {
	const limit = 300
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return "empty answer"
	}
	if key != "" {
		body = bytes.ReplaceAll(body, []byte(key), []byte("[redacted]"))
	}
	var b strings.Builder
	b.WriteString("answer ")
	for i, c := range body {
		if i == limit {
			b.WriteString("...")
			break
		}
		if c < 0x20 || c > 0x7e {
			c = ' '
		}
		b.WriteByte(c)
	}
	return b.String()
}
