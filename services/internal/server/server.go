// Package server runs a service's HTTP listener: /healthz, /readyz (with
// per-check detail), /metrics, and whatever handlers the service adds, with a
// graceful drain on shutdown.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Config is the `http` section.
type Config struct {
	// Addr is host:port to listen on; port 0 picks a free one.
	Addr string `yaml:"addr"`
	// ShutdownTimeout bounds the drain of in-flight requests on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadHeaderTimeout and ReadTimeout bound slow clients.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
}

// Default listens on addr.
func Default(addr string) Config {
	return Config{
		Addr:              addr,
		ShutdownTimeout:   25 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
}

// Validate reports every problem in the section.
func (c Config) Validate() error {
	var errs config.Errors
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs.Addf("addr", "%q is not host:port", c.Addr)
	}
	for name, d := range map[string]time.Duration{"shutdown_timeout": c.ShutdownTimeout, "read_header_timeout": c.ReadHeaderTimeout, "read_timeout": c.ReadTimeout, "write_timeout": c.WriteTimeout, "idle_timeout": c.IdleTimeout} {
		if d <= 0 {
			errs.Addf(name, "must be positive")
		}
	}
	return errs.Err()
}

// Check is a readiness probe; a nil error means ready.
type Check func(ctx context.Context) error

// Server is a service's HTTP endpoint.
type Server struct {
	cfg      Config
	log      *zap.Logger
	mux      *http.ServeMux
	Registry *prometheus.Registry

	mu     sync.Mutex
	checks map[string]Check
	ln     net.Listener
}

// New builds a server with health and metrics endpoints. Its Registry has the
// Go and process collectors; services register their own metrics on it.
func New(cfg Config, log *zap.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{cfg: cfg, log: log, mux: http.NewServeMux(), Registry: reg, checks: map[string]Check{}}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return s
}

// Handle adds a handler, as http.ServeMux.Handle.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddCheck registers a readiness check under name.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

// Listen binds the address so Addr is known before Serve.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return nil
}

// Addr is the bound address (after Listen).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return s.cfg.Addr
	}
	return s.ln.Addr().String()
}

// Serve answers requests until ctx ends, then stops accepting and waits up to
// ShutdownTimeout for in-flight requests to finish.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
		MaxHeaderBytes:    64 << 10,
	}
	// gRPC clients speak HTTP/2 without TLS (h2c) to in-cluster services.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	s.log.Info("http server listening", zap.String("addr", s.Addr()))
	select {
	case err := <-errc:
		return fmt.Errorf("http server on %s: %w", s.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("drain http server: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// readyz runs every check (each bounded by 2 s) and answers 200 when all
// pass, 503 otherwise, with the detail as JSON.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)

	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	type result struct {
		Status string `json:"status"`
		Error  string `json:"error,omitempty"`
	}
	results := make(map[string]result, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	ready := true
	for _, n := range names {
		wg.Go(func() {
			res := result{Status: "ok"}
			if err := checks[n](ctx); err != nil {
				res = result{Status: "failing", Error: err.Error()}
			}
			mu.Lock()
			results[n] = res
			if res.Status != "ok" {
				ready = false
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	status := "ready"
	code := http.StatusOK
	if !ready {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status string            `json:"status"`
		Checks map[string]result `json:"checks"`
	}{status, results})
}
