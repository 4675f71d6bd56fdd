package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"
	"google.golang.org/api/googleapi"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/objstore"
	_ "github.com/auditstream/auditstream/services/internal/objstore/all" // every store kind a profile may name
	"github.com/auditstream/auditstream/services/internal/secretbox"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/internal/sink/eventbridge"
	"github.com/auditstream/auditstream/services/internal/sinks"
	_ "github.com/auditstream/auditstream/services/internal/sinks/all" // every connection type can be tested
)

// Test calls prove a destination works now, through the sink code the
// consumers use: one clearly marked test event for a connection, one new
// marker object for a storage profile. The answer is the destination's
// verdict; each test is itself an audit event of the account.
const (
	ActionTestConnection     = "test-audit-log-connection"
	ActionTestStorageProfile = "test-audit-log-storage-profile"
	// TestMarker is the extra field that marks a test event ("true").
	TestMarker = "auditstream-test"
	// MarkerPrefix is the folder, under a storage profile's prefix, that
	// test markers are created in. The archiver writes only
	// <account>/YYYY/MM/DD/... and <account>/_manifests/..., never here
	// (not even for an account named _auditstream), and a test never
	// writes anywhere else.
	MarkerPrefix = "_auditstream/connection-test/"
)

// Verdict results and codes. The codes are stable: a console maps them to
// its own words.
const (
	resultOK     = "ok"
	resultFailed = "failed"

	codeOK                 = "ok"
	codeBadCredentials     = "bad_credentials"     // key or signature refused (401, Datadog's 403)
	codePermissionDenied   = "permission_denied"   // authenticated, not allowed
	codeNotFound           = "not_found"           // unknown event bus, bucket or container missing
	codeWrongEndpoint      = "wrong_endpoint"      // an answer that is not the destination's (redirect, 404 from a proxy)
	codeThrottled          = "throttled"           // 429, throttling codes
	codeUnreachable        = "unreachable"         // no connection: DNS, refused, reset
	codeTimeout            = "timeout"             // no answer within the sink's or the test's time
	codeTLS                = "tls_error"           // certificate not trusted
	codeRejected           = "rejected"            // the test event or marker was refused as invalid
	codeDestinationError   = "destination_error"   // 5xx and other errors of the destination
	codeSecretUnavailable  = "secret_unavailable"  // a stored secret cannot be opened (key ring, KMS)
	codeInvalidSettings    = "invalid_settings"    // the stored settings no longer decode
	codeCredentialsFailure = "credentials_failure" // credentials could not be obtained (assume role, default chain)
	codeAlreadyExists      = "already_exists"      // a marker's new key was taken: nothing was overwritten
	codeError              = "error"               // anything else
)

// maxVerdictMessage bounds a verdict's message.
const maxVerdictMessage = 400

