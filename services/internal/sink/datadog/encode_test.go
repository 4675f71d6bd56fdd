package datadog

import (
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/sink"
)

const goldenPath = "testdata/seed-datadog-entry.json"

// TestEncodeGolden: the seed's example event encodes to the fixture, whose
// attributes are the seed's attributes and whose tags are the seed's tags.
func TestEncodeGolden(t *testing.T) {
	entry, err := NewEncoder("scalr", "").Encode(seedEvent(t))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(entry) {
		t.Fatalf("invalid JSON: %s", entry)
	}
	golden := readFile(t, goldenPath)
	jsonEqual(t, entry, golden)
	checkAgainstSeed(t, entry)
}

// checkAgainstSeed compares an entry with the seed's log itself: its
// attributes, host, service, source and tags.
func checkAgainstSeed(t *testing.T, entry []byte) {
	t.Helper()
	got := decode(t, entry)
	seed := decode(t, readFile(t, seedAttributesPath))

	if got["ddsource"] != "scalr" || got["hostname"] != "docs.scalr.io" || got["service"] != "audit-log" {
		t.Errorf("ddsource %v, hostname %v, service %v", got["ddsource"], got["hostname"], got["service"])
	}
	attrs := maps.Clone(got)
	for _, k := range []string{"ddsource", "ddtags", "message"} {
		delete(attrs, k)
	}
	if !reflect.DeepEqual(attrs, seed) {
		t.Errorf("attributes differ from the seed's:\n got %v\nwant %v", attrs, seed)
	}

	tags := map[string]string{}
	for _, tag := range strings.Split(got["ddtags"].(string), ",") {
		name, value, _ := strings.Cut(tag, ":")
		if _, dup := tags[name]; dup {
			t.Errorf("tag %s sent twice", name)
		}
		tags[name] = value
	}
	want := map[string]string{}
	for _, tag := range seedTags {
		name, value, _ := strings.Cut(tag, ":")
		want[name] = value
	}
	// Datadog adds this one itself, from how the log was authenticated.
	delete(want, "datadog.submission_auth")
	// The documentation's example was edited by hand: its environment tag
	// does not match the environment id it shows. The tag is the id.
	env := seed["target"].(map[string]any)["context"].(map[string]any)["environment"].(map[string]any)["id"].(string)
	if want["scalr-environment"] == env {
		t.Fatal("the seed's environment tag now matches its id: drop this exception")
	}
	want["scalr-environment"] = env
	if !maps.Equal(tags, want) {
		t.Errorf("tags differ from the seed's:\n got %v\nwant %v", tags, want)
	}
}

