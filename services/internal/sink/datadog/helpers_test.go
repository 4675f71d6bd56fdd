package datadog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// seedAttributesPath is the seed's example `attributes` object, shared with
// the event codec's own golden test.
var seedAttributesPath = filepath.Join("..", "..", "..", "..", "proto", "auditevent", "testdata", "seed-attributes.json")

// seedTags are the tags of the seed's example log, as the documentation
// shows them.
var seedTags = []string{
	"scalr-workspace-name:demo-ws",
	"scalr-environment-name:cs-m",
	"scalr-workspace:ws-v0o370ouv5kbjmk9h",
	"scalr-user-email:[email protected]",
	"scalr-action:discard-run",
	"scalr-environment:org-sscctbkdgkdr123",
	"source:scalr",
	"datadog.submission_auth:private_api_key",
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedEvent(t testing.TB) *auditlogv1.AuditEvent {
	t.Helper()
	ev, err := auditevent.DecodeJSON(readFile(t, seedAttributesPath), auditevent.DecodeOptions{DisallowUnknownFields: true})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// event returns a small event whose message names n, timestamped at.
func event(n int, at time.Time) *auditlogv1.AuditEvent {
	return &auditlogv1.AuditEvent{
		Id:       fmt.Sprintf("evt-%06d", n),
		Actor:    &auditlogv1.Actor{Id: "user-1", Email: "jane@example.com"},
		Request:  &auditlogv1.Request{Action: "update-workspace"},
		Hostname: "app.example.com",
		Outcome:  &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 200},
		Target: &auditlogv1.Target{Id: fmt.Sprintf("ws-%d", n), Type: "workspaces", Context: &auditlogv1.Context{
			Account: &auditlogv1.Ref{Id: "acc-1"},
		}},
		Timestamp: timestamppb.New(at),
	}
}

func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}

func jsonEqual(t testing.TB, got, want []byte) {
	t.Helper()
	g, w := decode(t, got), decode(t, want)
	if !reflect.DeepEqual(g, w) {
		gi, _ := json.MarshalIndent(g, "", "  ")
		wi, _ := json.MarshalIndent(w, "", "  ")
		t.Fatalf("JSON differs\n got: %s\nwant: %s", gi, wi)
	}
}
