package archive

import (
	"fmt"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
)

// PolicyLine is the LineTransform of a storage profile's policy: the line
// is read back as an event, the policy applied (eventfilter.Policy.Apply,
// as every destination applies it) and the result written as a line again.
// A nil policy needs no transform: PolicyLine returns nil.
func PolicyLine(p *eventfilter.Policy) LineTransform {
	if p == nil {
		return nil
	}
	return func(line, buf []byte) ([]byte, bool, error) {
		ev, err := auditevent.DecodeJSON(line, auditevent.DecodeOptions{})
		if err != nil {
			return nil, false, fmt.Errorf("read back an archived line: %w", err)
		}
		out, keep, _ := p.Apply(ev)
		if !keep {
			return buf, false, nil
		}
		return auditevent.AppendJSON(buf, out), true, nil
	}
}
