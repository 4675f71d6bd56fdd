package ebfake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

const (
	keyID  = "AKIDFAKETEST00000001"
	secret = "fake-test-secret"
)

// client is an SDK EventBridge client for the fake, signing with id and
// key, the SDK's retries off.
func client(f *Server, id, key string) *eventbridge.Client {
	return eventbridge.New(eventbridge.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String(f.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(id, key, ""),
		Retryer:      aws.NopRetryer{},
	})
}

func newFake(t *testing.T) *Server {
	t.Helper()
	f := New()
	t.Cleanup(f.Close)
	f.AddKey(Key{AccessKeyID: keyID, SecretAccessKey: secret})
	return f
}

func entry(i int, bus string) types.PutEventsRequestEntry {
	at := time.Date(2024, 2, 16, 12, 58, 38, 577000000, time.UTC)
	return types.PutEventsRequestEntry{
		Source: aws.String("scalr.audit-log"), DetailType: aws.String("Audit Event"), EventBusName: aws.String(bus),
		Detail: aws.String(fmt.Sprintf(`{"id":"e-%d","request":{"action":"discard-run"}}`, i)), Time: &at,
	}
}

func entries(n int, bus string) []types.PutEventsRequestEntry {
	out := make([]types.PutEventsRequestEntry, n)
	for i := range out {
		out[i] = entry(i, bus)
	}
	return out
}

func put(t *testing.T, c *eventbridge.Client, es []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
	t.Helper()
	return c.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: es})
}

// apiError returns the status and code of a failed call.
func apiError(t *testing.T, err error) (int, string) {
	t.Helper()
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	if !errors.As(err, &ae) || !errors.As(err, &re) {
		t.Fatalf("not an API error: %v", err)
	}
	return re.HTTPStatusCode(), ae.ErrorCode()
}

// A call through the real SDK is accepted, recorded per bus with its
// fields, and delivered to targets as EventBridge shapes events.
func TestAcceptsSDKCalls(t *testing.T) {
	f := newFake(t)
	out, err := put(t, client(f, keyID, secret), []types.PutEventsRequestEntry{entry(0, "audit"), entry(1, "arn:aws:events:eu-west-1:123456789012:event-bus/audit"), entry(2, "")})
	if err != nil {
		t.Fatal(err)
	}
	if out.FailedEntryCount != 0 || len(out.Entries) != 3 || aws.ToString(out.Entries[0].EventId) == "" {
		t.Fatalf("answer %+v", out)
	}
	if f.Count("audit") != 2 || f.Count("default") != 1 {
		t.Fatalf("counts audit %d default %d", f.Count("audit"), f.Count("default"))
	}
	e := f.Entries("audit")[0]
	if e.Source != "scalr.audit-log" || e.DetailType != "Audit Event" || e.Time == nil || !e.Time.Equal(time.Date(2024, 2, 16, 12, 58, 38, 577000000, time.UTC)) || e.Region != "eu-west-1" {
		t.Fatalf("entry %+v", e)
	}
	ev := f.Events("audit")[0]
	if ev["source"] != "scalr.audit-log" || ev["detail-type"] != "Audit Event" || ev["time"] != "2024-02-16T12:58:38Z" ||
		ev["account"] != Account || ev["region"] != "eu-west-1" || ev["detail"].(map[string]any)["id"] != "e-0" {
		t.Fatalf("event %v", ev)
	}
	c := f.Calls()[0]
	if c.Status != 200 || c.AccessKeyID != keyID || len(c.Entries) != 3 || c.Bytes != 3*e.Size() {
		t.Fatalf("call %+v", c)
	}
}

