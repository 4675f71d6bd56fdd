package otlptest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/internal/sink/otlp"
	"github.com/auditstream/auditstream/services/testsupport/otlptest"
	"github.com/auditstream/auditstream/services/testsupport/sinktest"
	"go.opentelemetry.io/collector/pdata/plog"
)

var seedTime = time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC)

// TestSeedThroughCollector: the seed event, sent by the sink to the
// Collector's own OTLP receiver, arrives with the documented body,
// attributes, resource, severity and timestamps, in protobuf and in JSON,
// gzip-compressed, with the tenant and auth headers.
func TestSeedThroughCollector(t *testing.T) {
	for _, enc := range []string{otlp.EncodingProtobuf, otlp.EncodingJSON} {
		t.Run(enc, func(t *testing.T) {
			rcv := otlptest.Start(t)
			s, err := otlp.New(otlp.Config{
				Endpoint: rcv.URL, AllowHTTP: true, Encoding: enc, Compression: otlp.CompressionGzip,
				TenantID: "tenant-7", Auth: otlp.Auth{Token: config.SecretLiteral("tok-1")},
			}, otlp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ev := sinktest.SeedEvent(t)
			ev.Id = "evt-seed-1"
			read := time.Date(2026, 12, 6, 18, 0, 0, 42, time.UTC)
			entry, err := otlp.NewEncoder(func() time.Time { return read }).EncodeEntry(ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.WriteBatch(context.Background(), []sink.Entry[otlp.Entry]{entry}); err != nil {
				t.Fatal(err)
			}
			exports := rcv.Exports()
			if len(exports) != 1 || exports[0].Logs.LogRecordCount() != 1 {
				t.Fatalf("%d exports", len(exports))
			}
			h := exports[0].Header
			if got := h["x-scope-orgid"]; len(got) != 1 || got[0] != "tenant-7" {
				t.Errorf("X-Scope-OrgID %v (headers %v)", got, keys(h))
			}
			if got := h["authorization"]; len(got) != 1 || got[0] != "Bearer tok-1" {
				t.Errorf("Authorization %v", got)
			}
			rl := exports[0].Logs.ResourceLogs().At(0)
			if got := rl.Resource().Attributes().AsRaw(); !maps.Equal(got, sinktest.SeedOTLPResource) {
				t.Errorf("resource %v", got)
			}
			sl := rl.ScopeLogs().At(0)
			if sl.Scope().Name() != otlp.ScopeName {
				t.Errorf("scope %q", sl.Scope().Name())
			}
			lr := sl.LogRecords().At(0)
			if got := lr.Attributes().AsRaw(); !maps.EqualFunc(got, sinktest.SeedOTLPAttributes, func(a, b any) bool { return a == b }) {
				b, _ := json.MarshalIndent(got, "", " ")
				t.Errorf("attributes:\n%s", b)
			}
			if got, want := lr.Body().Str(), string(auditevent.EncodeJSON(ev)); got != want {
				t.Errorf("body %s\nwant %s", got, want)
			}
			if !lr.Timestamp().AsTime().Equal(seedTime) || !lr.ObservedTimestamp().AsTime().Equal(read) {
				t.Errorf("time %v observed %v", lr.Timestamp().AsTime(), lr.ObservedTimestamp().AsTime())
			}
			if lr.SeverityNumber() != plog.SeverityNumberInfo || lr.SeverityText() != "INFO" || lr.EventName() != "discard-run" {
				t.Errorf("severity %v %q event %q", lr.SeverityNumber(), lr.SeverityText(), lr.EventName())
			}
		})
	}
}

// TestBatchThroughCollector: a batch of two accounts' events reaches the
// receiver as one request, one ResourceLogs per account, every event once.
func TestBatchThroughCollector(t *testing.T) {
	for _, enc := range []string{otlp.EncodingProtobuf, otlp.EncodingJSON} {
		t.Run(enc, func(t *testing.T) {
			rcv := otlptest.Start(t)
			s, err := otlp.New(otlp.Config{Endpoint: rcv.URL, AllowHTTP: true, Encoding: enc}, otlp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			e := otlp.NewEncoder(nil)
			var entries []sink.Entry[otlp.Entry]
			for i := range 200 {
				ev := sinktest.Event(i, seedTime.Add(time.Duration(i)*time.Millisecond))
				ev.Target.Context.Account.Id = fmt.Sprintf("acc-%d", i%2)
				b, err := e.EncodeEntry(ev)
				if err != nil {
					t.Fatal(err)
				}
				entries = append(entries, b)
			}
			if err := s.WriteBatch(context.Background(), entries); err != nil {
				t.Fatal(err)
			}
			exports := rcv.Exports()
			if len(exports) != 1 {
				t.Fatalf("%d exports", len(exports))
			}
			logs := exports[0].Logs
			if logs.ResourceLogs().Len() != 2 {
				t.Errorf("%d ResourceLogs for 2 accounts", logs.ResourceLogs().Len())
			}
			seen := map[string]int{}
			for i := range logs.ResourceLogs().Len() {
				rl := logs.ResourceLogs().At(i)
				acc, _ := rl.Resource().Attributes().Get(otlp.AttrAccountID)
				lrs := rl.ScopeLogs().At(0).LogRecords()
				for j := range lrs.Len() {
					id, _ := lrs.At(j).Attributes().Get(otlp.AttrEventID)
					var n int
					fmt.Sscanf(id.Str(), "evt-%d", &n)
					if want := fmt.Sprintf("acc-%d", n%2); acc.Str() != want {
						t.Errorf("%s under %s", id.Str(), acc.Str())
					}
					seen[id.Str()]++
				}
			}
			if len(seen) != 200 {
				t.Errorf("%d distinct events", len(seen))
			}
		})
	}
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
