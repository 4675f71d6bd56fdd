package eventfilter

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// The event's own types are copied and read by hand: protoreflect's Has,
// Get and Set cost about 100 ns each and box every string, which made a
// redaction cost more than encoding the event. TestAccessorsCoverTheSchema
// fails when the schema gains a field the code below misses; anything the
// tables do not name falls back to protoreflect.

// shallow copies one message: its scalar fields and unknown bytes copied,
// its messages and maps shared.
func shallow(m proto.Message) proto.Message {
	var c proto.Message
	switch v := m.(type) {
	case *auditlogv1.AuditEvent:
		c = &auditlogv1.AuditEvent{Id: v.Id, SchemaVersion: v.SchemaVersion, Actor: v.Actor, Request: v.Request,
			Hostname: v.Hostname, Service: v.Service, Outcome: v.Outcome, Target: v.Target,
			Timestamp: v.Timestamp, Extra: v.Extra}
	case *auditlogv1.Actor:
		c = &auditlogv1.Actor{Id: v.Id, Type: v.Type, Email: v.Email, AccessToken: v.AccessToken}
	case *auditlogv1.AccessToken:
		c = &auditlogv1.AccessToken{Type: v.Type, Token: v.Token}
	case *auditlogv1.Request:
		c = &auditlogv1.Request{IpAddress: v.IpAddress, Action: v.Action, Id: v.Id, Source: v.Source, UserAgent: v.UserAgent}
	case *auditlogv1.Outcome:
		c = &auditlogv1.Outcome{Result: v.Result, StatusCode: v.StatusCode}
	case *auditlogv1.Target:
		c = &auditlogv1.Target{Id: v.Id, Type: v.Type, DisplayName: v.DisplayName, Context: v.Context}
	case *auditlogv1.Context:
		c = &auditlogv1.Context{Account: v.Account, Environment: v.Environment, Workspace: v.Workspace}
	case *auditlogv1.Ref:
		c = &auditlogv1.Ref{Id: v.Id, DisplayName: v.DisplayName}
	default:
		return reflectShallow(m.ProtoReflect()).Interface()
	}
	if u := m.ProtoReflect().GetUnknown(); len(u) > 0 {
		c.ProtoReflect().SetUnknown(u)
	}
	return c
}

// reflectShallow is shallow for any message, and the reference the
// hand-written cases are tested against.
func reflectShallow(m protoreflect.Message) protoreflect.Message {
	c := m.New()
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		c.Set(f, v)
		return true
	})
	c.SetUnknown(m.GetUnknown())
	return c
}

// msgAccess reads and replaces one message-typed field; get gives nil for
// an absent message.
type msgAccess struct {
	get func(proto.Message) proto.Message
	set func(parent, child proto.Message)
}

// strAccess reads and writes one string field.
type strAccess struct {
	get func(proto.Message) string
	set func(proto.Message, string)
}

func msgField[P proto.Message, C interface {
	comparable
	proto.Message
}](get func(P) C, set func(P, C)) msgAccess {
	return msgAccess{
		get: func(p proto.Message) proto.Message {
			var zero C
			if c := get(p.(P)); c != zero {
				return c
			}
			return nil
		},
		set: func(p, c proto.Message) { set(p.(P), c.(C)) },
	}
}

func strField[P proto.Message](get func(P) string, set func(P, string)) strAccess {
	return strAccess{
		get: func(p proto.Message) string { return get(p.(P)) },
		set: func(p proto.Message, v string) { set(p.(P), v) },
	}
}

type (
	ev  = auditlogv1.AuditEvent
	act = auditlogv1.Actor
	tok = auditlogv1.AccessToken
	req = auditlogv1.Request
	out = auditlogv1.Outcome
	tgt = auditlogv1.Target
	ctx = auditlogv1.Context
	ref = auditlogv1.Ref
)

