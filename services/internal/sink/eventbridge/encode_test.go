package eventbridge

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
)

// The seed's example event becomes an entry whose Detail is the seed's JSON
// plus the event id, and whose Time is the event's timestamp.
func TestSeedEventEntry(t *testing.T) {
	ev := seedEvent(t)
	ev.Id = "0190b1c2-0000-7000-8000-000000000001"
	enc := Config{Region: "eu-west-1", Prefix: "scalr"}.Encoder()
	b, err := enc.EncodeEntry(ev)
	if err != nil {
		t.Fatal(err)
	}
	e := fieldsOf(b)
	want := decode(t, readFile(t, seedAttributesPath))
	want["id"] = ev.Id
	wantJSON, _ := json.Marshal(want)
	jsonEqual(t, e.Detail, wantJSON)
	if !strings.HasPrefix(string(e.Detail), `{"id":"0190b1c2-0000-7000-8000-000000000001","actor":{`) {
		t.Errorf("detail does not start with the id: %.60s", e.Detail)
	}
	if want := time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC); !e.Time.Equal(want) {
		t.Errorf("time %s, want %s", e.Time, want)
	}
	if len(e.Resources) != 0 {
		t.Errorf("resources %v for a run target", e.Resources)
	}
	if got, want := enc.EntrySize(b), len("scalr.audit-log")+len("Audit Event")+TimeBytes+len(e.Detail); got != want {
		t.Errorf("size %d, want %d", got, want)
	}
}

func TestResources(t *testing.T) {
	for _, c := range []struct {
		target string
		want   []string
	}{
		{"run-v0o370pcff0e53", nil},
		{"arn:aws:s3:::audit-bucket", []string{"arn:aws:s3:::audit-bucket"}},
		{"arn:aws:iam::123456789012:role/writer", []string{"arn:aws:iam::123456789012:role/writer"}},
		{"arn:aws-us-gov:ec2:us-gov-west-1:123456789012:instance/i-1", []string{"arn:aws-us-gov:ec2:us-gov-west-1:123456789012:instance/i-1"}},
		{"arn:aws:s3", nil},
		{"arn::s3:::x", nil},
		{"arn:aws:s3:::", nil},
		{"arn:aws:s3:::with space", nil},
		{"ARN:aws:s3:::upper", nil},
		{"", nil},
	} {
		ev := event(1, time.Now())
		ev.Target.Id = c.target
		b, err := Config{Region: "eu-west-1"}.Encoder().EncodeEntry(ev)
		if err != nil {
			t.Fatal(err)
		}
		e := fieldsOf(b)
		if strings.Join(e.Resources, ",") != strings.Join(c.want, ",") {
			t.Errorf("target %q: resources %q, want %q", c.target, e.Resources, c.want)
		}
	}
}

// EntrySize counts as AWS does: UTF-8 bytes of Source, DetailType, Detail
// and each resource, plus 14 for Time. The fake computes it from what it
// receives, independently, and the two agree.
func TestEntrySizeAsAWSCountsIt(t *testing.T) {
	f, cfg := fakeBus(t)
	cfg.Source = "com.exämple.audit"
	cfg.DetailType = "Prüfereignis 監査"
	enc := cfg.Encoder()
	cases := []*auditlogv1.AuditEvent{event(1, time.Now()), event(2, time.Now()), event(3, time.Now()), event(4, time.Now())}
	cases[1].Actor.Email = "日本語@例え.jp" // multi-byte UTF-8 in the detail
	cases[2].Timestamp = nil           // no Time: EventBridge uses the call's time
	cases[3].Target.Id = "arn:aws:s3:::bücket-ärn"
	cases[3].Extra = map[string]string{"emoji": "🚀🚀", "ctl": "a\x01b\"c\\"}
	var entries []sink.Entry[Entry]
	var want []int
	for _, ev := range cases {
		b, err := enc.EncodeEntry(ev)
		if err != nil {
			t.Fatal(err)
		}
		e := fieldsOf(b)
		n := len(cfg.Source) + len(cfg.DetailType) + len(e.Detail)
		if !e.Time.IsZero() {
			n += 14
		}
		for _, r := range e.Resources {
			n += len(r)
		}
		if got := enc.EntrySize(b); got != n || b.Size != n {
			t.Errorf("event %s: EntrySize %d, entry's Size %d, want %d", ev.Id, got, b.Size, n)
		}
		entries = append(entries, b)
		want = append(want, n)
	}
	if err := newSink(t, cfg).WriteBatch(t.Context(), entries); err != nil {
		t.Fatal(err)
	}
	got := f.Entries("audit")
	if len(got) != len(want) {
		t.Fatalf("%d entries arrived, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.Size() != want[i] {
			t.Errorf("entry %d: the fake counts %d bytes, the encoder %d", i, e.Size(), want[i])
		}
		if !json.Valid([]byte(e.Detail)) {
			t.Errorf("entry %d: detail is not JSON", i)
		}
	}
	if got[2].Time != nil {
		t.Errorf("an event without timestamp was sent with Time %v", got[2].Time)
	}
	if got[0].Source != cfg.Source || got[0].DetailType != cfg.DetailType || got[0].EventBusName != "audit" {
		t.Errorf("entry labels %q %q %q", got[0].Source, got[0].DetailType, got[0].EventBusName)
	}
}