// verdict is a test's answer.
type verdict struct {
	Result string `json:"result"`
	Code   string `json:"code"`
	// Class is how the delivery runtime would treat the failure:
	// retryable, permanent, too_large or unhealthy. Empty when ok.
	Class   string `json:"class,omitempty"`
	Message string `json:"message"`
	// DestinationStatus is the destination's HTTP status, when it answered.
	DestinationStatus int `json:"destination_status,omitempty"`
	// Attempts is how many times the test event was sent: a retryable
	// failure is sent again, as delivery would, within the test's time.
	Attempts int `json:"attempts,omitempty"`
	// Filter is what the connection's filter says of the test event
	// (matches, excludes, error), empty without a filter. The event is
	// sent whatever it says; FilterError is why it could not decide.
	Filter      string    `json:"filter,omitempty"`
	FilterError string    `json:"filter_error,omitempty"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Enabled     bool      `json:"enabled"`
	EventID     string    `json:"event_id"`
	MarkerKey   string    `json:"marker_key,omitempty"`
	TestedAt    time.Time `json:"tested_at"`
	DurationMS  int64     `json:"duration_ms"`
}

// testOutcome is what a kind's test reports beyond its error.
type testOutcome struct {
	markerKey string   // storage: the marker's key in the bucket
	secrets   []string // the connection's secret values, to keep out of messages
	attempts  int      // sinks: how many times the event was sent
}

// settingsError is a stored configuration that could not be decoded (or
// its secrets opened) into the consumer's settings type.
type settingsError struct{ err error }

func (e *settingsError) Error() string { return e.err.Error() }
func (e *settingsError) Unwrap() error { return e.err }

// testSink sends ev to c with the sink its forwarder builds, as the
// registry (sinks) builds it for c's type: every registered type is tested
// this one way.
func testSink(ctx context.Context, c *destinations.Connection, ev *auditlogv1.AuditEvent) (testOutcome, error) {
	k, ok := sinks.Lookup(c.Type)
	if !ok {
		return testOutcome{}, fmt.Errorf("no sink is registered for connection type %q", c.Type)
	}
	settings, err := k.Settings(c)
	if err != nil {
		return testOutcome{}, &settingsError{err}
	}
	out := testOutcome{secrets: secretValues(settings)}
	s, err := k.New(c)
	if err != nil {
		return out, &settingsError{err}
	}
	entry, err := s.Encode(ev)
	if err != nil {
		return out, err
	}
	out.attempts, err = sendTest(ctx, s, entry)
	return out, err
}

// maxTestAttempts bounds how often one test sends its event: a throttled
// or failing destination is tried again as delivery would, a few times.
const maxTestAttempts = 3

// errAttemptsSpent ends a test's sending after maxTestAttempts.
var errAttemptsSpent = errors.New("test attempts spent")

// sendTest writes a test's entry with delivery.BatchSender, the loop live
// delivery, replay and redrive send with: a retryable failure (429, 5xx,
// no answer) is retried after the delivery backoff, honouring the
// destination's Retry-After, within half of what is left of
// api.test_timeout and at most maxTestAttempts times, so a verdict still
// arrives in time. err is the last attempt's.
func sendTest(ctx context.Context, s delivery.EntrySink, entry delivery.Encoded) (attempts int, err error) {
	left := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bs := delivery.BatchSender{Backoff: sink.DefaultBackoff(), RetryBudget: left / 2, SendTimeout: left,
		Attempted: func(int, time.Duration, error) { attempts++ },
		Retrying: func(int) {
			if attempts >= maxTestAttempts {
				cancel(errAttemptsSpent)
			}
		}}
	var last error
	_, why, _ := s.Send(ctx, bs, []delivery.Encoded{entry}, func(_ int, err error) { last = err })
	if why == delivery.Stopped && !errors.Is(context.Cause(ctx), errAttemptsSpent) {
		return attempts, ctx.Err()
	}
	return attempts, last
}

// testStorage creates a new marker object, holding ev, under MarkerPrefix
// of c's store, opened as the archiver opens it. Create is conditional in
// every store, and the key is new each time, so nothing is overwritten.
func testStorage(ctx context.Context, c *destinations.Connection, ev *auditlogv1.AuditEvent) (testOutcome, error) {
	st, secrets, err := openStorage(ctx, c)
	out := testOutcome{secrets: secrets}
	if err != nil {
		return out, err
	}
	defer func() { _ = st.Close() }()
	prefix := st.prefix
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	key := MarkerPrefix + ev.GetTimestamp().AsTime().UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(nonce[:]) + ".json"
	body := append(auditevent.EncodeJSON(ev), '\n')
	sum := sha256.Sum256(body)
	if _, err := st.Create(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.CreateOptions{ContentType: "application/json", SHA256: sum[:]}); err != nil {
		return out, err
	}
	out.markerKey = key
	if prefix != "" {
		out.markerKey = path.Join(prefix, key)
	}
	return out, nil
}

// openedStore is a storage profile's store and the prefix its keys are under.
type openedStore struct {
	objstore.Store
	prefix string
}

// openStorage opens c's store as the archiver opens it (sealed secrets
// through the connection's opener); secrets are the settings' secret
// values, to keep out of messages. Settings that do not decode or open are
// a *settingsError.
func openStorage(ctx context.Context, c *destinations.Connection) (openedStore, []string, error) {
	s, err := destinations.DecodeSettings[objstore.Settings](c)
	if err != nil {
		return openedStore{}, nil, &settingsError{err}
	}
	secrets := secretValues(s)
	st, err := objstore.Open(ctx, s)
	if err != nil {
		return openedStore{}, secrets, &settingsError{err}
	}
	return openedStore{Store: st, prefix: s.Prefix}, secrets, nil
}

// secretValues are the values of every config.Secret in v, so a verdict's
// message can be cleaned of them whatever an error quoted.
func secretValues(v any) []string {
	var out []string
	var walk func(v reflect.Value, depth int)
	walk = func(v reflect.Value, depth int) {
		if depth > 8 {
			return
		}
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem(), depth+1)
			}
		case reflect.Struct:
			if s, ok := v.Interface().(config.Secret); ok {
				if val, err := s.Value(); err == nil && val != "" {
					out = append(out, val)
				}
				return
			}
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i), depth+1)
				}
			}
		}
	}
	walk(reflect.ValueOf(v), 0)
	return out
}

// testGuard keeps tests to one at a time per resource and a few a minute
// per account, so the endpoint cannot be used to hammer a third party.
type testGuard struct {
	mu      sync.Mutex
	running map[string]bool
	recent  map[string][]time.Time // by account: starts within the last minute
}

// begin admits a test of resource in account, or says why not.
func (g *testGuard) begin(account, resource string, now time.Time, perMinute int) (release func(), retryAfter time.Duration, busy bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running == nil {
		g.running, g.recent = map[string]bool{}, map[string][]time.Time{}
	}
	if g.running[resource] {
		return nil, 0, true
	}
	// Forget starts older than a minute, and accounts with none left.
	for acct, starts := range g.recent {
		i := 0
		for i < len(starts) && now.Sub(starts[i]) >= time.Minute {
			i++
		}
		if i == len(starts) {
			delete(g.recent, acct)
		} else {
			g.recent[acct] = starts[i:]
		}
	}
	if starts := g.recent[account]; len(starts) >= perMinute {
		return nil, starts[0].Add(time.Minute).Sub(now), false
	}
	g.recent[account] = append(g.recent[account], now)
	g.running[resource] = true
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		delete(g.running, resource)
	}, 0, false
}

// testResource is POST .../{connections,storage-profiles}/{name}/test.
func (a *API) testResource(r *request) (int, any, *apiError) {
	res := resourcesOf(a.store.Get(r.account), r.collection)[r.name]
	if res == nil {
		return 0, nil, notFound(kindLabel(r.collection) + " " + r.name)
	}
	k, aerr := kindOf(r.collection, res.Type)
	if aerr != nil || k.test == nil {
		return 0, nil, errorf(http.StatusConflict, "failed_precondition", "%s %s is of type %q, which cannot be tested", kindLabel(r.collection), r.name, res.Type)
	}
	release, wait, busy := a.tests.begin(r.account, r.account+"/"+r.collection+"/"+r.name, time.Now(), a.cfg.API.TestsPerMinute)
	if busy {
		return 0, nil, errorf(http.StatusConflict, "test_in_progress", "a test of %s %s is running; wait for its answer", kindLabel(r.collection), r.name)
	}
	if release == nil {
		secs := max(1, int((wait+time.Second-1)/time.Second))
		r.w.Header().Set("Retry-After", strconv.Itoa(secs))
		return 0, nil, errorf(http.StatusTooManyRequests, "rate_limited",
			"at most %d tests a minute per account (api.tests_per_minute); retry in %d s", a.cfg.API.TestsPerMinute, secs)
	}
	defer release()

	action := ActionTestConnection
	if r.collection == destinations.CollectionStorageProfiles {
		action = ActionTestStorageProfile
	}
	start := a.now()
	ev := testEvent(r, action, targetType(r.collection), start)
	ev.Request.IpAddress = a.clientIP(r.Request)
	conn := destinations.NewAPIResourceConnection(r.account, r.collection, r.name, res, destinations.SecretboxOpener(a.sealer.box))
	// The event goes through the resource's policy as real ones do:
	// redacted, so the destination receives it in their form and a
	// misconfigured redaction shows; sent even when the filter excludes
	// it, since a test must reach the destination, and the verdict says so.
	var out testOutcome
	var filter, filterErr string
	var timedOut bool
	policy, err := conn.Policy()
	if err != nil {
		err = &settingsError{err}
	} else {
		if policy.Filter() != "" {
			_, keep, ferr := policy.Apply(ev)
			switch {
			case ferr != nil:
				filter, filterErr = "error", ferr.Error()
			case keep:
				filter = "matches"
			default:
				filter = "excludes"
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.API.TestTimeout)
		out, err = k.test(ctx, conn, policy.Redact(ev))
		timedOut = ctx.Err() != nil && r.Context().Err() == nil
		cancel()
	}

	v := judge(err, res.Type, timedOut, a.cfg.API.TestTimeout, out.secrets)
	v.Name, v.Type, v.Enabled, v.EventID, v.MarkerKey = r.name, res.Type, res.Enabled, ev.GetId(), out.markerKey
	v.Attempts, v.Filter, v.FilterError = out.attempts, filter, cleanMessage(filterErr, out.secrets)
	if v.Result == resultOK && v.Attempts > 1 {
		v.Message = fmt.Sprintf("the destination accepted the test on attempt %d of %d", v.Attempts, maxTestAttempts)
	}
	v.TestedAt, v.DurationMS = start.UTC(), a.now().Sub(start).Milliseconds()

	a.log.Info("destination tested", zap.String("account", r.account), zap.String("collection", r.collection),
		zap.String("name", r.name), zap.String("type", res.Type), zap.String("result", v.Result), zap.String("code", v.Code),
		zap.String("class", v.Class), zap.Int("destination_status", v.DestinationStatus), zap.Int("attempts", v.Attempts),
		zap.String("filter", v.Filter), zap.String("message", v.Message),
		zap.Int64("duration_ms", v.DurationMS), zap.String("actor", r.p.Name))
	if err != nil && v.Code == codeSecretUnavailable {
		a.log.Warn("a stored secret could not be opened for a test", zap.String("account", r.account),
			zap.String("name", r.name), zap.String("error", cleanMessage(err.Error(), out.secrets)))
	}

	c := change{account: r.account, action: action, targetType: targetType(r.collection), targetID: r.name,
		status: http.StatusOK, verdict: v, failed: v.Result != resultOK}
	// Recorded even when the caller hung up meanwhile: the destination was
	// called all the same.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.cfg.API.WriteTimeout)
	defer rcancel()
	if err := a.record(rctx, r.Request, r.p, c); err != nil {
		a.log.Error("destination tested but its audit event was not written", zap.Error(err))
		return 0, nil, errorf(http.StatusInternalServerError, "internal",
			"the test ran (%s), but writing its audit event failed; the operator is alerted (auditstream_destinations_api_audit_failures_total)", v.Code)
	}
	return http.StatusOK, v, nil
}

// testEvent is the event a test sends: a real audit event of the account,
// in the shape every event has, marked as a test in its extra fields and
// its target's display name.
func testEvent(r *request, action, target string, now time.Time) *auditlogv1.AuditEvent {
	ev := &auditlogv1.AuditEvent{
		Service:  "audit-log",
		Hostname: r.Host,
		Actor:    &auditlogv1.Actor{Id: r.p.Name, Type: "api-token"},
		Request: &auditlogv1.Request{
			Action:    action,
			Id:        r.Header.Get("X-Request-Id"),
			Source:    "api",
			UserAgent: r.UserAgent(),
		},
		Outcome: &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: http.StatusOK},
		Target: &auditlogv1.Target{
			Id: r.name, Type: target, DisplayName: "auditstream test event for " + r.name + " (not an account change)",
			Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: r.account}},
		},
		Timestamp: timestamppb.New(now),
		Extra:     map[string]string{TestMarker: "true"},
	}
	// Ids and the schema version as the producer gives every event.
	_ = auditevent.Prepare(ev, now)
	return ev
}

// judge turns a test's error into its verdict: the class the delivery
// runtime would give it, a stable code, and a message without secrets.
func judge(err error, typ string, timedOut bool, limit time.Duration, secrets []string) verdict {
	if err == nil {
		return verdict{Result: resultOK, Code: codeOK, Message: "the destination accepted the test"}
	}
	v := verdict{Result: resultFailed, Class: sink.Classify(err).String()}
	apiCode, status := errorCode(err)
	var se *sink.SendError
	if errors.As(err, &se) && se.Status != 0 {
		status = se.Status
	}
	v.DestinationStatus = status
	var setErr *settingsError
	var netErr net.Error
	switch {
	case errors.As(err, &setErr):
		v.Class = sink.Unhealthy.String()
		v.Code = codeInvalidSettings
		if errors.Is(err, secretbox.ErrUnknownKey) || errors.Is(err, secretbox.ErrTampered) || errors.Is(err, secretbox.ErrUnavailable) ||
			strings.Contains(err.Error(), "open secret") || strings.Contains(err.Error(), "is sealed") {
			v.Code = codeSecretUnavailable
			// Which key ring or KMS key failed is the operator's business:
			// the log has it.
			err = errors.New("a stored secret cannot be opened with the installation's key-encryption key; write the secret again, or ask the operator to restore the key")
		}
	case errors.Is(err, objstore.ErrExists):
		v.Class, v.Code = sink.Permanent.String(), codeAlreadyExists
	case timedOut, errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "no answer within"):
		v.Class, v.Code = sink.Retryable.String(), codeTimeout
		if timedOut {
			err = fmt.Errorf("no verdict within the test's %s (api.test_timeout)", limit)
		}
	case errors.Is(err, context.Canceled):
		v.Code = codeError
		err = errors.New("the test was cancelled before a verdict: the caller hung up")
	case untrustedCert(err):
		v.Class, v.Code = sink.Unhealthy.String(), codeTLS
	case apiCode != "" || status != 0:
		v.Code = codeOf(apiCode, status, typ)
	case strings.HasPrefix(err.Error(), "credentials") || strings.Contains(err.Error(), ": credentials"):
		v.Code = codeCredentialsFailure
	case errors.As(err, &netErr) && netErr.Timeout():
		v.Code = codeTimeout
	case errors.As(err, &netErr):
		v.Code = codeUnreachable
	default:
		v.Code = codeError
	}
	if se == nil && typ == destinations.TypeStorage && v.Code != codeInvalidSettings && v.Code != codeSecretUnavailable {
		// Store errors are not classified by a sink: class them as the
		// runtime would a sink's error of the same meaning.
		v.Class = classOfCode(v.Code).String()
	}
	v.Message = cleanMessage(err.Error(), secrets)
	return v
}

// codeOf is the verdict code of a destination's error code and HTTP status.
func codeOf(apiCode string, status int, typ string) string {
	switch {
	case badCredentialCodes[apiCode]:
		return codeBadCredentials
	case deniedCodes[apiCode]:
		return codePermissionDenied
	case notFoundCodes[apiCode]:
		return codeNotFound
	case throttleCodes[apiCode]:
		return codeThrottled
	case status == http.StatusUnauthorized:
		return codeBadCredentials
	case status == http.StatusForbidden && typ == destinations.TypeDatadog:
		return codeBadCredentials // the intake's answer to an invalid API key
	case status == http.StatusForbidden:
		return codePermissionDenied
	case status == http.StatusNotFound && typ != destinations.TypeDatadog && apiCode != "":
		return codeNotFound
	case status >= 300 && status <= 399, status == http.StatusNotFound, status == http.StatusProxyAuthRequired:
		return codeWrongEndpoint
	case status >= 200 && status <= 299:
		// A refusal in a success answer: an OTLP partial success.
		return codeRejected
	case status == http.StatusRequestTimeout:
		return codeTimeout
	case status == http.StatusTooManyRequests:
		return codeThrottled
	case status >= 500:
		return codeDestinationError
	case status >= 400:
		return codeRejected
	}
	return codeDestinationError
}

// classOfCode is the delivery class of a store error by its code.
func classOfCode(code string) sink.Class {
	switch code {
	case codeBadCredentials, codePermissionDenied, codeNotFound, codeWrongEndpoint, codeTLS, codeCredentialsFailure:
		return sink.Unhealthy
	case codeRejected, codeAlreadyExists:
		return sink.Permanent
	}
	return sink.Retryable
}

func setOf(codes ...string) map[string]bool {
	m := make(map[string]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}

// Error codes of AWS (EventBridge, S3, STS), Azure and GCS by meaning.
var (
	badCredentialCodes = setOf("UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch",
		"IncompleteSignature", "IncompleteSignatureException", "MissingAuthenticationToken", "MissingAuthenticationTokenException",
		"InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "RequestExpired", "AuthFailure", "InvalidAccessKeyId",
		"InvalidToken", "TokenRefreshRequired", "AuthenticationFailed", "InvalidAuthenticationInfo", "NoAuthenticationInformation",
		"authError", "required")
	deniedCodes = setOf("AccessDeniedException", "AccessDenied", "NotAuthorizedForSourceException", "NotAuthorizedForDetailTypeException",
		"NotAuthorized", "AuthorizationError", "AllAccessDisabled", "AccountProblem", "InvalidAccountIdException",
		"AuthorizationFailure", "AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch", "AuthorizationSourceIPMismatch",
		"AuthorizationProtocolMismatch", "InsufficientAccountPermissions", "AccountIsDisabled", "forbidden", "insufficientPermissions")
	notFoundCodes = setOf("ResourceNotFoundException", "NoSuchBucket", "ContainerNotFound", "ContainerBeingDeleted",
		"ContainerDisabled", "ResourceNotFound", "notFound")
	throttleCodes = setOf("ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
		"RequestLimitExceeded", "LimitExceededException", "RequestThrottled", "RequestThrottledException", "SlowDown",
		"ServerBusy", "rateLimitExceeded", "userRateLimitExceeded")
)

// errorCode finds the destination's own error code and HTTP status in err:
// an AWS API error (EventBridge call and entry errors included), an Azure
// response error, a Google API error.
func errorCode(err error) (code string, status int) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var ce *eventbridge.CallError
	if errors.As(err, &ce) && ce.Code != "" {
		code, status = ce.Code, ce.Status
	}
	var ee *eventbridge.EntryError
	if errors.As(err, &ee) {
		code = ee.Code
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) && status == 0 {
		status = hs.HTTPStatusCode()
	}
	var az *azcore.ResponseError
	if errors.As(err, &az) {
		code, status = az.ErrorCode, az.StatusCode
	}
	if errors.Is(err, storage.ErrBucketNotExist) {
		return "notFound", http.StatusNotFound
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		status = ge.Code
		if len(ge.Errors) > 0 {
			code = ge.Errors[0].Reason
		}
	}
	return code, status
}

func untrustedCert(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// cleanMessage is msg without any of the connection's secret values,
// printable ASCII only, cut short. Errors never quote secrets by design;
// this is the last guard before an answer, a log line and an audit event.
func cleanMessage(msg string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return sink.Printable(msg, maxVerdictMessage)
}