// Requests that are not signed PutEvents calls are refused as AWS refuses
// them.
func TestRefusesWhatAWSRefuses(t *testing.T) {
	f := newFake(t)
	body := []byte(`{"Entries":[{"Source":"s","DetailType":"d","Detail":"{}"}]}`)
	for _, c := range []struct {
		name    string
		headers map[string]string
		status  int
		typ     string
	}{
		{"no authorization", map[string]string{}, 403, "MissingAuthenticationTokenException"},
		{"not sigv4", map[string]string{"Authorization": "Bearer abc"}, 403, "MissingAuthenticationTokenException"},
		{"incomplete", map[string]string{"Authorization": AuthPrefix + "AKID/20240216/eu-west-1/events/aws4_request"}, 403, "IncompleteSignatureException"},
		{"wrong service", map[string]string{"Authorization": AuthPrefix + "AKID/20240216/eu-west-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"}, 403, "InvalidSignatureException"},
		{"forged signature", map[string]string{"Authorization": AuthPrefix + keyID + "/20240216/eu-west-1/events/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
			"X-Amz-Date": time.Now().UTC().Format("20060102T150405Z")}, 403, "InvalidSignatureException"},
		{"wrong target", map[string]string{"X-Amz-Target": "AWSEvents.PutRule"}, 400, "UnknownOperationException"},
		{"wrong content type", map[string]string{"Content-Type": "application/json"}, 400, "SerializationException"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.URL()+"/", bytes.NewReader(body))
			req.Header.Set("Content-Type", ContentType)
			req.Header.Set("X-Amz-Target", Target)
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var answer struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			b, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(b, &answer); err != nil {
				t.Fatalf("answer is not AWS's error shape: %s", b)
			}
			if resp.StatusCode != c.status || answer.Type != c.typ || answer.Message == "" {
				t.Fatalf("answered %d %s, want %d %s", resp.StatusCode, b, c.status, c.typ)
			}
		})
	}

	// signed with the right key id but the wrong secret
	_, err := put(t, client(f, keyID, "wrong"), entries(1, "audit"))
	if status, code := apiError(t, err); status != 403 || code != "InvalidSignatureException" {
		t.Fatalf("wrong secret: %d %s", status, code)
	}
	// unknown keys are refused only when asked
	if _, err := put(t, client(f, "AKIDUNKNOWN", "x"), entries(1, "audit")); err != nil {
		t.Fatalf("unknown key without RequireKnownKeys: %v", err)
	}
	f.RequireKnownKeys(true)
	_, err = put(t, client(f, "AKIDUNKNOWN", "x"), entries(1, "audit"))
	if status, code := apiError(t, err); status != 400 || code != "UnrecognizedClientException" {
		t.Fatalf("unknown key: %d %s", status, code)
	}
}

// At most 10 entries and 256 KiB a call, counted as AWS counts.
func TestLimits(t *testing.T) {
	f := newFake(t)
	c := client(f, keyID, secret)
	if _, err := put(t, c, entries(10, "audit")); err != nil {
		t.Fatalf("10 entries: %v", err)
	}
	_, err := put(t, c, entries(11, "audit"))
	if status, code := apiError(t, err); status != 400 || code != "ValidationException" {
		t.Fatalf("11 entries: %d %s", status, code)
	}

	// exactly 256 KiB in two entries passes; one byte more does not
	es := entries(2, "audit")
	fixed := len("scalr.audit-log") + len("Audit Event") + TimeBytes
	pad := func(n int) *string { s := `{"p":"` + strings.Repeat("x", n-8) + `"}`; return &s }
	es[0].Detail = pad(MaxCallBytes/2 - fixed)
	es[1].Detail = pad(MaxCallBytes/2 - fixed)
	if _, err := put(t, c, es); err != nil {
		t.Fatalf("exactly %d bytes: %v", MaxCallBytes, err)
	}
	if got := f.Calls()[len(f.Calls())-1].Bytes; got != MaxCallBytes {
		t.Fatalf("counted %d bytes", got)
	}
	es[1].Resources = []string{"a"}
	_, err = put(t, c, es)
	if status, code := apiError(t, err); status != 400 || code != "ValidationException" {
		t.Fatalf("one byte over: %d %s", status, code)
	}
	// multi-byte characters count by their UTF-8 bytes
	es = entries(1, "audit")
	s := `{"p":"` + strings.Repeat("日", (MaxCallBytes-fixed)/3) + `"}`
	es[0].Detail = &s
	_, err = put(t, c, es)
	if status, code := apiError(t, err); status != 400 || code != "ValidationException" {
		t.Fatalf("multi-byte over: %d %s", status, code)
	}
}

