package auditevent_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const topic = "audit.events"

func header(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

func TestNewRecord(t *testing.T) {
	ev := validEvent(t)
	rec, err := auditevent.NewRecord(topic, ev)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Topic != topic {
		t.Errorf("topic = %q, want %q", rec.Topic, topic)
	}
	if string(rec.Key) != seedAccountID {
		t.Errorf("key = %q, want the account id %q", rec.Key, seedAccountID)
	}
	wantHeaders := []kgo.RecordHeader{header("content-type", "application/x-protobuf"), header("schema-version", "1")}
	if len(rec.Headers) != len(wantHeaders) {
		t.Fatalf("headers = %v, want %v", rec.Headers, wantHeaders)
	}
	for i, h := range rec.Headers {
		if h.Key != wantHeaders[i].Key || !bytes.Equal(h.Value, wantHeaders[i].Value) {
			t.Errorf("header %d = %s: %s, want %s: %s", i, h.Key, h.Value, wantHeaders[i].Key, wantHeaders[i].Value)
		}
	}
	var fromValue auditlogv1.AuditEvent
	if err := proto.Unmarshal(rec.Value, &fromValue); err != nil {
		t.Fatalf("value is not protobuf: %v", err)
	}
	if !proto.Equal(&fromValue, ev) {
		t.Errorf("value decodes to %v, want %v", &fromValue, ev)
	}

	// The value is deterministic: the same event gives the same bytes.
	again, err := auditevent.NewRecord(topic, proto.Clone(ev).(*auditlogv1.AuditEvent))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Value, rec.Value) {
		t.Error("NewRecord is not deterministic")
	}

	back, err := auditevent.DecodeRecord(rec)
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if !proto.Equal(back, ev) {
		t.Errorf("DecodeRecord round trip:\n got %v\nwant %v", back, ev)
	}
}

func TestNewRecordRejectsInvalidUTF8(t *testing.T) {
	ev := validEvent(t)
	ev.Hostname = "\xff"
	if _, err := auditevent.NewRecord(topic, ev); err == nil {
		t.Error("NewRecord encoded a string that is not UTF-8")
	}
}

