package auditevent_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// validEvent is the seed event, prepared.
func validEvent(t *testing.T) *auditlogv1.AuditEvent {
	t.Helper()
	ev := seedEvent(t)
	if err := auditevent.Prepare(ev, time.Now()); err != nil {
		t.Fatal(err)
	}
	return ev
}

func manyExtra(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(ev *auditlogv1.AuditEvent)
		field  string // "" with reason "" means valid
		reason string
	}{
		{"prepared seed event", func(*auditlogv1.AuditEvent) {}, "", ""},
		{"no id", func(ev *auditlogv1.AuditEvent) { ev.Id = "" }, "", ""},
		{"schema version 0", func(ev *auditlogv1.AuditEvent) { ev.SchemaVersion = 0 }, "", ""},
		{"no timestamp", func(ev *auditlogv1.AuditEvent) { ev.Timestamp = nil }, "", ""},
		{"id of 128 bytes", func(ev *auditlogv1.AuditEvent) { ev.Id = strings.Repeat("a", 128) }, "", ""},
		{"64 extra attributes", func(ev *auditlogv1.AuditEvent) { ev.Extra = manyExtra(64) }, "", ""},
		{"extra with empty value", func(ev *auditlogv1.AuditEvent) { ev.Extra = map[string]string{"k": ""} }, "", ""},
		{"only an account id", func(ev *auditlogv1.AuditEvent) {
			*ev = auditlogv1.AuditEvent{Target: &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: "acc-1"}}}}
		}, "", ""},

		{"missing account id", func(ev *auditlogv1.AuditEvent) { ev.Target.Context.Account.Id = "" },
			"target.context.account.id", auditevent.ReasonRequired},
		{"missing account", func(ev *auditlogv1.AuditEvent) { ev.Target.Context.Account = nil },
			"target.context.account.id", auditevent.ReasonRequired},
		{"missing target", func(ev *auditlogv1.AuditEvent) { ev.Target = nil },
			"target.context.account.id", auditevent.ReasonRequired},
		{"whitespace-only account id", func(ev *auditlogv1.AuditEvent) { ev.Target.Context.Account.Id = " \t\n " },
			"target.context.account.id", auditevent.ReasonRequired},
		{"schema version too new", func(ev *auditlogv1.AuditEvent) { ev.SchemaVersion = auditevent.SchemaVersion + 1 },
			"schema-version", auditevent.ReasonBadVersion},
		{"id too long", func(ev *auditlogv1.AuditEvent) { ev.Id = strings.Repeat("a", auditevent.MaxIDLength+1) },
			"id", auditevent.ReasonBadID},
		{"id with a space", func(ev *auditlogv1.AuditEvent) { ev.Id = "a b" }, "id", auditevent.ReasonBadID},
		{"id with a newline", func(ev *auditlogv1.AuditEvent) { ev.Id = "a\nb" }, "id", auditevent.ReasonBadID},
		{"id with DEL", func(ev *auditlogv1.AuditEvent) { ev.Id = "a\x7fb" }, "id", auditevent.ReasonBadID},
		{"too many extra attributes", func(ev *auditlogv1.AuditEvent) { ev.Extra = manyExtra(auditevent.MaxExtraFields + 1) },
			"extra", auditevent.ReasonTooLarge},
		{"empty extra name", func(ev *auditlogv1.AuditEvent) { ev.Extra = map[string]string{"": "v"} },
			"extra", auditevent.ReasonRequired},
		{"timestamp nanos out of range", func(ev *auditlogv1.AuditEvent) { ev.Timestamp = &timestamppb.Timestamp{Nanos: 1e9} },
			"timestamp", auditevent.ReasonBadTimestamp},
		{"timestamp before year 1", func(ev *auditlogv1.AuditEvent) {
			ev.Timestamp = &timestamppb.Timestamp{Seconds: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - 1}
		}, "timestamp", auditevent.ReasonBadTimestamp},
		{"invalid UTF-8 hostname", func(ev *auditlogv1.AuditEvent) { ev.Hostname = "h\xff" },
			"hostname", auditevent.ReasonInvalidUTF8},
		{"invalid UTF-8 id", func(ev *auditlogv1.AuditEvent) { ev.Id = "\xc3" },
			"id", auditevent.ReasonInvalidUTF8},
		{"invalid UTF-8 email", func(ev *auditlogv1.AuditEvent) { ev.Actor.Email = "a\xffb@example.com" },
			"actor.email", auditevent.ReasonInvalidUTF8},
		{"invalid UTF-8 token", func(ev *auditlogv1.AuditEvent) { ev.Actor.AccessToken.Token = "...\xff" },
			"actor.access-token.token", auditevent.ReasonInvalidUTF8},
		{"invalid UTF-8 user-agent", func(ev *auditlogv1.AuditEvent) { ev.Request.UserAgent = "\xfe" },
			"request.user-agent", auditevent.ReasonInvalidUTF8},
		{"invalid UTF-8 account id", func(ev *auditlogv1.AuditEvent) { ev.Target.Context.Account.Id = "acc-\xff" },
			"target.context.account.id", auditevent.ReasonInvalidUTF8},
		{"invalid UTF-8 workspace name", func(ev *auditlogv1.AuditEvent) { ev.Target.Context.Workspace.DisplayName = "\xff" },
			"target.context.workspace.display-name", auditevent.ReasonInvalidUTF8},
		{"invalid UTF-8 extra value", func(ev *auditlogv1.AuditEvent) { ev.Extra = map[string]string{"k": "\xff"} },
			"extra", auditevent.ReasonInvalidUTF8},
		{"invalid UTF-8 extra name", func(ev *auditlogv1.AuditEvent) { ev.Extra = map[string]string{"\xff": "v"} },
			"extra", auditevent.ReasonInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := validEvent(t)
			tt.mutate(ev)
			err := auditevent.Validate(ev)
			if tt.reason != auditevent.ReasonInvalidUTF8 {
				// Without the UTF-8 check every other rule still holds.
				if derr := auditevent.ValidateDecoded(ev); !reflect.DeepEqual(derr, err) {
					t.Fatalf("ValidateDecoded: %v; Validate: %v", derr, err)
				}
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			checkFieldError(t, err, tt.field, tt.reason)
		})
	}
}

