// Package sinktest holds the events the sinks' tests encode: the seed's
// example event and small numbered ones.
package sinktest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// SeedAttributesPath is the seed's example event in its JSON form.
var SeedAttributesPath = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "proto", "auditevent", "testdata", "seed-attributes.json")
}()

// ReadFile is os.ReadFile failing t.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SeedEvent is the seed's example event, decoded strictly.
func SeedEvent(t testing.TB) *auditlogv1.AuditEvent {
	t.Helper()
	ev, err := auditevent.DecodeJSON(ReadFile(t, SeedAttributesPath), auditevent.DecodeOptions{DisallowUnknownFields: true})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// Event returns a small event numbered n (in its id and target), of
// account acc-1, timestamped at.
func Event(n int, at time.Time) *auditlogv1.AuditEvent {
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

// SeedOTLPResource and SeedOTLPAttributes are the seed's example event as
// an OTLP log record's resource and attributes, the mapping
// docs/otlp-forwarder.md documents, with the id ingest gives it
// ("evt-seed-1").
var (
	SeedOTLPResource = map[string]any{
		"service.name":      "audit-log",
		"service.namespace": "acc-sscctbisjkl3123",
		"audit.account.id":  "acc-sscctbisjkl3123",
	}
	SeedOTLPAttributes = map[string]any{
		"log.record.uid":            "evt-seed-1",
		"event.name":                "discard-run",
		"user.id":                   "user-stp8qjepev3a123",
		"user.email":                "[email protected]",
		"audit.actor.type":          "user",
		"client.address":            "69.206.111.123",
		"user_agent.original":       "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36",
		"server.address":            "docs.scalr.io",
		"audit.request.id":          "a3a473d725c730382558c25d52bd1234",
		"audit.request.source":      "ui",
		"audit.outcome.result":      "SUCCESS",
		"http.response.status_code": int64(202),
		"audit.target.id":           "run-v0o370pcff0e53",
		"audit.target.type":         "runs",
		"audit.target.name":         "run-v0o370pcff0e53123",
		"audit.account.name":        "docs",
		"audit.environment.id":      "org-sscctbkdgkdrqg0",
		"audit.environment.name":    "CS-M",
		"audit.workspace.id":        "ws-v0o370ouv5kbjmk9h",
		"audit.workspace.name":      "demo-ws",
	}
)