// Each entry is checked on its own: failed entries carry ErrorCode and
// ErrorMessage, the others are accepted.
func TestEntryChecks(t *testing.T) {
	f := newFake(t)
	es := entries(5, "audit")
	es[1].Detail = aws.String(`[1,2]`)
	es[2].Detail = nil
	es[3].Source = aws.String("aws.ec2")
	es[4].DetailType = aws.String(strings.Repeat("d", 129))
	out, err := put(t, client(f, keyID, secret), es)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "MalformedDetail", "InvalidArgument", "NotAuthorizedForSourceException", "InvalidArgument"}
	if out.FailedEntryCount != 4 {
		t.Fatalf("failed %d", out.FailedEntryCount)
	}
	for i, r := range out.Entries {
		if aws.ToString(r.ErrorCode) != want[i] || (want[i] != "" && aws.ToString(r.ErrorMessage) == "") || (want[i] == "") != (r.EventId != nil) {
			t.Errorf("entry %d: %+v, want %q", i, r, want[i])
		}
	}
	if f.Count("audit") != 1 {
		t.Fatalf("recorded %d", f.Count("audit"))
	}
}

// The scripts: failed entries, throttling, failed calls, a denied bus,
// slowness.
func TestScripts(t *testing.T) {
	f := newFake(t)
	c := client(f, keyID, secret)
	f.FailEntries(func(call, i int, e Entry) string {
		if call == 0 && (i == 3 || i == 7) {
			return "ThrottlingException"
		}
		return ""
	})
	out, err := put(t, c, entries(10, "audit"))
	if err != nil || out.FailedEntryCount != 2 || aws.ToString(out.Entries[3].ErrorCode) != "ThrottlingException" || aws.ToString(out.Entries[7].ErrorCode) != "ThrottlingException" {
		t.Fatalf("failed entries: %v %+v", err, out)
	}
	if f.Count("audit") != 8 || f.Calls()[0].Failed() != 2 {
		t.Fatalf("recorded %d", f.Count("audit"))
	}
	if out, err = put(t, c, entries(10, "audit")); err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("second call: %v %+v", err, out)
	}

	f.Throttle(1)
	_, err = put(t, c, entries(1, "audit"))
	if status, code := apiError(t, err); status != 400 || code != "ThrottlingException" {
		t.Fatalf("throttle: %d %s", status, code)
	}
	f.FailNext(2, 500, "", "")
	for range 2 {
		_, err = put(t, c, entries(1, "audit"))
		if status, code := apiError(t, err); status != 500 || code != "InternalException" {
			t.Fatalf("500: %d %s", status, code)
		}
	}
	if _, err := put(t, c, entries(1, "audit")); err != nil {
		t.Fatalf("after the scripts: %v", err)
	}

	f.DenyBus("arn:aws:events:eu-west-1:123456789012:event-bus/locked")
	_, err = put(t, c, []types.PutEventsRequestEntry{entry(0, "audit"), entry(1, "locked")})
	if status, code := apiError(t, err); status != 400 || code != "AccessDeniedException" {
		t.Fatalf("denied bus: %d %s", status, code)
	}
	if _, err := put(t, c, entries(1, "audit")); err != nil {
		t.Fatalf("other bus: %v", err)
	}
	f.AllowBus("locked")
	if _, err := put(t, c, entries(1, "locked")); err != nil {
		t.Fatalf("allowed again: %v", err)
	}

	f.Slow(150 * time.Millisecond)
	start := time.Now()
	if _, err := put(t, c, entries(1, "audit")); err != nil || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("slow: %v after %s", err, time.Since(start))
	}
	f.Reset()
	if f.Total() != 0 || len(f.Calls()) != 0 {
		t.Fatal("reset kept records")
	}
}

