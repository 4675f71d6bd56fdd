package auditevent_test

import (
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
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
