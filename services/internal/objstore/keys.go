package objstore

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidKey is wrapped by every operation given a key (or List prefix)
// that is not a clean relative slash-separated path.
var ErrInvalidKey = errors.New("invalid object key")

// MaxKeyBytes is the longest key, prefix included: S3 and GCS allow 1024
// bytes, Azure 1024 characters.
const MaxKeyBytes = 1024

// ValidKey checks an object key: non-empty valid UTF-8 of at most
// MaxKeyBytes, slash-separated segments that are neither empty, "." nor
// "..", no leading slash, no backslash and no control characters. Every
// store applies the same rules, so a key that works on one works on all,
// and none can climb out of a local directory or a prefix.
func ValidKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if err := checkPath(key); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, trunc(key), err)
	}
	return nil
}

// ValidPrefix checks a List prefix or a store prefix: empty, or a key that
// may end with a slash.
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkPath(strings.TrimSuffix(prefix, "/")); err != nil || prefix == "/" {
		if err == nil {
			err = errors.New("starts with a slash")
		}
		return fmt.Errorf("%w: prefix %q: %s", ErrInvalidKey, trunc(prefix), err)
	}
	return nil
}

func checkPath(p string) error {
	switch {
	case len(p) > MaxKeyBytes:
		return fmt.Errorf("longer than %d bytes", MaxKeyBytes)
	case !utf8.ValidString(p):
		return errors.New("not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return errors.New("starts with a slash (keys are relative)")
	case strings.Contains(p, `\`):
		return errors.New("holds a backslash")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			if r == 0 {
				return errors.New("holds a NUL byte")
			}
			return errors.New("holds a control character")
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return errors.New("has an empty segment")
		case ".", "..":
			return fmt.Errorf("has a %q segment", seg)
		}
	}
	return nil
}

// trunc shortens a value quoted in an error.
func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
