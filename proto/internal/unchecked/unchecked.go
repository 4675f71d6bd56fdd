// Package unchecked hands the producer auditevent's validation and record
// building without the UTF-8 check, for events auditevent's JSON decoder
// returned: it refuses invalid UTF-8, so checking those strings again is
// wasted work on ingest's hot path. Living here, inside the module, keeps
// the shortcut out of the public API: producers see one Validate and one
// NewRecord.
package unchecked

import (
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Set by package auditevent when it initializes; any package that imports
// auditevent may call them.
var (
	// Validate is auditevent.Validate without the UTF-8 check.
	Validate func(ev *auditlogv1.AuditEvent) error
	// NewRecord is auditevent.NewRecord without the UTF-8 check.
	NewRecord func(topic string, ev *auditlogv1.AuditEvent) (*kgo.Record, error)
)
