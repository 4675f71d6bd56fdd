package ddfake_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ddfake"
)

const key = "0123456789abcdef0123456789abcdef"

type call struct {
	key, contentType, encoding string
	body                       []byte
	timeout                    time.Duration
}

type reply struct {
	status int
	header http.Header
	body   string
	err    error
}

func post(t *testing.T, f *ddfake.Server, c call) reply {
	t.Helper()
	if c.contentType == "" {
		c.contentType = "application/json"
	}
	ctx := context.Background()
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL()+ddfake.LogsPath, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", c.contentType)
	if c.key != "" {
		req.Header.Set("DD-API-KEY", c.key)
	}
	if c.encoding != "" {
		req.Header.Set("Content-Encoding", c.encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// array returns a JSON array of n entries, each of size bytes.
func array(n, size int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		head := fmt.Sprintf(`{"message":"m%d","pad":"`, i)
		b.WriteString(head)
		b.WriteString(strings.Repeat("x", max(size-len(head)-2, 0)))
		b.WriteString(`"}`)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func start(t *testing.T) *ddfake.Server {
	f := ddfake.New(key)
	t.Cleanup(f.Close)
	return f
}

func wantStatus(t *testing.T, r reply, status int) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("request failed: %v", r.err)
	}
	if r.status != status {
		t.Fatalf("status %d (%s), want %d", r.status, r.body, status)
	}
}

func TestAcceptsAndRecords(t *testing.T) {
	f := start(t)
	body := []byte(`[{"message":"a","n":1},{"message":"b"}]`)
	r := post(t, f, call{key: key, encoding: "gzip", body: gz(t, body)})
	wantStatus(t, r, http.StatusAccepted)
	if r.body != "{}" {
		t.Errorf("body %q, want {}", r.body)
	}
	r = post(t, f, call{key: key, contentType: "application/json; charset=utf-8", body: []byte(`[{"message":"c"}]`)})
	wantStatus(t, r, http.StatusAccepted)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(`[{"message":"d"}]`))
	zw.Close()
	wantStatus(t, post(t, f, call{key: key, encoding: "deflate", body: z.Bytes()}), http.StatusAccepted)

	if got := f.Count(key); got != 4 {
		t.Fatalf("Count = %d, want 4", got)
	}
	entries := f.Entries(key)
	if string(entries[0]) != `{"message":"a","n":1}` || string(entries[2]) != `{"message":"c"}` {
		t.Errorf("entries %q", entries)
	}
	logs := f.Logs(key)
	if logs[0]["n"] != json.Number("1") || logs[1]["message"] != "b" {
		t.Errorf("logs %v", logs)
	}
	reqs := f.Requests()
	if len(reqs) != 3 || reqs[0].Entries != 2 || reqs[0].ContentEncoding != "gzip" || reqs[0].Bytes != len(body) || reqs[0].Status != 202 || reqs[1].ContentEncoding != "" {
		t.Errorf("requests %+v", reqs)
	}
	if f.Count("other") != 0 {
		t.Error("entries recorded under a key that sent nothing")
	}
}

func TestAPIKey(t *testing.T) {
	f := start(t)
	body := []byte(`[{"message":"a"}]`)
	wantStatus(t, post(t, f, call{body: body}), http.StatusForbidden)
	wantStatus(t, post(t, f, call{key: "wrong", body: body}), http.StatusForbidden)
	f.AddKey("second")
	wantStatus(t, post(t, f, call{key: "second", body: body}), http.StatusAccepted)
	f.RemoveKey("second")
	wantStatus(t, post(t, f, call{key: "second", body: body}), http.StatusForbidden)
	if f.Count("second") != 1 || f.Count("wrong") != 0 {
		t.Errorf("counts %d %d", f.Count("second"), f.Count("wrong"))
	}
}

func TestRejectsBadRequests(t *testing.T) {
	f := start(t)
	for name, c := range map[string]call{
		"content type":    {key: key, contentType: "text/plain", body: []byte(`[{"message":"a"}]`)},
		"bad gzip":        {key: key, encoding: "gzip", body: []byte(`[{"message":"a"}]`)},
		"bad encoding":    {key: key, encoding: "br", body: []byte(`[{"message":"a"}]`)},
		"malformed":       {key: key, body: []byte(`[{"message":"a"`)},
		"object":          {key: key, body: []byte(`{"message":"a"}`)},
		"null":            {key: key, body: []byte(`null`)},
		"empty":           {key: key, body: nil},
		"not objects":     {key: key, body: []byte(`["a","b"]`)},
		"gzip, malformed": {key: key, encoding: "gzip", body: gz(t, []byte(`[{"message":}]`))},
	} {
		t.Run(name, func(t *testing.T) {
			r := post(t, f, c)
			wantStatus(t, r, http.StatusBadRequest)
			if !strings.Contains(r.body, `"errors"`) {
				t.Errorf("error body %q", r.body)
			}
		})
	}
	if f.Count(key) != 0 {
		t.Errorf("recorded %d entries from bad requests", f.Count(key))
	}
}

func TestRoutes(t *testing.T) {
	f := start(t)
	resp, err := http.Get(f.URL() + ddfake.LogsPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	resp, err = http.Post(f.URL()+"/api/v1/input", "application/json", strings.NewReader(`[]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("other path: %d", resp.StatusCode)
	}
}

func TestEntryCountLimit(t *testing.T) {
	f := start(t)
	wantStatus(t, post(t, f, call{key: key, encoding: "gzip", body: gz(t, array(ddfake.MaxEntries, 50))}), http.StatusAccepted)
	wantStatus(t, post(t, f, call{key: key, encoding: "gzip", body: gz(t, array(ddfake.MaxEntries+1, 50))}), http.StatusRequestEntityTooLarge)
	if f.Count(key) != ddfake.MaxEntries {
		t.Errorf("Count = %d", f.Count(key))
	}
}

func TestRequestSizeLimit(t *testing.T) {
	f := start(t)
	// 5 entries of 999,999 bytes: 4,999,995 + 6 bytes of framing = 5,000,001.
	over := array(5, ddfake.MaxEntryBytes-1)
	if len(over) != ddfake.MaxRequestBytes+1 {
		t.Fatalf("test body is %d bytes", len(over))
	}
	wantStatus(t, post(t, f, call{key: key, encoding: "gzip", body: gz(t, over)}), http.StatusRequestEntityTooLarge)
	wantStatus(t, post(t, f, call{key: key, body: over}), http.StatusRequestEntityTooLarge)
	exact := bytes.Replace(over, []byte(`"m0","pad":"x`), []byte(`"m0","pad":"`), 1) // one byte less
	if len(exact) != ddfake.MaxRequestBytes {
		t.Fatalf("exact body is %d bytes", len(exact))
	}
	wantStatus(t, post(t, f, call{key: key, encoding: "gzip", body: gz(t, exact)}), http.StatusAccepted)
	if f.Count(key) != 5 {
		t.Errorf("Count = %d", f.Count(key))
	}
}

func TestEntrySizeLimit(t *testing.T) {
	f := start(t)
	ok := array(1, ddfake.MaxEntryBytes)
	big := array(2, ddfake.MaxEntryBytes+1)
	wantStatus(t, post(t, f, call{key: key, encoding: "gzip", body: gz(t, ok)}), http.StatusAccepted)
	r := post(t, f, call{key: key, encoding: "gzip", body: gz(t, big)})
	wantStatus(t, r, http.StatusBadRequest)
	if !strings.Contains(r.body, "entry 0") {
		t.Errorf("body %q", r.body)
	}
	f.SetOversizedEntries(ddfake.Truncate)
	wantStatus(t, post(t, f, call{key: key, encoding: "gzip", body: gz(t, big)}), http.StatusAccepted)
	if f.Truncated() != 2 || f.Count(key) != 3 {
		t.Errorf("Truncated = %d, Count = %d", f.Truncated(), f.Count(key))
	}
}

func TestFailNext(t *testing.T) {
	f := start(t)
	body := []byte(`[{"message":"a"}]`)
	f.FailNext(2, http.StatusInternalServerError, nil)
	f.FailNext(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}, "X-Ratelimit-Reset": {"9"}, "X-Ratelimit-Remaining": {"0"}})
	wantStatus(t, post(t, f, call{key: "any", body: body}), 500) // before the key check
	wantStatus(t, post(t, f, call{key: key, body: body}), 500)
	r := post(t, f, call{key: key, body: body})
	wantStatus(t, r, 429)
	if r.header.Get("Retry-After") != "7" || r.header.Get("X-RateLimit-Reset") != "9" {
		t.Errorf("headers %v", r.header)
	}
	wantStatus(t, post(t, f, call{key: key, body: body}), 202)
	if f.Count(key) != 1 {
		t.Errorf("Count = %d", f.Count(key))
	}
}

func TestAlwaysAndReset(t *testing.T) {
	f := start(t)
	f.AddKey("other")
	body := []byte(`[{"message":"a"}]`)
	f.Always(key, http.StatusForbidden, nil)
	for range 3 {
		wantStatus(t, post(t, f, call{key: key, body: body}), http.StatusForbidden)
	}
	wantStatus(t, post(t, f, call{key: "other", body: body}), http.StatusAccepted)
	f.RejectEntries(func([]byte) bool { return true })
	f.Slow(time.Hour)
	f.FailNext(5, 500, nil)
	f.Reset()
	if len(f.Requests()) != 0 || f.Count("other") != 0 {
		t.Error("Reset kept records")
	}
	wantStatus(t, post(t, f, call{key: key, body: body}), http.StatusAccepted)
}

func TestSlow(t *testing.T) {
	f := start(t)
	body := []byte(`[{"message":"a"}]`)
	f.Slow(300 * time.Millisecond)
	r := post(t, f, call{key: key, body: body, timeout: 50 * time.Millisecond})
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("want a timeout, got %+v", r)
	}
	begin := time.Now()
	wantStatus(t, post(t, f, call{key: key, body: body}), http.StatusAccepted)
	if d := time.Since(begin); d < 300*time.Millisecond {
		t.Errorf("answered after %s", d)
	}
	f.Slow(0)
	if f.Count(key) != 1 {
		t.Errorf("Count = %d, want only the answered request", f.Count(key))
	}
}

func TestRejectEntries(t *testing.T) {
	f := start(t)
	f.RejectEntries(func(e []byte) bool { return bytes.Contains(e, []byte(`"bad"`)) })
	wantStatus(t, post(t, f, call{key: key, body: []byte(`[{"message":"ok"},{"message":"bad"}]`)}), http.StatusBadRequest)
	wantStatus(t, post(t, f, call{key: key, body: []byte(`[{"message":"ok"}]`)}), http.StatusAccepted)
	f.RejectEntries(nil)
	wantStatus(t, post(t, f, call{key: key, body: []byte(`[{"message":"bad"}]`)}), http.StatusAccepted)
	if f.Count(key) != 2 {
		t.Errorf("Count = %d", f.Count(key))
	}
}

func TestConcurrent(t *testing.T) {
	f := start(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			body := gz(t, []byte(fmt.Sprintf(`[{"message":"%d"},{"message":"x"}]`, i)))
			req, _ := http.NewRequest(http.MethodPost, f.URL()+ddfake.LogsPath, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Content-Encoding", "gzip")
			req.Header.Set("DD-API-KEY", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			_ = f.Count(key)
			_ = f.Requests()
		})
	}
	wg.Wait()
	if f.Count(key) != 40 || len(f.Requests()) != 20 {
		t.Errorf("Count = %d, requests = %d", f.Count(key), len(f.Requests()))
	}
}
