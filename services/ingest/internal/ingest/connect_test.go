package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/auditlog/v1/auditlogv1connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// connectClient speaks the Connect protocol over HTTP/1.1.
func connectClient(h *harness, opts ...connect.ClientOption) auditlogv1connect.IngestServiceClient {
	return auditlogv1connect.NewIngestServiceClient(http.DefaultClient, h.url, opts...)
}

// h2cClient speaks only HTTP/2 without TLS (prior knowledge), as gRPC
// clients do inside a cluster.
func h2cClient(t testing.TB) *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func protoEvent(account string) *auditlogv1.AuditEvent {
	return &auditlogv1.AuditEvent{
		Actor:     &auditlogv1.Actor{Id: "user-1", Type: "user"},
		Request:   &auditlogv1.Request{Action: "workspaces:update", Source: "api"},
		Outcome:   &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 200},
		Target:    &auditlogv1.Target{Id: "ws-1", Type: "workspace", Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: account}}},
		Timestamp: timestamppb.Now(),
	}
}

func TestConnectAndGRPC(t *testing.T) {
	h := newHarness(t, smallLimits, withTokens)
	protocols := []struct {
		name   string
		client auditlogv1connect.IngestServiceClient
	}{
		{"connect", connectClient(h)},
		{"connect+gzip", connectClient(h, connect.WithSendGzip())},
		{"grpc over h2c", auditlogv1connect.NewIngestServiceClient(h2cClient(t), h.url, connect.WithGRPC())},
		{"grpc-web", connectClient(h, connect.WithGRPCWeb())},
	}
	const token = "abcdefghijklmnopqrstuvwxyzB6wifA"
	withToken := func() *auditlogv1.AuditEvent {
		e := protoEvent("acc-1")
		e.Actor.AccessToken = &auditlogv1.AccessToken{Type: "session", Token: token}
		return e
	}
	noAccount := protoEvent("")
	badTime := protoEvent("acc-1")
	badTime.Timestamp = &timestamppb.Timestamp{Seconds: -62135596800 - 1}
	big := protoEvent("acc-1")
	big.Hostname = strings.Repeat("h", 5<<10)
	huge := protoEvent("acc-1")
	huge.Hostname = strings.Repeat("h", 70<<10)
	unknownTop := protoEvent("acc-1")
	unknownTop.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "tok-unmasked-in-a-new-field"))
	unknownNested := protoEvent("acc-1")
	unknownNested.Actor.AccessToken = &auditlogv1.AccessToken{Type: "session"}
	unknownNested.Actor.AccessToken.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 7, protowire.VarintType), 1))
	given := protoEvent("acc-2")
	given.Id = "grpc-given-id"

	cases := []struct {
		name    string
		auth    string
		events  func() []*auditlogv1.AuditEvent
		code    connect.Code // 0: success
		message string       // part of the error message
	}{
		{name: "publish", auth: tokenAll, events: func() []*auditlogv1.AuditEvent {
			return []*auditlogv1.AuditEvent{withToken(), protoEvent("acc-2"), protoEvent("acc-3")}
		}},
		{name: "restricted token, own account", auth: tokenAcme, events: func() []*auditlogv1.AuditEvent { return []*auditlogv1.AuditEvent{protoEvent("acme")} }},
		{name: "missing account id", auth: tokenAll, events: func() []*auditlogv1.AuditEvent { return []*auditlogv1.AuditEvent{protoEvent("acc-1"), noAccount} },
			code: connect.CodeInvalidArgument, message: "event 1: field target.context.account.id"},
		{name: "timestamp out of range", auth: tokenAll, events: func() []*auditlogv1.AuditEvent { return []*auditlogv1.AuditEvent{badTime} },
			code: connect.CodeInvalidArgument, message: "field timestamp"},
		{name: "unknown field", auth: tokenAll, events: func() []*auditlogv1.AuditEvent { return []*auditlogv1.AuditEvent{protoEvent("acc-1"), unknownTop} },
			code: connect.CodeInvalidArgument, message: "event 1: field #99"},
		{name: "unknown nested field", auth: tokenAll, events: func() []*auditlogv1.AuditEvent { return []*auditlogv1.AuditEvent{unknownNested} },
			code: connect.CodeInvalidArgument, message: "event 0: field actor.access-token.#7"},
		{name: "no events", auth: tokenAll, events: func() []*auditlogv1.AuditEvent { return nil }, code: connect.CodeInvalidArgument},
		{name: "too many events", auth: tokenAll, events: func() []*auditlogv1.AuditEvent {
			return []*auditlogv1.AuditEvent{protoEvent("a"), protoEvent("b"), protoEvent("c"), protoEvent("d"), protoEvent("e"), protoEvent("f")}
		}, code: connect.CodeResourceExhausted, message: "limit is 5"},
		{name: "event over max_event_bytes", auth: tokenAll, events: func() []*auditlogv1.AuditEvent { return []*auditlogv1.AuditEvent{protoEvent("a"), big} },
			code: connect.CodeResourceExhausted, message: "event 1"},
		{name: "message over max_body_bytes", auth: tokenAll, events: func() []*auditlogv1.AuditEvent { return []*auditlogv1.AuditEvent{huge} },
			code: connect.CodeResourceExhausted},
		{name: "missing token", events: func() []*auditlogv1.AuditEvent { return []*auditlogv1.AuditEvent{protoEvent("acc-1")} },
			code: connect.CodeUnauthenticated},
		{name: "wrong token", auth: "nope", events: func() []*auditlogv1.AuditEvent { return []*auditlogv1.AuditEvent{protoEvent("acc-1")} },
			code: connect.CodeUnauthenticated},
		{name: "restricted token, other account", auth: tokenAcme, events: func() []*auditlogv1.AuditEvent {
			return []*auditlogv1.AuditEvent{protoEvent("acme"), protoEvent("globex")}
		},
			code: connect.CodePermissionDenied, message: "globex"},
	}
	for _, p := range protocols {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				before := h.endOffsets()
				events := tc.events()
				req := connect.NewRequest(&auditlogv1.PublishRequest{Events: events})
				if tc.auth != "" {
					req.Header().Set("Authorization", "Bearer "+tc.auth)
				}
				resp, err := p.client.Publish(context.Background(), req)
				if tc.code != 0 {
					if connect.CodeOf(err) != tc.code {
						t.Fatalf("error %v, want code %v", err, tc.code)
					}
					if !strings.Contains(err.Error(), tc.message) {
						t.Errorf("error %q does not say %q", err, tc.message)
					}
					if strings.Contains(err.Error(), tokenAll) || strings.Contains(err.Error(), tokenAcme) {
						t.Errorf("error echoes a token: %v", err)
					}
					h.assertNothingWritten(before)
					return
				}
				if err != nil {
					t.Fatalf("publish: %v", err)
				}
				ids := resp.Msg.GetIds()
				if len(ids) != len(events) {
					t.Fatalf("%d ids for %d events", len(ids), len(events))
				}
				onTopic := h.readAllEvents()
				for i, id := range ids {
					rec, ok := onTopic[id]
					if !ok {
						t.Fatalf("id %s is not on the topic", id)
					}
					if string(rec.Key) != events[i].GetTarget().GetContext().GetAccount().GetId() {
						t.Errorf("record key %q for event %d", rec.Key, i)
					}
					if bytes.Contains(rec.Value, []byte(token)) {
						t.Errorf("record of %s holds the unmasked token", id)
					}
					if e := decode(t, rec); e.GetActor().GetAccessToken() != nil && e.GetActor().GetAccessToken().GetToken() != "...B6wifA" {
						t.Errorf("token on the topic %q", e.GetActor().GetAccessToken().GetToken())
					}
				}
			})
		}
	}

	t.Run("producer id kept", func(t *testing.T) {
		req := connect.NewRequest(&auditlogv1.PublishRequest{Events: []*auditlogv1.AuditEvent{given, protoEvent("acc-3")}})
		req.Header().Set("Authorization", "Bearer "+tokenAll)
		resp, err := protocols[2].client.Publish(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if ids := resp.Msg.GetIds(); len(ids) != 2 || ids[0] != "grpc-given-id" || slices.Contains(ids[1:], "") {
			t.Fatalf("ids %v", ids)
		}
	})

	m := h.scrape()
	for _, series := range []string{
		`auditstream_ingest_requests_total{code="ok",protocol="connect"}`,
		`auditstream_ingest_requests_total{code="invalid_argument",protocol="connect"}`,
		`auditstream_ingest_requests_total{code="unauthenticated",protocol="connect"}`,
		`auditstream_ingest_requests_total{code="resource_exhausted",protocol="connect"}`,
		`auditstream_ingest_requests_total{code="permission_denied",protocol="connect"}`,
	} {
		if m[series] < 1 {
			t.Errorf("%s = %v", series, m[series])
		}
	}
}

