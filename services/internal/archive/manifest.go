package archive

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/eventfilter"
)

// ManifestFormat names the manifest schema; a reader refuses others.
const ManifestFormat = "auditstream.archive.manifest/v1"

// Manifest lists an account's objects of one group. An account's manifests
// form a chain: each names the previous one and its SHA-256, and carries an
// Ed25519 signature over its own content, so a changed, removed or inserted
// object or manifest is detected (as CloudTrail's digest files do).
type Manifest struct {
	Format   string        `json:"format"`
	Account  string        `json:"account"`
	Sequence uint64        `json:"sequence"`
	Previous *ManifestLink `json:"previous"`
	Window   ManifestSpan  `json:"window"`
	// Partition, FirstOffset and LastOffset are the group's cut.
	Partition   int32            `json:"partition"`
	FirstOffset int64            `json:"first_offset"`
	LastOffset  int64            `json:"last_offset"`
	Late        bool             `json:"late"`
	Objects     []ManifestObject `json:"objects"`
	// Policy is the storage profile's filter and redaction, when it has
	// them: the objects hold only the events the filter kept, in the form
	// the redaction left them, so a verifier tells a filtered window from a
	// lossy one. Absent, the objects hold every event of the cut, whole.
	Policy    *ManifestPolicy `json:"policy,omitempty"`
	KeyID     string          `json:"key_id,omitempty"`
	Signature string          `json:"signature,omitempty"`
}

// ManifestPolicy is what a storage profile applied to a manifest's objects.
type ManifestPolicy struct {
	// Version identifies filter, rules and key together (never the key).
	Version string             `json:"version"`
	Filter  string             `json:"filter,omitempty"`
	Redact  []eventfilter.Rule `json:"redact,omitempty"`
	// Filtered counts the events of the cut the filter left out.
	Filtered int64 `json:"filtered"`
}

// ManifestLink points at the previous manifest of the chain.
type ManifestLink struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
}

