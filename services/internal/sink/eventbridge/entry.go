package eventbridge

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/sink"
)

// PutEvents limits.
const (
	// MaxEntries is the most entries one PutEvents call may carry.
	MaxEntries = 10
	// MaxCallBytes bounds the summed size of a call's entries, as EntrySize
	// counts it (256 KiB). One entry alone must fit too.
	MaxCallBytes = 256 * 1024
	// TimeBytes is what an entry's Time counts, whatever its value.
	TimeBytes = 14
	// maxResourceBytes bounds a target id taken as a resource ARN.
	maxResourceBytes = 1600
)

// Reasons are stable, machine-readable causes of a dead-lettered entry; see
// RejectError.
const (
	// ReasonEntryTooLarge: the entry is over MaxCallBytes, so no call can
	// carry it.
	ReasonEntryTooLarge = "entry_too_large"
	// ReasonRejected: EventBridge refused the entry for good
	// (InvalidArgument, MalformedDetail, RedactionFailure, or a validation
	// error for a call holding it alone).
	ReasonRejected = "rejected_by_eventbridge"
)

// RejectError says why an entry can never be delivered. It is the Err of a
// Permanent *sink.SendError; errors.As finds it.
type RejectError struct {
	Reason string
	// Code is EventBridge's error code, when EventBridge gave one.
	Code    string
	Message string
}

func (e *RejectError) Error() string {
	if e.Code != "" {
		return e.Reason + ": " + e.Code + ": " + e.Message
	}
	return e.Reason + ": " + e.Message
}

// Encoder turns audit events into PutEvents entries for one connection. It
// is safe for concurrent use.
//
// The entry of an event is:
//
//	Source:     the connection's source (default <prefix>.audit-log)
//	DetailType: the connection's detail type (default "Audit Event")
//	Detail:     {"id":"<event id>", <the event's seed-shaped JSON: actor,
//	            request, hostname, service, outcome, target, timestamp>,
//	            "extra":{...} when the event has extra attributes}
//	Time:       the event's timestamp
//	Resources:  [target.id] when the target id is an ARN, else none
//
// EncodeEntry returns what of it the event decides (Entry: Resources and
// Detail; the entry's Time is the event's time, and Source and DetailType
// are the sink's), which Sink.WriteBatch puts in a PutEvents request as
// it is.
type Encoder struct {
	fixed int // UTF-8 bytes of Source and DetailType
}

// NewEncoder returns an Encoder for the connection's source and detail type.
func NewEncoder(source, detailType string) *Encoder {
	return &Encoder{fixed: len(source) + len(detailType)}
}

// Encoder returns the connection's Encoder.
func (c Config) Encoder() *Encoder {
	c = c.WithDefaults()
	return NewEncoder(c.Source, c.DetailType)
}

// Entry is the part of a PutEvents entry an event decides, as the sink
// takes it (in a sink.Entry, whose Time is the entry's Time).
type Entry struct {
	// Resources is [target id] when the target id is an ARN, else nil.
	Resources []string
	// Detail is the JSON object.
	Detail []byte
}

// EntrySize is the size EventBridge counts for e with this encoder's
// Source and DetailType: 14 bytes for Time when present, plus the UTF-8
// bytes of Source, DetailType, Detail and each resource.
func (enc *Encoder) EntrySize(e sink.Entry[Entry]) int {
	n := enc.fixed + len(e.Value.Detail)
	if !e.Time.IsZero() {
		n += TimeBytes
	}
	for _, r := range e.Value.Resources {
		n += len(r)
	}
	return n
}

type encodeState struct{ buf, tmp []byte }

var encodeStates = sync.Pool{New: func() any {
	return &encodeState{buf: make([]byte, 0, 4096), tmp: make([]byte, 0, 256)}
}}

func putState(st *encodeState) {
	const limit = 64 << 10
	if cap(st.buf) <= limit && cap(st.tmp) <= limit {
		encodeStates.Put(st)
	}
}

// EncodeEntry returns the event's entry, its Detail in a new slice of
// exactly its size. An entry over MaxCallBytes (as EntrySize counts) is a
// Permanent *sink.SendError whose Err is a *RejectError with reason
// entry_too_large: no PutEvents call can carry it.
func (e *Encoder) EncodeEntry(ev *auditlogv1.AuditEvent) (sink.Entry[Entry], error) {
	st := encodeStates.Get().(*encodeState)
	defer putState(st)
	st.buf, st.tmp = AppendDetail(st.buf[:0], st.tmp, ev)
	out := sink.EntryOf(ev, Entry{}, 0)
	if arn := resourceARN(ev); arn != "" {
		out.Value.Resources = []string{arn}
	}
	out.Value.Detail = st.buf // measured before it is copied
	out.Size = e.EntrySize(out)
	if out.Size > MaxCallBytes {
		return sink.Entry[Entry]{}, &sink.SendError{Class: sink.Permanent, Err: &RejectError{
			Reason:  ReasonEntryTooLarge,
			Message: fmt.Sprintf("entry is %d bytes as EventBridge counts it, over the %d-byte PutEvents limit", out.Size, MaxCallBytes),
		}}
	}
	out.Value.Detail = slices.Clone(st.buf)
	return out, nil
}

// AppendDetail appends the event's Detail JSON object to dst: its id, then
// its seed-shaped attributes, then its extra attributes (keys sorted) when
// it has any. tmp is scratch space, returned for reuse.
func AppendDetail(dst, tmp []byte, ev *auditlogv1.AuditEvent) ([]byte, []byte) {
	w := auditevent.NewObjectWriter(append(dst, '{'))
	w.Str("id", ev.GetId())
	auditevent.AppendAttributes(w, ev)
	if extra := ev.GetExtra(); len(extra) > 0 {
		var arr [16]string
		keys := arr[:0]
		for k := range extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.Key("extra")
		x := w.Object()
		for _, k := range keys {
			// empty values are kept, as the event's JSON form keeps them
			x.Key(k)
			tmp = auditevent.AppendString(tmp[:0], extra[k])
			x.Raw(tmp)
		}
		w.End(x)
	}
	return append(w.Bytes(), '}'), tmp
}

// resourceARN is the event's target id when it is an ARN
// (arn:partition:service:region:account:resource), else "".
func resourceARN(ev *auditlogv1.AuditEvent) string {
	id := ev.GetTarget().GetId()
	if len(id) > maxResourceBytes || !strings.HasPrefix(id, "arn:") || strings.Count(id, ":") < 5 {
		return ""
	}
	parts := strings.SplitN(id, ":", 6)
	if parts[1] == "" || parts[2] == "" || parts[5] == "" {
		return ""
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return ""
		}
	}
	return id
}
