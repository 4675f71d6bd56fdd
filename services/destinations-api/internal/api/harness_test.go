package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/destinations-api/internal/e2eharness"
	"github.com/auditstream/auditstream/services/internal/bearer"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

// Tokens of the test installation: an operator, and an admin of each of two
// accounts.
const (
	tokenOperator = "op-token-0123456789abcdefghijkl"
	tokenA        = "acc-a-token-0123456789abcdefgh"
	tokenB        = "acc-b-token-0123456789abcdefgh"
	accountA      = "acc-a"
	accountB      = "acc-b"
)

// harness is a running API against an in-process broker, with a key ring
// of its own; every request and answer is checked against openapi.json.
type harness struct {
	t       testing.TB
	cluster *kafkatest.Cluster
	cfg     Config
	svc     *Service
	url     string
	logs    *e2eharness.Log
	router  routers.Router
}

func testConfig(t testing.TB, c *kafkatest.Cluster, keyring string) Config {
	cfg := DefaultConfig()
	e2eharness.UseCluster(&cfg.Kafka, c)
	cfg.Auth.Tokens = []bearer.Token{
		e2eharness.Token("operator", tokenOperator, "*"),
		e2eharness.Token("admin-a", tokenA, accountA),
		e2eharness.Token("admin-b", tokenB, accountB),
	}
	cfg.Encryption.KeyringFile = keyring
	return cfg
}

func newHarness(t testing.TB, change ...func(*Config)) *harness {
	t.Helper()
	in := e2eharness.NewInstallation(t)
	cfg := testConfig(t, in.Cluster, in.Keyring)
	for _, fn := range change {
		fn(&cfg)
	}
	return startHarness(t, in.Cluster, cfg)
}

func startHarness(t testing.TB, c *kafkatest.Cluster, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, cluster: c, cfg: cfg, logs: &e2eharness.Log{}}
	h.url = e2eharness.Serve(t, h.logs, func(ctx context.Context, log *zap.Logger) (e2eharness.Service, http.Handler, error) {
		svc, err := New(ctx, cfg, log, prometheus.NewRegistry())
		if err != nil {
			return nil, nil, err
		}
		h.svc = svc
		return svc, svc.API.Handler(), nil
	})
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: h.url}}
	if h.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	return h
}

// response is an answer, its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", r.status, err, r.body)
	}
}

// field returns the details of an error answer, by field.
func (r response) fields(t testing.TB) map[string]string {
	t.Helper()
	var e struct {
		Error apiError `json:"error"`
	}
	r.json(t, &e)
	out := map[string]string{}
	for _, d := range e.Error.Details {
		out[d.Field] = d.Message
	}
	return out
}

// do sends a request with token and optional headers (pairs) and checks it
// and its answer against the OpenAPI document.
func (h *harness) do(method, path, token string, body any, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			h.t.Fatal(err)
		}
	}
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	h.checkContract(req, raw, resp, got)
	return response{status: resp.StatusCode, header: resp.Header, body: got}
}

// checkContract validates a request the API accepted, and every answer,
// against openapi.json: a route, status or field the document does not
// describe fails the test.
func (h *harness) checkContract(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	h.t.Helper()
	route, params, err := h.router.FindRoute(req)
	if err != nil {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return // no such route: the document need not describe it
		}
		h.t.Fatalf("%s %s answered %d but is not in openapi.json: %v", req.Method, req.URL.Path, resp.StatusCode, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if reqBody != nil {
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	if resp.StatusCode < 300 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			h.t.Fatalf("%s %s was accepted (%d) but openapi.json refuses it: %v", req.Method, req.URL.Path, resp.StatusCode, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		h.t.Fatalf("%s %s answered %d against openapi.json: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, respBody)
	}
}

func datadogBody(key string) map[string]any {
	return map[string]any{"type": "datadog", "settings": map[string]any{"site": "datadoghq.eu", "api_key": key}}
}

func connPath(account, name string) string {
	return "/v1/accounts/" + account + "/connections/" + name
}

func mustStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
}

func contains(haystack []byte, needle string) bool { return strings.Contains(string(haystack), needle) }

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
