package destinations

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"

	"github.com/auditstream/auditstream/services/internal/eventfilter"
)

// AccountSchema names the JSON form of an AccountConfig, the value of a
// record of the destinations topic.
const AccountSchema = "auditstream.destinations.account.v1"

// Limits on one account's configuration, which is one record of the
// destinations topic: they keep a record well under the brokers' default
// message.max.bytes (1 MiB) and a consumer's memory bounded by the accounts
// configured.
const (
	MaxAccountConnections     = 32
	MaxAccountStorageProfiles = 8
	MaxSettingsBytes          = 16 << 10
	MaxAccountRecordBytes     = 768 << 10
)

// AccountConfig is what an account's admins configured through the
// destinations API: their connections, storage profiles and audit-log
// settings. It is one record of the destinations topic (key = account id);
// secrets inside settings are sealed, never plain.
type AccountConfig struct {
	Schema  string `json:"schema"`
	Account string `json:"account"`
	// Version is 1 for an account's first configuration and grows by one
	// with every write. A record is applied only when its Version follows
	// the one in force (see Store), which makes concurrent writers safe.
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by,omitempty"`

	AuditLogs       AuditLogs            `json:"audit_logs"`
	Connections     map[string]*Resource `json:"connections,omitempty"`
	StorageProfiles map[string]*Resource `json:"storage_profiles,omitempty"`

	recordHash [sha256.Size]byte // of the record it was decoded from, if any
}

