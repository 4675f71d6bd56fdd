package console

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/bearer"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// maxFormBytes bounds a form's body; settings are small.
const maxFormBytes = 64 << 10

// maxSessions bounds the sessions kept; only a valid token creates one.
const maxSessions = 10000

// API is what the console needs of the destinations API: its routes, which
// it calls in process as the signed-in principal, and its token check.
type API interface {
	Handler() http.Handler
	Authenticate(token string) (*bearer.Principal, string)
}

// Console serves the pages. It is safe for concurrent use.
type Console struct {
	cfg   Config
	api   http.Handler
	auth  func(string) (*bearer.Principal, string)
	log   *zap.Logger
	pages map[string]*template.Template
	csp   string
	cop   *http.CrossOriginProtection
	now   func() time.Time

	mu       sync.Mutex
	sessions map[[sha256.Size]byte]*session
}

// session is one sign-in. Only the hash of its id is kept as the key, so a
// dump of memory does not hand out live cookies.
type session struct {
	principal *bearer.Principal
	csrf      string
	expires   time.Time
}

// New builds the console over api.
func New(cfg Config, api API, log *zap.Logger) (*Console, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{cfg: cfg, api: api.Handler(), auth: api.Authenticate, log: log, pages: map[string]*template.Template{},
		cop: http.NewCrossOriginProtection(), now: time.Now, sessions: map[[sha256.Size]byte]*session{}}
	for _, p := range []string{"signin", "accounts", "settings", "resource", "status", "archive", "message"} {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", p, err)
		}
		c.pages[p] = t
	}
	ancestors := "'none'"
	if len(cfg.FrameAncestors) > 0 {
		ancestors = strings.Join(cfg.FrameAncestors, " ")
	}
	// No script runs on any page; styles come from the console's own file.
	c.csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors " + ancestors
	return c, nil
}

// Handler serves /console/.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	mux.Handle("GET /console/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, Prefix, http.StatusFound) })
	mux.HandleFunc("GET /console/sign-in", c.signInPage)
	mux.HandleFunc("POST /console/sign-in", c.signIn)
	mux.HandleFunc("POST /console/sign-out", c.signedIn(c.signOut))
	mux.HandleFunc("GET /console/{$}", c.signedIn(c.home))
	mux.HandleFunc("GET /console/go", c.signedIn(c.goAccount))
	mux.HandleFunc("GET /console/accounts/{account}/{$}", c.signedIn(c.settingsPage))
	mux.HandleFunc("POST /console/accounts/{account}/audit-logs", c.signedIn(c.saveAuditLogs))
	mux.HandleFunc("GET /console/accounts/{account}/status", c.signedIn(c.statusPage))
	mux.HandleFunc("GET /console/accounts/{account}/archive", c.signedIn(c.archivePage))
	for _, col := range []string{collConnections, collStorageProfiles} {
		base := "/console/accounts/{account}/" + col
		mux.HandleFunc("GET "+base+"/_new", c.signedIn(c.newResource))
		mux.HandleFunc("GET "+base+"/{name}", c.signedIn(c.resourcePage))
		mux.HandleFunc("POST "+base, c.signedIn(c.saveResource))
		mux.HandleFunc("POST "+base+"/{name}/test", c.signedIn(c.testResource))
		mux.HandleFunc("POST "+base+"/{name}/delete", c.signedIn(c.deleteResource))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", c.csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if len(c.cfg.FrameAncestors) == 0 {
			h.Set("X-Frame-Options", "DENY")
		}
		if c.cfg.Disabled {
			http.NotFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

const (
	collConnections     = "connections"
	collStorageProfiles = "storage-profiles"
)

// call is one request, as the signed-in principal.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	s       *session
	account string
}

