package auditevent_test

import (
	"strings"
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
)

// Account ids become Kafka keys, archive path segments and route keys, so
// anything that could escape a path or collide with another prefix is refused.
func TestValidateAccountID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"acc-sscctbisjkl3123", true},
		{"org_1.team:eu-west", true},
		{strings.Repeat("a", auditevent.MaxAccountIDLength), true},
		{strings.Repeat("a", auditevent.MaxAccountIDLength+1), false},
		{"acc/../other", false},
		{"acc/x", false},
		{".", false},
		{"..", false},
		{"acc x", false},
		{"acc\x00", false},
		{"ácc", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			ev := seedEvent(t)
			ev.Target.Context.Account.Id = tt.id
			err := auditevent.Validate(ev)
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tt.id, err)
				}
				return
			}
			fe := asFieldError(t, err)
			if fe.Field != "target.context.account.id" || (fe.Reason != auditevent.ReasonBadAccountID && fe.Reason != auditevent.ReasonInvalidUTF8) {
				t.Fatalf("Validate(%q) = %+v, want bad_account_id on target.context.account.id", tt.id, fe)
			}
		})
	}
}
