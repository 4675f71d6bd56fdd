package delivery

import (
	"context"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/sink"
)

// idSink's entry is the event's id; it keeps what it is sent.
type idSink struct{ got []string }

func (s *idSink) EncodeEntry(ev *auditlogv1.AuditEvent) (sink.Entry[string], error) {
	return sink.EntryOf(ev, ev.GetId(), len(ev.GetId())), nil
}

func (s *idSink) WriteBatch(_ context.Context, batch []sink.Entry[string]) error {
	for _, e := range batch {
		s.got = append(s.got, e.Value)
	}
	return nil
}

// An EntrySink sends the opaque entries it encoded, in order, and refuses
// for good one another EntrySink made, without holding back the rest.
func TestEntrySinkSendsItsOwnEntries(t *testing.T) {
	mine, other := &idSink{}, &memSink{}
	es, os := NewEntrySink(mine, mine), NewEntrySink(other, other)
	var entries []Encoded
	for _, id := range []string{"a", "b", "c"} {
		e, err := es.Encode(&auditlogv1.AuditEvent{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if e.Size != 1 {
			t.Errorf("size %d, want 1", e.Size)
		}
		entries = append(entries, e)
	}
	foreign, err := os.Encode(&auditlogv1.AuditEvent{Id: "x"})
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries[:1], append([]Encoded{foreign}, entries[1:]...)...)
	results := make([]sink.Class, len(entries))
	done := make([]bool, len(entries))
	b := BatchSender{Backoff: sink.DefaultBackoff(), RetryBudget: time.Second, SendTimeout: time.Second}
	left, why, _ := es.Send(t.Context(), b, entries, func(i int, err error) {
		done[i] = true
		if err != nil {
			results[i] = sink.Classify(err)
		}
	})
	if len(left) != 0 || why != AllDone {
		t.Fatalf("left %v, %v", left, why)
	}
	if got := mine.got; len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Errorf("sink got %v, want [a b c]", got)
	}
	for i := range entries {
		if !done[i] {
			t.Errorf("entry %d has no outcome", i)
		}
	}
	if results[1] != sink.Permanent || results[0] == sink.Permanent || results[2] == sink.Permanent {
		t.Errorf("outcomes %v: want only the foreign entry (1) refused for good", results)
	}
}
