package destinations

import (
	"context"
	"fmt"
	"hash"
	"strconv"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/auditstream/auditstream/services/internal/eventfilter"
)

// RedactionKeyField is the field a resource's redaction key is sealed
// under (SecretContext).
const RedactionKeyField = "redaction_key"

// policyCache compiles a connection's policy once it compiled: the
// connection, like its table, never changes. A key that cannot be read yet
// (a Secret not mounted) is tried again on the next call.
type policyCache struct {
	mu sync.Mutex
	p  *eventfilter.Policy
	ok bool
}

// HasPolicy reports whether the connection filters or redacts.
func (c *Connection) HasPolicy() bool { return c != nil && (c.filter != "" || len(c.redact) > 0) }

// FilterSource is the connection's filter as written, "" for none.
func (c *Connection) FilterSource() string { return c.filter }

// RedactRules are the connection's redaction rules, nil for none.
func (c *Connection) RedactRules() []eventfilter.Rule {
	return append([]eventfilter.Rule(nil), c.redact...)
}

// Policy is what the connection applies to every event before it is
// encoded: its filter and redaction, compiled, with the redaction key read.
// It is nil (every event, whole) when the connection has neither. Every path
// that sends events to a destination (live delivery, retries, the archive,
// auditctl replay) applies it through eventfilter.Policy.Apply. The error
// names the connection's field; it never holds the key.
func (c *Connection) Policy() (*eventfilter.Policy, error) {
	if !c.HasPolicy() {
		return nil, nil
	}
	pc := c.policy
	if pc == nil {
		return c.compilePolicy()
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.ok {
		return pc.p, nil
	}
	p, err := c.compilePolicy()
	if err != nil {
		return nil, err
	}
	pc.p, pc.ok = p, true
	return p, nil
}

func (c *Connection) compilePolicy() (*eventfilter.Policy, error) {
	var key []byte
	if c.redactionKeySealed != nil && c.resolve != nil {
		r := c.resolve
		if r.open == nil {
			return nil, fmt.Errorf("%s.redaction_key: is sealed and no key ring is configured to open it (destinations.encryption)", c.path())
		}
		plain, err := r.open(context.Background(), c.redactionKeySealed, SecretContext(r.account, r.collection, r.name, RedactionKeyField))
		if err != nil {
			return nil, fmt.Errorf("%s.redaction_key: open: %w", c.path(), err)
		}
		key = plain
	}
	if c.redactionKey.IsSet() {
		v, err := c.redactionKey.Value()
		if err != nil {
			return nil, fmt.Errorf("%s.redaction_key: %w", c.path(), err)
		}
		key = []byte(v)
	}
	p, err := eventfilter.NewPolicy(c.filter, c.redact, key)
	if err != nil {
		return nil, fmt.Errorf("%s.%w", c.path(), err)
	}
	return p, nil
}

// path is the connection's path in its configuration, the prefix of
// errors about it.
func (c *Connection) path() string {
	if c.resolve != nil {
		return "accounts." + c.Account + "." + c.resolve.collection + "." + c.resolve.name
	}
	return "connections." + c.Name
}

// writePolicy adds the policy to a connection's fingerprint, so a changed
// filter, rule or key rebuilds the connection's worker.
func writePolicy(h hash.Hash, c *Connection) {
	if !c.HasPolicy() && c.redactionKeyNode == nil {
		return
	}
	field := func(s string) { h.Write([]byte(strconv.Itoa(len(s)) + ":" + s)) }
	field("policy")
	field(c.filter)
	for _, r := range c.redact {
		field(r.Path)
		field(r.Action)
		field(strconv.Itoa(r.Keep))
	}
	if c.redactionKeyNode != nil {
		sum := nodeHash(c.redactionKeyNode, map[*yaml.Node][32]byte{}, map[*yaml.Node]bool{})
		h.Write(sum[:])
	}
}
