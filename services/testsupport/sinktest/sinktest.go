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
