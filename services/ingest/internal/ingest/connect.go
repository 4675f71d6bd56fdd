package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/auditlog/v1/auditlogv1connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// connectHandler serves IngestService over Connect, gRPC and gRPC-Web with
// the same limits and rules as POST /v1/events.
func (s *Service) connectHandler() (string, http.Handler) {
	path, h := auditlogv1connect.NewIngestServiceHandler(connectService{s},
		connect.WithReadMaxBytes(int(s.cfg.Limits.MaxBodyBytes)),
	)
	return path, s.reserveInflight(h)
}

// reserveInflight counts a Connect/gRPC request against max_inflight_bytes
// before the body is read, as POST /v1/events does: connect reads and
// decodes the whole message before Publish runs, so a check in Publish would
// come after the memory is spent and a flood would not be bounded. The
// reservation is the request's length when it is known and uncompressed,
// else the largest body a request may have.
func (s *Service) reserveInflight(next http.Handler) http.Handler {
	errw := connect.NewErrorWriter()
	maxBody := int64(s.cfg.Limits.MaxBodyBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reserve := maxBody
		compressed := r.Header.Get("Content-Encoding") != "" || r.Header.Get("Connect-Content-Encoding") != "" || r.Header.Get("Grpc-Encoding") != ""
		if n := r.ContentLength; n > 0 && n < maxBody && !compressed {
			reserve = n
		}
		if !s.inflight.TryAcquire(reserve) {
			s.metrics.rejected.WithLabelValues("overloaded").Inc()
			s.metrics.requests.WithLabelValues("connect", connect.CodeUnavailable.String()).Inc()
			err := retryable(connect.CodeUnavailable, "too many bytes in flight; nothing was written, retry shortly", time.Second)
			if errw.IsSupported(r) {
				_ = errw.Write(w, r, err)
				return
			}
			writeError(w, &apiError{status: http.StatusServiceUnavailable, code: "overloaded", message: "too many bytes in flight; nothing was written, retry shortly", retryAfter: time.Second})
			return
		}
		s.metrics.inflightBytes.Add(float64(reserve))
		defer func() {
			s.inflight.Release(reserve)
			s.metrics.inflightBytes.Sub(float64(reserve))
		}()
		next.ServeHTTP(w, r)
	})
}

type connectService struct{ s *Service }

func (c connectService) Publish(ctx context.Context, req *connect.Request[auditlogv1.PublishRequest]) (*connect.Response[auditlogv1.PublishResponse], error) {
	start := time.Now()
	resp, err := c.publish(ctx, req)
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	c.s.metrics.requests.WithLabelValues("connect", code).Inc()
	c.s.metrics.requestLatency.WithLabelValues("connect").Observe(time.Since(start).Seconds())
	return resp, err
}

func (c connectService) publish(ctx context.Context, req *connect.Request[auditlogv1.PublishRequest]) (*connect.Response[auditlogv1.PublishResponse], error) {
	s := c.s
	p, why := s.auth.Authenticate(req.Header())
	if p == nil {
		s.metrics.rejected.WithLabelValues("unauthorized").Inc()
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New(why))
	}
	events := req.Msg.GetEvents()
	limits := s.cfg.Limits
	if len(events) == 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the request holds no events"))
	}
	if len(events) > limits.MaxEvents {
		s.metrics.rejected.WithLabelValues(auditevent.ReasonTooLarge).Add(float64(len(events)))
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("the request holds %d events; the limit is %d", len(events), limits.MaxEvents))
	}
	for i, ev := range events {
		n := int64(proto.Size(ev))
		if n > int64(limits.MaxEventBytes) {
			s.metrics.rejected.WithLabelValues(auditevent.ReasonTooLarge).Add(float64(len(events)))
			return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("event %d is %d bytes; the limit is %d; nothing was written", i, n, limits.MaxEventBytes))
		}
	}
	// the request's bytes are counted in flight by reserveInflight

	// Unknown fields are rejected as POST /v1/events rejects them: kept,
	// they would reach the topic as bytes nothing checks or masks.
	var unknown []*auditevent.FieldError
	for i, ev := range events {
		if path, ok := unknownField(ev.ProtoReflect(), ""); ok && len(unknown) < maxErrorDetails {
			unknown = append(unknown, &auditevent.FieldError{Index: i, Field: path, Reason: auditevent.ReasonUnknownField,
				Message: fmt.Sprintf("unknown field %s (see docs/record-format.md for the schema)", path)})
		}
	}
	if len(unknown) > 0 {
		s.metrics.rejected.WithLabelValues(auditevent.ReasonUnknownField).Add(float64(len(unknown)))
		return nil, toConnectError(&apiError{status: http.StatusBadRequest, code: "invalid_events",
			message: fmt.Sprintf("%d of %d events hold unknown fields; nothing was written", len(unknown), len(events)), details: unknown})
	}

	ids, aerr := s.publish(ctx, p, events, false)
	if aerr != nil {
		return nil, toConnectError(aerr)
	}
	return connect.NewResponse(&auditlogv1.PublishResponse{Ids: ids}), nil
}

// unknownField returns the path of the first field of m, or of a message in
// it, that the schema does not know: the JSON path of the message holding it
// and "#" with the field number.
func unknownField(m protoreflect.Message, path string) (string, bool) {
	if raw := m.GetUnknown(); len(raw) > 0 {
		num, _, _ := protowire.ConsumeTag(raw)
		return path + "#" + strconv.Itoa(int(num)), true
	}
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		name := path + strings.ReplaceAll(string(fd.Name()), "_", "-") + "."
		if fd.IsList() {
			for i := range v.List().Len() {
				if p, ok := unknownField(v.List().Get(i).Message(), name); ok {
					found = p
					return false
				}
			}
			return true
		}
		if p, ok := unknownField(v.Message(), name); ok {
			found = p
			return false
		}
		return true
	})
	return found, found != ""
}

func toConnectError(e *apiError) error {
	var b strings.Builder
	b.WriteString(e.message)
	for _, d := range e.details {
		fmt.Fprintf(&b, "; %s", d.Error())
	}
	if len(e.failed) > 0 {
		fmt.Fprintf(&b, "; written ids: [%s]; failed ids: [%s]", strings.Join(e.written, ","), strings.Join(e.failed, ","))
	}
	code := connect.CodeInternal
	switch e.status {
	case http.StatusBadRequest:
		code = connect.CodeInvalidArgument
	case http.StatusForbidden:
		code = connect.CodePermissionDenied
	case http.StatusRequestEntityTooLarge:
		code = connect.CodeResourceExhausted
	case http.StatusServiceUnavailable:
		code = connect.CodeUnavailable
	}
	if e.retryAfter > 0 {
		return retryable(code, b.String(), e.retryAfter)
	}
	return connect.NewError(code, errors.New(b.String()))
}

func retryable(code connect.Code, msg string, after time.Duration) error {
	err := connect.NewError(code, errors.New(msg))
	err.Meta().Set("Retry-After", strconv.Itoa(int(max(after.Seconds(), 1))))
	return err
}