func TestToConnectErrorCodes(t *testing.T) {
	cases := []struct {
		status int
		code   connect.Code
	}{
		{http.StatusBadRequest, connect.CodeInvalidArgument},
		{http.StatusForbidden, connect.CodePermissionDenied},
		{http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted},
		{http.StatusServiceUnavailable, connect.CodeUnavailable},
		{http.StatusInternalServerError, connect.CodeInternal},
	}
	for _, tc := range cases {
		err := toConnectError(&apiError{status: tc.status, message: "m"})
		if connect.CodeOf(err) != tc.code {
			t.Errorf("%d → %v, want %v", tc.status, connect.CodeOf(err), tc.code)
		}
	}
	err := toConnectError(&apiError{status: 503, message: "partial", ids: []string{"a", "b"}, written: []string{"a"}, failed: []string{"b"}, retryAfter: 1})
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Meta().Get("Retry-After") != "1" || !strings.Contains(ce.Message(), "written ids: [a]; failed ids: [b]") {
		t.Errorf("partial write as a connect error: %v (meta %v)", err, ce.Meta())
	}
}

// TestConnectReservesInflightBeforeReading sends a Connect request whose
// body trickles in: its bytes count against max_inflight_bytes from the
// start, not only once the message was read and decoded.
func TestConnectReservesInflightBeforeReading(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Ingest.Limits = Limits{MaxBodyBytes: 16 << 10, MaxEvents: 100, MaxEventBytes: 16 << 10}
		c.Ingest.MaxInflightBytes = 20 << 10
	})
	gauge := func() float64 { return h.scrape()["auditstream_ingest_inflight_bytes"] }
	const length = 12 << 10
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, h.url+auditlogv1connect.IngestServicePublishProcedure, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/proto")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if _, err := pw.Write([]byte{0x0a}); err != nil { // the first byte of a message
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the trickling request to be counted", func() bool { return gauge() == length })

	// the rest of the budget is too small for another such request
	big := protoEvent("acc-1")
	big.Hostname = strings.Repeat("h", 10<<10)
	_, err = connectClient(h).Publish(context.Background(), connect.NewRequest(&auditlogv1.PublishRequest{Events: []*auditlogv1.AuditEvent{big}}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("second request: %v", err)
	}

	pw.CloseWithError(errors.New("client gave up"))
	<-done
	waitFor(t, 5*time.Second, "the reservation to be released", func() bool { return gauge() == 0 })
	if _, err := connectClient(h).Publish(context.Background(), connect.NewRequest(&auditlogv1.PublishRequest{Events: []*auditlogv1.AuditEvent{big}})); err != nil {
		t.Errorf("after release: %v", err)
	}
}
