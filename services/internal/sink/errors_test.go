package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{
		Retryable: "retryable", Permanent: "permanent", TooLarge: "too_large", Unhealthy: "unhealthy", Class(42): "class(42)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
	var zero Class
	if zero != Retryable {
		t.Fatal("the zero Class must be Retryable so an unclassified failure is never dropped")
	}
}

func TestClassifyHTTP(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   Class
	}{
		{http.StatusRequestTimeout, Retryable},
		{http.StatusTooEarly, Retryable},
		{http.StatusTooManyRequests, Retryable},
		{http.StatusInternalServerError, Retryable},
		{http.StatusBadGateway, Retryable},
		{http.StatusServiceUnavailable, Retryable},
		{http.StatusGatewayTimeout, Retryable},
		{599, Retryable},
		{http.StatusRequestEntityTooLarge, TooLarge},
		{http.StatusBadRequest, Permanent},
		{http.StatusUnprocessableEntity, Permanent},
		{http.StatusNotFound, Permanent},
		{http.StatusConflict, Permanent},
		{http.StatusRequestHeaderFieldsTooLarge, Permanent},
		{499, Permanent},
		{http.StatusUnauthorized, Unhealthy},
		{http.StatusForbidden, Unhealthy},
		// Not failures, or not expected: Retryable loses nothing.
		{http.StatusOK, Retryable},
		{http.StatusAccepted, Retryable},
		{http.StatusFound, Retryable},
		{http.StatusContinue, Retryable},
		{0, Retryable},
		{600, Retryable},
	} {
		if got := ClassifyHTTP(tc.status); got != tc.want {
			t.Errorf("ClassifyHTTP(%d) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

func TestCheckStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		for _, status := range []int{200, 202, 204, 299} {
			h := http.Header{"Retry-After": {"5"}}
			if err := CheckStatus(status, h, now); err != nil {
				t.Errorf("CheckStatus(%d) = %v, want nil", status, err)
			}
		}
		for _, tc := range []struct {
			status int
			header http.Header
			want   SendError
		}{
			{429, http.Header{"Retry-After": {"3"}}, SendError{Class: Retryable, Status: 429, RetryAfter: 3 * time.Second}},
			{429, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"9"}}, SendError{Class: Retryable, Status: 429, RetryAfter: 9 * time.Second}},
			{503, nil, SendError{Class: Retryable, Status: 503}},
			{413, nil, SendError{Class: TooLarge, Status: 413}},
			{400, nil, SendError{Class: Permanent, Status: 400}},
			{403, nil, SendError{Class: Unhealthy, Status: 403}},
		} {
			err := CheckStatus(tc.status, tc.header, now)
			var se *SendError
			if !errors.As(err, &se) || *se != tc.want {
				t.Errorf("CheckStatus(%d, %v) = %#v, want %#v", tc.status, tc.header, err, &tc.want)
			}
		}
	})
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	post := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://http-intake.logs.datadoghq.eu/api/v2/logs", Err: err}
	}
	permanent := &SendError{Class: Permanent, Status: 400}
	be := NewBatchError(2)
	be.Fail(0, permanent)
	for _, tc := range []struct {
		name string
		err  error
		want Class
	}{
		{"send error", &SendError{Class: TooLarge, Status: 413}, TooLarge},
		{"wrapped send error", fmt.Errorf("datadog: %w", permanent), Permanent},
		{"joined send error", errors.Join(errors.New("context"), &SendError{Class: Unhealthy}), Unhealthy},
		{"send error class beats its cause", &SendError{Class: Permanent, Err: context.Canceled}, Permanent},
		{"canceled", context.Canceled, Retryable},
		{"canceled in transport", post(context.Canceled), Retryable},
		{"deadline", fmt.Errorf("send: %w", context.DeadlineExceeded), Retryable},
		{"timeout", post(timeoutErr{}), Retryable},
		{"os deadline", os.ErrDeadlineExceeded, Retryable},
		{"reset", post(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), Retryable},
		{"refused", post(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), Retryable},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), Retryable},
		{"unexpected EOF", post(io.ErrUnexpectedEOF), Retryable},
		{"EOF", post(io.EOF), Retryable},
		{"dns", post(&net.DNSError{Err: "no such host", Name: "intake.invalid", IsNotFound: true}), Retryable},
		{"unknown authority", post(x509.UnknownAuthorityError{}), Unhealthy},
		{"hostname mismatch", post(x509.HostnameError{Host: "intake"}), Unhealthy},
		{"expired", post(x509.CertificateInvalidError{Reason: x509.Expired}), Unhealthy},
		{"tls verification", post(&tls.CertificateVerificationError{Err: errors.New("bad")}), Unhealthy},
		{"unknown", errors.New("something odd"), Retryable},
		{"batch error as a whole", fmt.Errorf("write: %w", be), Retryable},
		{"nil", nil, Retryable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Fatalf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestSendErrorMessage(t *testing.T) {
	const apiKey = "0123456789abcdefSECRETKEY"
	cause := &url.Error{
		Op:  "Post",
		URL: "https://http-intake.logs.datadoghq.com/api/v2/logs?dd-api-key=" + apiKey + "&ddsource=auditstream",
		Err: io.ErrUnexpectedEOF,
	}
	err := &SendError{Class: Retryable, Status: 503, RetryAfter: 2 * time.Second, Err: fmt.Errorf("datadog: %w", cause)}
	msg := err.Error()
	for _, want := range []string{"retryable", "HTTP 503 Service Unavailable", "retry after 2s", "datadog: Post", "http-intake.logs.datadoghq.com/api/v2/logs", "dd-api-key=redacted", "ddsource=redacted", "unexpected EOF"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Error() = %q, want it to contain %q", msg, want)
		}
	}
	if strings.Contains(msg, apiKey) {
		t.Errorf("Error() leaks the key from the URL: %q", msg)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("SendError does not unwrap to its cause")
	}
	var ue *url.Error
	if !errors.As(err, &ue) || !strings.Contains(ue.URL, apiKey) {
		t.Error("redaction must only touch the message, not the wrapped error")
	}

	// The request's headers and body, and the response's headers, never
	// enter the message: CheckStatus takes only what it needs from them.
	resp := http.Header{"Set-Cookie": {"session=" + apiKey}, "Retry-After": {"1"}}
	err403 := CheckStatus(403, resp, time.Now())
	if msg := err403.Error(); strings.Contains(msg, apiKey) || strings.Contains(msg, "Set-Cookie") ||
		msg != "delivery unhealthy: HTTP 403 Forbidden, retry after 1s" {
		t.Errorf("CheckStatus(403).Error() = %q", msg)
	}
	for _, verb := range []string{"%v", "%+v", "%s"} {
		if s := fmt.Sprintf(verb, err); strings.Contains(s, apiKey) {
			t.Errorf("Sprintf(%q) leaks the key: %q", verb, s)
		}
	}
}

