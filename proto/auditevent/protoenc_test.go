package auditevent_test

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var deterministic = proto.MarshalOptions{Deterministic: true}

// checkRecordValue asserts NewRecord's key and value are what the account id
// and deterministic protobuf marshalling give, and its errors what
// marshalling's are.
func checkRecordValue(t *testing.T, ev *auditlogv1.AuditEvent) {
	t.Helper()
	want, wantErr := deterministic.Marshal(ev)
	rec, err := auditevent.NewRecord(topic, ev)
	if wantErr != nil {
		if err == nil {
			t.Fatalf("NewRecord(%v) succeeded; marshalling fails with %v", ev, wantErr)
		}
		if wantMsg := "encode event " + ev.GetId() + " as protobuf: " + wantErr.Error(); err.Error() != wantMsg {
			t.Fatalf("NewRecord error %q, want %q", err, wantMsg)
		}
		return
	}
	if err != nil {
		t.Fatalf("NewRecord(%v): %v", ev, err)
	}
	if !bytes.Equal(rec.Value, want) || (rec.Value == nil) != (want == nil) {
		t.Fatalf("NewRecord(%v) value\n got %x\nwant %x", ev, rec.Value, want)
	}
	if key := auditevent.AccountID(ev); string(rec.Key) != key || rec.Key == nil {
		t.Fatalf("NewRecord key = %q, want %q", rec.Key, key)
	}
	if rec.Topic != topic || len(rec.Headers) != 2 {
		t.Fatalf("NewRecord topic %q, headers %v", rec.Topic, rec.Headers)
	}
	// Marshalling succeeded, so every string is UTF-8: NewRecordDecoded,
	// which does not check them, writes the same record.
	dec, err := auditevent.NewRecordDecoded(topic, ev)
	if err != nil {
		t.Fatalf("NewRecordDecoded(%v): %v", ev, err)
	}
	if !bytes.Equal(dec.Value, want) || string(dec.Key) != string(rec.Key) || dec.Topic != topic || !slices.EqualFunc(dec.Headers, rec.Headers, func(a, b kgo.RecordHeader) bool {
		return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
	}) {
		t.Fatalf("NewRecordDecoded(%v) = %+v, NewRecord gives %+v", ev, dec, rec)
	}
	// Key and value may share memory; writing past either must not reach
	// the other.
	key := string(rec.Key)
	_ = append(rec.Key, 0xff, 0xff, 0xff)
	if !bytes.Equal(rec.Value, want) || string(rec.Key) != key {
		t.Fatal("appending to the key changed the value")
	}
}

func TestNewRecordProtoSchemaCovered(t *testing.T) {
	if !auditevent.EventProtoSupported {
		t.Fatal("the generated messages differ from the schema NewRecord's encoder writes: update eventProtoSchema and appendEventProto in protoenc.go")
	}
}

func TestNewRecordValueMatchesDeterministicMarshal(t *testing.T) {
	seed := validEvent(t)
	withUnknown := proto.Clone(seed).(*auditlogv1.AuditEvent)
	withUnknown.Actor.ProtoReflect().SetUnknown([]byte{0x98, 0x06, 0x01}) // field 99, varint 1
	invalidUTF8 := proto.Clone(seed).(*auditlogv1.AuditEvent)
	invalidUTF8.Target.Context.Workspace.DisplayName = "\xff"
	invalidKey := proto.Clone(seed).(*auditlogv1.AuditEvent)
	invalidKey.Extra = map[string]string{"a\xc3": "v"}
	many := proto.Clone(seed).(*auditlogv1.AuditEvent)
	many.Extra = manyExtra(64)
	many.Extra[""] = ""
	many.Extra["\u00e9"] = strings.Repeat("x", 300)
	tests := map[string]*auditlogv1.AuditEvent{
		"seed":  seed,
		"bench": mustDecode(t, benchJSON(t)),
		"empty": {},
		"empty messages": {
			Actor: &auditlogv1.Actor{AccessToken: &auditlogv1.AccessToken{}}, Request: &auditlogv1.Request{}, Outcome: &auditlogv1.Outcome{},
			Target:    &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{}, Environment: &auditlogv1.Ref{}, Workspace: &auditlogv1.Ref{}}},
			Timestamp: &timestamppb.Timestamp{}, Extra: map[string]string{},
		},
		"only workspace": {Target: &auditlogv1.Target{Context: &auditlogv1.Context{Workspace: &auditlogv1.Ref{Id: "ws"}}}},
		"negative numbers": {
			SchemaVersion: math.MaxUint32, Outcome: &auditlogv1.Outcome{StatusCode: math.MinInt32},
			Timestamp: &timestamppb.Timestamp{Seconds: -62135596800, Nanos: -1},
		},
		"large numbers": {
			Outcome:   &auditlogv1.Outcome{StatusCode: math.MaxInt32},
			Timestamp: &timestamppb.Timestamp{Seconds: math.MaxInt64, Nanos: math.MaxInt32},
		},
		"long strings":            {Id: strings.Repeat("i", 127), Hostname: strings.Repeat("h", 128), Service: strings.Repeat("s", 16384)},
		"many extra":              many,
		"unknown fields":          withUnknown,
		"invalid UTF-8":           invalidUTF8,
		"invalid UTF-8 extra key": invalidKey,
	}
	for name, ev := range tests {
		t.Run(name, func(t *testing.T) { checkRecordValue(t, ev) })
	}
}