var msgFields = map[protoreflect.FullName]msgAccess{
	"auditlog.v1.AuditEvent.actor":   msgField(func(p *ev) *act { return p.Actor }, func(p *ev, c *act) { p.Actor = c }),
	"auditlog.v1.AuditEvent.request": msgField(func(p *ev) *req { return p.Request }, func(p *ev, c *req) { p.Request = c }),
	"auditlog.v1.AuditEvent.outcome": msgField(func(p *ev) *out { return p.Outcome }, func(p *ev, c *out) { p.Outcome = c }),
	"auditlog.v1.AuditEvent.target":  msgField(func(p *ev) *tgt { return p.Target }, func(p *ev, c *tgt) { p.Target = c }),
	"auditlog.v1.Actor.access_token": msgField(func(p *act) *tok { return p.AccessToken }, func(p *act, c *tok) { p.AccessToken = c }),
	"auditlog.v1.Target.context":     msgField(func(p *tgt) *ctx { return p.Context }, func(p *tgt, c *ctx) { p.Context = c }),
	"auditlog.v1.Context.account":    msgField(func(p *ctx) *ref { return p.Account }, func(p *ctx, c *ref) { p.Account = c }),
	"auditlog.v1.Context.environment": msgField(func(p *ctx) *ref { return p.Environment },
		func(p *ctx, c *ref) { p.Environment = c }),
	"auditlog.v1.Context.workspace": msgField(func(p *ctx) *ref { return p.Workspace }, func(p *ctx, c *ref) { p.Workspace = c }),
}

var strFields = map[protoreflect.FullName]strAccess{
	"auditlog.v1.AuditEvent.id":       strField(func(p *ev) string { return p.Id }, func(p *ev, v string) { p.Id = v }),
	"auditlog.v1.AuditEvent.hostname": strField(func(p *ev) string { return p.Hostname }, func(p *ev, v string) { p.Hostname = v }),
	"auditlog.v1.AuditEvent.service":  strField(func(p *ev) string { return p.Service }, func(p *ev, v string) { p.Service = v }),
	"auditlog.v1.Actor.id":            strField(func(p *act) string { return p.Id }, func(p *act, v string) { p.Id = v }),
	"auditlog.v1.Actor.type":          strField(func(p *act) string { return p.Type }, func(p *act, v string) { p.Type = v }),
	"auditlog.v1.Actor.email":         strField(func(p *act) string { return p.Email }, func(p *act, v string) { p.Email = v }),
	"auditlog.v1.AccessToken.type":    strField(func(p *tok) string { return p.Type }, func(p *tok, v string) { p.Type = v }),
	"auditlog.v1.AccessToken.token":   strField(func(p *tok) string { return p.Token }, func(p *tok, v string) { p.Token = v }),
	"auditlog.v1.Request.ip_address":  strField(func(p *req) string { return p.IpAddress }, func(p *req, v string) { p.IpAddress = v }),
	"auditlog.v1.Request.action":      strField(func(p *req) string { return p.Action }, func(p *req, v string) { p.Action = v }),
	"auditlog.v1.Request.id":          strField(func(p *req) string { return p.Id }, func(p *req, v string) { p.Id = v }),
	"auditlog.v1.Request.source":      strField(func(p *req) string { return p.Source }, func(p *req, v string) { p.Source = v }),
	"auditlog.v1.Request.user_agent":  strField(func(p *req) string { return p.UserAgent }, func(p *req, v string) { p.UserAgent = v }),
	"auditlog.v1.Outcome.result":      strField(func(p *out) string { return p.Result }, func(p *out, v string) { p.Result = v }),
	"auditlog.v1.Target.id":           strField(func(p *tgt) string { return p.Id }, func(p *tgt, v string) { p.Id = v }),
	"auditlog.v1.Target.type":         strField(func(p *tgt) string { return p.Type }, func(p *tgt, v string) { p.Type = v }),
	"auditlog.v1.Target.display_name": strField(func(p *tgt) string { return p.DisplayName }, func(p *tgt, v string) { p.DisplayName = v }),
	"auditlog.v1.Ref.id":              strField(func(p *ref) string { return p.Id }, func(p *ref, v string) { p.Id = v }),
	"auditlog.v1.Ref.display_name":    strField(func(p *ref) string { return p.DisplayName }, func(p *ref, v string) { p.DisplayName = v }),
}
