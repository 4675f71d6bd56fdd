package auditevent_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
)

// jsonSeeds are inputs for both fuzz targets besides the seed attributes.
var jsonSeeds = []string{
	``,
	`{}`,
	`[]`,
	`null`,
	`{"id":"a"}}`,
	`{"id":"a"} {}`,
	`{"target":{"context":{"account":{"id":"acc-1"}}}}`,
	`{"target":{"context":{"account":{"id":" "}}}}`,
	`{"actor":{"access-token":{"token":"0123456789abcdefghij"}},"target":{"context":{"account":{"id":"a"}}}}`,
	`{"timestamp":"2024-02-16T12:58:38.577846+02:00","target":{"context":{"account":{"id":"a"}}}}`,
	`{"timestamp":"0001-01-01T00:00:00+01:00"}`,
	`{"timestamp":"9999-12-31T23:59:59.999999999Z"}`,
	`{"outcome":{"status-code":"202"}}`,
	`{"outcome":{"status-code":-2147483648}}`,
	`{"extra":{"":"","a":"\u2028\u0000\ud800"}}`,
	`{"request":{"ip_address":"1.2.3.4"}}`,
	`{"Actor":{"ID":"u","Access-Token":{"TOKEN":"x"}}}`,
	`{"actor":{"id":"a"},"actor":{"type":"b"}}`,
	`{"schema-version":4294967295}`,
	`{"id":"` + strings.Repeat("x", 200) + `"}`,
	"{\"hostname\":\"\xff\"}",
	`{"extra":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`,
}

func FuzzDecodeJSON(f *testing.F) {
	seed := seedAttributes(f)
	f.Add(seed, true)
	f.Add(seed, false)
	for _, s := range jsonSeeds {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, disallowUnknown bool) {
		ev, err := auditevent.DecodeJSON(data, auditevent.DecodeOptions{DisallowUnknownFields: disallowUnknown})
		if err != nil {
			if fe, ok := err.(*auditevent.FieldError); !ok || fe.Reason == "" || fe.Index != -1 {
				t.Fatalf("error %#v (%T) is not a *FieldError with a reason and index -1", err, err)
			}
			return
		}
		checkReencodes(t, ev)

		// A decoded, prepared event's strings are UTF-8: ValidateDecoded,
		// which does not check them, answers as Validate does.
		if err := auditevent.Prepare(ev, time.Unix(1708088318, 0)); err != nil {
			t.Fatal(err)
		}
		want := auditevent.Validate(ev)
		if got := auditevent.ValidateDecoded(ev); !reflect.DeepEqual(got, want) {
			t.Fatalf("ValidateDecoded: %v; Validate: %v", got, want)
		}
		if want == nil {
			checkRecordValue(t, ev)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	seed := seedAttributes(f)
	seedEv := seedEvent(f)
	pb, err := proto.Marshal(seedEv)
	if err != nil {
		f.Fatal(err)
	}
	// Field 99, varint 1: a field from a newer schema.
	withUnknown := append(append([]byte{}, pb...), 0x98, 0x06, 0x01)
	f.Add(seed, "application/json", true)
	f.Add(seed, "", false)
	f.Add(seed, "application/json; charset=utf-8", true)
	f.Add(seed, "text/plain", true)
	f.Add(pb, "application/x-protobuf", true)
	f.Add(pb, "", false)
	f.Add(withUnknown, "application/x-protobuf", true)
	// A second target naming another account: the messages merge, the
	// last id wins.
	f.Add(append(append([]byte{}, pb...), otherAccountTarget("acc-other")...), "", false)
	f.Add([]byte{0xff, 0xff, 0xff}, "application/x-protobuf", true)
	f.Add([]byte{0x42, 0x00}, "", false)
	for _, s := range jsonSeeds {
		f.Add([]byte(s), "", false)
		f.Add([]byte(s), "application/json", true)
	}
	f.Fuzz(func(t *testing.T, value []byte, contentType string, hasHeader bool) {
		rec := &kgo.Record{Topic: topic, Value: value}
		if hasHeader {
			rec.Headers = []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(contentType)}}
		}
		ev, err := auditevent.DecodeRecord(rec)
		// A record RecordAccount reads decodes as protobuf, with or without
		// its headers read again.
		if _, ok := auditevent.RecordAccount(rec); ok {
			pev, perr := auditevent.DecodeProtobufRecord(rec)
			if (err == nil) != (perr == nil) || (err == nil && !proto.Equal(ev, pev)) || (err != nil && err.Error() != perr.Error()) {
				t.Fatalf("DecodeProtobufRecord = %v, %v; DecodeRecord = %v, %v", pev, perr, ev, err)
			}
		}
		if err != nil {
			if fe, ok := err.(*auditevent.FieldError); !ok || fe.Reason == "" || fe.Index != -1 {
				t.Fatalf("error %#v (%T) is not a *FieldError with a reason and index -1", err, err)
			}
			return
		}
		// What DecodeRecord accepts is valid, owned by an account and masked.
		if err := auditevent.Validate(ev); err != nil {
			t.Fatalf("accepted event fails Validate: %v", err)
		}
		if strings.TrimSpace(auditevent.AccountID(ev)) == "" {
			t.Fatal("accepted event has no account id")
		}
		// Routing by the scanned account sends the event where its decoded
		// account says.
		if id, ok := auditevent.RecordAccount(rec); ok && id != auditevent.AccountID(ev) {
			t.Fatalf("RecordAccount = %q, the decoded event's account is %q", id, auditevent.AccountID(ev))
		}
		if tok := ev.GetActor().GetAccessToken().GetToken(); tok != auditevent.MaskToken(tok) {
			t.Fatalf("accepted event carries an unmasked token %q", tok)
		}

		// Protobuf keeps fields of a newer schema; the JSON form drops them.
		checkReencodes(t, withoutUnknownFields(t, ev))

		// Written again as a record, it reads back the same.
		out, err := auditevent.NewRecord(topic, ev)
		if err != nil {
			t.Fatalf("NewRecord of an accepted event: %v", err)
		}
		back, err := auditevent.DecodeRecord(out)
		if err != nil {
			t.Fatalf("DecodeRecord of NewRecord: %v", err)
		}
		if !proto.Equal(ev, back) {
			t.Fatalf("record round trip changed the event:\n%v\n%v", ev, back)
		}
	})
}

// checkReencodes asserts that ev encodes to valid JSON which decodes, even
// strictly, to an equal event and encodes to the same bytes again.
func checkReencodes(t *testing.T, ev *auditlogv1.AuditEvent) {
	t.Helper()
	out := auditevent.EncodeJSON(ev)
	if !json.Valid(out) {
		t.Fatalf("EncodeJSON wrote invalid JSON: %q", out)
	}
	back, err := auditevent.DecodeJSON(out, strict)
	if err != nil {
		t.Fatalf("decode of EncodeJSON output %s: %v", out, err)
	}
	if !proto.Equal(ev, back) {
		t.Fatalf("JSON round trip changed the event:\n%v\n%v\nJSON: %s", ev, back, out)
	}
	if again := auditevent.EncodeJSON(back); string(again) != string(out) {
		t.Fatalf("encoding is not stable:\n%s\n%s", out, again)
	}
}

func withoutUnknownFields(t *testing.T, ev *auditlogv1.AuditEvent) *auditlogv1.AuditEvent {
	t.Helper()
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	out := new(auditlogv1.AuditEvent)
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}
