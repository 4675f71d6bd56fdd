package sink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Class says what the runtime does with a failed delivery. Failures are
// classified where they are understood (the sink) and decided on in one place
// (the runtime), as franz-go separates IsRetryableBrokerErr from its retry
// loop. The zero Class is Retryable, so an unclassified failure is retried,
// never dropped.
type Class int

const (
	// Retryable: try the same items again after a backoff; once retries are
	// spent, park them on the retry topic.
	Retryable Class = iota
	// Permanent: the destination refused these items and will refuse them
	// again; dead-letter them with the reason and move on.
	Permanent
	// TooLarge: the request was over a size limit; split it and retry. A
	// single item that is still too large is Permanent.
	TooLarge
	// Unhealthy: the connection itself is broken (credentials rejected,
	// certificate not trusted): mark the connection unhealthy and park its
	// events until an operator fixes it. Nothing is dropped.
	Unhealthy
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case TooLarge:
		return "too_large"
	case Unhealthy:
		return "unhealthy"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// SendError is a classified delivery failure.
//
// Its message holds the class, the HTTP status, the hint and Err's message,
// and never request bodies or headers. Err must not carry secrets either:
// wrap transport errors, not requests. As a last guard, a *url.Error in Err
// has its URL's query values and password masked in the message.
type SendError struct {
	Class Class
	// Status is the HTTP status, or 0 when there was no response.
	Status int
	// RetryAfter is the destination's hint (see RetryAfter), or 0.
	RetryAfter time.Duration
	Err        error
}

func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("delivery ")
	b.WriteString(e.Class.String())
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
		if text := http.StatusText(e.Status); text != "" {
			b.WriteString(" " + text)
		}
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(redactURLs(e.Err))
	}
	return b.String()
}

func (e *SendError) Unwrap() error { return e.Err }

// redactURLs renders err with the URL of the first *url.Error in its chain
// masked, because net/http puts the full request URL, query included, in its
// errors, and some intakes accept an API key as a query parameter.
func redactURLs(err error) string {
	msg := err.Error()
	var ue *url.Error
	if !errors.As(err, &ue) || ue.URL == "" {
		return msg
	}
	return strings.ReplaceAll(msg, ue.URL, redactURL(ue.URL))
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable url]"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"redacted"}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// CheckStatus turns an HTTP response status into nil for 2xx and a
// *SendError otherwise, classified by ClassifyHTTP and carrying the wait the
// headers ask for. It keeps the 2xx test in one place so no sink retries a
// success or, worse, dead-letters one.
func CheckStatus(status int, h http.Header, now time.Time) error {
	if status >= 200 && status <= 299 {
		return nil
	}
	hint, _ := RetryAfter(h, now)
	return &SendError{Class: ClassifyHTTP(status), Status: status, RetryAfter: hint}
}

// ClassifyHTTP classifies a failed response by status under the Datadog logs
// intake contract: retry 408/425/429/5xx, split on 413, never retry other
// 4xx as they are. It is only for failures: a 2xx is a delivery and callers
// test for it first (CheckStatus does); for 2xx, 1xx and 3xx it answers
// Retryable, the answer that loses nothing.
func ClassifyHTTP(status int) Class {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500 && status <= 599:
		return Retryable
	case status == http.StatusRequestEntityTooLarge:
		return TooLarge
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return Unhealthy
	case status >= 400 && status <= 499: // 400, 422 and the rest
		return Permanent
	}
	return Retryable
}

// Classify says what to do about err, a failed WriteBatch or a failed
// request inside one:
//   - a *SendError anywhere in the chain: its Class;
//   - a certificate the client does not trust: Unhealthy, since retrying
//     cannot fix the connection's configuration;
//   - context.Canceled and context.DeadlineExceeded: Retryable. The items
//     were not delivered, which is not the destination's fault; a caller
//     whose own ctx has ended should stop without counting a failure or
//     committing, and the next owner of the partition sends them again;
//   - net.Error (timeouts included), io.ErrUnexpectedEOF, io.EOF, connection
//     reset, refused or broken pipe: Retryable;
//   - anything else: Retryable. Dropping an audit event on a guess would
//     break "nothing accepted is lost", while a needless retry only costs
//     time and ends on the retry topic.
//
// A *BatchError is Retryable as a whole; walk it to classify each item.
// Classify(nil) is Retryable too: nil is not a failure, callers test first.
func Classify(err error) Class {
	var be *BatchError
	if errors.As(err, &be) {
		return Retryable
	}
	var se *SendError
	if errors.As(err, &se) {
		return se.Class
	}
	if untrustedCert(err) {
		return Unhealthy
	}
	// Cancellation, timeouts, transport errors and the unknown all land here.
	return Retryable
}

func untrustedCert(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) ||
		errors.As(err, &hostname) || errors.As(err, &invalid)
}

// Misdirected says whether an HTTP status is no answer a destination's
// API gives about a request's content, so that the request went to the
// wrong place: a redirect (not followed: credentials would go with it), or
// a 4xx other than 400, 401, 403, 408, 413, 422, 425 and 429, such as 404
// from a wrong endpoint, 407 from a proxy or 415 from a server that does
// not speak the encoding.
func Misdirected(status int) bool {
	switch {
	case status >= 300 && status <= 399:
		return true
	case status < 400 || status > 499:
		return false
	}
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout,
		http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return true
}

// MaxAnswerText bounds how much of a destination's answer an error quotes.
const MaxAnswerText = 300

// AnswerText renders a destination's answer for an error message: trimmed,
// printable ASCII only (a hostile answer cannot forge log lines), and cut
// after MaxAnswerText bytes.
func AnswerText(s string) string { return Printable(strings.TrimSpace(s), MaxAnswerText) }

// Printable is s with every byte outside printable ASCII made a space, cut
// after max bytes (marked "..."): text from outside, safe to quote in a
// message, a log line or an answer.
func Printable(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i == max {
			b.WriteString("...")
			break
		}
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = ' '
		}
		b.WriteByte(c)
	}
	return b.String()
}
