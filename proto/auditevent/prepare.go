package auditevent

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// SchemaVersion is the version of the event schema this code writes.
const SchemaVersion = 1

// Limits that hold whatever a deployment configures: they keep one event
// small enough for every destination (EventBridge takes 256 KB an entry).
const (
	MaxIDLength        = 128
	MaxAccountIDLength = 128
	MaxExtraFields     = 64
)

// AccountID returns the account that owns the event, or "".
func AccountID(ev *auditlogv1.AuditEvent) string {
	return ev.GetTarget().GetContext().GetAccount().GetId()
}

// Prepare readies an event for writing: it masks the access token, assigns a
// UUIDv7 id when the producer gave none, sets the schema version and, when
// the event has no timestamp, stamps it with now. Call Validate after.
func Prepare(ev *auditlogv1.AuditEvent, now time.Time) error {
	MaskEvent(ev)
	if ev.Id == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("generate event id: %w", err)
		}
		ev.Id = id.String()
	}
	if ev.SchemaVersion == 0 {
		ev.SchemaVersion = SchemaVersion
	}
	if ev.Timestamp == nil {
		ev.Timestamp = timestamppb.New(now)
	}
	return nil
}

// Validate checks the rules every written event keeps. It reports the first
// problem found as a *FieldError with Index -1.
func Validate(ev *auditlogv1.AuditEvent) error {
	return validate(ev, true)
}

// validateDecoded is Validate for an event that DecodeJSON returned and
// that nothing but Prepare changed since. Such an event's strings are valid
// UTF-8 (DecodeJSON refuses invalid UTF-8; Prepare's id and masked token
// keep it valid), so that check, a good part of Validate's cost, is not run
// again; every other rule is. The producer reaches it through
// internal/unchecked.
func validateDecoded(ev *auditlogv1.AuditEvent) error {
	return validate(ev, false)
}

func validate(ev *auditlogv1.AuditEvent, checkStrings bool) error {
	if ev.SchemaVersion > SchemaVersion {
		return &FieldError{Index: -1, Field: "schema-version", Reason: ReasonBadVersion, Message: fmt.Sprintf("schema version %d is newer than the supported %d", ev.SchemaVersion, SchemaVersion)}
	}
	if len(ev.Id) > MaxIDLength || strings.ContainsFunc(ev.Id, isControlOrSpace) {
		return &FieldError{Index: -1, Field: "id", Reason: ReasonBadID, Message: fmt.Sprintf("id must be at most %d characters without spaces or control characters", MaxIDLength)}
	}
	if strings.TrimSpace(AccountID(ev)) == "" {
		return &FieldError{Index: -1, Field: "target.context.account.id", Reason: ReasonRequired, Message: "target.context.account.id is required: it names the account that owns the event"}
	}
	if ts := ev.GetTimestamp(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return &FieldError{Index: -1, Field: "timestamp", Reason: ReasonBadTimestamp, Message: err.Error()}
		}
	}
	if len(ev.Extra) > MaxExtraFields {
		return &FieldError{Index: -1, Field: "extra", Reason: ReasonTooLarge, Message: fmt.Sprintf("extra has %d attributes; at most %d are allowed", len(ev.Extra), MaxExtraFields)}
	}
	for k := range ev.Extra {
		if k == "" {
			return &FieldError{Index: -1, Field: "extra", Reason: ReasonRequired, Message: "extra attribute names must not be empty"}
		}
	}
	if checkStrings {
		if err := checkUTF8(ev); err != nil {
			return err
		}
	}
	if !validAccountID(AccountID(ev)) {
		return &FieldError{Index: -1, Field: "target.context.account.id", Reason: ReasonBadAccountID, Message: fmt.Sprintf("target.context.account.id must be 1-%d characters of [A-Za-z0-9._:-] and not . or ..: it keys Kafka records, archive paths and routes", MaxAccountIDLength)}
	}
	return nil
}

// validAccountID keeps account ids safe to use as path segments and keys.
func validAccountID(s string) bool {
	if len(s) > MaxAccountIDLength || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func isControlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

// checkUTF8 guards events that arrive as protobuf: proto3 strings must be
// UTF-8, but a hand-built message need not be.
func checkUTF8(ev *auditlogv1.AuditEvent) error {
	fields := []struct{ name, v string }{
		{"id", ev.Id}, {"hostname", ev.Hostname}, {"service", ev.Service},
		{"actor.id", ev.GetActor().GetId()}, {"actor.type", ev.GetActor().GetType()}, {"actor.email", ev.GetActor().GetEmail()},
		{"actor.access-token.type", ev.GetActor().GetAccessToken().GetType()}, {"actor.access-token.token", ev.GetActor().GetAccessToken().GetToken()},
		{"request.ip-address", ev.GetRequest().GetIpAddress()}, {"request.action", ev.GetRequest().GetAction()}, {"request.id", ev.GetRequest().GetId()},
		{"request.source", ev.GetRequest().GetSource()}, {"request.user-agent", ev.GetRequest().GetUserAgent()},
		{"outcome.result", ev.GetOutcome().GetResult()},
		{"target.id", ev.GetTarget().GetId()}, {"target.type", ev.GetTarget().GetType()}, {"target.display-name", ev.GetTarget().GetDisplayName()},
		{"target.context.account.id", AccountID(ev)}, {"target.context.account.display-name", ev.GetTarget().GetContext().GetAccount().GetDisplayName()},
		{"target.context.environment.id", ev.GetTarget().GetContext().GetEnvironment().GetId()}, {"target.context.environment.display-name", ev.GetTarget().GetContext().GetEnvironment().GetDisplayName()},
		{"target.context.workspace.id", ev.GetTarget().GetContext().GetWorkspace().GetId()}, {"target.context.workspace.display-name", ev.GetTarget().GetContext().GetWorkspace().GetDisplayName()},
	}
	for _, f := range fields {
		if !utf8.ValidString(f.v) {
			return &FieldError{Index: -1, Field: f.name, Reason: ReasonInvalidUTF8, Message: f.name + " is not valid UTF-8"}
		}
	}
	for k, v := range ev.Extra {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return &FieldError{Index: -1, Field: "extra", Reason: ReasonInvalidUTF8, Message: "extra holds a name or value that is not valid UTF-8"}
		}
	}
	return nil
}

// MaskedPrefix starts every masked access token.
const MaskedPrefix = "..."

// maskedTail is how many trailing characters of a token stay visible.
const maskedTail = 6

// MaskToken hides an access token, keeping "..." and its last six
// characters as the seed shows ("...B6wifA"). An already-masked token is kept;
// a token too short to hide anything is reduced to "...".
func MaskToken(token string) string {
	if token == "" {
		return ""
	}
	if rest, ok := strings.CutPrefix(token, MaskedPrefix); ok && utf8.RuneCountInString(rest) <= maskedTail {
		return token
	}
	n := utf8.RuneCountInString(token)
	if n <= 2*maskedTail {
		// Showing the last six of a short token would show most of it.
		return MaskedPrefix
	}
	i := len(token)
	for k := 0; k < maskedTail; k++ {
		_, size := utf8.DecodeLastRuneInString(token[:i])
		i -= size
	}
	return MaskedPrefix + token[i:]
}

// MaskEvent masks the event's access token in place.
func MaskEvent(ev *auditlogv1.AuditEvent) {
	if t := ev.GetActor().GetAccessToken(); t != nil {
		t.Token = MaskToken(t.Token)
	}
}
