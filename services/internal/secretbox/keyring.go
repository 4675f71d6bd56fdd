package secretbox

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/auditstream/auditstream/services/internal/config"
)

// The keyring file, YAML:
//
//	primary: k2
//	keys:
//	  - id: k1
//	    key: <base64 of 32 random bytes>
//	  - id: k2
//	    key: <base64 of 32 random bytes>
//
// New data keys are wrapped under primary; every listed key unwraps.

var keyIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// wrapDomain starts the authenticated data of a data key wrapped by the
// keyring, so a wrapped key is never mistaken for a sealed value.
const wrapDomain = "auditstream/secretbox/wrap/v1\x00"

// ring is a parsed keyring file.
type ring struct {
	primary string
	ids     []string               // in file order
	raw     map[string][]byte      // id -> key bytes, for AddKey and RemoveKey
	aeads   map[string]cipher.AEAD // id -> AES-256-GCM under the key
}

// parseRing reads a keyring file strictly. Errors name the field (and its
// line), never a key's value.
func parseRing(data []byte) (*ring, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, errors.New("empty: it needs primary and keys")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: must be a mapping with primary and keys", root.Line)
	}
	var errs config.Errors
	r := &ring{raw: map[string][]byte{}, aeads: map[string]cipher.AEAD{}}
	var primaryNode, keysNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "primary":
			primaryNode = v
		case "keys":
			keysNode = v
		default:
			errs.Addf(fieldName(k.Value), "line %d: unknown field (the fields are primary and keys)", k.Line)
		}
	}
	switch {
	case primaryNode == nil:
		errs.Addf("primary", "must be set to the id of the key that wraps new data keys")
	case primaryNode.Kind != yaml.ScalarNode || primaryNode.Tag == "!!null":
		errs.Addf("primary", "line %d: must be a key id", primaryNode.Line)
	default:
		r.primary = primaryNode.Value
	}
	switch {
	case keysNode == nil:
		errs.Addf("keys", "must list at least one key")
	case keysNode.Kind != yaml.SequenceNode:
		errs.Addf("keys", "line %d: must be a list of {id, key}", keysNode.Line)
	case len(keysNode.Content) == 0:
		errs.Addf("keys", "must list at least one key")
	default:
		first := map[string]int{}
		for i, item := range keysNode.Content {
			path := fmt.Sprintf("keys[%d]", i)
			if item.Kind != yaml.MappingNode {
				errs.Addf(path, "line %d: must be a mapping with id and key", item.Line)
				continue
			}
			var id, key *yaml.Node
			for j := 0; j+1 < len(item.Content); j += 2 {
				k, v := item.Content[j], item.Content[j+1]
				switch k.Value {
				case "id":
					id = v
				case "key":
					key = v
				default:
					errs.Addf(path+"."+fieldName(k.Value), "line %d: unknown field (the fields are id and key)", k.Line)
				}
			}
			idOK := false
			switch {
			case id == nil:
				errs.Addf(path+".id", "must be set")
			case id.Kind != yaml.ScalarNode || !keyIDRe.MatchString(id.Value):
				errs.Addf(path+".id", "line %d: must be 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit", id.Line)
			default:
				if j, dup := first[id.Value]; dup {
					errs.Addf(path+".id", "line %d: %q is also the id of keys[%d]", id.Line, id.Value, j)
				} else {
					first[id.Value] = i
					idOK = true
				}
			}
			var raw []byte
			switch {
			case key == nil:
				errs.Addf(path+".key", "must be set (base64 of %d random bytes)", DataKeyBytes)
			case key.Kind != yaml.ScalarNode:
				errs.Addf(path+".key", "line %d: must be a base64 string", key.Line)
			default:
				b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key.Value))
				switch {
				case err != nil:
					errs.Addf(path+".key", "line %d: is not standard base64", key.Line)
				case len(b) != DataKeyBytes:
					errs.Addf(path+".key", "line %d: decodes to %d bytes, want %d", key.Line, len(b), DataKeyBytes)
				default:
					raw = b
				}
			}
			if idOK && raw != nil {
				aead, err := newAEAD(raw)
				if err != nil {
					errs.Addf(path+".key", "%v", err)
					continue
				}
				r.ids = append(r.ids, id.Value)
				r.raw[id.Value] = raw
				r.aeads[id.Value] = aead
			}
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if _, ok := r.aeads[r.primary]; !ok {
		return nil, fmt.Errorf("primary: %q is not the id of a listed key", short(r.primary))
	}
	return r, nil
}

var fieldNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,31}$`)

// fieldName is an unknown field's name for an error, unless it could be
// something else (a key pasted in the wrong place).
func fieldName(s string) string {
	if fieldNameRe.MatchString(s) {
		return s
	}
	return "(unknown field)"
}

// render writes r as a keyring file.
func (r *ring) render() []byte {
	var b bytes.Buffer
	b.WriteString("# auditstream keyring: key-encryption keys of the stored destination secrets.\n")
	b.WriteString("# primary wraps new data keys; every listed key opens. Keep it secret (mode 0600)\n")
	b.WriteString("# and never remove a key before every value is re-wrapped (docs/secrets-encryption.md).\n")
	fmt.Fprintf(&b, "primary: %s\nkeys:\n", r.primary)
	for _, id := range r.ids {
		fmt.Fprintf(&b, "  - id: %s\n    key: %s\n", id, base64.StdEncoding.EncodeToString(r.raw[id]))
	}
	return b.Bytes()
}

// Keyring is the local KEK: a keyring file read again when it changes
// (stat on use, through config.Secret's file cache), so a key added and
// made primary applies without a restart. A file that turns unreadable or
// invalid is logged and the keys last read stay in use.
type Keyring struct {
	path   string
	secret config.Secret
	log    *zap.Logger

	mu      sync.Mutex
	raw     string
	ring    *ring
	lastErr string
}

// OpenKeyring reads the keyring file at path; it must be valid.
func OpenKeyring(path string, log *zap.Logger) (*Keyring, error) {
	if log == nil {
		log = zap.NewNop()
	}
	k := &Keyring{path: path, secret: config.SecretFile(path), log: log}
	raw, err := k.secret.Value()
	if err != nil {
		return nil, fmt.Errorf("keyring file %s: %w", path, err)
	}
	r, err := parseRing([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("keyring file %s: %w", path, err)
	}
	k.raw, k.ring = raw, r
	return k, nil
}

// current is the keyring as the file holds it now, or the last valid one.
func (k *Keyring) current() *ring {
	raw, err := k.secret.Value()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil && raw == k.raw {
		k.lastErr = ""
		return k.ring
	}
	var r *ring
	if err == nil {
		r, err = parseRing([]byte(raw))
	}
	if err != nil {
		// Logged once per distinct problem, not once per value opened.
		if msg := err.Error(); msg != k.lastErr {
			k.lastErr = msg
			k.log.Error("keyring file unusable; the keys last read stay in use",
				zap.String("keyring_file", k.path), zap.Error(err))
		}
		return k.ring
	}
	k.raw, k.ring, k.lastErr = raw, r, ""
	k.log.Info("keyring file read", zap.String("keyring_file", k.path),
		zap.String("primary", r.primary), zap.Strings("key_ids", r.ids))
	return r
}

// CurrentKeyID is the keyring's primary key id.
func (k *Keyring) CurrentKeyID() string { return k.current().primary }

// KeyIDs are the ids of the keys in the keyring, in file order.
func (k *Keyring) KeyIDs() []string { return slices.Clone(k.current().ids) }

// NewDataKey returns a random data key and the data key wrapped under the
// primary key: nonce, then AES-256-GCM with the key id and c as
// authenticated data.
func (k *Keyring) NewDataKey(_ context.Context, c Context) (string, []byte, []byte, error) {
	r := k.current()
	dk := make([]byte, DataKeyBytes)
	nonce := make([]byte, NonceBytes, NonceBytes+DataKeyBytes+TagBytes)
	if _, err := rand.Read(dk); err != nil {
		return "", nil, nil, fmt.Errorf("data key: %w", err)
	}
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, nil, fmt.Errorf("nonce: %w", err)
	}
	wrapped := r.aeads[r.primary].Seal(nonce, nonce, dk, wrapAAD(r.primary, c))
	return r.primary, dk, wrapped, nil
}

// Unwrap opens a data key wrapped under keyID.
func (k *Keyring) Unwrap(_ context.Context, keyID string, wrapped []byte, c Context) ([]byte, error) {
	aead, ok := k.current().aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("key id %q is not in keyring file %s: %w", short(keyID), k.path, ErrUnknownKey)
	}
	if len(wrapped) != NonceBytes+DataKeyBytes+TagBytes {
		return nil, fmt.Errorf("wrapped key of %d bytes, want %d: %w", len(wrapped), NonceBytes+DataKeyBytes+TagBytes, ErrTampered)
	}
	dk, err := aead.Open(nil, wrapped[:NonceBytes], wrapped[NonceBytes:], wrapAAD(keyID, c))
	if err != nil {
		return nil, fmt.Errorf("wrapped key under %q: %w", short(keyID), ErrTampered)
	}
	return dk, nil
}

func wrapAAD(kid string, c Context) []byte {
	out := append([]byte(wrapDomain), kid...)
	out = append(out, 0)
	return append(out, c.Canonical()...)
}

// GenerateKeyring creates a keyring file at path holding one new random
// key, id, as its primary. The file is created with mode 0600; an existing
// file is never overwritten.
func GenerateKeyring(path, id string) error {
	if !keyIDRe.MatchString(id) {
		return fmt.Errorf("key id %q: must be 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit", short(id))
	}
	r, err := (&ring{raw: map[string][]byte{}}).with(id, true)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keyring file %s already exists; add a key to it with AddKey", path)
		}
		return fmt.Errorf("create keyring file: %w", err)
	}
	_, err = f.Write(r.render())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write keyring file %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// AddKey adds a new random key, id, to the keyring file at path, keeping
// every key it holds, and makes it the primary when makePrimary. The file
// is replaced atomically (a temporary file renamed over it), so a reader
// sees the old keyring or the new one, never a mix. Writers must not run
// concurrently.
func AddKey(path, id string, makePrimary bool) error {
	if !keyIDRe.MatchString(id) {
		return fmt.Errorf("key id %q: must be 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit", short(id))
	}
	r, err := readRing(path)
	if err != nil {
		return err
	}
	if r, err = r.with(id, makePrimary); err != nil {
		return fmt.Errorf("keyring file %s: %w", path, err)
	}
	return replaceFile(path, r.render())
}

// SetPrimary makes id, already in the keyring file at path, its primary.
func SetPrimary(path, id string) error {
	r, err := readRing(path)
	if err != nil {
		return err
	}
	if _, ok := r.raw[id]; !ok {
		return fmt.Errorf("keyring file %s: key id %q is not in it", path, short(id))
	}
	r.primary = id
	return replaceFile(path, r.render())
}

// RemoveKey removes key id from the keyring file at path. Values still
// wrapped under it no longer open: re-wrap them first. The primary key is
// never removed.
func RemoveKey(path, id string) error {
	r, err := readRing(path)
	if err != nil {
		return err
	}
	if _, ok := r.raw[id]; !ok {
		return fmt.Errorf("keyring file %s: key id %q is not in it", path, short(id))
	}
	if id == r.primary {
		return fmt.Errorf("keyring file %s: key id %q is the primary; make another key primary first", path, short(id))
	}
	delete(r.raw, id)
	r.ids = slices.DeleteFunc(r.ids, func(s string) bool { return s == id })
	return replaceFile(path, r.render())
}

func readRing(path string) (*ring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring file: %w", err)
	}
	if len(data) > config.MaxSecretBytes {
		return nil, fmt.Errorf("keyring file %s is larger than %d bytes", path, config.MaxSecretBytes)
	}
	r, err := parseRing(data)
	if err != nil {
		return nil, fmt.Errorf("keyring file %s: %w", path, err)
	}
	return r, nil
}

// with returns r plus a new random key id, the primary when primary.
func (r *ring) with(id string, primary bool) (*ring, error) {
	if _, dup := r.raw[id]; dup {
		return nil, fmt.Errorf("key id %q is already in it", short(id))
	}
	key := make([]byte, DataKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	out := &ring{primary: r.primary, ids: append(slices.Clone(r.ids), id), raw: map[string][]byte{}}
	for k, v := range r.raw {
		out.raw[k] = v
	}
	out.raw[id] = key
	if primary || out.primary == "" {
		out.primary = id
	}
	return out, nil
}

// replaceFile writes data to a temporary file next to path (mode 0600),
// syncs it and renames it over path.
func replaceFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write keyring file: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write keyring file %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a created or renamed file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil // not every platform opens directories; the file is written
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
