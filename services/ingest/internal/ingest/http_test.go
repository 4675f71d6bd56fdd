package ingest

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
)

// smallLimits keeps the limit rows of the tables cheap to build.
func smallLimits(c *Config) {
	c.Ingest.Limits = Limits{MaxBodyBytes: 64 << 10, MaxEvents: 5, MaxEventBytes: 4 << 10}
}

type wantDetail struct {
	index  int
	field  string
	reason string
}

func TestPostEventsRejectsBadInput(t *testing.T) {
	h := newHarness(t, smallLimits)
	// one good event first, so the topic exists for the readers and the
	// count below is not trivially zero
	if a := h.post(jsonReq(newEvent("acc-seed").JSON())); a.status != http.StatusAccepted {
		t.Fatalf("seed event: %v", a)
	}
	before := h.endOffsets()

	good := func() string { return newEvent("acc-1").JSON() }
	noAccount := newEvent("acc-1").with("target", map[string]any{"id": "ws-1"})
	big := newEvent("acc-1").with("hostname", strings.Repeat("h", 5<<10))
	invalidUTF8 := []byte(strings.Replace(newEvent("acc-1").with("hostname", "@@BAD@@").JSON(), "@@BAD@@", "ab\xffcd", 1))
	gzipBomb := gzipped(t, append([]byte("["), bytes.Repeat([]byte(" "), 1<<20)...))

	cases := []struct {
		name    string
		req     request
		status  int
		code    string
		details []wantDetail // nil: the answer has no details
	}{
		// malformed JSON
		{name: "malformed single object", req: jsonReq(`{"target": {"context":`), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "", auditevent.ReasonMalformedJSON}}},
		{name: "malformed second element of an array", req: jsonReq("[" + good() + `, {"hostname": }]`), status: 400, code: "invalid_events",
			details: []wantDetail{{1, "", auditevent.ReasonMalformedJSON}}},
		{name: "malformed third NDJSON line", req: ndjsonReq(good() + "\n" + good() + "\n{not json}\n"), status: 400, code: "invalid_events",
			details: []wantDetail{{2, "", auditevent.ReasonMalformedJSON}}},
		{name: "unterminated array", req: jsonReq("[" + good()), status: 400, code: "invalid_events",
			details: []wantDetail{{1, "", auditevent.ReasonMalformedJSON}}},
		{name: "trailing comma in array", req: jsonReq("[" + good() + ",]"), status: 400, code: "invalid_events",
			details: []wantDetail{{1, "", auditevent.ReasonMalformedJSON}}},
		{name: "data after the array", req: jsonReq("[" + good() + "] []"), status: 400, code: "invalid_events",
			details: []wantDetail{{-1, "", auditevent.ReasonMalformedJSON}}},
		{name: "two objects sent as application/json", req: jsonReq(good() + "\n" + good()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "", auditevent.ReasonMalformedJSON}}},
		{name: "body is a number", req: jsonReq(`42`), status: 400, code: "invalid_events",
			details: []wantDetail{{-1, "", auditevent.ReasonMalformedJSON}}},
		{name: "body is null", req: jsonReq(`null`), status: 400, code: "invalid_events",
			details: []wantDetail{{-1, "", auditevent.ReasonMalformedJSON}}},
		{name: "empty body", req: jsonReq(""), status: 400, code: "invalid_events",
			details: []wantDetail{{-1, "", auditevent.ReasonRequired}}},
		{name: "empty array", req: jsonReq("[ ]"), status: 400, code: "invalid_events",
			details: []wantDetail{{-1, "", auditevent.ReasonRequired}}},
		{name: "NDJSON of blank lines only", req: ndjsonReq("\n\r\n  \n"), status: 400, code: "invalid_events",
			details: []wantDetail{{-1, "", auditevent.ReasonRequired}}},
		// wrong types
		{name: "string where an object is expected", req: jsonReq(`["an event"]`), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "", auditevent.ReasonWrongType}}},
		{name: "null element", req: jsonReq("[" + good() + ",null]"), status: 400, code: "invalid_events",
			details: []wantDetail{{1, "", auditevent.ReasonWrongType}}},
		{name: "NDJSON line holding an array", req: ndjsonReq(good() + "\n[" + good() + "]\n"), status: 400, code: "invalid_events",
			details: []wantDetail{{1, "", auditevent.ReasonWrongType}}},
		{name: "number for a string", req: jsonReq(newEvent("acc-1").with("hostname", 42).JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "hostname", auditevent.ReasonWrongType}}},
		{name: "number for the account id", req: jsonReq(newEvent("acc-1").with("target", map[string]any{"context": map[string]any{"account": map[string]any{"id": 7}}}).JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "target.context.account.id", auditevent.ReasonWrongType}}},
		{name: "string for the status code", req: jsonReq(newEvent("acc-1").with("outcome", map[string]any{"status-code": "200"}).JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "outcome.status-code", auditevent.ReasonWrongType}}},
		{name: "string for actor", req: jsonReq(newEvent("acc-1").with("actor", "user-1").JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "actor", auditevent.ReasonWrongType}}},
		{name: "number for extra value", req: jsonReq(newEvent("acc-1").with("extra", map[string]any{"k": 1}).JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "extra", auditevent.ReasonWrongType}}},
		// missing account id
		{name: "missing account id", req: jsonReq(noAccount.JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "target.context.account.id", auditevent.ReasonRequired}}},
		{name: "blank account id at index 2", req: jsonReq(jsonArray(newEvent("acc-1"), newEvent("acc-2"), newEvent("  "))), status: 400, code: "invalid_events",
			details: []wantDetail{{2, "target.context.account.id", auditevent.ReasonRequired}}},
		{name: "missing account id in NDJSON", req: ndjsonReq(ndjson(newEvent("acc-1"), noAccount)), status: 400, code: "invalid_events",
			details: []wantDetail{{1, "target.context.account.id", auditevent.ReasonRequired}}},
		// timestamps
		{name: "bad timestamp", req: jsonReq(newEvent("acc-1").with("timestamp", "16/02/2024 12:58").JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "timestamp", auditevent.ReasonBadTimestamp}}},
		{name: "timestamp out of range", req: jsonReq(newEvent("acc-1").with("timestamp", "0000-01-01T00:00:00Z").JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "timestamp", auditevent.ReasonBadTimestamp}}},
		{name: "numeric timestamp", req: jsonReq(newEvent("acc-1").with("timestamp", 1708088318).JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "timestamp", auditevent.ReasonWrongType}}},
		// invalid UTF-8
		{name: "invalid UTF-8", req: request{contentType: "application/json", body: invalidUTF8}, status: 400, code: "invalid_events",
			details: []wantDetail{{0, "", auditevent.ReasonInvalidUTF8}}},
		{name: "invalid UTF-8 in array element 1", req: request{contentType: "application/json", body: slices.Concat([]byte("["+good()+","), invalidUTF8, []byte("]"))}, status: 400, code: "invalid_events",
			details: []wantDetail{{1, "", auditevent.ReasonInvalidUTF8}}},
		{name: "invalid UTF-8 NDJSON line", req: request{contentType: "application/x-ndjson", body: slices.Concat([]byte(good()+"\n"), invalidUTF8)}, status: 400, code: "invalid_events",
			details: []wantDetail{{1, "", auditevent.ReasonInvalidUTF8}}},
		// unknown fields
		{name: "unknown top-level field", req: jsonReq(newEvent("acc-1").with("colour", "blue").JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "colour", auditevent.ReasonUnknownField}}},
		{name: "snake_case typo of a known field", req: jsonReq(newEvent("acc-1").with("schema_version", 1).JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "schema_version", auditevent.ReasonUnknownField}}},
		{name: "unknown nested field", req: jsonReq(newEvent("acc-1").with("actor", map[string]any{"id": "u", "nickname": "x"}).JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "actor.nickname", auditevent.ReasonUnknownField}}},
		// other event rules
		{name: "id with a space", req: jsonReq(newEvent("acc-1").with("id", "evt 1").JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "id", auditevent.ReasonBadID}}},
		{name: "schema version from the future", req: jsonReq(newEvent("acc-1").with("schema-version", 99).JSON()), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "schema-version", auditevent.ReasonBadVersion}}},
		{name: "several bad events are all named", req: jsonReq(jsonArray(noAccount, newEvent("acc-1"), newEvent("acc-1").with("timestamp", "never"), newEvent("acc-1").with("hostname", 1))), status: 400, code: "invalid_events",
			details: []wantDetail{{0, "target.context.account.id", auditevent.ReasonRequired}, {2, "timestamp", auditevent.ReasonBadTimestamp}, {3, "hostname", auditevent.ReasonWrongType}}},
		{name: "gzip declared, body plain", req: request{contentType: "application/json", contentEncoding: "gzip", body: []byte(good())}, status: 400, code: "malformed_body"},
		{name: "gzip truncated", req: request{contentType: "application/json", contentEncoding: "gzip", body: gzipped(t, []byte(good()))[:20]}, status: 400, code: "malformed_body"},
		// 413
		{name: "body over max_body_bytes", req: jsonReq("[" + strings.Repeat(" ", 65<<10) + good() + "]"), status: 413, code: "payload_too_large"},
		{name: "chunked body over max_body_bytes", req: request{contentType: "application/json", chunked: true, body: []byte("[" + strings.Repeat(" ", 65<<10) + good() + "]")}, status: 413, code: "payload_too_large"},
		{name: "gzip body inflating over max_body_bytes", req: request{contentType: "application/json", contentEncoding: "gzip", body: gzipBomb}, status: 413, code: "payload_too_large"},
		{name: "more than max_events in an array", req: jsonReq(jsonArray(newEvent("a"), newEvent("b"), newEvent("c"), newEvent("d"), newEvent("e"), newEvent("f"))), status: 413, code: "payload_too_large"},
		{name: "more than max_events in NDJSON", req: ndjsonReq(ndjson(newEvent("a"), newEvent("b"), newEvent("c"), newEvent("d"), newEvent("e"), newEvent("f"))), status: 413, code: "payload_too_large"},
		{name: "single event over max_event_bytes", req: jsonReq(big.JSON()), status: 413, code: "payload_too_large",
			details: []wantDetail{{0, "", auditevent.ReasonTooLarge}}},
		{name: "array element over max_event_bytes", req: jsonReq(jsonArray(newEvent("acc-1"), big)), status: 413, code: "payload_too_large",
			details: []wantDetail{{1, "", auditevent.ReasonTooLarge}}},
		{name: "NDJSON line over max_event_bytes", req: ndjsonReq(ndjson(newEvent("acc-1"), newEvent("acc-1"), big)), status: 413, code: "payload_too_large",
			details: []wantDetail{{2, "", auditevent.ReasonTooLarge}}},
		// 415
		{name: "missing Content-Type", req: request{body: []byte(good())}, status: 415, code: "unsupported_media_type"},
		{name: "text/plain", req: request{contentType: "text/plain", body: []byte(good())}, status: 415, code: "unsupported_media_type"},
		{name: "form post", req: request{contentType: "application/x-www-form-urlencoded", body: []byte("a=b")}, status: 415, code: "unsupported_media_type"},
		{name: "unparsable Content-Type", req: request{contentType: "application/json; =", body: []byte(good())}, status: 415, code: "unsupported_media_type"},
		{name: "brotli body", req: request{contentType: "application/json", contentEncoding: "br", body: []byte(good())}, status: 415, code: "unsupported_media_type"},
		{name: "deflate body", req: request{contentType: "application/x-ndjson", contentEncoding: "deflate", body: []byte(good())}, status: 415, code: "unsupported_media_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := h.post(tc.req)
			if a.status != tc.status || a.err.Error.Code != tc.code {
				t.Fatalf("answer %v, want %d %s", a, tc.status, tc.code)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if a.err.Error.Message == "" {
				t.Error("error without a message")
			}
			var got []wantDetail
			for _, d := range a.err.Error.Details {
				got = append(got, wantDetail{d.Index, d.Field, d.Reason})
				if d.Message == "" {
					t.Errorf("detail %+v has no message", d)
				}
			}
			if !slices.Equal(got, tc.details) {
				t.Errorf("details %+v, want %+v (answer %s)", got, tc.details, a.raw)
			}
			if len(a.ids) > 0 || len(a.err.Written) > 0 {
				t.Errorf("a rejected request reports written ids: %s", a.raw)
			}
			h.assertNothingWritten(before)
		})
	}
}