func TestMaskToken(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty stays empty", "", ""},
		{"long token keeps last six", "sk-live-0123456789abcdefB6wifA", "...B6wifA"},
		{"13 characters keeps last six", "0123456ABCDEF", "...ABCDEF"},
		{"12 characters", "0123456789ab", "..."},
		{"short token", "abc", "..."},
		{"one character", "x", "..."},
		{"already masked (seed)", "...B6wifA", "...B6wifA"},
		{"already masked with fewer characters", "...abc", "...abc"},
		{"bare prefix", "...", "..."},
		{"masked prefix with a long rest", "...0123456789ABCDEF", "...ABCDEF"},
		{"masked prefix with seven characters", "...abcdefg", "..."},
		{"multi-byte runes not split", "токен-доступа-ключ-секрет", "...секрет"},
		{"emoji not split", strings.Repeat("🔑", 10) + "🙂🙃😀😁😂🤣", "...🙂🙃😀😁😂🤣"},
		{"12 multi-byte runes", strings.Repeat("й", 12), "..."},
		{"mixed width tail", "0123456789-aé日🔑bc", "...aé日🔑bc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := auditevent.MaskToken(tt.in)
			if got != tt.want {
				t.Errorf("MaskToken(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("MaskToken(%q) = %q is not valid UTF-8", tt.in, got)
			}
			if again := auditevent.MaskToken(got); again != got {
				t.Errorf("MaskToken is not idempotent: %q then %q", got, again)
			}
			if tt.in != "" && !strings.HasPrefix(got, auditevent.MaskedPrefix) {
				t.Errorf("MaskToken(%q) = %q lacks the %q prefix", tt.in, got, auditevent.MaskedPrefix)
			}
		})
	}
}

func TestMaskEvent(t *testing.T) {
	for _, ev := range []*auditlogv1.AuditEvent{
		{},
		{Actor: &auditlogv1.Actor{Id: "u"}},
		{Actor: &auditlogv1.Actor{AccessToken: &auditlogv1.AccessToken{Type: "session"}}},
	} {
		auditevent.MaskEvent(ev) // must not panic on missing parts
	}
	ev := &auditlogv1.AuditEvent{Actor: &auditlogv1.Actor{AccessToken: &auditlogv1.AccessToken{Type: "api", Token: "tok-0123456789-XYZxyz"}}}
	auditevent.MaskEvent(ev)
	if got := ev.GetActor().GetAccessToken().GetToken(); got != "...XYZxyz" {
		t.Errorf("token = %q, want %q", got, "...XYZxyz")
	}
	if got := ev.GetActor().GetAccessToken().GetType(); got != "api" {
		t.Errorf("token type changed to %q", got)
	}
}