func TestEncodeTags(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	for _, tc := range []struct {
		name   string
		prefix string
		source string
		ev     *auditlogv1.AuditEvent
		want   string
	}{{
		name: "no context", prefix: "p",
		ev:   &auditlogv1.AuditEvent{},
		want: "source:p",
	}, {
		name: "only some values", prefix: "p",
		ev:   &auditlogv1.AuditEvent{Target: &auditlogv1.Target{Context: &auditlogv1.Context{Workspace: &auditlogv1.Ref{Id: "ws-1"}}}},
		want: "p-workspace:ws-1,source:p",
	}, {
		name: "lower-cased, environment id", prefix: "scalr",
		ev: &auditlogv1.AuditEvent{
			Actor:   &auditlogv1.Actor{Email: "Jane.Doe@Example.COM"},
			Request: &auditlogv1.Request{Action: "Apply-Run"},
			Target: &auditlogv1.Target{Context: &auditlogv1.Context{
				Environment: &auditlogv1.Ref{Id: "ENV-ABC", DisplayName: "Prod EU"},
				Workspace:   &auditlogv1.Ref{Id: "ws-1", DisplayName: "ÜMLAUT-WS"},
			}},
		},
		want: "scalr-workspace-name:ümlaut-ws,scalr-environment-name:prod eu,scalr-workspace:ws-1,scalr-user-email:jane.doe@example.com,scalr-action:apply-run,scalr-environment:env-abc,source:scalr",
	}, {
		name: "separators and escapes replaced", prefix: "p",
		ev:   &auditlogv1.AuditEvent{Request: &auditlogv1.Request{Action: "a,b\"c\\d\ne\x7ff\u2028g\xffh"}},
		want: "p-action:a_b_c_d_e_f_g_h,source:p",
	}, {
		name: "blank values left out", prefix: "p",
		ev:   &auditlogv1.AuditEvent{Request: &auditlogv1.Request{Action: "   "}, Actor: &auditlogv1.Actor{Email: " a@b "}},
		want: "p-user-email:a@b,source:p",
	}, {
		name: "cut to 200 bytes on a character boundary", prefix: "p",
		ev:   &auditlogv1.AuditEvent{Request: &auditlogv1.Request{Action: long}},
		want: "p-action:" + strings.Repeat("é", 95) + ",source:p",
	}, {
		name: "source configurable", prefix: "acme", source: "acme-audit",
		ev:   &auditlogv1.AuditEvent{Request: &auditlogv1.Request{Action: "x"}},
		want: "acme-action:x,source:acme-audit",
	}, {
		name: "defaults", prefix: "", source: "",
		ev:   &auditlogv1.AuditEvent{Request: &auditlogv1.Request{Action: "x"}},
		want: "auditstream-action:x,source:auditstream",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			enc := NewEncoder(tc.prefix, tc.source)
			entry, err := enc.Encode(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			got := decode(t, entry)
			if got["ddtags"] != tc.want {
				t.Errorf("ddtags\n got %q\nwant %q", got["ddtags"], tc.want)
			}
			for _, tag := range strings.Split(got["ddtags"].(string), ",") {
				if len(tag) > MaxTagBytes || !utf8.ValidString(tag) {
					t.Errorf("tag %q is %d bytes or not UTF-8", tag, len(tag))
				}
			}
			wantSource := tc.source
			if wantSource == "" {
				wantSource = tc.prefix
			}
			if wantSource == "" {
				wantSource = DefaultTagPrefix
			}
			if got["ddsource"] != wantSource {
				t.Errorf("ddsource %q, want %q", got["ddsource"], wantSource)
			}
		})
	}
}

func TestEncodeMessage(t *testing.T) {
	for _, tc := range []struct {
		ev   *auditlogv1.AuditEvent
		want string
	}{
		{seedEvent(t), "[email protected] discard-run runs run-v0o370pcff0e53: SUCCESS"},
		{&auditlogv1.AuditEvent{Actor: &auditlogv1.Actor{Id: "user-1"}, Request: &auditlogv1.Request{Action: "login"}}, "user-1 login"},
		{&auditlogv1.AuditEvent{Outcome: &auditlogv1.Outcome{Result: "FAILURE"}}, "FAILURE"},
		{&auditlogv1.AuditEvent{Actor: &auditlogv1.Actor{Email: "a\"b\\c\n"}, Target: &auditlogv1.Target{Id: "t"}}, "a\"b\\c\n t"},
		{&auditlogv1.AuditEvent{}, "audit event"},
	} {
		entry, err := NewEncoder("p", "").Encode(tc.ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := decode(t, entry)["message"]; got != tc.want {
			t.Errorf("message %q, want %q", got, tc.want)
		}
	}
}

func TestEncodeMembers(t *testing.T) {
	ev := seedEvent(t)
	ev.Id = "evt-123"
	ev.Service = ""
	ev.Extra = map[string]string{"zeta": "", "alpha": "1"}
	entry, err := NewEncoder("p", "").Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, entry)
	if _, ok := got["id"]; ok {
		t.Error(`top-level "id" is reserved by Datadog`)
	}
	if got["audit-id"] != "evt-123" {
		t.Errorf("audit-id %v", got["audit-id"])
	}
	if got["service"] != DefaultService {
		t.Errorf("service %v, want the default", got["service"])
	}
	if !reflect.DeepEqual(got["extra"], map[string]any{"alpha": "1", "zeta": ""}) {
		t.Errorf("extra %v", got["extra"])
	}
	if !strings.Contains(string(entry), `"extra":{"alpha":"1","zeta":""}`) {
		t.Errorf("extra keys not sorted: %s", entry)
	}
	// The attributes are exactly the event's JSON form.
	want := decode(t, auditevent.EncodeJSON(ev))
	delete(want, "id")
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
}

