package eventbridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/sink"
)

// Options tune a Sink beyond its Config.
type Options struct {
	// HTTPClient sends the calls; nil shares one client (and its connection
	// pool) between every connection of the process. Config.Timeout bounds
	// each call through its context.
	HTTPClient aws.HTTPClient
	// DefaultChain supplies the AWS default configuration to connections
	// without static keys; nil uses one shared by the process.
	DefaultChain *DefaultChain
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Sink delivers encoded entries (see Encoder) to one connection's event bus
// with PutEvents. It implements sink.Sink[Entry] and is safe for
// concurrent use.
//
// Calls go through aws-sdk-go-v2's EventBridge client with the SDK's own
// retries off (aws.NopRetryer): the delivery runtime owns retries, backoff
// and parking, and an SDK retrying underneath would resend entries the
// runtime already counts as failed and stretch a call past its timeout. The
// SDK's logger is off too, so nothing it could print about a request or
// its credentials reaches the logs.
type Sink struct {
	cfg        Config
	client     *eventbridge.Client
	enc        *Encoder
	bus        *string
	source     *string
	detailType *string
	now        func() time.Time
}

var (
	sharedChain      = NewDefaultChain()
	sharedHTTPClient = sync.OnceValue(func() aws.HTTPClient {
		return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 512
			t.MaxIdleConnsPerHost = MaxConcurrentCallsLimit
			t.IdleConnTimeout = 90 * time.Second
		})
	})
)

// New returns a Sink for the connection. cfg must pass Validate. A
// connection without static keys loads the AWS default configuration the
// first time one is built.
func New(cfg Config, opts Options) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventbridge connection: %w", err)
	}
	cfg = cfg.WithDefaults()
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	chain := opts.DefaultChain
	if chain == nil {
		chain = sharedChain
	}
	base, err := awsauth.BaseConfig(cfg.Credentials, chain)
	if err != nil {
		return nil, err
	}
	base.Region = cfg.Region
	base.HTTPClient = opts.HTTPClient
	if base.HTTPClient == nil {
		base.HTTPClient = sharedHTTPClient()
	}
	creds, err := awsauth.Provider(cfg.Credentials, base, now)
	if err != nil {
		return nil, err
	}
	base.Credentials = creds
	client := eventbridge.NewFromConfig(base, func(o *eventbridge.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.Retryer = aws.NopRetryer{}
		o.Protocol = putEventsProtocol{o.Protocol}
	})
	return &Sink{
		cfg:        cfg,
		client:     client,
		enc:        cfg.Encoder(),
		bus:        aws.String(cfg.EventBus),
		source:     aws.String(cfg.Source),
		detailType: aws.String(cfg.DetailType),
		now:        now,
	}, nil
}

// String names the sink by region and bus. fmt cannot reach the redacting
// String of a Secret inside unexported fields, so printing a Sink must not
// fall back to walking them.
func (s *Sink) String() string {
	return "eventbridge.Sink(" + s.cfg.Region + " " + s.cfg.EventBus + ")"
}

// GoString keeps %#v as short and as safe as String.
func (s *Sink) GoString() string { return s.String() }

// EntryError is EventBridge's answer for one entry of a call that
// otherwise went through (PutEventsResultEntry.ErrorCode and ErrorMessage).
type EntryError struct {
	Code    string
	Message string
}

func (e *EntryError) Error() string { return "PutEvents entry failed: " + e.Code + ": " + e.Message }

// CallError is EventBridge's answer for a whole call.
type CallError struct {
	Status  int
	Code    string
	Message string
}