// ManifestSpan is a window in RFC 3339.
type ManifestSpan struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// ManifestObject is one data object and what it holds.
type ManifestObject struct {
	Key         string    `json:"key"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Records     int64     `json:"records"`
	FirstOffset int64     `json:"first_offset"`
	LastOffset  int64     `json:"last_offset"`
	FirstEvent  time.Time `json:"first_event"`
	LastEvent   time.Time `json:"last_event"`
	// Conflict is set when the expected key held different bytes and this
	// copy went to a conflict key instead.
	Conflict bool `json:"conflict,omitempty"`
}

// Group is the manifest's group.
func (m *Manifest) Group() Group {
	return Group{Window: Window{Start: m.Window.Start, Length: m.Window.End.Sub(m.Window.Start)}, Partition: m.Partition, First: m.FirstOffset, Last: m.LastOffset}
}

// canonical is the manifest's byte form: indented JSON with a final newline,
// the form it is signed and stored in.
func (m *Manifest) canonical() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Signer signs manifests with an Ed25519 key.
type Signer struct {
	key   ed25519.PrivateKey
	keyID string
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// ParseSigningKey reads an Ed25519 private key in PEM (PKCS #8, as written
// by `openssl genpkey -algorithm ed25519`).
func ParseSigningKey(pemBytes []byte) (*Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("signing key: no PEM block found (want an Ed25519 PRIVATE KEY)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: not a PKCS #8 private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key: a %T, want Ed25519", k)
	}
	return NewSigner(priv), nil
}

// NewSigner signs with priv.
func NewSigner(priv ed25519.PrivateKey) *Signer {
	return &Signer{key: priv, keyID: KeyID(priv.Public().(ed25519.PublicKey))}
}

// Public returns the verification key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID names the key.
func (s *Signer) KeyID() string { return s.keyID }

// ParsePublicKey reads an Ed25519 public key in PEM (PKIX "PUBLIC KEY"), or
// derives it from a private key PEM.
func ParsePublicKey(pemBytes []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("public key: no PEM block found")
	}
	if block.Type == "PRIVATE KEY" {
		s, err := ParseSigningKey(pemBytes)
		if err != nil {
			return nil, err
		}
		return s.Public(), nil
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: not a PKIX public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: a %T, want Ed25519", k)
	}
	return pub, nil
}

// MarshalPublicKey writes pub as PEM.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// MarshalSigningKey writes priv as PKCS #8 PEM.
func MarshalSigningKey(priv ed25519.PrivateKey) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Seal signs m (when s is not nil) and returns its stored bytes.
func (s *Signer) Seal(m *Manifest) ([]byte, error) {
	m.Format = ManifestFormat
	m.KeyID, m.Signature = "", ""
	if s != nil {
		m.KeyID = s.keyID
		body, err := m.canonical()
		if err != nil {
			return nil, err
		}
		m.Signature = s.sign(body)
	}
	return m.canonical()
}

func (s *Signer) sign(body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, body))
}

// ErrUnsigned is returned by OpenManifest for a manifest without signature
// when a key is required.
var ErrUnsigned = errors.New("manifest is not signed")

// OpenManifest parses stored manifest bytes and checks them: the format, the
// canonical form (so no byte can change unnoticed) and, when pub is given,
// the signature.
func OpenManifest(data []byte, pub ed25519.PublicKey) (*Manifest, error) {
	return OpenManifestWith(data, NewPublicKeys(pub))
}

// OpenManifestWith is OpenManifest checking the signature with whichever
// of keys signed it (none skips the check); a manifest signed by another
// key is an error wrapping ErrUnknownKey.
func OpenManifestWith(data []byte, keys PublicKeys) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest does not parse: %w", err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("manifest format %q, want %q", m.Format, ManifestFormat)
	}
	again, err := m.canonical()
	if err != nil || !bytes.Equal(again, data) {
		return nil, errors.New("manifest bytes are not in canonical form (changed after writing)")
	}
	if len(keys) == 0 {
		return &m, nil
	}
	unsigned := m
	unsigned.Signature = ""
	body, err := unsigned.canonical()
	if err != nil {
		return &m, err
	}
	if err := checkSignature("manifest", keys, m.KeyID, m.Signature, body); err != nil {
		return &m, err
	}
	return &m, nil
}

// PublicKeys are the keys signatures are checked with, by key id: the
// archive's signing key and, across a rotation, the keys it replaced.
type PublicKeys map[string]ed25519.PublicKey

// NewPublicKeys makes the set of pubs; nil keys are left out.
func NewPublicKeys(pubs ...ed25519.PublicKey) PublicKeys {
	var keys PublicKeys
	for _, pub := range pubs {
		if pub == nil {
			continue
		}
		if keys == nil {
			keys = PublicKeys{}
		}
		keys[KeyID(pub)] = pub
	}
	return keys
}

// IDs are the key ids, sorted.
func (k PublicKeys) IDs() []string { return slices.Sorted(maps.Keys(k)) }

// ErrUnknownKey is wrapped by the error for a manifest or digest signed by
// a key not among those given.
var ErrUnknownKey = errors.New("unknown signing key")

// checkSignature verifies sig (base64 Ed25519, by key keyID) over body.
func checkSignature(what string, keys PublicKeys, keyID, sig string, body []byte) error {
	if sig == "" {
		if what == "manifest" {
			return ErrUnsigned
		}
		return fmt.Errorf("%s is not signed: %w", what, ErrUnsigned)
	}
	pub, ok := keys[keyID]
	if !ok {
		return fmt.Errorf("%w: %s signed by key %s, not one of the keys given (%s)", ErrUnknownKey, what, keyID, strings.Join(keys.IDs(), ", "))
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%s signature is not base64: %w", what, err)
	}
	if !ed25519.Verify(pub, body, raw) {
		return fmt.Errorf("%s signature does not verify", what)
	}
	return nil
}
