package delivery

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
)

// filteredOut finishes a job whose event the connection's filter
// excluded: the event is done with for that connection, so its offset can
// commit.
func (r *Runtime) filteredOut(j *job) {
	r.metrics.filtered.WithLabelValues(j.conn).Inc()
	r.counters(j.conn).filtered.Add(1)
	j.t.complete()
}

// policyOf is the policy conn's worker applies; nil when it has none or
// the runtime has no worker for conn.
func (r *Runtime) policyOf(conn string) *eventfilter.Policy {
	r.mu.Lock()
	w := r.workers[conn]
	r.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.currentPolicy()
}

// connectionRecord is record t as it may be kept for one connection, parked
// on the retry topic or dead-lettered: with the connection's policy
// applied, so that the raw value of a redacted field is written nowhere the
// connection's events go. version is the policy's version when the value is
// the policy's form of the event (for the HeaderPolicy header; the retry
// path does not apply the same policy twice), "" when the value is the
// record as it came. keep is false when the filter excludes the event.
//
// A record that does not decode is kept as it came: nothing of it reached
// the connection, and it goes to the dead-letter topic as it is.
func (r *Runtime) connectionRecord(t *tracked, ps *parkState, pol *eventfilter.Policy) (rec *kgo.Record, version string, keep bool) {
	if ps != nil && ps.policy != "" && (pol == nil || ps.policy == pol.Version()) {
		// already in a policy's form; with no policy in force now, it
		// stays as redacted as it was
		return t.rec, ps.policy, true
	}
	if pol == nil {
		return t.rec, "", true
	}
	ev, err := auditevent.DecodeRecord(sourceView(t, ps))
	if err != nil {
		return t.rec, "", true
	}
	out, keep, _ := pol.Apply(ev)
	if !keep {
		return nil, "", false
	}
	if !pol.Redacts() {
		return t.rec, "", true
	}
	nr, err := auditevent.NewRecord(t.rec.Topic, out)
	if err != nil {
		// a decoded event always encodes; were it not to, its redacted
		// form is lost rather than its raw form kept
		nr = &kgo.Record{Headers: []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeProtobuf)}}}
	}
	v := *t.rec
	v.Value = nr.Value
	v.Headers = make([]kgo.RecordHeader, 0, len(t.rec.Headers)+len(nr.Headers))
	for _, h := range t.rec.Headers {
		if h.Key != auditevent.HeaderContentType && h.Key != auditevent.HeaderSchemaVersion {
			v.Headers = append(v.Headers, h)
		}
	}
	v.Headers = append(v.Headers, nr.Headers...)
	return &v, pol.Version(), true
}
