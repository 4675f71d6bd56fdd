package ingest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"google.golang.org/protobuf/proto"
)

func TestBodyBufferSizes(t *testing.T) {
	for _, size := range []int{1, 512, minPooledBody / 2, minPooledBody/2 + 1, minPooledBody, minPooledBody + 1,
		700 << 10, maxPooledBody - 1, maxPooledBody, maxPooledBody + 1, 5 << 20} {
		for range 3 { // a new buffer, then pooled ones
			b := getBody(size)
			if len(b) != 0 || cap(b) < size {
				t.Fatalf("getBody(%d): len %d, cap %d", size, len(b), cap(b))
			}
			if size > minPooledBody/2 && cap(b) > 2*size || size <= minPooledBody/2 && cap(b) != size {
				t.Fatalf("getBody(%d): cap %d", size, cap(b))
			}
			putBody(append(b, 'x'))
		}
	}
	// A buffer that grew past its class is not pooled under it.
	putBody(make([]byte, 0, minPooledBody+1))
	if b := getBody(minPooledBody + 1); cap(b) != 2*minPooledBody {
		t.Fatalf("getBody(%d) after putting an odd-sized buffer: cap %d", minPooledBody+1, cap(b))
	}
}

// The body's buffer is reused once the body is parsed: nothing parsing
// returns, events or errors, may still point into it.
func TestParsedRequestOutlivesBody(t *testing.T) {
	escaped := newEvent("acc-2").with("hostname", "caf\u00e9 \"q\" \\ \n").with("extra", map[string]string{"trace-id": "t-1", "k\u00e9y": "v"}).
		with("actor", map[string]any{"id": "u-1", "access-token": map[string]any{"type": "api", "token": "0123456789abcdefghij"}})
	// Keys in other case: the fast decoder declines, encoding/json takes it.
	otherCase := `{"Hostname":"h","TARGET":{"context":{"account":{"id":"acc-3"}}},"actor":{"access-token":{"type":"t","token":"0123456789abcdefghij"}}}`
	big := newEvent("acc-4").with("extra", map[string]string{"pad": strings.Repeat("p", minPooledBody)})
	valid := []struct {
		name, media, body string
	}{
		{"array", mediaJSON, "[" + newEvent("acc-1").JSON() + "," + escaped.JSON() + "," + otherCase + "," + big.JSON() + "]"},
		{"object", mediaJSON, escaped.JSON()},
		{"ndjson", mediaNDJSON, newEvent("acc-1").JSON() + "\n" + otherCase + "\n" + big.JSON() + "\n"},
	}
	invalid := []struct {
		name, media, body string
	}{
		{"array with a bad event", mediaJSON, "[" + newEvent("acc-1").JSON() + "," + newEvent("acc-1").with("hostname", 42).JSON() + "]"},
		{"malformed array", mediaJSON, "[" + escaped.JSON() + ",{"},
		{"ndjson with a bad timestamp", mediaNDJSON, big.JSON() + "\n" + newEvent("acc-1").with("timestamp", "yesterday").JSON()},
	}
	limits := Limits{MaxBodyBytes: 4 << 20, MaxEvents: 10, MaxEventBytes: 1 << 20}
	parse := func(media string, body []byte) ([]*auditlogv1.AuditEvent, *apiError) {
		if media == mediaNDJSON {
			return parseNDJSON(body, limits)
		}
		return parseJSON(body, limits)
	}
	fromPool := func(body string) []byte {
		b := append(getBody(len(body)+512), body...)
		if cap(b) < minPooledBody {
			// Small bodies are not pooled; reuse is what is tested here.
			b = append(make([]byte, 0, minPooledBody), body...)
		}
		return b
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			want, aerr := parse(tc.media, []byte(tc.body))
			if aerr != nil {
				t.Fatalf("parse: %+v", aerr)
			}
			body := fromPool(tc.body)
			got, aerr := parse(tc.media, body)
			if aerr != nil {
				t.Fatalf("parse: %+v", aerr)
			}
			putBody(body)
			copy(body[:cap(body)], bytes.Repeat([]byte{'#'}, cap(body)))
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d", len(got), len(want))
			}
			for i := range got {
				if !proto.Equal(got[i], want[i]) {
					t.Fatalf("event %d changed when the body's buffer was overwritten:\n got %v\nwant %v", i, got[i], want[i])
				}
			}
		})
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, want := parse(tc.media, []byte(tc.body))
			if want == nil {
				t.Fatal("parse accepted the body")
			}
			body := fromPool(tc.body)
			_, got := parse(tc.media, body)
			putBody(body)
			copy(body[:cap(body)], bytes.Repeat([]byte{'#'}, cap(body)))
			wantJSON, _ := json.Marshal(errorDetails(want))
			gotJSON, _ := json.Marshal(errorDetails(got))
			if got == nil || got.status != want.status || got.message != want.message || !bytes.Equal(gotJSON, wantJSON) {
				t.Fatalf("error changed when the body's buffer was overwritten:\n got %+v %s\nwant %+v %s", got, gotJSON, want, wantJSON)
			}
		})
	}
}

func errorDetails(e *apiError) any {
	if e == nil {
		return nil
	}
	return e.details
}
