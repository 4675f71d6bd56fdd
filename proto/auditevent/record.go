package auditevent

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/internal/unchecked"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
)

// Record headers and content types; docs/record-format.md is their contract.
const (
	HeaderContentType   = "content-type"
	HeaderSchemaVersion = "schema-version"

	ContentTypeProtobuf = "application/x-protobuf"
	ContentTypeJSON     = "application/json"
)

var (
	protobufHeader = kgo.RecordHeader{Key: HeaderContentType, Value: []byte(ContentTypeProtobuf)}
	versionHeader  = kgo.RecordHeader{Key: HeaderSchemaVersion, Value: []byte(strconv.Itoa(SchemaVersion))}
	marshalOpts    = proto.MarshalOptions{Deterministic: true}
)

// NewRecord builds the Kafka record for a prepared, valid event: key = account
// id, value = protobuf, content-type and schema-version headers.
func NewRecord(topic string, ev *auditlogv1.AuditEvent) (*kgo.Record, error) {
	return newRecord(topic, ev, false)
}

// newRecordDecoded is NewRecord for an event validateDecoded accepted: its
// strings are known to be valid UTF-8 and are not checked again.
func newRecordDecoded(topic string, ev *auditlogv1.AuditEvent) (*kgo.Record, error) {
	return newRecord(topic, ev, true)
}

// The producer's path for events from DecodeJSON, kept out of the public API.
func init() {
	unchecked.Validate = validateDecoded
	unchecked.NewRecord = newRecordDecoded
}

func newRecord(topic string, ev *auditlogv1.AuditEvent, validUTF8 bool) (*kgo.Record, error) {
	account := AccountID(ev)
	var key, value []byte
	if ev != nil && eventProtoSupported {
		var entries [16]extraEntry
		if sz, ok := eventProtoSize(ev, entries[:0], validUTF8); ok {
			// Key and value share one allocation; each is capped at its
			// length, so appending to one never writes into the other.
			buf := make([]byte, len(account), len(account)+sz.event)
			copy(buf, account)
			buf = appendEventProto(buf, ev, &sz)
			if len(buf) == len(account)+sz.event {
				key, value = buf[:len(account):len(account)], buf[len(account):]
			}
		}
	}
	if value == nil {
		var err error
		if value, err = marshalOpts.Marshal(ev); err != nil {
			return nil, fmt.Errorf("encode event %s as protobuf: %w", ev.GetId(), err)
		}
		key = []byte(account)
	}
	blk := &recordBlock{headers: [2]kgo.RecordHeader{protobufHeader, versionHeader}}
	blk.rec = kgo.Record{
		Topic:   topic,
		Key:     key,
		Value:   value,
		Headers: blk.headers[:],
	}
	return &blk.rec, nil
}

// recordBlock is a record with room for its headers: one allocation.
type recordBlock struct {
	rec     kgo.Record
	headers [2]kgo.RecordHeader
}

// DecodeRecord reads the event in a topic record: protobuf when the
// content-type says so, the seed JSON when it says application/json, and for
// records without the header, JSON when the value starts with '{' and
// protobuf otherwise. The event is validated and its token masked, so a
// record written by a careless producer never leaks one further. Errors are
// *FieldError values whose Reason suits a dead-letter header.
func DecodeRecord(rec *kgo.Record) (*auditlogv1.AuditEvent, error) {
	var (
		ev  *auditlogv1.AuditEvent
		err error
	)
	switch ct := recordFormat(rec); ct {
	case ContentTypeProtobuf:
		ev, err = decodeProtobuf(rec.Value)
	case ContentTypeJSON:
		ev, err = DecodeJSON(rec.Value, DecodeOptions{})
	default:
		return nil, &FieldError{Index: -1, Reason: ReasonBadContentType, Message: fmt.Sprintf("record content-type %q is neither %s nor %s", truncate(ct, 64), ContentTypeProtobuf, ContentTypeJSON)}
	}
	if err != nil {
		return nil, err
	}
	return finishRecord(ev, rec)
}

// DecodeProtobufRecord is DecodeRecord for a record already known to hold
// protobuf, such as one RecordAccount read: its headers are not read again.
func DecodeProtobufRecord(rec *kgo.Record) (*auditlogv1.AuditEvent, error) {
	ev, err := decodeProtobuf(rec.Value)
	if err != nil {
		return nil, err
	}
	return finishRecord(ev, rec)
}

// finishRecord masks, identifies and validates an event decoded from rec.
func finishRecord(ev *auditlogv1.AuditEvent, rec *kgo.Record) (*auditlogv1.AuditEvent, error) {
	MaskEvent(ev)
	if ev.Id == "" {
		// Producers publishing directly may leave the id out. Derive it from
		// the record's place in the log so every consumer, and every re-run
		// of an archive window, gives the event the same id.
		ev.Id = RecordID(rec)
	}
	if err := Validate(ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// RecordID is the id of an event that arrived without one: its topic,
// partition and offset, which never change.
func RecordID(rec *kgo.Record) string {
	return fmt.Sprintf("kafka:%s:%d:%d", rec.Topic, rec.Partition, rec.Offset)
}

// EventTime returns the event's timestamp, or the record's when it has none.
func EventTime(ev *auditlogv1.AuditEvent, rec *kgo.Record) time.Time {
	if ts := ev.GetTimestamp(); ts != nil {
		return ts.AsTime()
	}
	return rec.Timestamp
}

// recordFormat is how the record's value is encoded, ContentTypeProtobuf
// or ContentTypeJSON, as DecodeRecord reads it: the content-type header,
// or without one, JSON when the value starts with '{' and protobuf
// otherwise. Any other result is a content-type the record names and the
// codec does not know.
func recordFormat(rec *kgo.Record) string {
	ct := recordContentType(rec)
	if ct != "" {
		return ct
	}
	if v := bytes.TrimLeft(rec.Value, " \t\r\n"); len(v) > 0 && v[0] == '{' {
		return ContentTypeJSON
	}
	return ContentTypeProtobuf
}

func recordContentType(rec *kgo.Record) string {
	for i := len(rec.Headers) - 1; i >= 0; i-- {
		h := rec.Headers[i]
		if h.Key == HeaderContentType {
			// What producers write, without allocating.
			switch string(h.Value) {
			case ContentTypeProtobuf:
				return ContentTypeProtobuf
			case ContentTypeJSON:
				return ContentTypeJSON
			}
			// "application/json; charset=utf-8" is still JSON.
			ct, _, _ := bytes.Cut(h.Value, []byte(";"))
			return string(bytes.ToLower(bytes.TrimSpace(ct)))
		}
	}
	return ""
}

func decodeProtobuf(b []byte) (*auditlogv1.AuditEvent, error) {
	if ev, ok := decodeProtobufFast(b); ok {
		return ev, nil
	}
	ev := new(auditlogv1.AuditEvent)
	if err := proto.Unmarshal(b, ev); err != nil {
		return nil, &FieldError{Index: -1, Reason: ReasonBadProtobuf, Message: "value is not a protobuf AuditEvent: " + err.Error()}
	}
	return ev, nil
}
