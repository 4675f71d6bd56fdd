package eventbridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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
	// ReasonBadEntry: the sink was handed bytes that are no entry of this
	// package's Encoder.
	ReasonBadEntry = "bad_entry"
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
// Encode returns it in a compact form of this package (Time, Resources and
// Detail; Source and DetailType are the sink's) that Sink.WriteBatch turns
// into a PutEvents request.
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

// Entry is an encoded entry read back.
type Entry struct {
	// Time is the event's time; zero when the event had none, in which case
	// EventBridge uses the time of the call.
	Time      time.Time
	Resources []string
	// Detail is the JSON object, a view into the encoded entry.
	Detail []byte
}

// The encoded form: a version byte, a flags byte, the time as Unix
// nanoseconds (8 bytes, big-endian; present when flagTime is set), the
// number of resources and each resource's length (uvarints) and bytes, then
// the detail JSON to the end.
const (
	entryVersion = 1
	flagTime     = 1
	headerBytes  = 10
)

var errBadEntry = errors.New("not an encoded EventBridge entry")

// DecodeEntry reads an encoded entry. Detail and the resources' bytes are
// views into b's bytes (resources are copied into strings).
func DecodeEntry(b []byte) (Entry, error) {
	var e Entry
	if len(b) < headerBytes || b[0] != entryVersion {
		return e, errBadEntry
	}
	if b[1]&flagTime != 0 {
		e.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[2:10]))).UTC()
	}
	rest := b[headerBytes:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > MaxCallBytes {
		return e, errBadEntry
	}
	rest = rest[k:]
	if n > 0 {
		e.Resources = make([]string, 0, n)
	}
	for range n {
		l, k := binary.Uvarint(rest)
		if k <= 0 || l > uint64(len(rest)-k) {
			return e, errBadEntry
		}
		e.Resources = append(e.Resources, string(rest[k:k+int(l)]))
		rest = rest[k+int(l):]
	}
	if len(rest) < 2 || rest[0] != '{' || rest[len(rest)-1] != '}' {
		return e, errBadEntry
	}
	e.Detail = rest
	return e, nil
}

// entrySize is the size EventBridge counts for an encoded entry sent with
// Source and DetailType of fixed bytes together, without decoding the
// resources into strings; ok is false for bytes that are no entry.
func entrySize(b []byte, fixed int) (size int, ok bool) {
	if len(b) < headerBytes || b[0] != entryVersion {
		return 0, false
	}
	size = fixed
	if b[1]&flagTime != 0 {
		size += TimeBytes
	}
	rest := b[headerBytes:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > MaxCallBytes {
		return 0, false
	}
	rest = rest[k:]
	for range n {
		l, k := binary.Uvarint(rest)
		if k <= 0 || l > uint64(len(rest)-k) {
			return 0, false
		}
		size += int(l)
		rest = rest[k+int(l):]
	}
	if len(rest) < 2 || rest[0] != '{' || rest[len(rest)-1] != '}' {
		return 0, false
	}
	return size + len(rest), true
}

// EntrySize is the size EventBridge counts for the encoded entry b with
// this encoder's Source and DetailType: 14 bytes for Time when present, plus
// the UTF-8 bytes of Source, DetailType, Detail and each resource. It is -1
// for bytes that are no entry.
func (e *Encoder) EntrySize(b []byte) int {
	n, ok := entrySize(b, e.fixed)
	if !ok {
		return -1
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

// Encode returns the event's entry in a new slice of exactly its size. An
// entry over MaxCallBytes (as EntrySize counts) is a Permanent
// *sink.SendError whose Err is a *RejectError with reason
// entry_too_large: no PutEvents call can carry it.
func (e *Encoder) Encode(ev *auditlogv1.AuditEvent) ([]byte, error) {
	st := encodeStates.Get().(*encodeState)
	defer putState(st)
	buf := append(st.buf[:0], entryVersion, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	size := e.fixed
	if ts := ev.GetTimestamp(); ts != nil {
		buf[1] |= flagTime
		binary.BigEndian.PutUint64(buf[2:10], uint64(ts.AsTime().UnixNano()))
		size += TimeBytes
	}
	if arn := resourceARN(ev); arn != "" {
		buf = binary.AppendUvarint(buf, 1)
		buf = binary.AppendUvarint(buf, uint64(len(arn)))
		buf = append(buf, arn...)
		size += len(arn)
	} else {
		buf = binary.AppendUvarint(buf, 0)
	}
	start := len(buf)
	buf, st.tmp = AppendDetail(buf, st.tmp, ev)
	st.buf = buf
	size += len(buf) - start
	if size > MaxCallBytes {
		return nil, &sink.SendError{Class: sink.Permanent, Err: &RejectError{
			Reason:  ReasonEntryTooLarge,
			Message: fmt.Sprintf("entry is %d bytes as EventBridge counts it, over the %d-byte PutEvents limit", size, MaxCallBytes),
		}}
	}
	return slices.Clone(buf), nil
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
