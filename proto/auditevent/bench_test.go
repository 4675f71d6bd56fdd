package auditevent_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/twmb/franz-go/pkg/kgo"
)

// benchEvent is the prepared seed event with a few extra attributes: about
// 1 KB of JSON.
func benchEvent(b *testing.B) *auditlogv1.AuditEvent {
	b.Helper()
	ev := seedEvent(b)
	if err := auditevent.Prepare(ev, time.Now()); err != nil {
		b.Fatal(err)
	}
	ev.Extra = map[string]string{}
	for i := range 4 {
		ev.Extra[fmt.Sprintf("attribute-%d", i)] = "value of extra attribute"
	}
	if err := auditevent.Validate(ev); err != nil {
		b.Fatal(err)
	}
	return ev
}

func BenchmarkDecodeJSON(b *testing.B) {
	data := auditevent.EncodeJSON(benchEvent(b))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := auditevent.DecodeJSON(data, strict); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeJSON(b *testing.B) {
	ev := benchEvent(b)
	size := int64(len(auditevent.EncodeJSON(ev)))
	b.Run("EncodeJSON", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		for b.Loop() {
			auditevent.EncodeJSON(ev)
		}
	})
	b.Run("AppendJSON-reuse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		buf := make([]byte, 0, 2048)
		for b.Loop() {
			buf = auditevent.AppendJSON(buf[:0], ev)
		}
	})
}

func BenchmarkNewRecord(b *testing.B) {
	ev := benchEvent(b)
	rec, err := auditevent.NewRecord(topic, ev)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Value)))
	for b.Loop() {
		if _, err := auditevent.NewRecord(topic, ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	ev := benchEvent(b)
	pb, err := auditevent.NewRecord(topic, ev)
	if err != nil {
		b.Fatal(err)
	}
	js := &kgo.Record{
		Topic:   topic,
		Key:     pb.Key,
		Value:   auditevent.EncodeJSON(ev),
		Headers: []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeJSON)}},
	}
	for _, bc := range []struct {
		name string
		rec  *kgo.Record
	}{{"protobuf", pb}, {"json", js}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.rec.Value)))
			for b.Loop() {
				if _, err := auditevent.DecodeRecord(bc.rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
