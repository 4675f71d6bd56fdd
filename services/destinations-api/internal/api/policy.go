package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
)

// policy is a resource's filter, redaction rules and sealed redaction key,
// checked, ready to be stored.
type policy struct {
	filter string
	redact []eventfilter.Rule
	key    *destinations.SealedSecret
}

// preparePolicy checks the filter and redaction of a PUT against the event
// schema, as a consumer compiles them, and seals a new redaction key. The
// key is written as its value (a string), kept with {"set": true}, unset
// when absent or null; it is needed only when a rule hashes. Errors name the
// field (filter, redact[1].path, redaction_key) and, for a filter, the
// position in it.
func (a *API) preparePolicy(ctx context.Context, account, collection, name string, body *resourceBody, old *destinations.Resource) (*policy, error) {
	var errs fieldErrors
	p := &policy{filter: body.Filter, redact: body.Redact}
	if body.Filter != "" {
		if _, err := eventfilter.CompileFilter(body.Filter); err != nil {
			errs.add("filter", "%v", err)
		}
	}
	if len(body.Redact) > eventfilter.MaxRules {
		errs.add("redact", "%d rules is over the limit of %d", len(body.Redact), eventfilter.MaxRules)
		return nil, errs.err()
	}
	var newKey string
	keySet := false
	switch raw := bytes.TrimSpace(body.RedactionKey); {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &newKey); err != nil || newKey == "" {
			errs.add("redaction_key", "must not be empty; leave it out to unset it")
		} else if !utf8.ValidString(newKey) || len(newKey) > 64<<10 {
			errs.add("redaction_key", "must be valid UTF-8 of at most 64 KiB")
		} else {
			keySet = true
		}
	default:
		var keep struct {
			Set bool `json:"set"`
		}
		switch {
		case json.Unmarshal(raw, &keep) != nil || !keep.Set:
			errs.add("redaction_key", `must be the key's value (a string), or {"set": true} to keep the stored one`)
		case old == nil || old.RedactionKey == nil:
			errs.add("redaction_key", "has no stored value to keep; send the key's value")
		default:
			p.key, keySet = old.RedactionKey, true
		}
	}
	seen := map[string]int{}
	for i, rule := range body.Redact {
		field := fmt.Sprintf("redact[%d]", i)
		// checked alone, with a stand-in key: whether a hash has its key is
		// the resource's question, answered below
		if _, err := eventfilter.CompileRedaction([]eventfilter.Rule{rule}, []byte("check")); err != nil {
			for _, one := range config.Flatten(err) {
				f, msg, _ := strings.Cut(strings.TrimPrefix(one.Error(), "[0]."), ": ")
				errs.add(field+"."+f, "%s", msg)
			}
			continue
		}
		if j, dup := seen[rule.Path]; dup {
			errs.add(field+".path", "%q is redacted by redact[%d] already", rule.Path, j)
		}
		seen[rule.Path] = i
		if rule.Action == eventfilter.Hash && !keySet {
			errs.add(field+".action", "hash needs the resource's redaction_key")
		}
	}
	if errs.any() {
		return nil, errs.err()
	}
	if newKey != "" {
		sealed, err := a.sealer.seal(ctx, newKey, destinations.SecretContext(account, collection, name, destinations.RedactionKeyField))
		if err != nil {
			return nil, fmt.Errorf("seal redaction_key: %w", err)
		}
		p.key = &destinations.SealedSecret{Sealed: sealed}
		if len(newKey) >= last4From {
			p.key.Last4 = newKey[len(newKey)-4:]
		}
	}
	return p, nil
}

// samePolicy reports whether a resource's stored policy is p.
func samePolicy(r *destinations.Resource, p *policy) bool {
	if r.Filter != p.filter || !slices.Equal(r.Redact, p.redact) {
		return false
	}
	if (r.RedactionKey == nil) != (p.key == nil) {
		return false
	}
	return r.RedactionKey == nil || bytes.Equal(r.RedactionKey.Sealed, p.key.Sealed)
}
