package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/secretbox"
)

// keptPlaceholder stands for a secret kept as stored while the settings are
// checked: only whether a secret is set matters to a settings type's
// Validate, and its stored value is never opened to check it.
const keptPlaceholder = "[kept]"

// last4From is the shortest secret whose last four characters reads show.
const last4From = 12

// resourceBody is the body of a PUT to a connection or storage profile.
type resourceBody struct {
	Name     string          `json:"name,omitempty"`
	Type     string          `json:"type,omitempty"`
	Enabled  *bool           `json:"enabled,omitempty"`
	Settings json.RawMessage `json:"settings"`
	// Filter, Redact and RedactionKey are the same for every type: what of
	// the account's events the destination receives (see preparePolicy).
	Filter       string             `json:"filter,omitempty"`
	Redact       []eventfilter.Rule `json:"redact,omitempty"`
	RedactionKey json.RawMessage    `json:"redaction_key,omitempty"`
}

// resourceView is a connection or storage profile as the API shows it.
type resourceView struct {
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Enabled  bool           `json:"enabled"`
	Settings map[string]any `json:"settings"`
	// the policy; the key reads as set and its last 4, like a settings
	// secret
	Filter       string             `json:"filter,omitempty"`
	Redact       []eventfilter.Rule `json:"redact,omitempty"`
	RedactionKey *secretView        `json:"redaction_key,omitempty"`
	ETag         string             `json:"etag"`
	CreatedAt    time.Time          `json:"created_at"`
	UpdatedAt    time.Time          `json:"updated_at"`
}

// secretView is how a stored secret reads: set, and its last 4 characters
// when it is long enough.
type secretView struct {
	Set   bool   `json:"set"`
	Last4 string `json:"last4,omitempty"`
}

// sealer seals and opens the secrets of resources.
type sealer struct{ box *secretbox.Box }

func (s sealer) seal(ctx context.Context, value string, aad map[string]string) (json.RawMessage, error) {
	sealed, err := s.box.Seal(ctx, []byte(value), secretbox.Context(aad))
	if err != nil {
		return nil, err
	}
	return json.Marshal(sealed)
}

// prepared is a request's settings, checked, ready to be stored.
type prepared struct {
	stored json.RawMessage
}

// prepare checks the settings of a PUT against the kind and the stored
// resource old (nil when new), and seals its secrets. A secret is written as
// its value (a string); the object a read shows ({"set": true, ...}) keeps
// the stored value; an absent secret is unset.
func (a *API) prepare(ctx context.Context, k *kind, account, name string, raw json.RawMessage, old *destinations.Resource) (*prepared, error) {
	var errs fieldErrors
	settings, err := decodeObject(raw)
	if err != nil {
		errs.add("settings", "%v", err)
		return nil, errs.err()
	}
	var oldSettings map[string]any
	if old != nil {
		oldSettings, _ = decodeObject(old.Settings)
	}
	if path := findSealed(settings, ""); path != "" {
		errs.add("settings."+path, "sealed values cannot be written; send the secret's value")
		return nil, errs.err()
	}
	type secretWrite struct{ path, value string }
	var writes []secretWrite
	var kept []string
	for _, path := range k.secrets {
		v, ok := getPath(settings, path)
		if !ok || v == nil {
			continue
		}
		field := "settings." + path
		switch x := v.(type) {
		case string:
			switch {
			case x == "":
				errs.add(field, "must not be empty; leave it out to unset it")
			case !utf8.ValidString(x):
				errs.add(field, "must be valid UTF-8")
			case len(x) > 64<<10:
				errs.add(field, "is longer than 64 KiB")
			default:
				writes = append(writes, secretWrite{path, x})
			}
		case map[string]any:
			if _, isFile := x["file"]; isFile {
				errs.add(field, "file references are not accepted through the API; send the secret's value")
			} else if _, isEnv := x["env"]; isEnv {
				errs.add(field, "environment references are not accepted through the API; send the secret's value")
			} else if set, _ := x["set"].(bool); set {
				if ov, ok := getPath(oldSettings, path); !ok || !isSealed(ov) {
					errs.add(field, "has no stored value to keep; send the secret's value")
				} else {
					kept = append(kept, path)
					setPath(settings, path, keptPlaceholder)
				}
			} else {
				errs.add(field, `must be the secret's value (a string), or {"set": true} to keep the stored one`)
			}
		default:
			errs.add(field, "must be the secret's value (a string)")
		}
	}
	if errs.any() {
		return nil, errs.err()
	}
	// Check with the consumer's own decoder; secrets in the clear here never
	// leave this function.
	plain, err := json.Marshal(settings)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	conn := destinations.NewAPIConnection(account, k.collection, name, k.typ, plain, nil)
	if err := k.check(conn, a.cfg.API); err != nil {
		errs.addConfig(conn, err)
		return nil, errs.err()
	}
	for _, w := range writes {
		sealed, err := a.sealer.seal(ctx, w.value, destinations.SecretContext(account, k.collection, name, w.path))
		if err != nil {
			return nil, fmt.Errorf("seal settings.%s: %w", w.path, err)
		}
		s := destinations.SealedSecret{Sealed: sealed}
		if len(w.value) >= last4From {
			s.Last4 = w.value[len(w.value)-4:]
		}
		setPath(settings, w.path, s)
	}
	for _, path := range kept {
		ov, _ := getPath(oldSettings, path)
		setPath(settings, path, ov)
	}
	stored, err := json.Marshal(settings)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return &prepared{stored: stored}, nil
}

// view is r as the API shows it: secrets as set and their last 4.
func view(kind, account, name string, r *destinations.Resource) resourceView {
	settings, _ := decodeObject(r.Settings)
	hideSecrets(settings)
	if settings == nil {
		settings = map[string]any{}
	}
	v := resourceView{Name: name, Type: r.Type, Enabled: r.Enabled, Settings: settings,
		Filter: r.Filter, Redact: r.Redact,
		ETag: destinations.ETag(kind, account, name, r.Revision), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if r.RedactionKey != nil {
		v.RedactionKey = &secretView{Set: true, Last4: r.RedactionKey.Last4}
	}
	return v
}

func hideSecrets(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if isSealed(x) {
			last4, _ := x["last4"].(string)
			return secretView{Set: true, Last4: last4}
		}
		for k, e := range x {
			x[k] = hideSecrets(e)
		}
	case []any:
		for i, e := range x {
			x[i] = hideSecrets(e)
		}
	}
	return v
}

func isSealed(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, ok = m["sealed"]
	return ok
}

// findSealed returns the path of an object that looks sealed, or "".
func findSealed(v any, path string) string {
	switch x := v.(type) {
	case map[string]any:
		if isSealed(x) {
			return path
		}
		for k, e := range x {
			if p := findSealed(e, joinPath(path, k)); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range x {
			if p := findSealed(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

func decodeObject(raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]any{}, nil
	}
	if raw[0] != '{' {
		return nil, errors.New("must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("is not valid JSON: %v", jsonProblem(err))
	}
	return m, nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func getPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// setPath sets an existing path's value.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	obj := m
	for _, part := range parts[:len(parts)-1] {
		next, ok := obj[part].(map[string]any)
		if !ok {
			return
		}
		obj = next
	}
	obj[parts[len(parts)-1]] = v
}
