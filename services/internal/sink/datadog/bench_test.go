package datadog

import (
	"fmt"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// benchEvent is the prepared seed event with a few extra attributes, as the
// event codec's benchmarks use: about 1 KB of JSON.
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
	return ev
}

func BenchmarkEncode(b *testing.B) {
	ev := benchEvent(b)
	enc := NewEncoder("scalr", "")
	entry, _ := enc.Encode(ev)
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(entry)))
		for b.Loop() {
			if _, err := enc.Encode(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendEntry-reuse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(entry)))
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf, _ = enc.AppendEntry(buf[:0], ev)
		}
	})
	b.Run("auditevent.EncodeJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			auditevent.EncodeJSON(ev)
		}
	})
}
