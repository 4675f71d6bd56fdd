package eventbridge

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/schemas"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

var putEventsSchema = smithy.NewOperationSchema(schemas.PutEvents, schemas.PutEventsRequest, schemas.PutEventsResponse)

// serialize runs a protocol's SerializeRequest and returns the request's
// method, path, headers and body.
func serialize(t testing.TB, p smithyhttp.ClientProtocol, in *eventbridge.PutEventsInput) (string, string, http.Header, []byte) {
	t.Helper()
	req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	if err := p.SerializeRequest(context.Background(), putEventsSchema, in, req); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.GetStream())
	if err != nil {
		t.Fatal(err)
	}
	return req.Method, req.URL.Path, req.Header, body
}

func putEventsInputs() []*eventbridge.PutEventsInput {
	at := time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC)
	early := time.Unix(0, 1500)
	return []*eventbridge.PutEventsInput{
		{},
		{Entries: []types.PutEventsRequestEntry{}},
		{EndpointId: aws.String("abc.veo"), Entries: []types.PutEventsRequestEntry{{}}},
		{Entries: []types.PutEventsRequestEntry{{
			Source: aws.String("scalr.audit-log"), DetailType: aws.String("Audit Event"), EventBusName: aws.String("arn:aws:events:eu-west-1:123456789012:event-bus/audit"),
			Detail: aws.String(`{"id":"x","a":"q\"uote \\ back\nnl\ttab \u0001 \u007f <&> é 日本 🚀 ` + "\u2028\u2029" + `"}`),
			Time:   &at, Resources: []string{"arn:aws:s3:::b", "arn:aws:iam::123456789012:role/ä"}, TraceHeader: aws.String("Root=1-5759e988-bd862e3fe1be46a994272793"),
		}, {
			Detail: aws.String("bad utf-8: \xff\xfe end, DEL \x7f, controls \x00\x1f\x08\x0c\r"), Resources: []string{}, Time: &early,
		}, {
			Source: aws.String(""), Time: &time.Time{},
		}}},
	}
}

// For the same input, PutEvents requests carry the same method, path,
// headers and body bytes whether the SDK's serializer or the sink's writes
// them.
func TestPutEventsBodyIsTheSDKs(t *testing.T) {
	sdk := awsjson.New11(schemas.AWSEvents)
	ours := putEventsProtocol{sdk}
	for i, in := range putEventsInputs() {
		m1, p1, h1, b1 := serialize(t, sdk, in)
		m2, p2, h2, b2 := serialize(t, ours, in)
		if m1 != m2 || p1 != p2 || h1.Get("X-Amz-Target") != h2.Get("X-Amz-Target") || h1.Get("Content-Type") != h2.Get("Content-Type") || len(h1) != len(h2) {
			t.Errorf("input %d: %s %s %v, the SDK's %s %s %v", i, m2, p2, h2, m1, p1, h1)
		}
		if !bytes.Equal(b1, b2) {
			t.Errorf("input %d:\n ours %s\n  sdk %s", i, b2, b1)
		}
	}
}

func FuzzPutEventsBody(f *testing.F) {
	f.Add("scalr.audit-log", `{"id":"x","a":"\"\\"}`, "arn:aws:s3:::b", int64(1708088318577846000))
	f.Add("\x00\x7f\xff", "\u2028é🚀", "", int64(-1))
	sdk := awsjson.New11(schemas.AWSEvents)
	ours := putEventsProtocol{sdk}
	f.Fuzz(func(t *testing.T, source, detail, resource string, nanos int64) {
		at := time.Unix(0, nanos)
		in := &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
			{Source: &source, Detail: &detail, Resources: []string{resource}, Time: &at},
			{DetailType: &detail, EventBusName: &resource},
		}}
		_, _, _, b1 := serialize(t, sdk, in)
		_, _, _, b2 := serialize(t, ours, in)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("ours %q\n sdk %q", b2, b1)
		}
	})
}

// Other operations go through the SDK's serializer untouched.
func TestOtherOperationsUseTheSDKsSerializer(t *testing.T) {
	sdk := awsjson.New11(schemas.AWSEvents)
	schema := smithy.NewOperationSchema(schemas.ListEventBuses, schemas.ListEventBusesRequest, schemas.ListEventBusesResponse)
	in := &eventbridge.ListEventBusesInput{NamePrefix: aws.String("audit")}
	req1 := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	req2 := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	if err := sdk.SerializeRequest(context.Background(), schema, in, req1); err != nil {
		t.Fatal(err)
	}
	if err := (putEventsProtocol{sdk}).SerializeRequest(context.Background(), schema, in, req2); err != nil {
		t.Fatal(err)
	}
	b1, _ := io.ReadAll(req1.GetStream())
	b2, _ := io.ReadAll(req2.GetStream())
	if !bytes.Equal(b1, b2) || req1.Header.Get("X-Amz-Target") != req2.Header.Get("X-Amz-Target") {
		t.Fatalf("%s %s vs %s %s", b2, req2.Header, b1, req1.Header)
	}
}