func TestPrepare(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 890123000, time.UTC)
	given := timestamppb.New(time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC))
	tests := []struct {
		name          string
		ev            *auditlogv1.AuditEvent
		wantID        string // "" means a new UUIDv7
		wantTimestamp *timestamppb.Timestamp
		wantToken     string
		wantVersion   uint32
	}{
		{"empty event", &auditlogv1.AuditEvent{}, "", timestamppb.New(now), "", 1},
		{"given id kept", &auditlogv1.AuditEvent{Id: "my-id-1"}, "my-id-1", timestamppb.New(now), "", 1},
		{"given timestamp kept", &auditlogv1.AuditEvent{Timestamp: given}, "", given, "", 1},
		{"given schema version kept", &auditlogv1.AuditEvent{SchemaVersion: 1}, "", timestamppb.New(now), "", 1},
		{"too new schema version left for Validate", &auditlogv1.AuditEvent{SchemaVersion: 7}, "", timestamppb.New(now), "", 7},
		{"token masked", &auditlogv1.AuditEvent{Actor: &auditlogv1.Actor{AccessToken: &auditlogv1.AccessToken{Token: "secret-token-value-B6wifA"}}},
			"", timestamppb.New(now), "...B6wifA", 1},
		{"masked token kept", &auditlogv1.AuditEvent{Actor: &auditlogv1.Actor{AccessToken: &auditlogv1.AccessToken{Token: "...B6wifA"}}},
			"", timestamppb.New(now), "...B6wifA", 1},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := auditevent.Prepare(tt.ev, now); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if tt.wantID != "" {
				if tt.ev.Id != tt.wantID {
					t.Errorf("id = %q, want %q", tt.ev.Id, tt.wantID)
				}
			} else {
				id, err := uuid.Parse(tt.ev.Id)
				if err != nil {
					t.Fatalf("id %q is not a UUID: %v", tt.ev.Id, err)
				}
				if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
					t.Errorf("id %q is version %d variant %v, want a version 7 RFC 4122 UUID", tt.ev.Id, id.Version(), id.Variant())
				}
				if id.String() != tt.ev.Id {
					t.Errorf("id %q is not in canonical form %q", tt.ev.Id, id.String())
				}
				if seen[tt.ev.Id] {
					t.Errorf("id %q assigned twice", tt.ev.Id)
				}
				seen[tt.ev.Id] = true
			}
			if got := tt.ev.GetTimestamp(); got.GetSeconds() != tt.wantTimestamp.GetSeconds() || got.GetNanos() != tt.wantTimestamp.GetNanos() {
				t.Errorf("timestamp = %v, want %v", got.AsTime(), tt.wantTimestamp.AsTime())
			}
			if got := tt.ev.GetActor().GetAccessToken().GetToken(); got != tt.wantToken {
				t.Errorf("token = %q, want %q", got, tt.wantToken)
			}
			if tt.ev.SchemaVersion != tt.wantVersion {
				t.Errorf("schema version = %d, want %d", tt.ev.SchemaVersion, tt.wantVersion)
			}
		})
	}
}

func TestFieldError(t *testing.T) {
	tests := []struct {
		err  *auditevent.FieldError
		want string
	}{
		{&auditevent.FieldError{Index: -1, Field: "id", Reason: auditevent.ReasonBadID, Message: "bad"}, "event -1: field id: bad"},
		{&auditevent.FieldError{Index: 2, Reason: auditevent.ReasonMalformedJSON, Message: "oops"}, "event 2: oops"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	orig := &auditevent.FieldError{Index: -1, Field: "f", Reason: "r", Message: "m"}
	c := orig.AtIndex(3)
	if c.Index != 3 || orig.Index != -1 || c.Field != "f" || c.Reason != "r" || c.Message != "m" {
		t.Errorf("AtIndex(3) = %+v from %+v", c, orig)
	}
}
