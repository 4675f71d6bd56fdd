package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/server"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// start serves s on an ephemeral port until the test ends (or stop is
// called) and returns its base URL and Serve's result.
func start(t *testing.T, s *server.Server) (url string, stop context.CancelFunc, served <-chan error) {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() { errc <- s.Serve(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return "http://" + s.Addr(), cancel, errc
}

func newServer(t *testing.T, mutate ...func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Default("127.0.0.1:0")
	for _, m := range mutate {
		m(&cfg)
	}
	return server.New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
}

// fresh is a client that opens a new connection for every request.
var fresh = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := fresh.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*server.Config)
		want   []string
	}{
		{"defaults", func(*server.Config) {}, nil},
		{"any interface", func(c *server.Config) { c.Addr = "0.0.0.0:8080" }, nil},
		{"port only", func(c *server.Config) { c.Addr = ":8080" }, nil},
		{"no port", func(c *server.Config) { c.Addr = "localhost" }, []string{"addr"}},
		{"empty addr", func(c *server.Config) { c.Addr = "" }, []string{"addr"}},
		{"zero shutdown", func(c *server.Config) { c.ShutdownTimeout = 0 }, []string{"shutdown_timeout"}},
		{"every timeout", func(c *server.Config) {
			c.ShutdownTimeout, c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout = 0, -1, 0, 0, 0
		}, []string{"shutdown_timeout", "read_header_timeout", "read_timeout", "write_timeout", "idle_timeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := server.Default("127.0.0.1:8080")
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w+": ") {
					t.Errorf("error %q lacks %s", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tc.want) {
				t.Errorf("%d problems, want %d: %q", n, len(tc.want), err)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	s := newServer(t)
	s.AddCheck("down", func(context.Context) error { return errors.New("down") })
	url, _, _ := start(t, s)
	code, _, body := get(t, url+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Errorf("healthz %d %q: liveness must not depend on readiness checks", code, body)
	}
	resp, err := fresh.Post(url+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d", resp.StatusCode)
	}
}

type readiness struct {
	Status string `json:"status"`
	Checks map[string]struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"checks"`
}

func TestReadyz(t *testing.T) {
	cases := []struct {
		name   string
		checks map[string]server.Check
		code   int
		status string
		detail map[string]string // check → status
	}{
		{"no checks", nil, 200, "ready", map[string]string{}},
		{"all pass", map[string]server.Check{
			"kafka": func(context.Context) error { return nil },
			"disk":  func(context.Context) error { return nil },
		}, 200, "ready", map[string]string{"kafka": "ok", "disk": "ok"}},
		{"one fails", map[string]server.Check{
			"kafka": func(context.Context) error { return errors.New("kafka is not reachable") },
			"disk":  func(context.Context) error { return nil },
		}, 503, "not ready", map[string]string{"kafka": "failing", "disk": "ok"}},
		{"a slow check times out", map[string]server.Check{
			"slow": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		}, 503, "not ready", map[string]string{"slow": "failing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			for name, c := range tc.checks {
				s.AddCheck(name, c)
			}
			url, _, _ := start(t, s)
			began := time.Now()
			code, hdr, body := get(t, url+"/readyz")
			if took := time.Since(began); took > 4*time.Second {
				t.Errorf("readyz took %v", took)
			}
			if code != tc.code || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("readyz %d %s %q", code, hdr.Get("Content-Type"), body)
			}
			var r readiness
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if r.Status != tc.status || len(r.Checks) != len(tc.detail) {
				t.Errorf("readiness %+v", r)
			}
			for name, want := range tc.detail {
				got := r.Checks[name]
				if got.Status != want || (want == "failing") != (got.Error != "") {
					t.Errorf("check %s: %+v, want %s", name, got, want)
				}
			}
		})
	}
}

func TestReadyzFollowsTheCheck(t *testing.T) {
	s := newServer(t)
	var up atomic.Bool
	s.AddCheck("dep", func(context.Context) error {
		if !up.Load() {
			return errors.New("dependency down")
		}
		return nil
	})
	url, _, _ := start(t, s)
	if code, _, _ := get(t, url+"/readyz"); code != 503 {
		t.Errorf("down: %d", code)
	}
	up.Store(true)
	if code, _, _ := get(t, url+"/readyz"); code != 200 {
		t.Errorf("up: %d", code)
	}
	// a check added later counts too
	s.AddCheck("late", func(context.Context) error { return errors.New("not yet") })
	if code, _, body := get(t, url+"/readyz"); code != 503 || !strings.Contains(body, "not yet") {
		t.Errorf("late check: %d %s", code, body)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	s := newServer(t)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_test_things_total", Help: "Things."})
	s.Registry.MustRegister(c)
	c.Add(3)
	url, _, _ := start(t, s)
	code, hdr, body := get(t, url+"/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{"auditstream_test_things_total 3", "go_goroutines", "process_"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestHandleAndUnknownPaths(t *testing.T) {
	s := newServer(t)
	s.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "api "+r.URL.Path) }))
	url, _, _ := start(t, s)
	if code, _, body := get(t, url+"/v1/things"); code != 200 || body != "api /v1/things" {
		t.Errorf("%d %q", code, body)
	}
	if code, _, _ := get(t, url+"/nothing-here"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

func TestServesHTTP2WithoutTLS(t *testing.T) {
	s := newServer(t)
	url, _, _ := start(t, s)
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true) // prior knowledge, as gRPC clients do
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Errorf("%s %d", resp.Proto, resp.StatusCode)
	}
}

func TestListen(t *testing.T) {
	s := newServer(t)
	if s.Addr() != "127.0.0.1:0" {
		t.Errorf("Addr before Listen: %s", s.Addr())
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s.Addr())
	if port == "0" || port == "" {
		t.Errorf("Addr after Listen: %s", s.Addr())
	}
	// the port is taken now
	taken := newServer(t, func(c *server.Config) { c.Addr = s.Addr() })
	if err := taken.Listen(); err == nil || !strings.Contains(err.Error(), s.Addr()) {
		t.Errorf("second Listen on %s: %v", s.Addr(), err)
	}
	if err := taken.Serve(context.Background()); err == nil {
		t.Error("Serve on a taken port returned nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Serve(ctx); err != nil { // cancelled before it began: a clean stop
		t.Errorf("Serve with a done context: %v", err)
	}
}

// TestServeDrainsInFlight cancels Serve's context while a request is being
// handled: the request completes, new connections are refused, and Serve
// returns only after the request was answered.
func TestServeDrainsInFlight(t *testing.T) {
	s := newServer(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	s.Handle("/slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	url, stop, served := start(t, s)

	type result struct {
		code int
		body string
		err  error
	}
	results := make(chan result, 1)
	go func() {
		resp, err := fresh.Get(url + "/slow")
		if err != nil {
			results <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		results <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	stop()
	select {
	case err := <-served:
		t.Fatalf("Serve returned with a request in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := fresh.Get(url + "/healthz"); err == nil {
		t.Error("a new connection was served while draining")
	}
	close(release)
	r := <-results
	if r.err != nil || r.code != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %+v", r)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
}

func TestServeGivesUpAfterShutdownTimeout(t *testing.T) {
	s := newServer(t, func(c *server.Config) { c.ShutdownTimeout = 200 * time.Millisecond })
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	s.Handle("/stuck", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	url, stop, served := start(t, s)
	go func() {
		if resp, err := fresh.Get(url + "/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	began := time.Now()
	stop()
	select {
	case err := <-served:
		if err == nil || !strings.Contains(err.Error(), "drain") {
			t.Errorf("Serve: %v, want a drain error", err)
		}
		if took := time.Since(began); took > 3*time.Second {
			t.Errorf("Serve took %v to give up", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve waited past its shutdown timeout")
	}
}