func TestPostEventsMethodNotAllowed(t *testing.T) {
	h := newHarness(t)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(method, h.url+"/v1/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Errorf("%s: %d Allow %q", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

func TestPostEventsAccepts(t *testing.T) {
	h := newHarness(t, smallLimits)
	e := func(acc string) ev { return newEvent(acc) }
	crlf := "\r\n" + e("acc-1").JSON() + "\r\n\r\n" + e("acc-2").JSON() + "\r\n   \r\n\t\r\n" + e("acc-3").JSON()

	cases := []struct {
		name     string
		req      request
		accounts []string // accounts of the events, in request order
	}{
		{"single object", jsonReq(e("acc-1").JSON()), []string{"acc-1"}},
		{"single object with charset", request{contentType: "application/json; charset=utf-8", body: []byte(e("acc-1").JSON())}, []string{"acc-1"}},
		{"single object with surrounding space", jsonReq("\n  " + e("acc-9").JSON() + "\n\n"), []string{"acc-9"}},
		{"array", jsonReq(jsonArray(e("acc-1"), e("acc-2"), e("acc-3"))), []string{"acc-1", "acc-2", "acc-3"}},
		{"array of one", jsonReq(jsonArray(e("acc-4"))), []string{"acc-4"}},
		{"array of max_events", jsonReq(jsonArray(e("a"), e("b"), e("c"), e("d"), e("e"))), []string{"a", "b", "c", "d", "e"}},
		{"NDJSON", ndjsonReq(ndjson(e("acc-1"), e("acc-2"))), []string{"acc-1", "acc-2"}},
		{"NDJSON with blank lines and CRLF", ndjsonReq(crlf), []string{"acc-1", "acc-2", "acc-3"}},
		{"NDJSON as application/jsonl", request{contentType: "application/jsonl", body: []byte(ndjson(e("acc-5")))}, []string{"acc-5"}},
		{"gzip array", request{contentType: "application/json", contentEncoding: "gzip", body: gzipped(t, []byte(jsonArray(e("acc-6"), e("acc-7"))))}, []string{"acc-6", "acc-7"}},
		{"gzip NDJSON without Content-Length", request{contentType: "application/x-ndjson", contentEncoding: "gzip", chunked: true, body: gzipped(t, []byte(crlf))}, []string{"acc-1", "acc-2", "acc-3"}},
		{"identity encoding", request{contentType: "application/json", contentEncoding: "identity", body: []byte(e("acc-8").JSON())}, []string{"acc-8"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.endOffsets()
			a := h.post(tc.req)
			if a.status != http.StatusAccepted {
				t.Fatalf("answer %v", a)
			}
			if len(a.ids) != len(tc.accounts) {
				t.Fatalf("%d ids for %d events", len(a.ids), len(tc.accounts))
			}
			if got := h.endOffsets(); got != before+int64(len(tc.accounts)) {
				t.Fatalf("topic grew by %d records, want %d", got-before, len(tc.accounts))
			}
			onTopic := h.readAllEvents()
			for i, id := range a.ids {
				rec, ok := onTopic[id]
				if !ok {
					t.Fatalf("id %s answered but not on the topic", id)
				}
				if got := auditevent.AccountID(decode(t, rec)); got != tc.accounts[i] {
					t.Errorf("id %d (%s) is account %q, want %q", i, id, got, tc.accounts[i])
				}
			}
		})
	}
}

// TestPublishedRecords checks what lands on the topic: ids in request order,
// producer ids kept, tokens masked, record key and headers.
func TestPublishedRecords(t *testing.T) {
	h := newHarness(t)
	const token = "abcdefghijklmnopqrstuvwxyzB6wifA"
	events := []ev{
		newEvent("acc-a").with("request", map[string]any{"id": "req-0"}),
		newEvent("acc-b").with("request", map[string]any{"id": "req-1"}).with("id", "evt-given-1"),
		newEvent("acc-a").with("request", map[string]any{"id": "req-2"}).with("actor", map[string]any{"id": "u", "access-token": map[string]any{"type": "session", "token": token}}),
		newEvent("acc-c").with("request", map[string]any{"id": "req-3"}),
		newEvent("acc-a").with("request", map[string]any{"id": "req-4"}),
	}
	delete(events[3], "timestamp")
	a := h.post(jsonReq(jsonArray(events...)))
	if a.status != http.StatusAccepted {
		t.Fatalf("answer %v", a)
	}
	if strings.Contains(string(a.raw), token) {
		t.Error("the answer echoes the token")
	}
	if len(a.ids) != len(events) || a.ids[1] != "evt-given-1" {
		t.Fatalf("ids %v: want %d with the producer's id kept at 1", a.ids, len(events))
	}
	for i, id := range a.ids {
		if i == 1 {
			continue
		}
		// a generated id is a UUIDv7
		if len(id) != 36 || id[14] != '7' || strings.Count(id, "-") != 4 {
			t.Errorf("generated id %q is not a UUIDv7", id)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(a.ids)))) != len(a.ids) {
		t.Errorf("ids repeat: %v", a.ids)
	}

	recs := h.readTopic(len(events))
	byID := map[string]int{}
	offsets := map[string]int64{}
	for _, rec := range recs {
		if bytes.Contains(rec.Value, []byte(token)) {
			t.Errorf("record %d/%d holds the unmasked token", rec.Partition, rec.Offset)
		}
		e := decode(t, rec)
		i := slices.Index(a.ids, e.GetId())
		if i < 0 {
			t.Fatalf("record with id %s was not answered", e.GetId())
		}
		byID[e.GetId()] = i
		offsets[e.GetId()] = rec.Offset
		if want := "req-" + string(rune('0'+i)); e.GetRequest().GetId() != want {
			t.Errorf("answer id %d (%s) is the event with request id %q, want %q", i, e.GetId(), e.GetRequest().GetId(), want)
		}
		if string(rec.Key) != auditevent.AccountID(e) {
			t.Errorf("record key %q, account %q", rec.Key, auditevent.AccountID(e))
		}
		if rec.Topic != testTopic {
			t.Errorf("topic %q", rec.Topic)
		}
		headers := map[string]string{}
		for _, hd := range rec.Headers {
			headers[hd.Key] = string(hd.Value)
		}
		if headers[auditevent.HeaderContentType] != auditevent.ContentTypeProtobuf || headers[auditevent.HeaderSchemaVersion] != "1" {
			t.Errorf("headers %v", headers)
		}
		if e.GetSchemaVersion() != auditevent.SchemaVersion {
			t.Errorf("schema version %d", e.GetSchemaVersion())
		}
		if e.GetTimestamp() == nil {
			t.Errorf("event %d has no timestamp", i)
		}
		if i == 2 {
			if got := e.GetActor().GetAccessToken().GetToken(); got != "...B6wifA" {
				t.Errorf("token on the topic is %q, want ...B6wifA", got)
			}
		}
	}
	if len(byID) != len(events) {
		t.Fatalf("%d distinct ids on the topic", len(byID))
	}
	// one account's events share a partition and keep the request's order
	if !(offsets[a.ids[0]] < offsets[a.ids[2]] && offsets[a.ids[2]] < offsets[a.ids[4]]) {
		t.Errorf("acc-a offsets out of request order: %d %d %d", offsets[a.ids[0]], offsets[a.ids[2]], offsets[a.ids[4]])
	}
}

// TestDefaultLimits checks the defaults: 5 MB a body, 1000 events a
// request, 256 KB an event.
func TestDefaultLimits(t *testing.T) {
	l := DefaultConfig().Ingest.Limits
	if l.MaxBodyBytes != 5<<20 || l.MaxEvents != 1000 || l.MaxEventBytes != 256<<10 {
		t.Fatalf("default limits %+v", l)
	}
	if DefaultConfig().Ingest.Auth.Disabled {
		t.Fatal("auth is disabled by default")
	}
}

// TestDefaultLimitsEnforced posts just over and at the default limits.
func TestDefaultLimitsEnforced(t *testing.T) {
	h := newHarness(t)
	many := make([]ev, 1001)
	for i := range many {
		many[i] = newEvent("acc-1")
	}
	if a := h.post(ndjsonReq(ndjson(many...))); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("1001 events: %v", a)
	}
	if a := h.post(ndjsonReq(ndjson(many[:1000]...))); a.status != http.StatusAccepted || len(a.ids) != 1000 {
		t.Errorf("1000 events: %d, %d ids", a.status, len(a.ids))
	}
	big := newEvent("acc-1").with("hostname", strings.Repeat("h", 256<<10))
	if a := h.post(jsonReq(big.JSON())); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("event over 256 KiB: %d", a.status)
	}
	body := []byte("[" + strings.Repeat(" ", 5<<20) + newEvent("acc-1").JSON() + "]")
	if a := h.post(request{contentType: "application/json", body: body}); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("body over 5 MiB: %d", a.status)
	}
}