// An event over 256 KiB as AWS counts it is refused by Encode with a
// Permanent error naming the reason; one exactly at the limit passes.
func TestEntryTooLarge(t *testing.T) {
	enc := Config{Region: "eu-west-1"}.Encoder()
	ev := event(1, time.Now())
	ev.Extra = map[string]string{"pad": ""}
	b, err := enc.EncodeEntry(ev)
	if err != nil {
		t.Fatal(err)
	}
	ev.Extra["pad"] = strings.Repeat("x", MaxCallBytes-enc.EntrySize(b))
	b, err = enc.EncodeEntry(ev)
	if err != nil {
		t.Fatalf("an entry of exactly %d bytes: %v", MaxCallBytes, err)
	}
	if n := enc.EntrySize(b); n != MaxCallBytes {
		t.Fatalf("size %d, want %d", n, MaxCallBytes)
	}
	for _, extra := range []int{1, 300 << 10} {
		ev.Extra["pad"] += strings.Repeat("y", extra)
		_, err = enc.EncodeEntry(ev)
		var se *sink.SendError
		var re *RejectError
		if !errors.As(err, &se) || se.Class != sink.Permanent || !errors.As(err, &re) || re.Reason != ReasonEntryTooLarge {
			t.Fatalf("%d bytes over: %v", extra, err)
		}
		if !strings.Contains(err.Error(), "entry_too_large") {
			t.Errorf("error %q does not name the reason", err)
		}
	}
}

func TestDetailExtraSortedAndEscaped(t *testing.T) {
	ev := event(7, time.Unix(1700000000, 0))
	ev.Extra = map[string]string{"b": "2", "a": "line\nbreak \u2028", "empty": ""}
	b, err := Config{Region: "eu-west-1"}.Encoder().EncodeEntry(ev)
	if err != nil {
		t.Fatal(err)
	}
	e := fieldsOf(b)
	if !json.Valid(e.Detail) {
		t.Fatalf("detail is not JSON: %s", e.Detail)
	}
	if !strings.HasSuffix(string(e.Detail), `"extra":{"a":"line\nbreak \u2028","b":"2","empty":""}}`) {
		t.Errorf("extra: %s", e.Detail)
	}
}

// fields is what an entry puts in its PutEvents entry besides Source and
// DetailType.
type fields struct {
	Time      time.Time
	Resources []string
	Detail    []byte
}

func fieldsOf(e sink.Entry[Entry]) fields { return fields{e.Time, e.Value.Resources, e.Value.Detail} }

// The fake's Size is the one the encoder's is checked against; check it
// against AWS's published rule directly too.
func TestFakeSizeRule(t *testing.T) {
	at := time.Now()
	e := ebfake.Entry{Source: "é", DetailType: "ab", Detail: `{"k":"日"}`, Resources: []string{"arn:x"}, Time: &at}
	if got, want := e.Size(), 2+2+len(`{"k":"日"}`)+5+14; got != want {
		t.Fatalf("size %d, want %d", got, want)
	}
	e.Time = nil
	e.Resources = nil
	if got, want := e.Size(), 2+2+len(`{"k":"日"}`); got != want {
		t.Fatalf("size %d, want %d", got, want)
	}
}
