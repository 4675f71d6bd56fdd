package otlp

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/internal/version"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// Attribute names. Where an OpenTelemetry semantic convention exists it is
// used; the rest live under audit.*. docs/otlp-forwarder.md has the table.
const (
	// Resource attributes: one Loki stream per account.
	AttrServiceName      = "service.name"
	AttrServiceNamespace = "service.namespace" // the account id; Loki indexes it by default
	AttrAccountID        = "audit.account.id"
	AttrAccountName      = "audit.account.name"

	// LogRecord attributes.
	AttrEventID         = "log.record.uid" // the event id, stable across resends
	AttrEventName       = "event.name"     // the action
	AttrUserID          = "user.id"
	AttrUserEmail       = "user.email"
	AttrActorType       = "audit.actor.type"
	AttrClientAddress   = "client.address"
	AttrUserAgent       = "user_agent.original"
	AttrServerAddress   = "server.address"
	AttrRequestID       = "audit.request.id"
	AttrRequestSource   = "audit.request.source"
	AttrOutcomeResult   = "audit.outcome.result"
	AttrStatusCode      = "http.response.status_code"
	AttrTargetID        = "audit.target.id"
	AttrTargetType      = "audit.target.type"
	AttrTargetName      = "audit.target.name"
	AttrEnvironmentID   = "audit.environment.id"
	AttrEnvironmentName = "audit.environment.name"
	AttrWorkspaceID     = "audit.workspace.id"
	AttrWorkspaceName   = "audit.workspace.name"
)

// ScopeName is the instrumentation scope of every record.
const ScopeName = "auditstream"

// Reasons are stable causes of a dead-lettered entry; see RejectError.
const (
	// ReasonEntryTooLarge: the event alone is over max_request_bytes, or
	// the receiver answered 413 for it alone.
	ReasonEntryTooLarge = "entry_too_large"
	// ReasonRejected: the receiver answered 400 (or another non-retryable
	// 4xx) for a request holding this entry alone.
	ReasonRejected = "rejected_by_receiver"
	// ReasonPartialSuccess: the receiver accepted the request but counted
	// this entry in partial_success.rejected_log_records.
	ReasonPartialSuccess = "rejected_in_partial_success"
	// ReasonBadEntry: the sink was handed an entry it cannot read.
	ReasonBadEntry = "bad_entry"
)

// RejectError says why an entry can never be delivered. It is the Err of a
// Permanent *sink.SendError; its Message holds the receiver's own words.
type RejectError struct {
	Reason  string
	Message string
}

func (e *RejectError) Error() string { return e.Reason + ": " + e.Message }

// Encoder turns audit events into OTLP log entries. It is safe for
// concurrent use.
type Encoder struct {
	now func() time.Time
}

// NewEncoder returns an Encoder stamping observed_time_unix_nano with now
// (nil is time.Now).
func NewEncoder(now func() time.Time) *Encoder {
	if now == nil {
		now = time.Now
	}
	return &Encoder{now: now}
}

// Encoder returns the connection's Encoder.
func (c Config) Encoder() *Encoder { return NewEncoder(nil) }

var protoMarshaler plog.ProtoMarshaler

// jsonBufs hold the event's JSON until the body copies it: a fresh
// buffer per event was the encoder's largest allocation.
var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// EncodeEntry is Encode as the sink takes it: the protobuf with where its
// parts lie, and its size.
func (e *Encoder) EncodeEntry(ev *auditlogv1.AuditEvent) (sink.Entry[Entry], error) {
	b, err := e.Encode(ev)
	if err != nil {
		return sink.Entry[Entry]{}, err
	}
	entry, err := parseEntry(b)
	if err != nil {
		return sink.Entry[Entry]{}, &sink.SendError{Class: sink.Permanent, Err: &RejectError{Reason: ReasonBadEntry, Message: fmt.Sprintf("encode event %q: %v", ev.GetId(), err)}}
	}
	return sink.EntryOf(ev, entry, len(b)), nil
}