func mustDecode(t *testing.T, data []byte) *auditlogv1.AuditEvent {
	t.Helper()
	ev, err := auditevent.DecodeJSON(data, strict)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// NewRecord's value is the deterministic protobuf encoding for any event:
// one read from fuzzed protobuf (unknown fields included), with fuzzed
// strings and numbers set in its fields.
func FuzzNewRecordMatchesMarshal(f *testing.F) {
	seed, err := deterministic.Marshal(seedEvent(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, "", int32(0), uint32(0), int64(0), int32(0), uint16(0))
	f.Add(seed, "x", int32(-1), uint32(1), int64(-1), int32(-1), uint16(0xffff))
	f.Add(append(append([]byte{}, seed...), 0x98, 0x06, 0x01), "k", int32(202), uint32(1), int64(1708088318), int32(577846000), uint16(0x1234))
	f.Add([]byte{}, "\xff", int32(math.MinInt32), uint32(math.MaxUint32), int64(math.MinInt64), int32(math.MaxInt32), uint16(0x8000))
	f.Add([]byte{0x1a, 0x00}, strings.Repeat("é", 100), int32(1), uint32(2), int64(3), int32(4), uint16(0x00ff))
	f.Fuzz(func(t *testing.T, pb []byte, s string, code int32, version uint32, sec int64, nanos int32, which uint16) {
		ev := new(auditlogv1.AuditEvent)
		if proto.Unmarshal(pb, ev) != nil {
			ev = new(auditlogv1.AuditEvent)
		}
		set := func(bit int) bool { return which&(1<<bit) != 0 }
		if set(0) {
			ev.Hostname = s
		}
		if set(1) {
			if ev.Extra == nil {
				ev.Extra = map[string]string{}
			}
			ev.Extra[s] = s
		}
		if set(2) {
			ev.Actor = &auditlogv1.Actor{Email: s, AccessToken: &auditlogv1.AccessToken{Token: s}}
		}
		if set(3) {
			ev.Target = &auditlogv1.Target{Context: &auditlogv1.Context{Environment: &auditlogv1.Ref{DisplayName: s}}}
		}
		if set(4) {
			ev.Outcome = &auditlogv1.Outcome{StatusCode: code}
		}
		if set(5) {
			ev.SchemaVersion = version
		}
		if set(6) {
			ev.Timestamp = &timestamppb.Timestamp{Seconds: sec, Nanos: nanos}
		}
		if set(7) {
			ev.Request = &auditlogv1.Request{UserAgent: s}
		}
		if set(8) {
			ev.Target = &auditlogv1.Target{Id: s, Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: s}}}
		}
		checkRecordValue(t, ev)
	})
}

// BenchmarkDeterministicMarshal is what NewRecord's value cost before it had
// its own encoder.
func BenchmarkDeterministicMarshal(b *testing.B) {
	ev := benchEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := deterministic.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}
