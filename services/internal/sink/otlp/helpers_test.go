package otlp

import (
	"testing"

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
