package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a size in bytes written as 5MB, 256KiB, 1GB or a plain number.
// Units: B, KB/KiB (1024), MB/MiB, GB/GiB.
type ByteSize int64

// UnmarshalText parses a size such as "5MB".
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	upper := strings.ToUpper(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(upper, u.suffix) {
			mult = u.mult
			s = strings.TrimSpace(s[:len(s)-len(u.suffix)])
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return fmt.Errorf("%q is not a size (for example 5MB, 256KiB or 1048576)", truncate(string(text)))
	}
	*b = ByteSize(n * mult)
	return nil
}

// UnmarshalYAML accepts a number or a size string.
func (b *ByteSize) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a size must be a number or a string such as 5MB", node.Line)
	}
	if err := b.UnmarshalText([]byte(node.Value)); err != nil {
		return fmt.Errorf("line %d: %w", node.Line, err)
	}
	return nil
}

// MarshalText writes the size as bytes.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(b), 10)), nil }

// Secret is a credential. In YAML it is a literal string, {file: path} (checked
// each time it is used, so a rotated Kubernetes Secret is picked up) or
// {env: NAME}. It never prints its value: String, MarshalText and the zap
// field all show "[redacted]".
type Secret struct {
	literal string
	file    string
	env     string
}

// SecretLiteral returns a Secret holding value itself.
func SecretLiteral(value string) Secret { return Secret{literal: value} }

// SecretFile returns a Secret read from path.
func SecretFile(path string) Secret { return Secret{file: path} }

// SecretEnv returns a Secret read from the environment variable name.
func SecretEnv(name string) Secret { return Secret{env: name} }

// IsSet reports whether a source for the secret is configured.
func (s Secret) IsSet() bool { return s.literal != "" || s.file != "" || s.env != "" }

// Source describes where the secret comes from without revealing it.
func (s Secret) Source() string {
	switch {
	case s.file != "":
		return "file " + s.file
	case s.env != "":
		return "env " + s.env
	case s.literal != "":
		return "inline"
	}
	return "unset"
}

// MaxSecretBytes bounds a secret file.
const MaxSecretBytes = 64 << 10

// Value resolves the secret. Errors name the source, never the value.
func (s Secret) Value() (string, error) {
	switch {
	case s.file != "":
		return readSecretFile(s.file)
	case s.env != "":
		v, ok := os.LookupEnv(s.env)
		if !ok || v == "" {
			return "", fmt.Errorf("secret env %s is not set", s.env)
		}
		return v, nil
	case s.literal != "":
		return s.literal, nil
	}
	return "", errors.New("secret is not set")
}

// secretFiles caches secret files by path. A file is read again when it is
// another file (a rotated Kubernetes Secret is a new file behind a swapped
// symlink), its size or modification time changed, and at least every
// secretRecheck. A file modified less than secretRacy before it was read is
// read every time until it is older, as git treats racily clean files: the
// modification time is kept at the granularity of the kernel's clock tick
// (or worse), so a rewrite of the same size right after a read can leave
// it unchanged. A sink
// resolves its secret for every request, and a stat is one system call
// where reading is five.
var secretFiles sync.Map // path -> *cachedSecret

const (
	secretRecheck = 10 * time.Second
	secretRacy    = 2 * time.Second
)

type cachedSecret struct {
	id      [2]uint64
	size    int64
	modTime time.Time
	readAt  time.Time
	value   string
}

func readSecretFile(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		secretFiles.Delete(path)
		return "", fmt.Errorf("read secret: %w", err)
	}
	now := time.Now()
	if v, ok := secretFiles.Load(path); ok {
		c := v.(*cachedSecret)
		if c.id == fileID(info) && c.size == info.Size() && c.modTime.Equal(info.ModTime()) &&
			c.readAt.Sub(c.modTime) > secretRacy && now.Sub(c.readAt) < secretRecheck {
			return c.value, nil
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		secretFiles.Delete(path)
		return "", fmt.Errorf("read secret: %w", err)
	}
	if len(data) > MaxSecretBytes {
		return "", fmt.Errorf("secret file %s is larger than %d bytes", path, MaxSecretBytes)
	}
	value := strings.TrimRight(string(data), "\r\n")
	// What was stat'ed is what was read, unless the file changed between
	// the two; then the next call stats a newer file and reads it again.
	secretFiles.Store(path, &cachedSecret{id: fileID(info), size: info.Size(), modTime: info.ModTime(), readAt: now, value: value})
	return value, nil
}

// Check resolves the secret once so a missing file is found at start-up.
func (s Secret) Check() error {
	_, err := s.Value()
	return err
}

func (s Secret) String() string { return "[redacted]" }

// Format keeps every fmt verb from printing the value: fmt uses String only
// for %v, %s, %q, %x and %X, and would print the fields for the others
// (%d, %t, ...).
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, s.GoString())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(s.String()))
	default:
		_, _ = io.WriteString(f, s.String())
	}
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return "config.Secret([redacted])" }

// MarshalText redacts the value in any encoding.
func (s Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// UnmarshalText sets a literal secret (used for environment overrides).
func (s *Secret) UnmarshalText(text []byte) error {
	*s = Secret{literal: string(text)}
	return nil
}

// UnmarshalYAML accepts a string, {file: path} or {env: NAME}.
func (s *Secret) UnmarshalYAML(node *yaml.Node) error {
	switch node.Kind {
	case yaml.ScalarNode:
		*s = Secret{literal: node.Value}
		return nil
	case yaml.MappingNode:
		var ref struct {
			File string `yaml:"file"`
			Env  string `yaml:"env"`
		}
		if err := node.Decode(&ref); err != nil {
			return fmt.Errorf("line %d: a secret is a string, {file: path} or {env: NAME}", node.Line)
		}
		if (ref.File == "") == (ref.Env == "") {
			return fmt.Errorf("line %d: a secret needs exactly one of file or env", node.Line)
		}
		*s = Secret{file: ref.File, env: ref.Env}
		return nil
	}
	return fmt.Errorf("line %d: a secret is a string, {file: path} or {env: NAME}", node.Line)
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