// Encode returns the event's entry: the protobuf form of an
// ExportLogsServiceRequest holding one ResourceLogs (the account's
// resource), one ScopeLogs and one LogRecord. Encode is called when the
// event is read, so that is the record's observed time.
func (e *Encoder) Encode(ev *auditlogv1.AuditEvent) ([]byte, error) {
	logs := e.Logs(ev)
	b, err := protoMarshaler.MarshalLogs(logs)
	if err != nil {
		return nil, &sink.SendError{Class: sink.Permanent, Err: &RejectError{Reason: ReasonBadEntry, Message: fmt.Sprintf("encode event %q: %v", ev.GetId(), err)}}
	}
	return b, nil
}

// Logs is the event as pdata: what Encode marshals.
func (e *Encoder) Logs(ev *auditlogv1.AuditEvent) plog.Logs {
	logs := plog.NewLogs()
	rl := logs.ResourceLogs().AppendEmpty()
	res := rl.Resource().Attributes()
	service := ev.GetService()
	if service == "" {
		service = DefaultService
	}
	res.PutStr(AttrServiceName, service)
	acc := ev.GetTarget().GetContext().GetAccount()
	putNonEmpty(res, AttrServiceNamespace, acc.GetId())
	putNonEmpty(res, AttrAccountID, acc.GetId())

	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(ScopeName)
	sl.Scope().SetVersion(version.Version)

	lr := sl.LogRecords().AppendEmpty()
	if ts := ev.GetTimestamp(); ts != nil {
		lr.SetTimestamp(pcommon.NewTimestampFromTime(ts.AsTime()))
	}
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(e.now()))
	if failed(ev.GetOutcome()) {
		lr.SetSeverityNumber(plog.SeverityNumberWarn)
		lr.SetSeverityText("WARN")
	} else {
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.SetSeverityText("INFO")
	}
	if name := ev.GetRequest().GetAction(); name != "" {
		lr.SetEventName(name)
	}
	buf := jsonBufs.Get().(*[]byte)
	*buf = auditevent.AppendJSON((*buf)[:0], ev)
	lr.Body().SetStr(string(*buf))
	jsonBufs.Put(buf)

	a := lr.Attributes()
	a.EnsureCapacity(20)
	putNonEmpty(a, AttrEventID, ev.GetId())
	putNonEmpty(a, AttrEventName, ev.GetRequest().GetAction())
	putNonEmpty(a, AttrUserID, ev.GetActor().GetId())
	putNonEmpty(a, AttrUserEmail, ev.GetActor().GetEmail())
	putNonEmpty(a, AttrActorType, ev.GetActor().GetType())
	putNonEmpty(a, AttrClientAddress, ev.GetRequest().GetIpAddress())
	putNonEmpty(a, AttrUserAgent, ev.GetRequest().GetUserAgent())
	putNonEmpty(a, AttrServerAddress, ev.GetHostname())
	putNonEmpty(a, AttrRequestID, ev.GetRequest().GetId())
	putNonEmpty(a, AttrRequestSource, ev.GetRequest().GetSource())
	putNonEmpty(a, AttrOutcomeResult, ev.GetOutcome().GetResult())
	if code := ev.GetOutcome().GetStatusCode(); code != 0 {
		a.PutInt(AttrStatusCode, int64(code))
	}
	t := ev.GetTarget()
	putNonEmpty(a, AttrTargetID, t.GetId())
	putNonEmpty(a, AttrTargetType, t.GetType())
	putNonEmpty(a, AttrTargetName, t.GetDisplayName())
	putNonEmpty(a, AttrAccountName, acc.GetDisplayName())
	putNonEmpty(a, AttrEnvironmentID, t.GetContext().GetEnvironment().GetId())
	putNonEmpty(a, AttrEnvironmentName, t.GetContext().GetEnvironment().GetDisplayName())
	putNonEmpty(a, AttrWorkspaceID, t.GetContext().GetWorkspace().GetId())
	putNonEmpty(a, AttrWorkspaceName, t.GetContext().GetWorkspace().GetDisplayName())
	return logs
}

// failed says whether an outcome is a failure: a result other than SUCCESS
// (any case), or an HTTP status of 400 or more.
func failed(o *auditlogv1.Outcome) bool {
	if r := o.GetResult(); r != "" && !strings.EqualFold(r, "SUCCESS") {
		return true
	}
	return o.GetStatusCode() >= 400
}

func putNonEmpty(m pcommon.Map, k, v string) {
	if v != "" {
		m.PutStr(k, v)
	}
}
