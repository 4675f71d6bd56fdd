package forwarder

import (
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/twmb/franz-go/pkg/kgo"
)

func recordEventID(t *testing.T, rec *kgo.Record) string {
	t.Helper()
	ev, err := auditevent.DecodeRecord(rec)
	if err != nil {
		t.Fatalf("parked record does not decode: %v", err)
	}
	return ev.GetId()
}
