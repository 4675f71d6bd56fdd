package auditevent_test

import (
	"bytes"
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// otherAccountTarget is the wire form of a target field holding only
// context.account.id = id.
func otherAccountTarget(id string) []byte {
	ref := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte(id))
	ctx := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), ref)
	tgt := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), ctx)
	return protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType), tgt)
}

func TestRecordAccount(t *testing.T) {
	ev := seedEvent(t)
	pb, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	seedAccount := auditevent.AccountID(ev)
	protoHeader := []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeProtobuf)}}
	jsonHeader := []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeJSON)}}
	// A target that names only the workspace: merged in, the account stays.
	wsOnly := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("ws-x"))))
	wsOnly = protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType), wsOnly)

	for _, tc := range []struct {
		name    string
		value   []byte
		headers []kgo.RecordHeader
		want    string
		ok      bool
	}{
		{"protobuf", pb, protoHeader, seedAccount, true},
		{"protobuf without a header", pb, nil, seedAccount, true},
		{"a later target's account wins", append(append([]byte{}, pb...), otherAccountTarget("acc-other")...), nil, "acc-other", true},
		{"a later target without an account merges", append(append([]byte{}, pb...), wsOnly...), nil, seedAccount, true},
		{"no target", nil, protoHeader, "", true},
		{"target with the wrong wire type", protowire.AppendVarint(protowire.AppendTag(nil, 8, protowire.VarintType), 1), protoHeader, "", false},
		{"truncated", pb[:len(pb)-3], protoHeader, "", false},
		{"garbage", []byte("\x00\x01 not protobuf"), nil, "", false},
		{"JSON by header", []byte(`{"target":{"context":{"account":{"id":"acc-1"}}}}`), jsonHeader, "", false},
		{"JSON by its first byte", []byte(` {"target":{}}`), nil, "", false},
		{"another content type", pb, []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte("text/plain")}}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &kgo.Record{Topic: topic, Value: tc.value, Headers: tc.headers}
			got, ok := auditevent.RecordAccount(rec)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("RecordAccount = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
			if !ok {
				return
			}
			// Where the whole record decodes, it agrees.
			if ev, err := auditevent.DecodeRecord(rec); err == nil && auditevent.AccountID(ev) != got {
				t.Fatalf("decoded account %q, scanned %q", auditevent.AccountID(ev), got)
			}
		})
	}
}

func BenchmarkRecordAccount(b *testing.B) {
	pb, err := proto.Marshal(seedEvent(b))
	if err != nil {
		b.Fatal(err)
	}
	rec := &kgo.Record{Value: pb}
	for b.Loop() {
		if _, ok := auditevent.RecordAccount(rec); !ok {
			b.Fatal("not scanned")
		}
	}
}

// accountOnly is a reference for RecordAccount that shares no code with it:
// the message AuditEvent reduced to the path to the account id, decoded by
// proto.Unmarshal. Every other field is unknown to it, so, like the scan,
// it checks their wire format only at the levels on the path; the id is
// bytes, so, like the scan, it does not check UTF-8.
var accountOnly = func() protoreflect.MessageDescriptor {
	msg := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.DescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{
			Name:   proto.String("f"),
			Number: proto.Int32(num),
			Label:  descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			Type:   typ.Enum(),
		}
		if typeName != "" {
			f.TypeName = proto.String(".fuzz." + typeName)
		}
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: []*descriptorpb.FieldDescriptorProto{f}}
	}
	const m = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    proto.String("fuzz/account_only.proto"),
		Package: proto.String("fuzz"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			msg("Event", 8, m, "Target"),
			msg("Target", 4, m, "Context"),
			msg("Context", 1, m, "Account"),
			msg("Account", 1, descriptorpb.FieldDescriptorProto_TYPE_BYTES, ""),
		},
	}, nil)
	if err != nil {
		panic(err)
	}
	return fd.Messages().ByName("Event")
}()

// referenceAccount decodes b with accountOnly and returns the id. misTyped
// is true when a field of the path came with another wire type, which
// proto.Unmarshal keeps as an unknown field and RecordAccount declines (its
// caller then decodes the record whole).
func referenceAccount(b []byte) (id string, ok, misTyped bool) {
	ev := dynamicpb.NewMessage(accountOnly)
	if err := proto.Unmarshal(b, ev); err != nil {
		return "", false, false
	}
	var m protoreflect.Message = ev
	for level := range 4 {
		fd := m.Descriptor().Fields().Get(0)
		for u := m.GetUnknown(); len(u) > 0; {
			num, _, n := protowire.ConsumeField(u)
			if n < 0 {
				panic("proto.Unmarshal kept malformed unknown fields")
			}
			misTyped = misTyped || num == fd.Number()
			u = u[n:]
		}
		if !m.Has(fd) {
			return "", true, misTyped
		}
		if level == 3 {
			return string(m.Get(fd).Bytes()), true, misTyped
		}
		m = m.Get(fd).Message()
	}
	panic("unreachable")
}

// RecordAccount reads a protobuf record exactly when proto.Unmarshal of
// the path to the account reads it with every field of the path in its
// wire type, with the same id, and reads the id of every record that
// decodes whole as an AuditEvent unless a field of the path is mistyped.
func FuzzRecordAccountMatchesUnmarshal(f *testing.F) {
	pb, err := proto.Marshal(seedEvent(f))
	if err != nil {
		f.Fatal(err)
	}
	// A field the path does not take, in a group: skipped whole.
	group := protowire.AppendTag(nil, 2, protowire.StartGroupType)
	group = protowire.AppendVarint(protowire.AppendTag(group, 1, protowire.VarintType), 5)
	group = protowire.AppendTag(group, 2, protowire.EndGroupType)
	for _, v := range [][]byte{
		pb,
		append(append([]byte{}, pb...), otherAccountTarget("acc-other")...),
		append(append([]byte{}, pb...), otherAccountTarget("\xff\xfe")...),
		otherAccountTarget(""),
		pb[:len(pb)-3],
		append(append([]byte{}, group...), pb...),
		{0x00}, {0x42, 0x00}, {0x42, 0x02, 0x22, 0x05}, {0x47}, {0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00},
		[]byte(" {}"), nil,
	} {
		f.Add(v, false)
		f.Add(v, true)
	}
	f.Fuzz(func(t *testing.T, value []byte, header bool) {
		rec := &kgo.Record{Topic: topic, Value: value}
		isProto := true
		if header {
			rec.Headers = []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeProtobuf)}}
		} else if v := bytes.TrimLeft(value, " \t\r\n"); len(v) > 0 && v[0] == '{' {
			isProto = false
		}
		id, ok := auditevent.RecordAccount(rec)
		if !isProto {
			if ok {
				t.Fatalf("RecordAccount read %q from a JSON record %q", id, value)
			}
			return
		}
		want, wantOK, misTyped := referenceAccount(value)
		wantOK = wantOK && !misTyped
		if !wantOK {
			want = ""
		}
		if id != want || ok != wantOK {
			t.Fatalf("RecordAccount(%x) = %q, %v; proto.Unmarshal of the path: %q, %v (a mistyped field on the path: %v)", value, id, ok, want, wantOK, misTyped)
		}
		var ev auditlogv1.AuditEvent
		if proto.Unmarshal(value, &ev) == nil && !misTyped && (!ok || id != auditevent.AccountID(&ev)) {
			t.Fatalf("RecordAccount(%x) = %q, %v; the event's account is %q", value, id, ok, auditevent.AccountID(&ev))
		}
	})
}