func (e *CallError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("PutEvents: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("PutEvents: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// WriteBatch sends entries, each from an Encoder, and reports the outcome
// under the sink.Sink contract:
//   - nil: EventBridge accepted every entry;
//   - *sink.BatchError: exactly the listed entries failed, the others
//     were accepted (so only the failed ones are sent again);
//   - any other error (a *sink.SendError, or ctx's error): no entry was
//     accepted, all for the same reason.
//
// The batch is cut, in order, into calls of at most MaxEntries entries and
// MaxCallBytes as EventBridge counts them, and up to MaxConcurrentCalls of
// them are in flight at once. A call's answer maps to classes as follows:
//   - an accepted call: each entry with an ErrorCode failed, by its code:
//     ThrottlingException and InternalFailure Retryable; InvalidArgument,
//     MalformedDetail and RedactionFailure Permanent (dead-lettered);
//     AccessDeniedException, NotAuthorizedForSourceException,
//     NotAuthorizedForDetailTypeException and InvalidAccountIdException
//     Unhealthy (the connection's permissions are wrong); unknown codes
//     Retryable. Entries without an ErrorCode were accepted;
//   - throttling, 5xx, timeouts and network errors: the call's entries
//     Retryable;
//   - authentication and authorisation failures (AccessDeniedException,
//     UnrecognizedClientException, InvalidSignatureException, expired
//     tokens, an unknown bus, credentials that cannot be obtained) and
//     answers no EventBridge endpoint gives: the call's entries Unhealthy;
//   - a validation failure or 413 for the call: it is sent again one entry
//     a call, and an entry refused alone is Permanent.
//
// After a Retryable or Unhealthy answer for a whole call, calls not yet
// started fail with the same error without being sent. An entry over
// MaxCallBytes fails Permanent without being sent.
func (s *Sink) WriteBatch(ctx context.Context, entries []sink.Entry[Entry]) error {
	if len(entries) == 0 {
		return nil
	}
	r := &batchRun{s: s, ctx: ctx, entries: entries, be: sink.NewBatchError(len(entries))}
	sizes := make([]int, len(entries))
	idx := make([]int, 0, len(entries))
	for i, e := range entries {
		switch n := s.enc.EntrySize(e); {
		case n > MaxCallBytes:
			r.be.Fail(i, permanent(0, ReasonEntryTooLarge, "", fmt.Sprintf("entry is %d bytes as EventBridge counts it, over the %d-byte PutEvents limit", n, MaxCallBytes)))
		default:
			sizes[i] = n
			idx = append(idx, i)
		}
	}
	chunks := sink.Split(idx, func(i int) int { return sizes[i] }, MaxEntries, MaxCallBytes)
	r.run(chunks)
	if r.be.Len() == 0 {
		return nil
	}
	if shared := r.be.Shared(); r.delivered.Load() == 0 && shared != nil {
		return shared
	}
	return r.be
}

// batchRun is the state of one WriteBatch.
type batchRun struct {
	s         *Sink
	ctx       context.Context
	entries   []sink.Entry[Entry]
	delivered atomic.Int64

	mu    sync.Mutex
	be    *sink.BatchError
	abort error // once set, calls not yet started fail with it
}

func (r *batchRun) run(chunks [][]int) {
	workers := min(r.s.cfg.MaxConcurrentCalls, len(chunks))
	if workers <= 1 {
		for _, c := range chunks {
			r.send(c)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(chunks) {
					return
				}
				r.send(chunks[k])
			}
		})
	}
	wg.Wait()
}

