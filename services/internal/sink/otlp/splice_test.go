package otlp

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/testsupport/sinktest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// pdataRequest is the straightforward request the splice must match: each
// entry decoded into pdata, its record copied under the ResourceLogs of its
// account and service.name, the whole marshalled.
func pdataRequest(t *testing.T, entries [][]byte, idx []int) []byte {
	t.Helper()
	all := decodeAll(t, entries)
	out := plog.NewLogs()
	groups := map[string]plog.LogRecordSlice{}
	for _, i := range idx {
		rl := all[i].ResourceLogs().At(0)
		sl := rl.ScopeLogs().At(0)
		var k string
		if v, ok := rl.Resource().Attributes().Get(AttrAccountID); ok {
			k = v.Str()
		}
		k += "\x00"
		if v, ok := rl.Resource().Attributes().Get(AttrServiceName); ok {
			k += v.Str()
		}
		records, ok := groups[k]
		if !ok {
			nrl := out.ResourceLogs().AppendEmpty()
			rl.Resource().CopyTo(nrl.Resource())
			nrl.SetSchemaUrl(rl.SchemaUrl())
			nsl := nrl.ScopeLogs().AppendEmpty()
			sl.Scope().CopyTo(nsl.Scope())
			nsl.SetSchemaUrl(sl.SchemaUrl())
			records = nsl.LogRecords()
			groups[k] = records
		}
		sl.LogRecords().At(0).CopyTo(records.AppendEmpty())
	}
	b, err := plogotlp.NewExportRequestFromLogs(out).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spliced(t *testing.T, entries [][]byte, idx []int) []byte {
	t.Helper()
	return spliceRequest(nil, batchOf(t, entries), idx)
}

// FuzzSpliceMatchesPdata: the spliced request is byte for byte the pdata
// path's, whatever the events hold and however they group.
func FuzzSpliceMatchesPdata(f *testing.F) {
	f.Add("acc-1", "acc-2", "audit-log", "", "runs:create", "jane@example.com", "", uint8(5), uint8(0b10110))
	f.Add("", "acc-é", "", "svc", "", "", "https://opentelemetry.io/schemas/1.30.0", uint8(1), uint8(0))
	f.Add("a\x00b", "a", "\x00", "b", "x", strings.Repeat("y", 300), "s", uint8(17), uint8(0xff))
	f.Fuzz(func(t *testing.T, acc1, acc2, svc1, svc2, action, email, schema string, n, pattern uint8) {
		enc := NewEncoder(nil)
		var m plog.ProtoMarshaler
		count := int(n%24) + 1
		entries := make([][]byte, count)
		for i := range count {
			ev := sinktest.Event(i, t0)
			ev.Target.Context.Account.Id = acc1
			ev.Service = svc1
			if pattern>>(i%8)&1 == 1 {
				ev.Target.Context.Account.Id = acc2
			}
			if i%3 == 1 {
				ev.Service = svc2
			}
			ev.Request.Action = action
			ev.Actor.Email = email + fmt.Sprint(i)
			// Encode sets no schema_url; the splice carries one over all the same.
			logs := enc.Logs(ev)
			if i%2 == 0 {
				logs.ResourceLogs().At(0).SetSchemaUrl(schema)
			} else {
				logs.ResourceLogs().At(0).ScopeLogs().At(0).SetSchemaUrl(schema)
			}
			if pattern&0x80 != 0 && i%5 == 4 {
				// Not a string: grouped as no account, as pdata's Str gives.
				logs.ResourceLogs().At(0).Resource().Attributes().PutInt(AttrAccountID, int64(i))
			}
			b, err := m.MarshalLogs(logs)
			if err != nil {
				t.Skip() // strings pdata cannot marshal are not the splice's
			}
			if i%2 == 1 {
				// An entry in the middle of a larger buffer: its parts are
				// found by offset all the same.
				buf := make([]byte, i+len(b)+int(n))
				b = buf[i : i+copy(buf[i:], b)]
			}
			entries[i] = b
		}
		idx := make([]int, 0, count)
		for i := range count {
			if i%4 != int(pattern%4) || count == 1 { // a subset, as bisection sends
				idx = append(idx, i)
			}
		}
		if want, got := pdataRequest(t, entries, idx), spliced(t, entries, idx); !bytes.Equal(want, got) {
			t.Fatalf("spliced request differs from pdata's:\n got %x\nwant %x", got, want)
		}
	})
}

// TestParseEntryRejects: what Encode cannot have made is a bad entry.
func TestParseEntryRejects(t *testing.T) {
	one := NewEncoder(nil).Logs(sinktest.Event(1, t0))
	two := plog.NewLogs()
	one.CopyTo(two)
	two.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty()
	noRecord := plog.NewLogs()
	one.CopyTo(noRecord)
	noRecord.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().RemoveIf(func(plog.LogRecord) bool { return true })
	twoRL := plog.NewLogs()
	one.ResourceLogs().CopyTo(twoRL.ResourceLogs())
	one.ResourceLogs().At(0).CopyTo(twoRL.ResourceLogs().AppendEmpty())
	var m plog.ProtoMarshaler
	marshal := func(l plog.Logs) []byte {
		b, err := m.MarshalLogs(l)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := marshal(one)
	if _, err := parseEntry(good); err != nil {
		t.Fatalf("a good entry: %v", err)
	}
	for name, b := range map[string][]byte{
		"two records":       marshal(two),
		"no record":         marshal(noRecord),
		"two resource logs": marshal(twoRL),
		"empty":             {},
		"truncated":         good[:len(good)-3],
		"not protobuf":      []byte("not protobuf \xff\xff"),
		"unknown field":     append(bytes.Clone(good), 0x10, 0x01),
	} {
		if _, err := parseEntry(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
