package auditevent_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"google.golang.org/protobuf/proto"
)

// jsonEqual reports whether a and b hold equal JSON values, ignoring key
// order and whitespace.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestGoldenSeedAttributes(t *testing.T) {
	seed := seedAttributes(t)
	ev := seedEvent(t)

	out := auditevent.EncodeJSON(ev)
	if !jsonEqual(t, seed, out) {
		t.Errorf("encoded event differs from the seed attributes\nseed:\n%s\nencoded:\n%s", seed, out)
	}

	wantTime := time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC)
	checks := []struct {
		name      string
		got, want any
	}{
		{"timestamp", ev.GetTimestamp().AsTime().Format(time.RFC3339Nano), wantTime.Format(time.RFC3339Nano)},
		{"timestamp nanos", ev.GetTimestamp().GetNanos(), int32(577846000)},
		{"timestamp formatted", auditevent.FormatTimestamp(ev.GetTimestamp().AsTime()), "2024-02-16T12:58:38.577846"},
		{"outcome.status-code", ev.GetOutcome().GetStatusCode(), int32(202)},
		{"outcome.result", ev.GetOutcome().GetResult(), "SUCCESS"},
		{"account id", auditevent.AccountID(ev), seedAccountID},
		{"account display-name", ev.GetTarget().GetContext().GetAccount().GetDisplayName(), "docs"},
		{"environment id", ev.GetTarget().GetContext().GetEnvironment().GetId(), "org-sscctbkdgkdrqg0"},
		{"workspace id", ev.GetTarget().GetContext().GetWorkspace().GetId(), "ws-v0o370ouv5kbjmk9h"},
		{"target id", ev.GetTarget().GetId(), "run-v0o370pcff0e53"},
		{"target type", ev.GetTarget().GetType(), "runs"},
		{"actor id", ev.GetActor().GetId(), "user-stp8qjepev3a123"},
		{"actor email", ev.GetActor().GetEmail(), "[email protected]"},
		{"access-token type", ev.GetActor().GetAccessToken().GetType(), "session"},
		{"access-token token", ev.GetActor().GetAccessToken().GetToken(), "...B6wifA"},
		{"request ip-address", ev.GetRequest().GetIpAddress(), "69.206.111.123"},
		{"request action", ev.GetRequest().GetAction(), "discard-run"},
		{"request source", ev.GetRequest().GetSource(), "ui"},
		{"hostname", ev.GetHostname(), "docs.scalr.io"},
		{"service", ev.GetService(), "audit-log"},
		{"no id in the seed", ev.GetId(), ""},
		{"no schema version in the seed", ev.GetSchemaVersion(), uint32(0)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	auditevent.MaskEvent(ev)
	if got := ev.GetActor().GetAccessToken().GetToken(); got != "...B6wifA" {
		t.Errorf("masked seed token = %q, want it kept as %q", got, "...B6wifA")
	}

	back, err := auditevent.DecodeJSON(out, strict)
	if err != nil {
		t.Fatalf("decode encoded seed: %v", err)
	}
	if !proto.Equal(ev, back) {
		t.Errorf("seed event changed through JSON:\n%v\n%v", ev, back)
	}
}

// A sink wraps the attributes in its own object (Datadog's "attributes");
// AppendAttributes must write exactly the seed's members even for a
// prepared event carrying an id, a schema version and extra attributes.
func TestGoldenAppendAttributes(t *testing.T) {
	seed := seedAttributes(t)
	ev := seedEvent(t)
	if err := auditevent.Prepare(ev, time.Now()); err != nil {
		t.Fatal(err)
	}
	ev.Extra = map[string]string{"k": "v"}

	w := auditevent.NewObjectWriter([]byte("{"))
	auditevent.AppendAttributes(w, ev)
	out := append(w.Bytes(), '}')
	if !json.Valid(out) {
		t.Fatalf("AppendAttributes wrote invalid JSON: %s", out)
	}
	if !jsonEqual(t, seed, out) {
		t.Errorf("attributes differ from the seed\nseed:\n%s\nwritten:\n%s", seed, out)
	}
}