// send makes one call for the entries at idx and records the outcome.
func (r *batchRun) send(idx []int) {
	r.mu.Lock()
	if r.abort == nil {
		if err := r.ctx.Err(); err != nil {
			r.abort = err
		}
	}
	if abort := r.abort; abort != nil {
		for _, i := range idx {
			r.be.Fail(i, abort)
		}
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()

	results, err := r.s.call(r.ctx, r.entries, idx)
	var se *sink.SendError
	if err != nil && errors.As(err, &se) && (se.Class == sink.Permanent || se.Class == sink.TooLarge) {
		if len(idx) > 1 {
			// The call as a whole was refused: find which entries EventBridge
			// refuses by sending them one a call.
			for _, i := range idx {
				r.send([]int{i})
			}
			return
		}
		err = permanentFrom(se)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if errors.As(err, &se) && (se.Class == sink.Retryable || se.Class == sink.Unhealthy) || r.ctx.Err() != nil {
			if r.abort == nil {
				r.abort = err
			}
		}
		for _, i := range idx {
			r.be.Fail(i, err)
		}
		return
	}
	ok := 0
	for k, i := range idx {
		if results[k] != nil {
			r.be.Fail(i, results[k])
		} else {
			ok++
		}
	}
	r.delivered.Add(int64(ok))
}

// permanentFrom turns a call-level refusal of a single entry into that
// entry's reason to be dead-lettered.
func permanentFrom(se *sink.SendError) error {
	reason := ReasonRejected
	if se.Class == sink.TooLarge {
		reason = ReasonEntryTooLarge
	}
	var ce *CallError
	if errors.As(se.Err, &ce) {
		return permanent(se.Status, reason, ce.Code, "EventBridge refused a call holding this entry alone: "+ce.Message)
	}
	return permanent(se.Status, reason, "", "EventBridge refused a call holding this entry alone: "+errText(se.Err))
}

func permanent(status int, reason, code, msg string) error {
	return &sink.SendError{Class: sink.Permanent, Status: status, Err: &RejectError{Reason: reason, Code: code, Message: msg}}
}

func errText(err error) string {
	if err == nil {
		return "no detail"
	}
	return err.Error()
}

// call sends one PutEvents call for the entries at idx. It returns either
// a call-level error (a classified *sink.SendError, or ctx's error when
// ctx ended) or one result per entry: nil when accepted, else a classified
// *sink.SendError.
func (s *Sink) call(ctx context.Context, entries []sink.Entry[Entry], idx []int) ([]error, error) {
	req := make([]types.PutEventsRequestEntry, len(idx))
	times := make([]time.Time, len(idx))
	details := make([]string, len(idx))
	for k, i := range idx {
		e := entries[i].Value
		// The detail is handed to the SDK without a copy: the batch is the
		// caller's and unchanged until WriteBatch returns, and the SDK only
		// reads it while it serialises this call.
		details[k] = unsafe.String(unsafe.SliceData(e.Detail), len(e.Detail))
		req[k] = types.PutEventsRequestEntry{
			Source:       s.source,
			DetailType:   s.detailType,
			EventBusName: s.bus,
			Detail:       &details[k],
			Resources:    e.Resources,
		}
		if t := entries[i].Time; !t.IsZero() {
			times[k] = t
			req[k].Time = &times[k]
		}
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	out, err := s.client.PutEvents(cctx, &eventbridge.PutEventsInput{Entries: req})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if cctx.Err() != nil {
			return nil, &sink.SendError{Class: sink.Retryable, Err: fmt.Errorf("PutEvents: no answer within %s", s.cfg.Timeout)}
		}
		return nil, classifyCall(err)
	}
	results := make([]error, len(idx))
	if out.FailedEntryCount == 0 {
		return results, nil
	}
	if len(out.Entries) != len(idx) {
		// The answer cannot be mapped to the entries; resend them all
		// rather than guess which went through.
		err := &sink.SendError{Class: sink.Retryable, Err: fmt.Errorf("PutEvents answered %d results for %d entries with %d failed", len(out.Entries), len(idx), out.FailedEntryCount)}
		for k := range results {
			results[k] = err
		}
		return results, nil
	}
	for k, res := range out.Entries {
		code := aws.ToString(res.ErrorCode)
		if code == "" {
			continue
		}
		results[k] = &sink.SendError{Class: classifyEntryCode(code), Err: &EntryError{Code: code, Message: describe(aws.ToString(res.ErrorMessage))}}
	}
	return results, nil
}

// Error codes by what they mean for the entries.
var (
	retryableCodes = setOf(
		"ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
		"LimitExceededException", "RequestThrottled", "RequestThrottledException", "SlowDown", "PriorRequestNotComplete",
		"InternalFailure", "InternalException", "InternalError", "InternalServerError", "InternalServiceError",
		"ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
		"IDPCommunicationError",
	)
	unhealthyCodes = setOf(
		"AccessDeniedException", "AccessDenied", "NotAuthorizedForSourceException", "NotAuthorizedForDetailTypeException",
		"InvalidAccountIdException", "UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch",
		"IncompleteSignature", "IncompleteSignatureException", "MissingAuthenticationToken", "MissingAuthenticationTokenException",
		"InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "RequestExpired", "NotAuthorized", "AuthFailure",
		"AuthorizationError", "OptInRequired", "ResourceNotFoundException", "RegionDisabledException",
		"UnknownOperationException", "InvalidAction",
	)
	permanentCodes = setOf(
		"InvalidArgument", "MalformedDetail", "RedactionFailure", "ValidationException", "SerializationException",
		"InvalidParameterValue", "InvalidParameterException",
	)
)

func setOf(codes ...string) map[string]bool {
	m := make(map[string]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}

// classifyEntryCode classifies a failed entry of an accepted call. A code
// this list does not know is Retryable: a needless retry ends on the retry
// topic, while dropping an audit event on a guess loses it.
func classifyEntryCode(code string) sink.Class {
	switch {
	case permanentCodes[code]:
		return sink.Permanent
	case unhealthyCodes[code]:
		return sink.Unhealthy
	}
	return sink.Retryable
}

// classifyCall classifies a failed call.
func classifyCall(err error) error {
	var credErr *CredentialsError
	if errors.As(err, &credErr) {
		return classifyCredentials(credErr.Err)
	}
	var signing *v4.SigningError
	if errors.As(err, &signing) {
		return classifyCredentials(err)
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		if status == 0 {
			// No answer: the network, or the SDK before sending. Keep the
			// cause so Classify sees untrusted certificates.
			return &sink.SendError{Class: sink.Classify(err), Err: fmt.Errorf("PutEvents: %w", unwrapOperation(err))}
		}
		return &sink.SendError{Class: classifyStatus(status, ""), Status: status,
			Err: &CallError{Status: status, Message: "answer does not read as an EventBridge error: " + describe(errText(unwrapOperation(err)))}}
	}
	code := ae.ErrorCode()
	ce := &CallError{Status: status, Code: code, Message: describe(ae.ErrorMessage())}
	class := classifyStatus(status, code)
	if class == sink.Unhealthy && !unhealthyCodes[code] && status != http.StatusUnauthorized && status != http.StatusForbidden {
		ce.Message += "; check the connection's region and endpoint"
	}
	return &sink.SendError{Class: class, Status: status, Err: ce}
}

// classifyStatus classifies a call-level error by code, then by status.
func classifyStatus(status int, code string) sink.Class {
	switch {
	case retryableCodes[code]:
		return sink.Retryable
	case unhealthyCodes[code]:
		return sink.Unhealthy
	case code == "RequestEntityTooLarge", code == "RequestEntityTooLargeException", status == http.StatusRequestEntityTooLarge:
		return sink.TooLarge
	case permanentCodes[code]:
		return sink.Permanent
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return sink.Retryable
	}
	// 401, 403, redirects, 404 and 4xx codes EventBridge does not give about
	// entries: the connection (credentials, endpoint, bus) is wrong, not the
	// events. Park them rather than dead-letter on a guess.
	return sink.Unhealthy
}

// classifyCredentials classifies a failure to obtain credentials: Retryable
// when STS was busy or unreachable for a moment, else Unhealthy (a Secret
// that cannot be read, a role that may not be assumed, an external id that
// does not match, no credentials in the default chain).
func classifyCredentials(err error) error {
	var se *SecretError
	if errors.As(err, &se) {
		return &sink.SendError{Class: sink.Unhealthy, Err: fmt.Errorf("credentials: %w", se)}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		status := 0
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) {
			status = re.HTTPStatusCode()
		}
		class := sink.Unhealthy
		if retryableCodes[ae.ErrorCode()] || status >= 500 || status == http.StatusTooManyRequests {
			class = sink.Retryable
		}
		return &sink.SendError{Class: class, Status: status,
			Err: fmt.Errorf("credentials: assume role: HTTP %d %s: %s", status, ae.ErrorCode(), describe(ae.ErrorMessage()))}
	}
	return &sink.SendError{Class: sink.Unhealthy, Err: fmt.Errorf("credentials: %s", describe(errText(err)))}
}

// unwrapOperation drops the SDK's "operation error EventBridge: PutEvents,"
// wrapper, keeping what it wraps.
func unwrapOperation(err error) error {
	var oe *smithy.OperationError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// describe renders an answer's message for an error: printable ASCII only,
// cut short.
func describe(msg string) string {
	if strings.TrimSpace(msg) == "" {
		return "no message"
	}
	return sink.AnswerText(msg)
}
