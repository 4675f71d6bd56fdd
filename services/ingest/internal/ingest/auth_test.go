package ingest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/bearer"
)

const (
	tokenAll  = "tok-all-0123456789abcdefghij"
	tokenAcme = "tok-acme-0123456789abcdefghij"
	tokenTwo  = "tok-two-0123456789abcdefghij"
)

// withTokens configures three producers: one for every account, one for
// acme only, one for two accounts through a "*" entry (which means all).
func withTokens(c *Config) {
	c.Ingest.Auth = Auth{Tokens: []Token{
		{Name: "all", SHA256: hashToken(tokenAll)},
		{Name: "acme-only", SHA256: strings.ToUpper(hashToken(tokenAcme)), Accounts: []string{"acme"}},
		{Name: "star", SHA256: hashToken(tokenTwo), Accounts: []string{"acme", "*"}},
	}}
}

func TestAuth(t *testing.T) {
	h := newHarness(t, withTokens)
	open := newHarness(t) // auth.disabled

	one := func(acc string) request { return jsonReq(newEvent(acc).JSON()) }
	withAuth := func(r request, auth string) request { r.auth = auth; return r }
	cases := []struct {
		name    string
		h       *harness
		req     request
		status  int
		code    string
		details []wantDetail
	}{
		{name: "auth disabled, no header", h: open, req: one("acme"), status: 202},
		{name: "auth disabled, any header", h: open, req: withAuth(one("acme"), "Bearer whatever"), status: 202},
		{name: "valid token", h: h, req: withAuth(one("globex"), "Bearer "+tokenAll), status: 202},
		{name: "scheme in lower case", h: h, req: withAuth(one("globex"), "bearer "+tokenAll), status: 202},
		{name: "token with surrounding space", h: h, req: withAuth(one("globex"), "Bearer   "+tokenAll+"  "), status: 202},
		{name: "upper-case hex hash in config", h: h, req: withAuth(one("acme"), "Bearer "+tokenAcme), status: 202},
		{name: "restricted token, own account", h: h, req: withAuth(jsonReq(jsonArray(newEvent("acme"), newEvent("acme"))), "Bearer "+tokenAcme), status: 202},
		{name: "star in accounts allows all", h: h, req: withAuth(one("globex"), "Bearer "+tokenTwo), status: 202},
		{name: "missing header", h: h, req: one("acme"), status: 401, code: "unauthorized"},
		{name: "wrong token", h: h, req: withAuth(one("acme"), "Bearer not-a-configured-token"), status: 401, code: "unauthorized"},
		{name: "the hash instead of the token", h: h, req: withAuth(one("acme"), "Bearer "+hashToken(tokenAll)), status: 401, code: "unauthorized"},
		{name: "token prefix", h: h, req: withAuth(one("acme"), "Bearer "+tokenAll[:10]), status: 401, code: "unauthorized"},
		{name: "basic auth", h: h, req: withAuth(one("acme"), "Basic dXNlcjpwYXNz"), status: 401, code: "unauthorized"},
		{name: "scheme without token", h: h, req: withAuth(one("acme"), "Bearer"), status: 401, code: "unauthorized"},
		{name: "scheme with blank token", h: h, req: withAuth(one("acme"), "Bearer    "), status: 401, code: "unauthorized"},
		{name: "token without scheme", h: h, req: withAuth(one("acme"), tokenAll), status: 401, code: "unauthorized"},
		{name: "scheme glued to token", h: h, req: withAuth(one("acme"), "Bearer"+tokenAll), status: 401, code: "unauthorized"},
		{name: "restricted token, other account", h: h, req: withAuth(one("globex"), "Bearer "+tokenAcme), status: 403, code: "forbidden",
			details: []wantDetail{{0, "target.context.account.id", "forbidden"}}},
		{name: "restricted token, mixed accounts", h: h, req: withAuth(jsonReq(jsonArray(newEvent("acme"), newEvent("globex"), newEvent("acme"), newEvent("initech"))), "Bearer "+tokenAcme), status: 403, code: "forbidden",
			details: []wantDetail{{1, "target.context.account.id", "forbidden"}, {3, "target.context.account.id", "forbidden"}}},
		{name: "invalid event is a 400 before the 403", h: h, req: withAuth(jsonReq(newEvent("globex").with("timestamp", "x").JSON()), "Bearer "+tokenAcme), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "timestamp", auditevent.ReasonBadTimestamp}}},
		{name: "401 before 415", h: h, req: request{body: []byte("x")}, status: 401, code: "unauthorized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.h.endOffsets()
			a := tc.h.post(tc.req)
			if a.status != tc.status || (tc.status != 202 && a.err.Error.Code != tc.code) {
				t.Fatalf("answer %v, want %d %s", a, tc.status, tc.code)
			}
			for _, tok := range []string{tokenAll, tokenAcme, tokenTwo} {
				if strings.Contains(string(a.raw), tok) {
					t.Errorf("the answer echoes a token: %s", a.raw)
				}
			}
			if tc.status == 401 {
				if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
			if tc.status == 202 {
				if got := tc.h.endOffsets(); got != before+int64(len(a.ids)) || len(a.ids) == 0 {
					t.Errorf("%d ids answered, topic grew by %d", len(a.ids), got-before)
				}
				return
			}
			var got []wantDetail
			for _, d := range a.err.Error.Details {
				got = append(got, wantDetail{d.Index, d.Field, d.Reason})
			}
			if !equalDetails(got, tc.details) {
				t.Errorf("details %+v, want %+v", got, tc.details)
			}
			tc.h.assertNothingWritten(before)
		})
	}
	m := h.scrape()
	if m[`auditstream_ingest_events_rejected_total{reason="unauthorized"}`] < 1 || m[`auditstream_ingest_events_rejected_total{reason="forbidden"}`] < 1 {
		t.Errorf("rejections by auth are not counted")
	}
}

func equalDetails(a, b []wantDetail) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAuthenticatorUnit(t *testing.T) {
	a := bearer.New(Auth{Tokens: []Token{{Name: "x", SHA256: hashToken("secret"), Accounts: []string{"a", "b"}}}})
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer secret")
	p, why := a.Authenticate(hdr)
	if p == nil || why != "" || p.Name != "x" {
		t.Fatalf("principal %+v, %q", p, why)
	}
	for acc, want := range map[string]bool{"a": true, "b": true, "c": false, "": false} {
		if p.MayAccess(acc) != want {
			t.Errorf("mayWrite(%q) = %v", acc, !want)
		}
	}
	hdr.Set("Authorization", "Bearer secreT")
	if p, why := a.Authenticate(hdr); p != nil || why == "" || strings.Contains(why, "secreT") {
		t.Errorf("wrong token: %+v %q", p, why)
	}
}
