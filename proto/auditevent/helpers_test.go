package auditevent_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// seedAccountID is target.context.account.id of the seed's example log.
const seedAccountID = "acc-sscctbisjkl3123"

var strict = auditevent.DecodeOptions{DisallowUnknownFields: true}

// seedAttributes returns the `attributes` object of the seed's example log.
func seedAttributes(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "seed-attributes.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// seedEvent decodes the seed attributes strictly.
func seedEvent(tb testing.TB) *auditlogv1.AuditEvent {
	tb.Helper()
	ev, err := auditevent.DecodeJSON(seedAttributes(tb), strict)
	if err != nil {
		tb.Fatalf("decode seed attributes: %v", err)
	}
	return ev
}

// asFieldError returns err as a *FieldError, failing the test otherwise.
func asFieldError(tb testing.TB, err error) *auditevent.FieldError {
	tb.Helper()
	if err == nil {
		tb.Fatal("expected an error, got nil")
	}
	var fe *auditevent.FieldError
	if !errors.As(err, &fe) {
		tb.Fatalf("error %v (%T) is not a *auditevent.FieldError", err, err)
	}
	return fe
}

// checkFieldError asserts err is a *FieldError with the given field and
// reason, outside any batch (Index -1).
func checkFieldError(tb testing.TB, err error, field, reason string) {
	tb.Helper()
	fe := asFieldError(tb, err)
	if fe.Field != field || fe.Reason != reason || fe.Index != -1 {
		tb.Errorf("got FieldError{Index: %d, Field: %q, Reason: %q} (%v); want Index -1, Field %q, Reason %q",
			fe.Index, fe.Field, fe.Reason, fe, field, reason)
	}
	if fe.Message == "" {
		tb.Errorf("FieldError %+v has no message", fe)
	}
}
