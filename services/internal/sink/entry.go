package sink

import (
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// Entry is one event as a sink takes it: the destination's own encoded
// form (Value, whatever type suits the destination) with what the encoder
// and the runtime know of it, so that a sink never decodes its own entries
// again to learn it.
type Entry[E any] struct {
	Value E
	// Size is what the entry counts for batching: the bytes the
	// destination will be sent for it, as its encoder measured them.
	Size int
	// Time is the event's own timestamp; zero when the event has none.
	Time time.Time
	// ID is the event's id.
	ID string
}

// EntryOf is the entry of ev with value v of size bytes.
func EntryOf[E any](ev *auditlogv1.AuditEvent, v E, size int) Entry[E] {
	e := Entry[E]{Value: v, Size: size, ID: ev.GetId()}
	if ts := ev.GetTimestamp(); ts != nil {
		e.Time = ts.AsTime()
	}
	return e
}

// Encoder turns an event (already filtered and redacted by its
// connection's policy) into a sink's entry. An event the destination can
// never take (over its size limit) is a Permanent *SendError.
type Encoder[E any] interface {
	EncodeEntry(ev *auditlogv1.AuditEvent) (Entry[E], error)
}

// Destination is a connection's encoder and sink together, what a sender
// needs to deliver events to it.
type Destination[E any] interface {
	Encoder[E]
	Sink[E]
}

// Values is the entries of values, each sized by its length: for sinks
// whose entries are bytes, and for tests.
func Values[B ~[]byte | ~string](values []B) []Entry[B] {
	out := make([]Entry[B], len(values))
	for i, v := range values {
		out[i] = Entry[B]{Value: v, Size: len(v)}
	}
	return out
}
