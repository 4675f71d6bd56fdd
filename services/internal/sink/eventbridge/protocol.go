package eventbridge

import (
	"bytes"
	"context"
	"net/http"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding"
	smithytime "github.com/aws/smithy-go/time"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// putEventsProtocol is the client's own protocol (AWS JSON 1.1) with one
// change: the body of a PutEvents call is written here, in one allocation
// sized for the call, instead of by the SDK's generic serializer, which
// grows its buffer by doubling and then copies it (some 10 KB of garbage an
// event at 10 entries a call). The bytes are the SDK's, member for member
// and escape for escape (a test compares the two for the same input), and
// so are the method, path and headers; everything else (other operations,
// signing, answers, errors) goes through the SDK's protocol unchanged.
type putEventsProtocol struct {
	smithyhttp.ClientProtocol
}

// jsonContentType and targetPrefix are what the SDK's AWS JSON 1.1
// protocol sends.
const (
	jsonContentType = "application/x-amz-json-1.1"
	targetPrefix    = "AWSEvents."
)

func (p putEventsProtocol) SerializeRequest(ctx context.Context, schema *smithy.OperationSchema, in smithy.Serializable, req *smithyhttp.Request) error {
	pe, ok := in.(*eventbridge.PutEventsInput)
	if !ok || schema == nil || schema.ID().Name != "PutEvents" {
		return p.ClientProtocol.SerializeRequest(ctx, schema, in, req)
	}
	req.Method = http.MethodPost
	if len(req.URL.Path) == 0 {
		req.URL.Path = "/"
	}
	req.Header.Set("X-Amz-Target", targetPrefix+schema.ID().Name)
	req.Header.Set("Content-Type", jsonContentType)
	body := appendPutEventsInput(make([]byte, 0, putEventsSizeHint(pe)), pe)
	sreq, err := req.SetStream(bytes.NewReader(body))
	if err != nil {
		return err
	}
	*req = *sreq
	return nil
}

// putEventsSizeHint is a generous guess at the body's size: the strings
// plus an eighth for escapes, plus the members' names.
func putEventsSizeHint(in *eventbridge.PutEventsInput) int {
	n := 32
	for i := range in.Entries {
		e := &in.Entries[i]
		for _, s := range []*string{e.Detail, e.DetailType, e.EventBusName, e.Source, e.TraceHeader} {
			if s != nil {
				n += len(*s) + len(*s)/8 + 24
			}
		}
		for _, r := range e.Resources {
			n += len(r) + 8
		}
		n += 64
	}
	return n
}

// appendPutEventsInput writes the input as the SDK's serializer does:
// members in the model's order, absent (nil) ones left out.
func appendPutEventsInput(dst []byte, in *eventbridge.PutEventsInput) []byte {
	dst = append(dst, '{')
	comma := false
	if in.EndpointId != nil {
		dst = append(dst, `"EndpointId":`...)
		dst = appendJSONString(dst, *in.EndpointId)
		comma = true
	}
	if in.Entries != nil {
		if comma {
			dst = append(dst, ',')
		}
		dst = append(dst, `"Entries":[`...)
		for i := range in.Entries {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendEntryJSON(dst, &in.Entries[i])
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func appendEntryJSON(dst []byte, e *types.PutEventsRequestEntry) []byte {
	dst = append(dst, '{')
	comma := false
	member := func(name string) {
		if comma {
			dst = append(dst, ',')
		}
		comma = true
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	str := func(name string, v *string) {
		if v != nil {
			member(name)
			dst = appendJSONString(dst, *v)
		}
	}
	str("Detail", e.Detail)
	str("DetailType", e.DetailType)
	str("EventBusName", e.EventBusName)
	if e.Resources != nil {
		member("Resources")
		dst = append(dst, '[')
		for i, r := range e.Resources {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, r)
		}
		dst = append(dst, ']')
	}
	str("Source", e.Source)
	if e.Time != nil {
		member("Time")
		dst = encoding.EncodeFloat(dst, smithytime.FormatEpochSeconds(*e.Time), 64)
	}
	str("TraceHeader", e.TraceHeader)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString escapes s as the SDK's JSON serializer does: '"' and
// '\' with a backslash, \n \r \t, other control characters and DEL as
// \u00XX, invalid UTF-8 as U+FFFD, U+2028 and U+2029 as \u2028 and
// \u2029, everything else as is.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
