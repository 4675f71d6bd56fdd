package auditevent

import "fmt"

// Reasons are stable, machine-readable causes of a rejected event. They appear
// in ingest's 400 answers and in dead-letter headers.
const (
	ReasonMalformedJSON  = "malformed_json"
	ReasonInvalidUTF8    = "invalid_utf8"
	ReasonWrongType      = "wrong_type"
	ReasonUnknownField   = "unknown_field"
	ReasonRequired       = "required"
	ReasonBadTimestamp   = "bad_timestamp"
	ReasonBadID          = "bad_id"
	ReasonBadAccountID   = "bad_account_id"
	ReasonTooLarge       = "too_large"
	ReasonBadVersion     = "unsupported_schema_version"
	ReasonBadProtobuf    = "malformed_protobuf"
	ReasonBadContentType = "unsupported_content_type"
)

// FieldError says which field of which event is wrong and why.
type FieldError struct {
	// Index of the event in its request; -1 when not part of a batch.
	Index int `json:"index"`
	// Field path in the JSON form, e.g. "target.context.account.id"; empty
	// when the event as a whole is wrong.
	Field   string `json:"field,omitempty"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("event %d: field %s: %s", e.Index, e.Field, e.Message)
	}
	return fmt.Sprintf("event %d: %s", e.Index, e.Message)
}

// AtIndex returns a copy of e placed at event index i of a batch.
func (e *FieldError) AtIndex(i int) *FieldError {
	c := *e
	c.Index = i
	return &c
}