func TestEncodeTooLarge(t *testing.T) {
	ev := seedEvent(t)
	ev.Request.UserAgent = strings.Repeat("a", MaxEntryBytes)
	enc := NewEncoder("p", "")
	entry, err := enc.Encode(ev)
	if entry != nil {
		t.Error("an entry came back with the error")
	}
	var se *sink.SendError
	var re *RejectError
	if !errors.As(err, &se) || se.Class != sink.Permanent || !errors.As(err, &re) || re.Reason != ReasonEntryTooLarge {
		t.Fatalf("err = %#v", err)
	}
	if sink.Classify(err) != sink.Permanent {
		t.Error("not Permanent")
	}
	dst := []byte("keep")
	out, err := enc.AppendEntry(dst, ev)
	if err == nil || string(out) != "keep" {
		t.Errorf("AppendEntry = %q, %v", out, err)
	}
	// Just under the limit is fine.
	ev.Request.UserAgent = ""
	small, _ := enc.Encode(ev)
	ev.Request.UserAgent = strings.Repeat("a", MaxEntryBytes-len(small)-len(`,"user-agent":""`))
	if entry, err := enc.Encode(ev); err != nil || len(entry) != MaxEntryBytes {
		t.Errorf("len %d, err %v", len(entry), err)
	}
}

// TestEncodeHostileStrings: whatever the strings, the entry is valid JSON,
// and tags stay separate.
func TestEncodeHostileStrings(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", ",", ":", "\"", "\\", "\n", "\x00", "\x7f", "\xff", "é", "İ", "\u2028", " ", "<", "&", "日本", "\U0001F600"}
	str := func() string {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	enc := NewEncoder("p", "")
	for range 2000 {
		ev := &auditlogv1.AuditEvent{
			Id:       str(),
			Actor:    &auditlogv1.Actor{Email: str(), Id: str()},
			Request:  &auditlogv1.Request{Action: str(), UserAgent: str()},
			Hostname: str(),
			Outcome:  &auditlogv1.Outcome{Result: str()},
			Target: &auditlogv1.Target{Id: str(), Type: str(), Context: &auditlogv1.Context{
				Environment: &auditlogv1.Ref{Id: str(), DisplayName: str()},
				Workspace:   &auditlogv1.Ref{Id: str(), DisplayName: str()},
			}},
			Extra: map[string]string{str(): str()},
		}
		entry, err := enc.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(entry) {
			t.Fatalf("invalid JSON: %q", entry)
		}
		tags := strings.Split(decode(t, entry)["ddtags"].(string), ",")
		if tags[len(tags)-1] != "source:p" {
			t.Fatalf("tags %q", tags)
		}
		for _, tag := range tags {
			name, _, _ := strings.Cut(tag, ":")
			if name != "source" && !strings.HasPrefix(name, "p-") {
				t.Fatalf("a value leaked into a new tag: %q in %q", tag, tags)
			}
		}
	}
}

// TestEncodeReuse: pooled buffers never leak one entry into another.
func TestEncodeReuse(t *testing.T) {
	enc := NewEncoder("p", "")
	big := seedEvent(t)
	small := event(1, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	wantBig, _ := enc.Encode(big)
	wantSmall, _ := enc.Encode(small)
	for range 50 {
		b, _ := enc.Encode(big)
		s, _ := enc.Encode(small)
		if string(b) != string(wantBig) || string(s) != string(wantSmall) {
			t.Fatal("entries changed between calls")
		}
	}
	got, err := enc.AppendEntry([]byte("x"), small)
	if err != nil || string(got) != "x"+string(wantSmall) {
		t.Errorf("AppendEntry = %q, %v", got, err)
	}
}

func TestConfigEncoder(t *testing.T) {
	enc := Config{TagPrefix: "scalr"}.Encoder()
	entry, _ := enc.Encode(seedEvent(t))
	jsonEqual(t, entry, readFile(t, goldenPath))
	if !slices.Contains(strings.Split(decode(t, entry)["ddtags"].(string), ","), "source:scalr") {
		t.Error("source tag missing")
	}
}
