package ddfake

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Under Observe the fake hands every answered request to the observer,
// accepted entries included, and records nothing.
func TestObserveSeesAnsweredRequestsAndRecordsNothing(t *testing.T) {
	s := New("key-a")
	defer s.Close()
	var (
		mu  sync.Mutex
		got []Observed
	)
	s.Observe(func(o Observed) {
		mu.Lock()
		defer mu.Unlock()
		o.Entries = append([][]byte(nil), o.Entries...)
		for i, e := range o.Entries {
			o.Entries[i] = bytes.Clone(e)
		}
		got = append(got, o)
	})

	var zbody bytes.Buffer
	zw := gzip.NewWriter(&zbody)
	_, _ = zw.Write([]byte(`[{"message":"one"},{"message":"two"},{"message":"three"}]`))
	_ = zw.Close()
	cases := []struct {
		name, key, encoding string
		body                []byte
		status, entries     int
	}{
		{"accepted gzip", "key-a", "gzip", zbody.Bytes(), http.StatusAccepted, 3},
		{"unknown key", "key-b", "gzip", zbody.Bytes(), http.StatusForbidden, 0},
		{"not an array", "key-a", "", []byte(`{"message":"x"}`), http.StatusBadRequest, 0},
	}
	waitObserved := func(n int) []Observed {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			out := append([]Observed(nil), got...)
			mu.Unlock()
			if len(out) >= n || time.Now().After(deadline) {
				return out
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i, c := range cases {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+LogsPath, bytes.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("DD-API-KEY", c.key)
		if c.encoding != "" {
			req.Header.Set("Content-Encoding", c.encoding)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("%s: answered %d, want %d", c.name, resp.StatusCode, c.status)
		}
		// The observer runs once the answer is written, possibly after the
		// client read it: wait, so that the order is the requests'.
		waitObserved(i + 1)
	}
	obs := waitObserved(len(cases))
	if len(obs) != len(cases) {
		t.Fatalf("observed %d requests, want %d", len(obs), len(cases))
	}
	for i, c := range cases {
		o := obs[i]
		if o.Status != c.status || len(o.Entries) != c.entries || o.APIKey != c.key || o.Unanswered || o.At.IsZero() {
			t.Errorf("%s: observed %+v", c.name, o)
		}
	}
	if string(obs[0].Entries[1]) != `{"message":"two"}` || obs[0].Entries[0] == nil {
		t.Errorf("accepted entries: %q", obs[0].Entries)
	}
	if obs[0].WireBytes != zbody.Len() || obs[0].Bytes == 0 {
		t.Errorf("sizes: wire %d bytes %d", obs[0].WireBytes, obs[0].Bytes)
	}
	if n := s.Count("key-a"); n != 0 || len(s.Requests()) != 0 {
		t.Errorf("recorded %d entries and %d requests under Observe", n, len(s.Requests()))
	}

	// A client that gives up before the answer is seen as unanswered.
	s.Slow(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+LogsPath, bytes.NewReader(zbody.Bytes()))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("DD-API-KEY", "key-a")
	req.Header.Set("Content-Encoding", "gzip")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request was answered within its timeout")
	}
	obs = waitObserved(len(cases) + 1)
	if len(obs) != len(cases)+1 || !obs[len(cases)].Unanswered {
		t.Errorf("a request whose client left: %+v", obs[len(obs)-1])
	}

	// Back to recording.
	s.Observe(nil)
	s.Slow(0)
	req, _ = http.NewRequest(http.MethodPost, s.URL()+LogsPath, bytes.NewReader(zbody.Bytes()))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("DD-API-KEY", "key-a")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n := s.Count("key-a"); n != 3 {
		t.Errorf("recorded %d entries after Observe(nil), want 3", n)
	}
}
