package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
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
func auditEvent(r *http.Request, clientIP string, p *bearer.Principal, c change, now time.Time) (*auditlogv1.AuditEvent, error) {
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
	ev.Request.IpAddress = clientIP
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

// clientIP is the address of whoever made r: the connection's peer, or,
// when the peer is a trusted proxy, the last address in X-Forwarded-For
// that is not one.
func (a *API) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !a.trusted(ip) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: stop at the last address known good
		}
		if ip = hop; !a.trusted(hop) {
			break
		}
	}
	return ip.String()
}

func (a *API) trusted(ip netip.Addr) bool {
	for _, p := range a.cfg.API.TrustedProxies {
		if pfx, err := netip.ParsePrefix(p); err == nil && pfx.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// record writes the audit event of a change to the events topic; it
// returns once Kafka acknowledged it.
func (a *API) record(ctx context.Context, r *http.Request, p *bearer.Principal, c change) error {
	ev, err := auditEvent(r, a.clientIP(r), p, c, time.Now())
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
