package auditevent_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// protoSeeds are encoded events: the seed, an empty one, one with every
// field, and hand-made encodings the fast decoder must leave to
// proto.Unmarshal (unknown fields, repeated singular fields).
func protoSeeds(tb testing.TB) [][]byte {
	full := seedEvent(tb)
	full.Extra = map[string]string{"a": "1", "": "", "z": "\u2028"}
	full.SchemaVersion = 7
	full.Outcome = &auditlogv1.Outcome{Result: "FAILURE", StatusCode: -5}
	full.Timestamp = timestamppb.New(timestamppb.Now().AsTime())
	emptyMsgs := &auditlogv1.AuditEvent{Actor: &auditlogv1.Actor{}, Target: &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{}}}}
	var seeds [][]byte
	for _, ev := range []*auditlogv1.AuditEvent{seedEvent(tb), {}, full, emptyMsgs} {
		b, err := proto.Marshal(ev)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	id := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "x")
	seeds = append(seeds,
		append(append([]byte{}, id...), id...),                                               // id twice: the last wins
		protowire.AppendVarint(protowire.AppendTag(id, 99, protowire.VarintType), 5),         // an unknown field
		protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "\xff\xfe"), // invalid UTF-8
		protowire.AppendTag(nil, 1, protowire.BytesType),                                     // truncated
		protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3),         // wrong wire type
	)
	return seeds
}

// The fast decoder either gives up or gives exactly what proto.Unmarshal
// gives; it never accepts what the reference refuses.
func checkProtoDecode(t *testing.T, b []byte) {
	ref := new(auditlogv1.AuditEvent)
	refErr := proto.Unmarshal(b, ref)
	fast, ok := auditevent.DecodeProtobufFast(b)
	if !ok {
		return
	}
	if refErr != nil {
		t.Fatalf("fast decoder accepted %x, proto.Unmarshal refuses it: %v", b, refErr)
	}
	if !proto.Equal(fast, ref) {
		t.Fatalf("fast decoder and proto.Unmarshal differ on %x:\nfast %v\nref  %v", b, fast, ref)
	}
}

func TestProtobufFastDecoderMatchesReference(t *testing.T) {
	accepted := 0
	for _, b := range protoSeeds(t) {
		checkProtoDecode(t, b)
		if _, ok := auditevent.DecodeProtobufFast(b); ok {
			accepted++
		}
	}
	if accepted < 4 {
		t.Fatalf("the fast decoder took %d of the well-formed seeds, want all 4", accepted)
	}
	if _, ok := auditevent.DecodeProtobufFast(protoSeeds(t)[5]); ok {
		t.Fatal("the fast decoder took an event with an unknown field (proto.Unmarshal keeps it)")
	}
}

func FuzzDecodeProtobuf(f *testing.F) {
	for _, b := range protoSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkProtoDecode(t, b) })
}