func TestSendErrorRedactsUserinfoAndBadURLs(t *testing.T) {
	for _, tc := range []struct {
		url, secret, want string
	}{
		{"https://user:hunter2@intake.example/logs", "hunter2", "https://user:xxxxx@intake.example/logs"},
		{"https://intake.example/logs?token=hunter2", "hunter2", "https://intake.example/logs?token=redacted"},
		{"https://intake.example/%zz?token=hunter2", "hunter2", "[unparseable url]"},
	} {
		err := &SendError{Class: Retryable, Err: &url.Error{Op: "Post", URL: tc.url, Err: io.EOF}}
		msg := err.Error()
		if strings.Contains(msg, tc.secret) || !strings.Contains(msg, tc.want) {
			t.Errorf("Error() = %q, want %q and no %q", msg, tc.want, tc.secret)
		}
	}
	if got := (&SendError{Class: Permanent, Status: 422}).Error(); got != "delivery permanent: HTTP 422 Unprocessable Entity" {
		t.Errorf("without Err: %q", got)
	}
	if got := (&SendError{Class: Retryable, Err: io.EOF}).Error(); got != "delivery retryable: EOF" {
		t.Errorf("without status: %q", got)
	}
}

// A redirect or a 4xx no API answers about content says the request went
// to the wrong place; the answers about content and 5xx do not.
func TestMisdirected(t *testing.T) {
	for status, want := range map[int]bool{
		301: true, 307: true, 404: true, 405: true, 407: true, 415: true,
		200: false, 400: false, 401: false, 403: false, 408: false, 413: false, 422: false, 425: false, 429: false, 500: false, 503: false,
	} {
		if got := Misdirected(status); got != want {
			t.Errorf("Misdirected(%d) = %v, want %v", status, got, want)
		}
	}
}