// signedIn runs h for a request with a live session; a POST must also carry
// the session's CSRF token and come from the console's own origin. A page
// of an account the principal may not manage answers 404, as the API does.
func (c *Console) signedIn(h func(*call)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"sign-in", http.StatusSeeOther)
				return
			}
			c.message(w, r, nil, http.StatusForbidden, "Signed out", "Your session has ended. Sign in again, then repeat what you did.")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.message(w, r, s, http.StatusBadRequest, "Bad request", "The form could not be read.")
				return
			}
			if err := c.cop.Check(r); err != nil || !sameToken(r.PostForm.Get("csrf"), s.csrf) {
				c.log.Warn("console form refused: CSRF check failed", zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr))
				c.message(w, r, s, http.StatusForbidden, "Form expired", "This form is not valid any more. Reload the page and try again.")
				return
			}
		}
		x := &call{w: w, r: r, s: s, account: r.PathValue("account")}
		if x.account != "" && !s.principal.MayAccess(x.account) {
			c.message(w, r, s, http.StatusNotFound, "Not found", "There is no account "+x.account+" here.")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(x)
	}
}

func sameToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// secureRequest reports whether cookies must be Secure: always, except
// when the browser reached the console over plain HTTP at a loopback name
// (the development stack, also in docker-compose), where a browser would
// not send a Secure cookie back. A proxy's X-Forwarded-Proto: https only
// ever makes them Secure, so it needs no trust.
func secureRequest(r *http.Request) bool {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return true
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	return !isLoopback(host)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// cookie names: with Secure, the __Host- prefix makes the browser refuse
// the cookie from a sibling domain or without Secure.
func cookieName(secure bool, base string) (name, path string) {
	if secure {
		return "__Host-" + base, "/"
	}
	return base, Prefix
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, base, value string, maxAge int) {
	secure := secureRequest(r)
	name, path := cookieName(secure, base)
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode})
}

func readCookie(r *http.Request, base string) string {
	name, _ := cookieName(secureRequest(r), base)
	ck, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return ck.Value
}

const (
	sessionCookie = "auditstream-console"
	signInCookie  = "auditstream-console-signin"
)

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *Console) session(r *http.Request) *session {
	id := readCookie(r, sessionCookie)
	if id == "" {
		return nil
	}
	key := sha256.Sum256([]byte(id))
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[key]
	if s == nil {
		return nil
	}
	if !c.now().Before(s.expires) {
		delete(c.sessions, key)
		return nil
	}
	return s
}

// page is what every template gets.
type page struct {
	Title     string
	CSRF      string
	Principal string
	Operator  bool
	Account   string
	Flash     string
	Problems  []problem
	Refresh   int
	Data      any
}

// problem is an error of a form, linked to its field when it has one.
type problem struct {
	ID, Label, Message string
}

func (c *Console) render(w http.ResponseWriter, s *session, status int, name string, p page) {
	if s != nil {
		p.CSRF, p.Principal, p.Operator = s.csrf, s.principal.Name, s.principal.AllAccounts()
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("console page could not be rendered", zap.String("page", name), zap.Error(err))
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) message(w http.ResponseWriter, _ *http.Request, s *session, status int, title, text string) {
	c.render(w, s, status, "message", page{Title: title, Data: text})
}

// signInPage shows the sign-in form, with a double-submit CSRF token: the
// same random value in an HttpOnly SameSite=Strict cookie and in the form.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	c.renderSignIn(w, r, http.StatusOK, "")
}

func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, why string) {
	tok := randomToken()
	c.setCookie(w, r, signInCookie, tok, 3600)
	f := fieldView{field: field{Label: "API token", Input: "secret",
		Help: "The bearer token of the destinations API. It is never shown again or stored in your browser."}, ID: "token", Error: why}
	p := page{Title: "Sign in", CSRF: tok, Data: struct{ Token fieldView }{f}}
	if why != "" {
		p.Problems = []problem{{ID: "token", Label: "API token", Message: why}}
	}
	c.render(w, nil, status, "signin", p)
}

