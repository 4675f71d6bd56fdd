package otlp

import (
	"testing"

	"github.com/auditstream/auditstream/services/internal/sink"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

func decodeAll(t *testing.T, entries [][]byte) []plog.Logs {
	t.Helper()
	var un plog.ProtoUnmarshaler
	out := make([]plog.Logs, len(entries))
	for i, e := range entries {
		l, err := un.UnmarshalLogs(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = l
	}
	return out
}

func exportRequest(t *testing.T, body []byte) plogotlp.ExportRequest {
	t.Helper()
	req := plogotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		t.Fatal(err)
	}
	return req
}

// batchOf is the entries of encoded events (an Encoder's, or protobuf
// made as Encode does), as WriteBatch takes them.
func batchOf(tb testing.TB, raw [][]byte) []sink.Entry[Entry] {
	tb.Helper()
	out := make([]sink.Entry[Entry], len(raw))
	for i, b := range raw {
		e, err := parseEntry(b)
		if err != nil {
			tb.Fatalf("entry %d: %v", i, err)
		}
		out[i] = sink.Entry[Entry]{Value: e, Size: len(b)}
	}
	return out
}
