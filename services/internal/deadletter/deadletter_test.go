package deadletter

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func headerValues(rec *kgo.Record) map[string][]string {
	m := map[string][]string{}
	for _, h := range rec.Headers {
		m[h.Key] = append(m[h.Key], string(h.Value))
	}
	return m
}

// TestRecord: a dead letter keeps the source's key, value and producer
// headers, replaces auditstream's own headers (a parked record's attempt
// and due do not travel on) and says why, from where and by whom.
func TestRecord(t *testing.T) {
	src := &kgo.Record{
		Topic: "audit.events.retry.datadog", Partition: 2, Offset: 9,
		Key: []byte("acc-1"), Value: []byte("event bytes"),
		Headers: []kgo.RecordHeader{
			Header("content-type", "application/x-protobuf"),
			Header(HeaderAttempt, "3"),
			Header(HeaderConnection, "old"),
			Header("traceparent", "00-abc-def-01"),
		},
	}
	rec := Letter{
		Topic: "audit.events.dlq", Source: src,
		SourceTopic: "audit.events", SourcePartition: 1, SourceOffset: 42,
		Consumer: "datadog-forwarder", Connection: "dd-a", Reason: "rejected", Cause: errors.New("400 bad entry"),
	}.Record()
	if rec.Topic != "audit.events.dlq" || string(rec.Key) != "acc-1" || string(rec.Value) != "event bytes" {
		t.Fatalf("record %s key %q value %q, want the dead-letter topic and the source's key and value", rec.Topic, rec.Key, rec.Value)
	}
	want := map[string][]string{
		"content-type":        {"application/x-protobuf"},
		"traceparent":         {"00-abc-def-01"},
		HeaderDLQReason:       {"rejected"},
		HeaderDLQError:        {"400 bad entry"},
		HeaderSourceTopic:     {"audit.events"},
		HeaderSourcePartition: {"1"},
		HeaderSourceOffset:    {"42"},
		HeaderForwarder:       {"datadog-forwarder"},
		HeaderConnection:      {"dd-a"},
	}
	got := headerValues(rec)
	if len(got) != len(want) {
		t.Errorf("headers %v, want %v", got, want)
	}
	for k, v := range want {
		if strings.Join(got[k], ",") != strings.Join(v, ",") {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}

	// Without a connection (an undecodable record) there is no connection
	// header, and without a cause no error text.
	rec = Letter{Topic: "dlq", Source: src, Consumer: "archiver", Reason: "decode_failed"}.Record()
	if h := headerValues(rec); h[HeaderConnection] != nil || h[HeaderDLQError][0] != "" {
		t.Errorf("headers %v: want no connection and an empty error", h)
	}
	if h := headerValues(rec); h[HeaderPolicy] != nil {
		t.Errorf("headers %v: a record as it came carries no policy", h)
	}

	// A record in the form of its connection's policy says which.
	src.Headers = append(src.Headers, Header(HeaderPolicy, "stale"))
	rec = Letter{Topic: "dlq", Source: src, Connection: "dd-a", Policy: "v2"}.Record()
	if h := headerValues(rec); strings.Join(h[HeaderPolicy], ",") != "v2" {
		t.Errorf("policy headers %v, want v2 once", h[HeaderPolicy])
	}
}

// TestErrorTextBounded: a long error is cut to MaxErrorText bytes so one
// record's headers stay small.
func TestErrorTextBounded(t *testing.T) {
	long := strings.Repeat("x", 3*MaxErrorText)
	d := Letter{Cause: errors.New(long)}
	if got := d.ErrorText(); len(got) != MaxErrorText || got != long[:MaxErrorText] {
		t.Fatalf("ErrorText is %d bytes, want the first %d", len(got), MaxErrorText)
	}
	if got := (Letter{Cause: errors.New("short")}).ErrorText(); got != "short" {
		t.Fatalf("ErrorText = %q, want %q", got, "short")
	}
}

// TestReadRoundTrip: what Record writes, Read gives back: why, from where,
// by whom, and the source record with its producer headers and position.
func TestReadRoundTrip(t *testing.T) {
	src := &kgo.Record{
		Topic: "audit.events.retry.datadog", Partition: 2, Offset: 9,
		Key: []byte("acc-1"), Value: []byte("event bytes"),
		Headers: []kgo.RecordHeader{
			Header("content-type", "application/x-protobuf"),
			Header(HeaderAttempt, "3"),
			Header("traceparent", "00-abc-def-01"),
		},
	}
	in := Letter{
		Topic: "audit.events.dlq", Source: src,
		SourceTopic: "audit.events", SourcePartition: 1, SourceOffset: 42,
		Consumer: "datadog-forwarder", Connection: "dd-a", Reason: "rejected", Cause: errors.New("400 bad entry"), Policy: "v3",
	}
	rec := in.Record()
	rec.Partition, rec.Offset = 0, 7 // where the dead-letter topic put it
	got := Read(rec)
	if got.Topic != in.Topic || got.Reason != in.Reason || got.ErrorText() != "400 bad entry" || got.Consumer != in.Consumer ||
		got.Connection != in.Connection || got.Policy != "v3" || got.SourceTopic != in.SourceTopic || got.SourcePartition != 1 || got.SourceOffset != 42 {
		t.Fatalf("Read = %+v, want %+v", got, in)
	}
	s := got.Source
	if s.Topic != "audit.events" || s.Partition != 1 || s.Offset != 42 || string(s.Key) != "acc-1" || string(s.Value) != "event bytes" {
		t.Fatalf("source record %s/%d@%d key %q value %q, want audit.events/1@42 and the source's key and value", s.Topic, s.Partition, s.Offset, s.Key, s.Value)
	}
	if h := headerValues(s); len(h) != 2 || h["content-type"][0] != "application/x-protobuf" || h["traceparent"][0] != "00-abc-def-01" {
		t.Fatalf("source headers %v, want the producer's only", h)
	}
	if rec.Partition != 0 || rec.Offset != 7 || len(rec.Headers) != 10 {
		t.Fatalf("Read changed the record it read: %d@%d, %d headers", rec.Partition, rec.Offset, len(rec.Headers))
	}
}

// TestReadWithoutSource: a record whose source headers are missing or do
// not read keeps its own position; nothing else is invented.
func TestReadWithoutSource(t *testing.T) {
	for _, headers := range [][]kgo.RecordHeader{
		nil,
		{Header(HeaderSourceTopic, "audit.events"), Header(HeaderSourcePartition, "x"), Header(HeaderSourceOffset, "3")},
		{Header(HeaderSourceTopic, "audit.events"), Header(HeaderSourcePartition, "1")},
	} {
		rec := &kgo.Record{Topic: "dlq", Partition: 3, Offset: 5, Headers: headers}
		got := Read(rec)
		if got.SourceTopic != "" || got.Source.Topic != "dlq" || got.Source.Partition != 3 || got.Source.Offset != 5 || got.Cause != nil || got.Reason != "" {
			t.Errorf("headers %v: Read = %+v, source %s/%d@%d", headers, got, got.Source.Topic, got.Source.Partition, got.Source.Offset)
		}
	}
}