// Temporary credentials issued by the STS fake sign calls the EventBridge
// fake accepts; the role's external id is enforced.
func TestSTSAssumeRole(t *testing.T) {
	f := newFake(t)
	f.RequireKnownKeys(true)
	s := NewSTS(f)
	t.Cleanup(s.Close)
	s.AddKey(Key{AccessKeyID: keyID, SecretAccessKey: secret})
	s.RequireKnownKeys(true)
	const role = "arn:aws:iam::123456789012:role/writer"
	s.AllowRole(role, "ext-1")
	stsClient := sts.New(sts.Options{Region: "eu-west-1", BaseEndpoint: aws.String(s.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, ""), Retryer: aws.NopRetryer{}})
	out, err := stsClient.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("s1"), ExternalId: aws.String("ext-1")})
	if err != nil {
		t.Fatal(err)
	}
	cr := out.Credentials
	if out.Credentials.Expiration.Before(time.Now().Add(50*time.Minute)) || aws.ToString(cr.SessionToken) == "" {
		t.Fatalf("credentials %+v", cr)
	}
	eb := eventbridge.New(eventbridge.Options{Region: "eu-west-1", BaseEndpoint: aws.String(f.URL()), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider(aws.ToString(cr.AccessKeyId), aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken))})
	if _, err := put(t, eb, entries(1, "audit")); err != nil {
		t.Fatalf("with the assumed role's keys: %v", err)
	}
	// the session token is part of the credential
	eb = eventbridge.New(eventbridge.Options{Region: "eu-west-1", BaseEndpoint: aws.String(f.URL()), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider(aws.ToString(cr.AccessKeyId), aws.ToString(cr.SecretAccessKey), "")})
	if _, err := put(t, eb, entries(1, "audit")); err == nil {
		t.Fatal("accepted without the session token")
	}

	_, err = stsClient.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("s1"), ExternalId: aws.String("ext-2")})
	if status, code := apiError(t, err); status != 403 || code != "AccessDenied" {
		t.Fatalf("wrong external id: %d %s", status, code)
	}
	calls := s.Calls()
	if len(calls) != 2 || calls[0].ExternalID != "ext-1" || calls[0].AccessKeyID != keyID || calls[1].Status != 403 {
		t.Fatalf("calls %+v", calls)
	}
}

func TestMatch(t *testing.T) {
	event := map[string]any{}
	raw := `{"version":"0","source":"scalr.audit-log","detail-type":"Audit Event","resources":["arn:aws:s3:::b"],
		"detail":{"id":"x","request":{"action":"discard-run","source":"ui"},"outcome":{"result":"SUCCESS","status-code":202},
		"actor":{"email":"jane@example.com","type":"user"},"target":{"type":"runs","context":{"account":{"id":"acc-1"}}}}}`
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&event); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pattern string
		want    bool
	}{
		{`{"source":["scalr.audit-log"]}`, true},
		{`{"source":["other"]}`, false},
		{`{"source":["scalr.audit-log"],"detail-type":["Audit Event"],"detail":{"request":{"action":["discard-run","apply-run"]}}}`, true},
		{`{"detail":{"request":{"action":[{"prefix":"discard-"}]}}}`, true},
		{`{"detail":{"request":{"action":[{"suffix":"-run"}]}}}`, true},
		{`{"detail":{"request":{"action":[{"anything-but":["discard-run"]}]}}}`, false},
		{`{"detail":{"request":{"action":[{"anything-but":{"prefix":"apply"}}]}}}`, true},
		{`{"detail":{"outcome":{"status-code":[202]}}}`, true},
		{`{"detail":{"outcome":{"status-code":[{"numeric":[">=",400]}]}}}`, false},
		{`{"detail":{"outcome":{"status-code":[{"numeric":[">=",200,"<",300]}]}}}`, true},
		{`{"detail":{"actor":{"email":[{"wildcard":"*@example.com"}]}}}`, true},
		{`{"detail":{"actor":{"email":[{"equals-ignore-case":"JANE@EXAMPLE.COM"}]}}}`, true},
		{`{"detail":{"extra":{"trace-id":[{"exists":true}]}}}`, false},
		{`{"detail":{"actor":{"id":[{"exists":false}]}}}`, true},
		{`{"detail":{"target":{"context":{"account":{"id":["acc-1"]}}}}}`, true},
		{`{"resources":["arn:aws:s3:::b"]}`, true},
		{`{"detail":{"request":{"action":["discard-run"]}},"detail-type":["Other"]}`, false},
	} {
		got, err := Match([]byte(c.pattern), event)
		if err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.pattern, got, err, c.want)
		}
	}
	if _, err := Match([]byte(`{"detail":{"ip":[{"cidr":"10.0.0.0/8"}]}}`), map[string]any{"detail": map[string]any{"ip": "10.0.0.1"}}); err == nil {
		t.Error("an unsupported operator matched silently")
	}
}