// signIn checks the token as the API checks bearer tokens and starts a
// session; the token itself is kept nowhere.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.message(w, r, nil, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	if err := c.cop.Check(r); err != nil || !sameToken(r.PostForm.Get("csrf"), readCookie(r, signInCookie)) {
		c.log.Warn("console sign-in refused: CSRF check failed", zap.String("remote", r.RemoteAddr))
		c.renderSignIn(w, r, http.StatusForbidden, "This form expired; paste the token again.")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		c.renderSignIn(w, r, http.StatusUnauthorized, "Paste your API token.")
		return
	}
	p, why := c.auth(token)
	if p == nil {
		c.log.Info("console sign-in refused", zap.String("reason", why), zap.String("remote", r.RemoteAddr))
		c.renderSignIn(w, r, http.StatusUnauthorized, "This token is not valid here.")
		return
	}
	id := randomToken()
	now := c.now()
	c.mu.Lock()
	if len(c.sessions) >= maxSessions {
		for k, s := range c.sessions {
			if !now.Before(s.expires) {
				delete(c.sessions, k)
			}
		}
	}
	full := len(c.sessions) >= maxSessions
	if !full {
		c.sessions[sha256.Sum256([]byte(id))] = &session{principal: p, csrf: randomToken(), expires: now.Add(c.cfg.SessionTTL)}
	}
	c.mu.Unlock()
	if full {
		c.message(w, r, nil, http.StatusServiceUnavailable, "Too many sessions", "The console has too many open sessions; try again later.")
		return
	}
	c.log.Info("console sign-in", zap.String("principal", p.Name), zap.String("remote", r.RemoteAddr))
	c.setCookie(w, r, signInCookie, "", -1)
	c.setCookie(w, r, sessionCookie, id, int(c.cfg.SessionTTL/time.Second))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) signOut(x *call) {
	if id := readCookie(x.r, sessionCookie); id != "" {
		c.mu.Lock()
		delete(c.sessions, sha256.Sum256([]byte(id)))
		c.mu.Unlock()
	}
	c.setCookie(x.w, x.r, sessionCookie, "", -1)
	http.Redirect(x.w, x.r, Prefix+"sign-in", http.StatusSeeOther)
}

// apiAnswer is an answer of the API.
type apiAnswer struct {
	status int
	header http.Header
	body   []byte
}

// apiError is the API's error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"details"`
}

func (a apiAnswer) ok() bool { return a.status >= 200 && a.status < 300 }

func (a apiAnswer) decode(v any) error {
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	return dec.Decode(v)
}

func (a apiAnswer) err() apiError {
	var e struct {
		Error apiError `json:"error"`
	}
	if a.decode(&e) != nil || e.Error.Message == "" {
		return apiError{Code: "internal", Message: fmt.Sprintf("the API answered %d", a.status)}
	}
	return e.Error
}

// recorder is the ResponseWriter of an in-process call.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}

// apiPath is the API's path of segments, each escaped.
func apiPath(segments ...string) string {
	for i, p := range segments {
		segments[i] = url.PathEscape(p)
	}
	return "/v1/" + strings.Join(segments, "/")
}

// callAPI calls the API's handler in process as the session's principal: the
// same routes, validation, audit events and errors as over HTTP. The
// client's address goes along, for the audit events.
func (c *Console) callAPI(x *call, method, target string, body any, headers map[string]string) apiAnswer {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return apiAnswer{status: http.StatusInternalServerError, body: []byte(`{"error":{"code":"internal","message":"the form could not be encoded"}}`)}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(bearer.WithPrincipal(x.r.Context(), x.s.principal), method, target, rd)
	if err != nil {
		return apiAnswer{status: http.StatusBadRequest, body: []byte(`{"error":{"code":"invalid_argument","message":"not a valid name"}}`)}
	}
	req.RemoteAddr, req.Host = x.r.RemoteAddr, x.r.Host
	if xff := x.r.Header.Get("X-Forwarded-For"); xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	req.Header.Set("User-Agent", x.r.UserAgent())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := &recorder{h: http.Header{}}
	c.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return apiAnswer{status: rec.status, header: rec.h, body: rec.body.Bytes()}
}

// apiFailure shows an API error that concerns no form field.
func (c *Console) apiFailure(x *call, a apiAnswer) {
	e := a.err()
	title := "Something went wrong"
	switch a.status {
	case http.StatusNotFound:
		title = "Not found"
	case http.StatusServiceUnavailable:
		title = "Not available yet"
	}
	c.message(x.w, x.r, x.s, a.status, title, e.Message)
}
