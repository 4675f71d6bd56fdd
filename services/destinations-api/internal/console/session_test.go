package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/bearer"
)

// oneTokenAPI accepts one operator token and answers every call it is
// made as that principal with an empty settings object and list.
type oneTokenAPI struct{ p *bearer.Principal }

func (o oneTokenAPI) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bearer.FromContext(r.Context()) != o.p {
			http.Error(w, `{"error":{"code":"unauthenticated","message":"no principal"}}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"streaming":false,"connections":[],"storage_profile":"","etag":"\"x\"","items":[]}`))
	})
}

func (o oneTokenAPI) Authenticate(token string) (*bearer.Principal, string) {
	if token == "the-token" {
		return o.p, ""
	}
	return nil, "bearer token is not valid"
}

// A session ends after session_ttl, on the server: the cookie a browser
// still holds opens nothing.
func TestSessionExpires(t *testing.T) {
	api := oneTokenAPI{p: &bearer.Principal{Name: "operator"}}
	c, err := New(Config{SessionTTL: time.Hour}, api, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := client.Get(srv.URL + "/console/sign-in")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = io.Copy(body, resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body.String())[1]
	req, _ := http.NewRequest("POST", srv.URL+"/console/sign-in", strings.NewReader(url.Values{"csrf": {csrf}, "token": {"the-token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range resp.Cookies() {
		req.AddCookie(ck)
	}
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil || session.MaxAge != 3600 {
		t.Fatalf("sign-in: %d, cookie %+v", resp.StatusCode, session)
	}
	open := func() *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/console/accounts/a/status", nil)
		req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	now = now.Add(time.Hour - time.Second)
	if r := open(); r.StatusCode != http.StatusOK {
		t.Fatalf("within the session's life: %d", r.StatusCode)
	}
	now = now.Add(time.Second)
	if r := open(); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/console/sign-in" {
		t.Fatalf("after the session's life: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
}
