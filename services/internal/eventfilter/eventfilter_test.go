package eventfilter

import (
	"fmt"
	"strings"
	"testing"

	"cel.dev/cel-go/cel"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

func seedEvent() *auditlogv1.AuditEvent {
	return &auditlogv1.AuditEvent{
		Id:      "a3a473d725c730382558c25d52bd1234",
		Actor:   &auditlogv1.Actor{Id: "user-stp8qjepev3a123", Type: "user", Email: "jane.doe@example.com", AccessToken: &auditlogv1.AccessToken{Type: "session", Token: "...B6wifA"}},
		Request: &auditlogv1.Request{IpAddress: "69.206.111.123", Action: "discard-run", Source: "ui"},
		Service: "audit-log",
		Outcome: &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 202},
		Target: &auditlogv1.Target{Id: "run-v0o370pcff0e53", Type: "runs",
			Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: "acc-sscctbisjkl3123"}}},
		Timestamp: timestamppb.Now(),
		Extra:     map[string]string{"ticket": "OPS-1234", "note": "x"},
	}
}

func TestFilterMatches(t *testing.T) {
	ev := seedEvent()
	failed := seedEvent()
	failed.Outcome.Result = "FAILURE"
	bare := &auditlogv1.AuditEvent{Id: "x"} // absent messages read as empty
	for _, c := range []struct {
		expr             string
		seed, fail, none bool
	}{
		{`event.target.type == "runs" && event.outcome.result != "SUCCESS"`, false, true, false},
		{`event.request.action.startsWith("discard-")`, true, true, false},
		{`event.outcome.status_code >= 400 || event.outcome.result == "FAILURE"`, false, true, false},
		{`"ticket" in event.extra && event.extra["ticket"].startsWith("OPS-")`, true, true, false},
		{`event.actor.email.endsWith("@example.com")`, true, true, false},
		{`event.timestamp > timestamp("2020-01-01T00:00:00Z")`, true, true, false},
		{`!(event.target.context.account.id in ["acc-other"])`, true, true, true},
	} {
		f, err := CompileFilter(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		for _, x := range []struct {
			ev   *auditlogv1.AuditEvent
			want bool
		}{{ev, c.seed}, {failed, c.fail}, {bare, c.none}} {
			got, err := f.Match(x.ev)
			if err != nil || got != x.want {
				t.Errorf("%s on %s: %v, %v; want %v", c.expr, x.ev.GetOutcome().GetResult(), got, err, x.want)
			}
		}
	}
}

// A typo is refused where it is, never a filter that drops everything.
func TestFilterRefusesBadExpressions(t *testing.T) {
	for _, c := range []struct{ expr, says string }{
		{``, "is empty"},
		{`event.target.typ == "runs"`, "1:13: undefined field 'typ'"},
		{`evnt.target.type == "runs"`, "undeclared reference to 'evnt'"},
		{`event.outcome.status_code == "202"`, "no matching overload"},
		{`event.target.type`, "must be a condition (a bool), not string"},
		{`event.target.type == "runs" &&`, "1:31: Syntax error"},
		{strings.Repeat("a", MaxFilterBytes+1), "over the 4096 byte limit"},
		{`event.extra.all(k, event.extra.all(j, event.extra.all(i, k + j + i != "")))`, "over the limit"},
	} {
		_, err := CompileFilter(c.expr)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%.40q: %v, want %q", c.expr, err, c.says)
		}
	}
}