// AuditLogs are an account's audit-log settings: which connections stream
// its events in real time, and which storage profile archives them daily.
type AuditLogs struct {
	// Streaming turns real-time delivery on for the connections listed.
	Streaming   bool     `json:"streaming"`
	Connections []string `json:"connections"`
	// StorageProfile names the profile the daily archive is written to;
	// empty archives nothing.
	StorageProfile string `json:"storage_profile"`
	// Revision is the account Version at which these settings last changed.
	Revision  int64     `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Resource is a connection or a storage profile as the API keeps it.
type Resource struct {
	Type    string `json:"type"`
	Enabled bool   `json:"enabled"`
	// Settings are the type's settings as the destinations file spells
	// them, in JSON, with every secret sealed (see SealedSecret).
	Settings json.RawMessage `json:"settings"`
	// Filter and Redact are what the destination receives of the account's
	// events (see Connection.Policy); RedactionKey, sealed like a settings
	// secret, keys its hash redactions.
	Filter       string             `json:"filter,omitempty"`
	Redact       []eventfilter.Rule `json:"redact,omitempty"`
	RedactionKey *SealedSecret      `json:"redaction_key,omitempty"`
	// Revision is the account Version at which the resource last changed;
	// the API's ETag is derived from it.
	Revision  int64     `json:"revision"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SealedSecret is how a secret is stored inside a resource's settings: the
// envelope-encrypted value and, for secrets long enough not to be guessed
// from it, its last four characters, which reads show.
type SealedSecret struct {
	Sealed json.RawMessage `json:"sealed"`
	Last4  string          `json:"last4,omitempty"`
}

// Qualified names are how a connection the API manages is named in a
// Table, in status and in headers: "<account>/<name>" for a connection and
// "<account>/storage-profiles/<name>" for a storage profile. Account ids
// and file connection names cannot hold '/', so they never collide with a
// file's connection.
func QualifiedConnection(account, name string) string { return account + "/" + name }

// QualifiedStorageProfile is a storage profile's name in a Table.
func QualifiedStorageProfile(account, name string) string {
	return account + "/storage-profiles/" + name
}

// ValidName reports whether s is a valid connection or storage profile name.
func ValidName(s string) bool { return validName(s) }

// DecodeAccount reads a record value of the destinations topic.
func DecodeAccount(data []byte) (*AccountConfig, error) {
	if len(data) > MaxAccountRecordBytes {
		return nil, fmt.Errorf("account configuration of %d bytes is over the %d byte limit", len(data), MaxAccountRecordBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var a AccountConfig
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("decode account configuration: %w", err)
	}
	if a.Schema != AccountSchema {
		return nil, fmt.Errorf("decode account configuration: schema %q is not %q", truncate(a.Schema), AccountSchema)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	a.recordHash = sha256.Sum256(data)
	return &a, nil
}

// Encode is the record value of a.
func (a *AccountConfig) Encode() ([]byte, error) {
	a.Schema = AccountSchema
	data, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode account configuration: %w", err)
	}
	if len(data) > MaxAccountRecordBytes {
		return nil, fmt.Errorf("account configuration of %d bytes is over the %d byte limit", len(data), MaxAccountRecordBytes)
	}
	return data, nil
}

// keepTypes drops the resources of types not in types: a consumer keeps
// only what it delivers to. The audit-log settings may then name
// connections it no longer holds, which route nowhere.
func (a *AccountConfig) keepTypes(types []string) {
	for _, m := range []map[string]*Resource{a.Connections, a.StorageProfiles} {
		for name, r := range m {
			if !slices.Contains(types, r.Type) {
				delete(m, name)
			}
		}
	}
}

// Empty reports whether nothing is configured: such an account is deleted
// from the topic with a tombstone.
func (a *AccountConfig) Empty() bool {
	return a == nil || len(a.Connections) == 0 && len(a.StorageProfiles) == 0 &&
		!a.AuditLogs.Streaming && len(a.AuditLogs.Connections) == 0 && a.AuditLogs.StorageProfile == ""
}

// Clone is a deep copy of a, to be changed and written as the next version.
func (a *AccountConfig) Clone() *AccountConfig {
	if a == nil {
		return nil
	}
	c := *a
	c.recordHash = [sha256.Size]byte{} // a copy is to be changed
	c.AuditLogs.Connections = slices.Clone(a.AuditLogs.Connections)
	c.Connections = cloneResources(a.Connections)
	c.StorageProfiles = cloneResources(a.StorageProfiles)
	return &c
}

func cloneResources(m map[string]*Resource) map[string]*Resource {
	if m == nil {
		return nil
	}
	out := make(map[string]*Resource, len(m))
	for k, v := range m {
		r := *v
		r.Settings = bytes.Clone(v.Settings)
		out[k] = &r
	}
	return out
}

// Validate checks the shape of a: the account id, names, types, limits and
// that the audit-log settings name existing resources. The settings of each
// resource are checked by the consumer of its type, not here.
func (a *AccountConfig) Validate() error {
	var errs config.Errors
	if !ValidAccountID(a.Account) {
		errs.Addf("account", "%q is not a valid account id", truncate(a.Account))
	}
	if a.Version < 1 {
		errs.Addf("version", "must be at least 1")
	}
	if len(a.Connections) > MaxAccountConnections {
		errs.Addf("connections", "%d connections is over the limit of %d per account", len(a.Connections), MaxAccountConnections)
	}
	if len(a.StorageProfiles) > MaxAccountStorageProfiles {
		errs.Addf("storage_profiles", "%d storage profiles is over the limit of %d per account", len(a.StorageProfiles), MaxAccountStorageProfiles)
	}
	for name, r := range a.Connections {
		path := "connections." + name
		if !validName(name) {
			errs.Addf(path, "name must match [a-z0-9][a-z0-9-_.]{0,62}")
		}
		if r == nil {
			errs.Addf(path, "is null")
			continue
		}
		if r.Type == TypeStorage || !slices.Contains(Types, r.Type) {
			errs.Addf(path+".type", "%q is not a connection type (%s)", truncate(r.Type), strings.Join(ConnectionTypes(), ", "))
		}
		checkSettingsJSON(path+".settings", r.Settings, &errs)
	}
	for name, r := range a.StorageProfiles {
		path := "storage_profiles." + name
		if !validName(name) {
			errs.Addf(path, "name must match [a-z0-9][a-z0-9-_.]{0,62}")
		}
		if r == nil {
			errs.Addf(path, "is null")
			continue
		}
		if r.Type != TypeStorage {
			errs.Addf(path+".type", "must be %q", TypeStorage)
		}
		checkSettingsJSON(path+".settings", r.Settings, &errs)
	}
	seen := map[string]bool{}
	for i, name := range a.AuditLogs.Connections {
		path := fmt.Sprintf("audit_logs.connections[%d]", i)
		switch {
		case seen[name]:
			errs.Addf(path, "%q is listed twice", truncate(name))
		case a.Connections[name] == nil:
			errs.Addf(path, "%q is not a connection of this account", truncate(name))
		}
		seen[name] = true
	}
	if p := a.AuditLogs.StorageProfile; p != "" && a.StorageProfiles[p] == nil {
		errs.Addf("audit_logs.storage_profile", "%q is not a storage profile of this account", truncate(p))
	}
	return errs.Err()
}

// ConnectionTypes are the types a connection (not a storage profile) may have.
func ConnectionTypes() []string {
	var out []string
	for _, t := range Types {
		if t != TypeStorage {
			out = append(out, t)
		}
	}
	return out
}

func checkSettingsJSON(path string, raw json.RawMessage, errs *config.Errors) {
	switch {
	case len(raw) == 0:
		return
	case len(raw) > MaxSettingsBytes:
		errs.Addf(path, "%d bytes is over the %d byte limit", len(raw), MaxSettingsBytes)
	case !json.Valid(raw) || bytes.TrimSpace(raw)[0] != '{':
		errs.Addf(path, "must be a JSON object")
	}
}

// Hash is a digest of a's content, the same in every process that reads the
// same record; tables use it in their Version.
func (a *AccountConfig) Hash() [sha256.Size]byte {
	if a.recordHash != ([sha256.Size]byte{}) {
		return a.recordHash
	}
	data, err := json.Marshal(a)
	if err != nil {
		// Only unsupported values fail, and an AccountConfig holds none.
		panic(fmt.Sprintf("destinations: hash account configuration: %v", err))
	}
	return sha256.Sum256(data)
}

// ETag is the entity tag of a resource at revision rev of account.
func ETag(kind, account, name string, rev int64) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%d", kind, account, name, rev))
	return `"` + hex.EncodeToString(h[:10]) + `"`
}

// ErrNotConfigured is returned for an account with no configuration.
var ErrNotConfigured = errors.New("account has no destinations configuration")

// Rewrap passes every sealed secret of a's resources to fn with the
// context it was sealed under, and stores what fn returns in place of the
// changed ones. It returns how many secrets it saw and changed; on an error
// a is left partly changed and must not be written.
func (a *AccountConfig) Rewrap(ctx context.Context, fn Rewrapper) (seen, changed int, err error) {
	for _, coll := range []struct {
		name string
		m    map[string]*Resource
	}{{CollectionConnections, a.Connections}, {CollectionStorageProfiles, a.StorageProfiles}} {
		for name, r := range coll.m {
			var settings any
			dec := json.NewDecoder(bytes.NewReader(r.Settings))
			dec.UseNumber()
			if err := dec.Decode(&settings); err != nil {
				return seen, changed, fmt.Errorf("%s %s: settings: %w", coll.name, name, err)
			}
			n := 0
			settings, err = walkSealed(settings, "", func(path string, secret map[string]any, sealed json.RawMessage) (any, error) {
				seen++
				out, ok, err := fn(ctx, sealed, SecretContext(a.Account, coll.name, name, path))
				if err != nil {
					return nil, fmt.Errorf("%s %s: secret %s: %w", coll.name, name, path, err)
				}
				if ok {
					n++
					secret["sealed"] = json.RawMessage(out)
				}
				return secret, nil
			})
			if err != nil {
				return seen, changed, err
			}
			if n == 0 {
				continue
			}
			changed += n
			if r.Settings, err = json.Marshal(settings); err != nil {
				return seen, changed, fmt.Errorf("%s %s: settings: %w", coll.name, name, err)
			}
		}
	}
	return seen, changed, nil
}

// walkSealed calls fn for every stored secret in v (an object with a
// "sealed" member, see SealedSecret) with its path and sealed value, and
// puts what fn returns in the secret's place.
func walkSealed(v any, path string, fn func(path string, secret map[string]any, sealed json.RawMessage) (any, error)) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if inner, ok := x["sealed"]; ok {
			raw, err := json.Marshal(inner)
			if err != nil {
				return nil, err
			}
			return fn(path, x, raw)
		}
		for k, e := range x {
			o, err := walkSealed(e, joinPath(path, k), fn)
			if err != nil {
				return nil, err
			}
			x[k] = o
		}
	case []any:
		for i, e := range x {
			o, err := walkSealed(e, fmt.Sprintf("%s[%d]", path, i), fn)
			if err != nil {
				return nil, err
			}
			x[i] = o
		}
	}
	return v, nil
}
