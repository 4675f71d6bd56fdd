package producer_test

import (
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func decode(t *testing.T, js string) *auditlogv1.AuditEvent {
	t.Helper()
	ev, err := auditevent.DecodeJSON([]byte(js), auditevent.DecodeOptions{DisallowUnknownFields: true})
	if err != nil {
		t.Fatalf("DecodeJSON(%s): %v", js, err)
	}
	return ev
}

// TestPrepareFromJSONAgrees: for events from DecodeJSON, FromJSON changes
// nothing Prepare decides, valid or not.
func TestPrepareFromJSONAgrees(t *testing.T) {
	seed, err := os.ReadFile("../auditevent/testdata/seed-attributes.json")
	if err != nil {
		t.Fatal(err)
	}
	batch := func() []*auditlogv1.AuditEvent {
		return []*auditlogv1.AuditEvent{
			decode(t, string(seed)),
			decode(t, `{"id":"a b","target":{"context":{"account":{"id":"acc-1"}}}}`),
			decode(t, `{"target":{"context":{"account":{"id":"../x"}}}}`),
			decode(t, `{"service":"no account"}`),
			decode(t, `{"service":"caf\u00e9","target":{"context":{"account":{"id":"acc-2"}}}}`),
		}
	}
	plain, fromJSON := batch(), batch()
	want := producer.Prepare(plain, now)
	got := producer.Prepare(fromJSON, now, producer.FromJSON())
	if len(want) != 3 {
		t.Fatalf("Prepare found %d errors, want 3 (id, account id, missing account): %v", len(want), want)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Prepare with FromJSON: %v\nwithout: %v", got, want)
	}
}

// TestPrepareChecksUTF8: without FromJSON, a hand-built event with a string
// that is not UTF-8 is refused, naming the field; with it the check is not
// run (ingest's fast path for what DecodeJSON already checked).
func TestPrepareChecksUTF8(t *testing.T) {
	bad := func() []*auditlogv1.AuditEvent {
		return []*auditlogv1.AuditEvent{{
			Service: "bad \xff",
			Target:  &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: "acc-1"}}},
		}}
	}
	errs := producer.Prepare(bad(), now)
	var fe *auditevent.FieldError
	if len(errs) != 1 || !errors.As(errs[0], &fe) || fe.Reason != auditevent.ReasonInvalidUTF8 || fe.Field != "service" || fe.Index != 0 {
		t.Fatalf("Prepare = %v, want one invalid_utf8 error on service of event 0", errs)
	}
	if errs := producer.Prepare(bad(), now, producer.FromJSON()); len(errs) != 0 {
		t.Fatalf("Prepare with FromJSON = %v, want the UTF-8 check skipped", errs)
	}
}
