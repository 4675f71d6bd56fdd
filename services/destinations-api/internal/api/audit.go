package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/bearer"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Audit-event target types and actions for changes made through the API:
// the audit trail shows who redirected the audit trail.
const (
	TargetConnection     = "audit-log-connections"
	TargetStorageProfile = "audit-log-storage-profiles"
	TargetSettings       = "audit-log-settings"
)

// change is one configuration change, recorded as an audit event of the
// account it changed.
type change struct {
	account    string
	action     string // e.g. update-audit-log-connection
	targetType string
	targetID   string
	status     int
	before     any // views, never secrets
	after      any
	verdict    any  // a test's verdict, never secrets
	failed     bool // the outcome is FAILURE (a test that failed)
}

// auditEvent builds the event for c made by p through r.
func auditEvent(r *http.Request, p *bearer.Principal, c change, now time.Time) (*auditlogv1.AuditEvent, error) {
	ev := &auditlogv1.AuditEvent{
		Service:  "audit-log",
		Hostname: r.Host,
		Actor:    &auditlogv1.Actor{Id: p.Name, Type: "api-token"},
		Request: &auditlogv1.Request{
			Action:    c.action,
			Id:        r.Header.Get("X-Request-Id"),
			Source:    "api",
			UserAgent: r.UserAgent(),
		},
		Outcome: &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: int32(c.status)},
		Target: &auditlogv1.Target{
			Id: c.targetID, Type: c.targetType, DisplayName: c.targetID,
			Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: c.account}},
		},
		Timestamp: timestamppb.New(now),
		Extra:     map[string]string{},
	}
	if c.failed {
		ev.Outcome.Result = "FAILURE"
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ev.Request.IpAddress = host
	}
	for k, v := range map[string]any{"before": c.before, "after": c.after, "verdict": c.verdict} {
		if v == nil {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("audit event %s: %w", k, err)
		}
		ev.Extra[k] = string(b)
	}
	return ev, nil
}

// record writes the audit event of a change to the events topic; it
// returns once Kafka acknowledged it.
func (a *API) record(ctx context.Context, r *http.Request, p *bearer.Principal, c change) error {
	ev, err := auditEvent(r, p, c, time.Now())
	if err != nil {
		return err
	}
	res, err := a.events.Publish(ctx, []*auditlogv1.AuditEvent{ev})
	if err == nil {
		err = res.FirstError()
	}
	if err != nil {
		a.metrics.auditFailures.Inc()
		return fmt.Errorf("record %s of %s as an audit event: %w", c.action, c.account, err)
	}
	return nil
}
