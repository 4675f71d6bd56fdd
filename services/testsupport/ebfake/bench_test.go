package ebfake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// benchEntries is how many entries a benchmark call carries, as the
// forwarder's full calls do.
const benchEntries = MaxEntries

// benchDetail is an event's Detail as the forwarder sends it, about 1.3 KB.
func benchDetail(i int) string {
	return fmt.Sprintf(`{"id":"bench-%08d","actor":{"id":"user-stp8qjepev3a123","access-token":{"type":"session","token":"...B6wifA"},"type":"user","email":"[email protected]"},`+
		`"request":{"ip-address":"69.206.111.123","action":"discard-run","id":"a3a473d725c730382558c25d52bd1234","source":"ui","user-agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36"},`+
		`"hostname":"docs.scalr.io","service":"audit-log","outcome":{"result":"SUCCESS","status-code":202},`+
		`"target":{"display-name":"run-v0o370pcff0e53123","context":{"environment":{"display-name":"CS-M","id":"org-sscctbkdgkdrqg0"},"workspace":{"display-name":"demo-ws","id":"ws-v0o370ouv5kbjmk9h"},"account":{"display-name":"docs","id":"acc-sscctbisjkl3123"}},"id":"run-v0o370pcff0e53","type":"runs"},`+
		`"timestamp":"2024-02-16T12:58:38.577846",`+
		`"extra":{"change-summary":"variables \"region\" and \"zone\" updated\nby the run's plan","client":"terraform/1.7.3 (+https://www.terraform.io)","note":"café über 日本 — ok",`+
		`"run-url":"https://docs.scalr.io/v2/e/org-sscctbkdgkdrqg0/workspaces/ws-v0o370ouv5kbjmk9h/runs/run-v0o370pcff0e53/","trace":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",`+
		`"reason":"Discarded from the UI: the plan would replace the production database instance"}}`, i)
}

// benchBody is a PutEvents body of benchEntries entries, members in the
// SDK's order.
func benchBody(tb testing.TB) []byte {
	var b bytes.Buffer
	b.WriteString(`{"Entries":[`)
	for i := range benchEntries {
		if i > 0 {
			b.WriteByte(',')
		}
		var d bytes.Buffer
		enc := json.NewEncoder(&d)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(benchDetail(i)); err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&b, `{"Detail":%s,"DetailType":"Audit Event","EventBusName":"audit","Source":"scalr.audit-log","Time":1.708088318577E9}`, bytes.TrimSpace(d.Bytes()))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func perEntry(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchEntries), "ns/entry")
}

func BenchmarkParseRequest(b *testing.B) {
	body := benchBody(b)
	if req, ok := parseRequest(body); !ok || len(req.Entries) != benchEntries {
		b.Fatal("bench body declined")
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		parseRequest(body)
	}
	perEntry(b)
}

func BenchmarkCheckEntry(b *testing.B) {
	req, _ := parseRequest(benchBody(b))
	es := make([]Entry, len(req.Entries))
	for i, in := range req.Entries {
		es[i] = Entry{Source: deref(in.Source), DetailType: deref(in.DetailType), Detail: deref(in.Detail)}
		if code, _ := checkEntry(es[i]); code != "" {
			b.Fatalf("bench entry refused: %s", code)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range es {
			checkEntry(e)
		}
	}
	perEntry(b)
}

// benchRequest is a PutEvents call to f's address signed by the SDK's
// signer at now.
func benchRequest(tb testing.TB, body []byte, now time.Time) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:1234/", bytes.NewReader(body))
	r.Header.Set("Content-Type", ContentType)
	r.Header.Set("X-Amz-Target", Target)
	r.Header.Set("Amz-Sdk-Invocation-Id", "3f1c8a2e-5b7d-4e9f-a1c3-0d2b4f6e8a9c")
	r.Header.Set("Amz-Sdk-Request", "attempt=1; max=3")
	r.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "events", "eu-west-1", now); err != nil {
		tb.Fatal(err)
	}
	return r
}

func BenchmarkCheckAuth(b *testing.B) {
	body := benchBody(b)
	now := time.Now().UTC()
	r := benchRequest(b, body, now)
	lookup := func(string) (Key, bool, bool) { return Key{AccessKeyID: keyID, SecretAccessKey: secret}, true, false }
	if _, status, _, msg := CheckAuth(r, body, "events", now, lookup); status != 0 {
		b.Fatalf("signed request refused: %s", msg)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		CheckAuth(r, body, "events", now, lookup)
	}
	perEntry(b)
}

// BenchmarkServe is a whole signed call through the handler, entries only
// counted.
func BenchmarkServe(b *testing.B) {
	f := New()
	defer f.Close()
	f.AddKey(Key{AccessKeyID: keyID, SecretAccessKey: secret})
	f.KeepEntries(false)
	body := benchBody(b)
	r := benchRequest(b, body, time.Now().UTC())
	w := httptest.NewRecorder()
	f.serve(w, r)
	if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte("ErrorCode")) {
		b.Fatalf("answered %d %s", w.Code, w.Body)
	}
	out := discard{http.Header{}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.serve(out, r)
	}
	perEntry(b)
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{ h http.Header }

func (d discard) Header() http.Header       { return d.h }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
