package otlp

import (
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/version"
	"github.com/auditstream/auditstream/services/testsupport/sinktest"
	"go.opentelemetry.io/collector/pdata/plog"
)

func TestEncodeSeed(t *testing.T) {
	ev := sinktest.SeedEvent(t)
	ev.Id = "evt-seed-1"
	read := time.Date(2026, 12, 6, 10, 0, 0, 5, time.UTC)
	entry, err := NewEncoder(func() time.Time { return read }).Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(entry)
	if err != nil || logs.LogRecordCount() != 1 {
		t.Fatalf("entry: %v, %d records", err, logs.LogRecordCount())
	}
	rl := logs.ResourceLogs().At(0)
	if got := rl.Resource().Attributes().AsRaw(); !maps.Equal(got, sinktest.SeedOTLPResource) {
		t.Errorf("resource %v", got)
	}
	sl := rl.ScopeLogs().At(0)
	if sl.Scope().Name() != ScopeName || sl.Scope().Version() != version.Version {
		t.Errorf("scope %s %s", sl.Scope().Name(), sl.Scope().Version())
	}
	lr := sl.LogRecords().At(0)
	if got := lr.Attributes().AsRaw(); !maps.EqualFunc(got, sinktest.SeedOTLPAttributes, func(a, b any) bool { return a == b }) {
		gj, _ := json.MarshalIndent(got, "", " ")
		t.Errorf("attributes:\n%s", gj)
	}
	if want := time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC); !lr.Timestamp().AsTime().Equal(want) {
		t.Errorf("time %v, want %v", lr.Timestamp().AsTime(), want)
	}
	if !lr.ObservedTimestamp().AsTime().Equal(read) {
		t.Errorf("observed %v", lr.ObservedTimestamp().AsTime())
	}
	if lr.SeverityNumber() != plog.SeverityNumberInfo || lr.SeverityText() != "INFO" || lr.EventName() != "discard-run" {
		t.Errorf("severity %v %q, event name %q", lr.SeverityNumber(), lr.SeverityText(), lr.EventName())
	}
	if got, want := lr.Body().Str(), string(auditevent.EncodeJSON(ev)); got != want {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
}

func TestSeverity(t *testing.T) {
	enc := NewEncoder(nil)
	for _, tc := range []struct {
		result string
		code   int32
		want   plog.SeverityNumber
	}{
		{"SUCCESS", 200, plog.SeverityNumberInfo},
		{"success", 0, plog.SeverityNumberInfo},
		{"", 0, plog.SeverityNumberInfo},
		{"FAILURE", 0, plog.SeverityNumberWarn},
		{"DENIED", 403, plog.SeverityNumberWarn},
		{"SUCCESS", 500, plog.SeverityNumberWarn},
	} {
		ev := sinktest.Event(1, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		ev.Outcome.Result, ev.Outcome.StatusCode = tc.result, tc.code
		lr := enc.Logs(ev).ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
		if lr.SeverityNumber() != tc.want {
			t.Errorf("%q %d: severity %v, want %v", tc.result, tc.code, lr.SeverityNumber(), tc.want)
		}
	}
}

// TestEncodeEmpty: an event without optional fields still encodes, with
// the default service and no empty attributes.
func TestEncodeEmpty(t *testing.T) {
	ev := sinktest.Event(1, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	ev.Actor, ev.Request, ev.Outcome, ev.Target = nil, nil, nil, nil
	logs := NewEncoder(nil).Logs(ev)
	res := logs.ResourceLogs().At(0).Resource().Attributes().AsRaw()
	if len(res) != 1 || res["service.name"] != DefaultService {
		t.Errorf("resource %v", res)
	}
	attrs := logs.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes().AsRaw()
	for k, v := range attrs {
		if v == "" {
			t.Errorf("empty attribute %s", k)
		}
	}
}
