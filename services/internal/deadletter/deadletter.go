// Package deadletter is the record format of the dead-letter topic and of
// the headers the forwarders' runtime writes on parked records: what the
// forwarders and the archiver write and what auditctl's dlq commands read.
// The source record's key, value and producer headers are kept; the
// auditstream-* headers say why, from where and by whom. Letter.Record
// writes a dead letter and Read reads one back.
package deadletter

import (
	"errors"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers auditstream writes on dead-lettered and parked records.
const (
	HeaderDLQReason       = "auditstream-dlq-reason"
	HeaderDLQError        = "auditstream-dlq-error"
	HeaderSourceTopic     = "auditstream-source-topic"
	HeaderSourcePartition = "auditstream-source-partition"
	HeaderSourceOffset    = "auditstream-source-offset"
	HeaderConnection      = "auditstream-connection"
	HeaderAttempt         = "auditstream-attempt"
	HeaderDue             = "auditstream-due"
	HeaderFirstFailed     = "auditstream-first-failed"
	// HeaderSourceTime is, on a parked record, the timestamp of the record
	// on its source topic: when the event entered the pipeline.
	HeaderSourceTime = "auditstream-source-time"
	HeaderForwarder  = "auditstream-forwarder"
	// HeaderPolicy is on a parked or dead-lettered record whose value is
	// the event as its connection's filter and redaction left it: the
	// policy's version (never the raw value).
	HeaderPolicy = "auditstream-policy"
	// HeaderPrefix starts every header above; SourceHeaders drops them.
	HeaderPrefix = "auditstream-"
)

// MaxErrorText bounds the error text a dead letter carries, in bytes.
const MaxErrorText = 1024

// Letter says which record goes to the dead-letter topic and why.
type Letter struct {
	Topic string // the dead-letter topic
	// Source is the record as read: its key, value and producer headers are
	// kept (auditstream's own headers are dropped and written anew).
	Source *kgo.Record
	// Where the record came from; for a parked record, where it first was.
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	Consumer        string // the forwarder or archiver that gave up
	Connection      string // empty when no connection is involved
	Reason          string
	Cause           error
	// Policy is the version of the connection policy Source's value is in
	// the form of, "" for a record as it came.
	Policy string
}

// Record builds the dead-letter record with the reason, the error (at most
// MaxErrorText bytes), the source and the consumer in its headers.
func (d Letter) Record() *kgo.Record {
	headers := append(SourceHeaders(d.Source, 8),
		Header(HeaderDLQReason, d.Reason),
		Header(HeaderDLQError, d.ErrorText()),
		Header(HeaderSourceTopic, d.SourceTopic),
		Header(HeaderSourcePartition, strconv.Itoa(int(d.SourcePartition))),
		Header(HeaderSourceOffset, strconv.FormatInt(d.SourceOffset, 10)),
		Header(HeaderForwarder, d.Consumer),
	)
	if d.Connection != "" {
		headers = append(headers, Header(HeaderConnection, d.Connection))
	}
	if d.Policy != "" {
		headers = append(headers, Header(HeaderPolicy, d.Policy))
	}
	return &kgo.Record{Topic: d.Topic, Key: d.Source.Key, Value: d.Source.Value, Headers: headers}
}

// ErrorText is the error as the dead letter carries it.
func (d Letter) ErrorText() string {
	if d.Cause == nil {
		return ""
	}
	msg := d.Cause.Error()
	if len(msg) > MaxErrorText {
		msg = msg[:MaxErrorText]
	}
	return msg
}

// SourceHeaders keeps the producer's headers (content-type, schema-version,
// tracing) and drops auditstream's own, which are written anew; extra is
// room for those.
func SourceHeaders(rec *kgo.Record, extra int) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(rec.Headers)+extra)
	for _, h := range rec.Headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			out = append(out, h)
		}
	}
	return out
}

// Header is a record header of a string value.
func Header(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

// Read is the dead letter rec, as Record wrote it, read back: Topic is
// rec's topic; Source is the record as it was on its source topic, with
// the producer's headers only and, when the headers say where it came
// from, its source topic, partition and offset (so that an event without
// an id gets back the id it had there); Cause carries the error text. A
// header missing or unreadable leaves its field empty: SourceTopic is set
// only when topic, partition and offset all read. The last of a repeated
// header wins, as it does for content-type.
func Read(rec *kgo.Record) Letter {
	d := Letter{Topic: rec.Topic}
	var partition, offset string
	for _, h := range rec.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderDLQReason:
			d.Reason = v
		case HeaderDLQError:
			d.Cause = nil
			if v != "" {
				d.Cause = errors.New(v)
			}
		case HeaderForwarder:
			d.Consumer = v
		case HeaderConnection:
			d.Connection = v
		case HeaderPolicy:
			d.Policy = v
		case HeaderSourceTopic:
			d.SourceTopic = v
		case HeaderSourcePartition:
			partition = v
		case HeaderSourceOffset:
			offset = v
		}
	}
	src := *rec
	src.Headers = SourceHeaders(rec, 0)
	p, perr := strconv.ParseInt(partition, 10, 32)
	o, oerr := strconv.ParseInt(offset, 10, 64)
	if d.SourceTopic == "" || perr != nil || oerr != nil {
		d.SourceTopic = ""
	} else {
		d.SourcePartition, d.SourceOffset = int32(p), o
		src.Topic, src.Partition, src.Offset = d.SourceTopic, d.SourcePartition, d.SourceOffset
	}
	d.Source = &src
	return d
}
