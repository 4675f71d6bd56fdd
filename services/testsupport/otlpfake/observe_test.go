package otlpfake

import (
	"bytes"
	"net/http"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// exportBody is an ExportLogsServiceRequest holding one record per id, its
// body "body-<id>", in protobuf or JSON.
func exportBody(t *testing.T, jsonBody bool, ids ...string) []byte {
	t.Helper()
	logs := plog.NewLogs()
	lrs := logs.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for _, id := range ids {
		lr := lrs.AppendEmpty()
		lr.Body().SetStr("body-" + id)
		lr.Attributes().PutStr("log.record.uid", id)
	}
	req := plogotlp.NewExportRequestFromLogs(logs)
	var b []byte
	var err error
	if jsonBody {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, url, tenant, auth string, jsonBody, gz bool, body []byte) int {
	t.Helper()
	if gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = z.Bytes()
	}
	req, _ := http.NewRequest(http.MethodPost, url+LogsPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	if jsonBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Under OnAccepted the observer sees every accepted record, with its
// tenant, credentials, id and body, once its request is answered; refused
// requests hand on nothing, and the fake keeps nothing.
func TestOnAcceptedSeesAcceptedRecordsAndKeepsNothing(t *testing.T) {
	s := New()
	defer s.Close()
	s.RequireAuthorization("Bearer a", "Bearer b")
	var (
		mu  sync.Mutex
		got []Accepted
	)
	s.OnAccepted(func(a Accepted) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, a)
	})

	if st := post(t, s.URL(), "tenant-a", "Bearer a", false, true, exportBody(t, false, "e1", "e2")); st != http.StatusOK {
		t.Fatalf("protobuf gzip: %d", st)
	}
	if st := post(t, s.URL(), "tenant-b", "Bearer b", true, false, exportBody(t, true, "e3")); st != http.StatusOK {
		t.Fatalf("json: %d", st)
	}
	if st := post(t, s.URL(), "tenant-a", "Bearer wrong", false, false, exportBody(t, false, "e4")); st != http.StatusUnauthorized {
		t.Fatalf("wrong credentials: %d", st)
	}
	s.Always("tenant-b", http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}})
	if st := post(t, s.URL(), "tenant-b", "Bearer b", false, false, exportBody(t, false, "e5")); st != http.StatusServiceUnavailable {
		t.Fatalf("scripted 503: %d", st)
	}
	s.Always("tenant-b", 0, nil)
	// Records rejected by partial success are not accepted.
	s.Reject(func(r Record) bool { return r.EventID == "e7" }, PartialSuccess)
	if st := post(t, s.URL(), "tenant-b", "Bearer b", false, false, exportBody(t, false, "e6", "e7")); st != http.StatusOK {
		t.Fatalf("partial success: %d", st)
	}

	mu.Lock()
	obs := append([]Accepted(nil), got...)
	mu.Unlock()
	want := []struct{ tenant, auth, id string }{{"tenant-a", "Bearer a", "e1"}, {"tenant-a", "Bearer a", "e2"}, {"tenant-b", "Bearer b", "e3"}, {"tenant-b", "Bearer b", "e6"}}
	if len(obs) != len(want) {
		t.Fatalf("observed %d records, want %d: %+v", len(obs), len(want), obs)
	}
	for i, w := range want {
		o := obs[i]
		if o.Tenant != w.tenant || o.Authorization != w.auth || o.EventID != w.id || o.Body != "body-"+w.id || o.At.IsZero() || o.Unanswered {
			t.Errorf("record %d: %+v, want %+v", i, o, w)
		}
	}
	if n := s.Accepted("tenant-a") + s.Accepted("tenant-b"); n != 0 || len(s.Requests()) != 0 {
		t.Errorf("kept %d records and %d requests under OnAccepted", n, len(s.Requests()))
	}

	// nil goes back to keeping them.
	s.OnAccepted(nil)
	if st := post(t, s.URL(), "tenant-a", "Bearer a", false, false, exportBody(t, false, "e8")); st != http.StatusOK {
		t.Fatalf("after OnAccepted(nil): %d", st)
	}
	if ids := s.EventIDs("tenant-a"); len(ids) != 1 || ids[0] != "e8" || len(s.Requests()) != 1 {
		t.Errorf("kept %q and %d requests after OnAccepted(nil)", ids, len(s.Requests()))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Errorf("observed %d records after OnAccepted(nil)", len(got)-len(want))
	}
}