func TestRedaction(t *testing.T) {
	key := []byte("connection-key-one")
	r, err := CompileRedaction([]Rule{
		{Path: "actor.email", Action: Drop},
		{Path: "request.ip_address", Action: Hash},
		{Path: "actor.id", Action: Mask, Keep: 3},
		{Path: "extra.ticket", Action: Mask},
		{Path: "extra.missing", Action: Drop},
		{Path: "request.user_agent", Action: Hash}, // absent: stays absent
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	ev := seedEvent()
	orig := proto.Clone(ev)
	out := r.Apply(ev)
	if !proto.Equal(ev, orig) {
		t.Fatal("Apply changed the shared event")
	}
	if out.Actor.Email != "" || out.Actor.Id != "...123" || out.Extra["ticket"] != "...1234" || out.Extra["note"] != "x" {
		t.Fatalf("redacted actor %+v extra %v", out.Actor, out.Extra)
	}
	if out.Request.UserAgent != "" || out.Request.IpAddress == ev.Request.IpAddress || len(out.Request.IpAddress) != 64 {
		t.Fatalf("hashed ip %q, user agent %q", out.Request.IpAddress, out.Request.UserAgent)
	}
	// The same address hashes alike within a connection, differently across.
	again := r.Apply(seedEvent())
	other, _ := CompileRedaction([]Rule{{Path: "request.ip_address", Action: Hash}}, []byte("connection-key-two"))
	if again.Request.IpAddress != out.Request.IpAddress || other.Apply(seedEvent()).Request.IpAddress == out.Request.IpAddress {
		t.Fatal("hashes do not follow the connection's key")
	}
	// An event without the messages on a path is left alone.
	if got := r.Apply(&auditlogv1.AuditEvent{Id: "x"}); got.Actor != nil || got.Request != nil {
		t.Fatalf("absent paths were created: %+v", got)
	}
	if r, _ := CompileRedaction(nil, nil); r.Apply(ev) != ev {
		t.Fatal("no rules should hand back the event itself")
	}
}

func TestRedactionRefusesBadRules(t *testing.T) {
	for _, c := range []struct {
		rule  Rule
		key   []byte
		field string
		says  string
	}{
		{Rule{Path: "actor.mail", Action: Drop}, nil, "path", `"mail" is not a field of Actor`},
		{Rule{Path: "actor.email.x", Action: Drop}, nil, "path", "actor.email is not a message"},
		{Rule{Path: "outcome.status_code", Action: Mask}, nil, "path", "not a string: only drop applies"},
		{Rule{Path: "actor.email", Action: "erase"}, nil, "action", `action "erase" is not drop, mask or hash`},
		{Rule{Path: "actor.email", Action: Hash}, nil, "action", "needs the connection's redaction key"},
		{Rule{Path: "actor.email", Action: Mask, Keep: 99}, nil, "keep", "keep must be between 1 and 64"},
		{Rule{Path: "actor.email", Action: Drop, Keep: 2}, nil, "keep", "keep applies to mask only"},
		{Rule{Path: "extra", Action: Drop}, nil, "path", "name one attribute of extra"},
		{Rule{Path: "target.context.account.id", Action: Hash}, []byte("k"), "path", "cannot be redacted"},
		{Rule{Path: "", Action: Drop}, nil, "path", "is not a field path"},
	} {
		_, err := CompileRedaction([]Rule{{Path: "actor.id", Action: Drop}, c.rule}, c.key)
		if err == nil || !strings.Contains(err.Error(), "[1]."+c.field+": ") || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want [1].%s and %q", c.rule, err, c.field, c.says)
		}
	}
	if _, err := CompileRedaction([]Rule{{Path: "actor.id", Action: Drop}, {Path: "actor.id", Action: Hash}}, []byte("k")); err == nil {
		t.Error("a path redacted twice was accepted")
	}
}

func FuzzCompileFilter(f *testing.F) {
	for _, s := range []string{`event.target.type == "runs"`, `event.extra["a"].size() > 2`, `[1,2].exists(x, x > 1)`, `event.actor.email.matches("^a.*")`,
		`event.extra.exists(k, k.startsWith("a"))`, `event.request.user_agent.contains(event.actor.email)`} {
		f.Add(s)
	}
	// A large event: the cost of an accepted filter must stay within
	// MaxCost on it, since evaluation runs without a cost tracker.
	big := seedEvent()
	big.Actor.Email = strings.Repeat("e", 64<<10)
	big.Request.UserAgent = strings.Repeat("u", 64<<10)
	for i := range 2000 {
		big.Extra[fmt.Sprintf("attr-%04d", i)] = strings.Repeat("v", 32)
	}
	env, err := celEnv()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := CompileFilter(expr)
		if err != nil {
			return
		}
		_, _ = flt.Match(seedEvent()) // must neither panic nor run unbounded
		ast, _ := env.Compile(expr)
		prg, err := env.Program(ast, cel.CostTracking(nil), cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			t.Fatal(err)
		}
		_, det, _ := prg.Eval(map[string]any{"event": big})
		if c := det.ActualCost(); c != nil && *c > MaxCost {
			t.Fatalf("%q was accepted but cost %d on a large event, over %d", expr, *c, MaxCost)
		}
	})
}
