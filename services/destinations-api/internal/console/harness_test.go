package console_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/destinations-api/internal/api"
	"github.com/auditstream/auditstream/services/destinations-api/internal/console"
	"github.com/auditstream/auditstream/services/destinations-api/internal/e2eharness"
	"github.com/auditstream/auditstream/services/internal/bearer"
)

// Tokens of the test installation: an operator, an admin of the seed's
// account and an admin of another account.
const (
	tokenOperator = "op-token-0123456789abcdefghijkl"
	tokenSeed     = "seed-admin-token-0123456789abcd"
	tokenOther    = "other-admin-token-0123456789abc"
	seedAccount   = "acc-sscctbisjkl3123"
	otherAccount  = "acc-other"
)

// harness is the API and its console on one test server, against an
// in-process broker with a key ring of its own.
type harness struct {
	t    testing.TB
	cfg  api.Config
	url  string
	logs *e2eharness.Log
}

func newHarness(t testing.TB, change ...func(*api.Config)) *harness {
	t.Helper()
	in := e2eharness.NewInstallation(t)
	cfg := api.DefaultConfig()
	e2eharness.UseCluster(&cfg.Kafka, in.Cluster)
	cfg.Auth.Tokens = []bearer.Token{
		e2eharness.Token("operator", tokenOperator, "*"),
		e2eharness.Token("seed-admin", tokenSeed, seedAccount),
		e2eharness.Token("other-admin", tokenOther, otherAccount),
	}
	cfg.Encryption.KeyringFile = in.Keyring
	for _, fn := range change {
		fn(&cfg)
	}
	h := &harness{t: t, cfg: cfg, logs: &e2eharness.Log{}}
	h.url = e2eharness.Serve(t, h.logs, func(ctx context.Context, log *zap.Logger) (e2eharness.Service, http.Handler, error) {
		svc, err := api.New(ctx, cfg, log, prometheus.NewRegistry())
		if err != nil {
			return nil, nil, err
		}
		con, err := console.New(cfg.Console, svc.API, log)
		if err != nil {
			svc.Close()
			return nil, nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("/v1/", svc.API.Handler())
		mux.Handle(console.Prefix, con.Handler())
		return svc, mux, nil
	})
	return h
}

func (h *harness) kafka() e2eharness.Kafka {
	return e2eharness.Kafka{Brokers: h.cfg.Kafka.Brokers, EventsTopic: h.cfg.Kafka.Topics.Events.Name,
		EventsPartitions: h.cfg.Kafka.Topics.Events.Partitions, DestinationsPartitions: h.cfg.Kafka.Topics.Destinations.Partitions}
}

// browser is a plain HTTP client with a cookie jar that does not follow
// redirects, so each answer can be checked; every body it reads is kept,
// to look for secrets afterwards.
type browser struct {
	t      testing.TB
	h      *harness
	c      *http.Client
	bodies *[]string
}

func (h *harness) browser(bodies *[]string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: h.t, h: h, bodies: bodies, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, headers ...string) answer {
	b.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.h.url+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if b.bodies != nil {
		var hdr strings.Builder
		_ = resp.Header.Write(&hdr)
		*b.bodies = append(*b.bodies, hdr.String()+"\n"+string(body))
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) answer { b.t.Helper(); return b.do("GET", path, nil) }

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of a page's forms.
func csrf(t testing.TB, a answer) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no CSRF token in the page (%d):\n%s", a.status, a.body)
	}
	return m[1]
}

// signIn signs in with token and returns the CSRF token of the session's
// forms.
func (b *browser) signIn(token string) string {
	b.t.Helper()
	page := b.get("/console/sign-in")
	a := b.do("POST", "/console/sign-in", url.Values{"csrf": {csrf(b.t, page)}, "token": {token}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != console.Prefix {
		b.t.Fatalf("sign-in answered %d (%s):\n%s", a.status, a.header.Get("Location"), a.body)
	}
	home := b.get(console.Prefix)
	if home.status == http.StatusSeeOther {
		home = b.get(home.header.Get("Location"))
	}
	if home.status != http.StatusOK {
		b.t.Fatalf("the first page after sign-in answered %d:\n%s", home.status, home.body)
	}
	return csrf(b.t, home)
}

var etagField = regexp.MustCompile(`name="etag" value="([^"]+)"`)

// etag is the entity tag a page's form sends back.
func etag(t testing.TB, a answer) string {
	t.Helper()
	m := etagField.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no etag in the page:\n%s", a.body)
	}
	return html.UnescapeString(m[1])
}

func mustStatus(t testing.TB, a answer, want int) {
	t.Helper()
	if a.status != want {
		t.Fatalf("status %d, want %d:\n%s", a.status, want, a.body)
	}
}