func TestDecodeRecordJSON(t *testing.T) {
	seed := seedAttributes(t)
	want := seedEvent(t)
	tests := []struct {
		name    string
		headers []kgo.RecordHeader
		value   []byte
	}{
		{"application/json", []kgo.RecordHeader{header("content-type", "application/json")}, seed},
		{"with charset", []kgo.RecordHeader{header("content-type", "application/json; charset=utf-8")}, seed},
		{"mixed case and spaces", []kgo.RecordHeader{header("content-type", " Application/JSON ;charset=UTF-8")}, seed},
		{"no header, value starts with {", nil, seed},
		{"no header, whitespace before {", nil, append([]byte(" \r\n\t"), seed...)},
		{"empty content-type sniffed", []kgo.RecordHeader{header("content-type", "")}, seed},
		{"other headers only", []kgo.RecordHeader{header("trace-id", "abc"), header("schema-version", "1")}, seed},
		{"last content-type wins", []kgo.RecordHeader{header("content-type", "text/plain"), header("content-type", "application/json")}, seed},
		{"unknown fields ignored", []kgo.RecordHeader{header("content-type", "application/json")},
			append([]byte(`{"new-field":{"a":1},`), seed[1:]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &kgo.Record{Topic: "audit.events", Partition: 2, Offset: 41, Key: []byte(seedAccountID), Headers: tt.headers, Value: tt.value}
			ev, err := auditevent.DecodeRecord(rec)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			// an event published without an id gets one from its place in the log
			if ev.Id != "kafka:audit.events:2:41" || ev.Id != auditevent.RecordID(rec) {
				t.Errorf("id %q, want kafka:audit.events:2:41", ev.Id)
			}
			ev.Id = ""
			if !proto.Equal(ev, want) {
				t.Errorf("got %v, want %v", ev, want)
			}
		})
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	noAccount := []byte(`{"actor":{"id":"u"},"target":{"id":"run-1","context":{"account":{"display-name":"docs"}}}}`)
	tooNew, err := proto.Marshal(&auditlogv1.AuditEvent{SchemaVersion: 2, Target: &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: "a"}}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		headers       []kgo.RecordHeader
		value         []byte
		field, reason string
	}{
		{"unknown content-type", []kgo.RecordHeader{header("content-type", "text/plain")}, seedAttributes(t), "", auditevent.ReasonBadContentType},
		{"avro content-type", []kgo.RecordHeader{header("content-type", "avro/binary")}, []byte{0}, "", auditevent.ReasonBadContentType},
		{"garbage as protobuf", []kgo.RecordHeader{header("content-type", "application/x-protobuf")}, []byte{0xff, 0xff, 0xff, 0xff}, "", auditevent.ReasonBadProtobuf},
		{"garbage without header", nil, []byte{0x0a, 0xff, 0x01}, "", auditevent.ReasonBadProtobuf},
		{"JSON sent as protobuf", []kgo.RecordHeader{header("content-type", "application/x-protobuf")}, []byte(`{"id":"x"}`), "", auditevent.ReasonBadProtobuf},
		{"JSON without account id", []kgo.RecordHeader{header("content-type", "application/json")}, noAccount, "target.context.account.id", auditevent.ReasonRequired},
		{"sniffed JSON without account id", nil, noAccount, "target.context.account.id", auditevent.ReasonRequired},
		{"empty value", nil, nil, "target.context.account.id", auditevent.ReasonRequired},
		{"malformed JSON", []kgo.RecordHeader{header("content-type", "application/json")}, []byte(`{"id":`), "", auditevent.ReasonMalformedJSON},
		{"JSON with a wrong type", nil, []byte(`{"outcome":{"status-code":"202"}}`), "outcome.status-code", auditevent.ReasonWrongType},
		{"JSON with invalid UTF-8", nil, []byte("{\"id\":\"\xff\"}"), "", auditevent.ReasonInvalidUTF8},
		{"schema version too new", []kgo.RecordHeader{header("content-type", "application/x-protobuf")}, tooNew, "schema-version", auditevent.ReasonBadVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := auditevent.DecodeRecord(&kgo.Record{Headers: tt.headers, Value: tt.value})
			if err == nil {
				t.Fatalf("DecodeRecord = %v, want an error", ev)
			}
			checkFieldError(t, err, tt.field, tt.reason)
		})
	}
}

// A careless producer's unmasked token never goes further than the record.
func TestDecodeRecordMasksToken(t *testing.T) {
	const token = "sess-9f8e7d6c5b4a3210-B6wifA"
	ev := validEvent(t)
	ev.Actor.AccessToken.Token = token
	pb, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	js := auditevent.EncodeJSON(ev)
	if !bytes.Contains(js, []byte(token)) {
		t.Fatal("test event lost its token")
	}
	for name, rec := range map[string]*kgo.Record{
		"protobuf": {Headers: []kgo.RecordHeader{header("content-type", "application/x-protobuf")}, Value: pb},
		"json":     {Headers: []kgo.RecordHeader{header("content-type", "application/json")}, Value: js},
		"sniffed":  {Value: js},
	} {
		got, err := auditevent.DecodeRecord(rec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tok := got.GetActor().GetAccessToken().GetToken(); tok != "...B6wifA" {
			t.Errorf("%s: token = %q, want %q", name, tok, "...B6wifA")
		}
	}
}

func TestEventTime(t *testing.T) {
	recTime := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	evTime := time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC)
	rec := &kgo.Record{Timestamp: recTime}
	if got := auditevent.EventTime(&auditlogv1.AuditEvent{Timestamp: timestamppb.New(evTime)}, rec); !got.Equal(evTime) {
		t.Errorf("EventTime = %v, want the event's %v", got, evTime)
	}
	if got := auditevent.EventTime(&auditlogv1.AuditEvent{}, rec); !got.Equal(recTime) {
		t.Errorf("EventTime = %v, want the record's %v", got, recTime)
	}
}
