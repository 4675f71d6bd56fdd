package eventfilter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// Policy is what one destination applies to every event before it encodes
// it: its filter, then its redaction. Live delivery, the retry path, the
// archiver and auditctl replay all go through Apply, so an event takes the
// same form wherever it is sent. A nil *Policy keeps every event whole. It
// is safe for concurrent use.
type Policy struct {
	filter   *Filter
	redactor *Redactor
	rules    []Rule
	version  string
}

// NewPolicy compiles a destination's filter (empty for none) and redaction
// rules; key is the destination's redaction key, needed only when a rule
// hashes. It returns nil, nil when there is nothing to apply. Errors name
// the part at fault: "filter: 1:13: undefined field 'typ'",
// "redact[1].path: ...".
func NewPolicy(filter string, rules []Rule, key []byte) (*Policy, error) {
	if filter == "" && len(rules) == 0 {
		return nil, nil
	}
	p := &Policy{rules: append([]Rule(nil), rules...)}
	var errs []error
	if filter != "" {
		f, err := CompileFilter(filter)
		if err != nil {
			errs = append(errs, fmt.Errorf("filter: %w", err))
		}
		p.filter = f
	}
	if len(rules) > 0 {
		r, err := CompileRedaction(rules, key)
		if err != nil {
			errs = append(errs, prefixed("redact", err))
		}
		p.redactor = r
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p.version = policyVersion(filter, rules, key)
	return p, nil
}

func prefixed(prefix string, err error) error {
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, fmt.Errorf("%s%w", prefix, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// Apply decides whether ev goes to the destination and in which form.
// keep is false when the filter excludes the event. A filter that fails on
// this event (filterErr) keeps it: an event is never lost to a filter that
// could not decide; the caller counts the error. out is ev itself when no
// rule changes it, otherwise a redacted copy: ev, shared by every
// destination the event goes to, is never changed.
func (p *Policy) Apply(ev *auditlogv1.AuditEvent) (out *auditlogv1.AuditEvent, keep bool, filterErr error) {
	if p == nil {
		return ev, true, nil
	}
	if p.filter != nil {
		ok, err := p.filter.Match(ev)
		switch {
		case err != nil:
			filterErr = err
		case !ok:
			return nil, false, nil
		}
	}
	return p.redactor.Apply(ev), true, filterErr
}

// Redact is ev in the form the destination receives it, whatever the
// filter says: a connection test sends its event even when the filter
// excludes it. ev is never changed. A nil *Policy returns ev.
func (p *Policy) Redact(ev *auditlogv1.AuditEvent) *auditlogv1.AuditEvent {
	if p == nil {
		return ev
	}
	return p.redactor.Apply(ev)
}

// ApplyTo is Apply for an event that may already be in a policy's form:
// form is the Version of the policy a parked or dead-lettered record's
// value was put in the form of ("" for an event as it came). An event
// already in this very policy's form is kept as it is, since its filter
// passed it and redacting twice would hash a hash; any other goes
// through Apply. Live delivery, replay and redrive all decide this way.
func (p *Policy) ApplyTo(ev *auditlogv1.AuditEvent, form string) (out *auditlogv1.AuditEvent, keep bool, filterErr error) {
	if form != "" && form == p.Version() {
		return ev, true, nil
	}
	return p.Apply(ev)
}

// Filter is the filter's source, "" for none.
func (p *Policy) Filter() string {
	if p == nil || p.filter == nil {
		return ""
	}
	return p.filter.String()
}

// Rules are the redaction rules, nil for none.
func (p *Policy) Rules() []Rule {
	if p == nil {
		return nil
	}
	return append([]Rule(nil), p.rules...)
}

// Redacts reports whether the policy changes events (it has rules).
func (p *Policy) Redacts() bool { return p != nil && len(p.rules) > 0 }

// Version identifies the policy: the same filter, rules and key give the
// same version. It reveals nothing of the key (an HMAC under it, not a hash
// of it), so records and manifests may carry it. "" for a nil policy.
func (p *Policy) Version() string {
	if p == nil {
		return ""
	}
	return p.version
}

func policyVersion(filter string, rules []Rule, key []byte) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s)) + ":" + s))
	}
	field("auditstream.eventfilter.policy.v1")
	field(filter)
	for _, r := range rules {
		field(r.Path)
		field(r.Action)
		field(strconv.Itoa(r.Keep))
	}
	if len(key) > 0 {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte("auditstream.eventfilter.policy-key.v1"))
		h.Write(mac.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
