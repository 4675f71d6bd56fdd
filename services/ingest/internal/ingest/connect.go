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
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/auditlog/v1/auditlogv1connect"
	"github.com/auditstream/auditstream/proto/auditevent"
	"google.golang.org/protobuf/proto"
)

// connectHandler serves IngestService over Connect, gRPC and gRPC-Web with
// the same limits and rules as POST /v1/events.
func (s *Service) connectHandler() (string, http.Handler) {
	return auditlogv1connect.NewIngestServiceHandler(connectService{s},
		connect.WithReadMaxBytes(int(s.cfg.Limits.MaxBodyBytes)),
	)
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
	p, why := s.auth.authenticate(req.Header())
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
	size := int64(0)
	for i, ev := range events {
		n := int64(proto.Size(ev))
		if n > int64(limits.MaxEventBytes) {
			s.metrics.rejected.WithLabelValues(auditevent.ReasonTooLarge).Add(float64(len(events)))
			return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("event %d is %d bytes; the limit is %d; nothing was written", i, n, limits.MaxEventBytes))
		}
		size += n
	}
	if !s.inflight.TryAcquire(size) {
		s.metrics.rejected.WithLabelValues("overloaded").Add(float64(len(events)))
		return nil, retryable(connect.CodeUnavailable, "too many bytes in flight; nothing was written, retry shortly", time.Second)
	}
	s.metrics.inflightBytes.Add(float64(size))
	defer func() {
		s.inflight.Release(size)
		s.metrics.inflightBytes.Sub(float64(size))
	}()

	ids, aerr := s.publish(ctx, p, events)
	if aerr != nil {
		return nil, toConnectError(aerr)
	}
	return connect.NewResponse(&auditlogv1.PublishResponse{Ids: ids}), nil
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
