package objstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/internal/objstore"
)

func TestValidKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"2026/01/02/acc-1/events-0-99.json.gz": true,
		"with space/ü/🙂":                       true,
		"a.b/..c/d..":                          true,
		"":                                     false,
		"/abs":                                 false,
		"a/":                                   false,
		"a//b":                                 false,
		"a/./b":                                false,
		"a/../b":                               false,
		"..":                                   false,
		`a\b`:                                  false,
		"a\x00b":                               false,
		"a\tb":                                 false,
		"a\x7fb":                               false,
		"\xc3\x28":                             false,
		strings.Repeat("a", objstore.MaxKeyBytes):   true,
		strings.Repeat("a", objstore.MaxKeyBytes+1): false,
	} {
		err := objstore.ValidKey(key)
		if (err == nil) != ok {
			t.Errorf("ValidKey(%q): %v", key, err)
		}
		if err != nil && !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidKey(%q): %v does not wrap ErrInvalidKey", key, err)
		}
	}
	for prefix, ok := range map[string]bool{
		"": true, "a": true, "a/": true, "a/b-": true, "/": false, "a//": false, "../": false, "/a": false,
	} {
		if err := objstore.ValidPrefix(prefix); (err == nil) != ok {
			t.Errorf("ValidPrefix(%q): %v", prefix, err)
		}
	}
}
