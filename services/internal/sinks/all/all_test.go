package all_test

import (
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/sinks"
	_ "github.com/auditstream/auditstream/services/internal/sinks/all"
)

// Every connection type a forwarder delivers to (all but storage, which the
// archiver writes) can be built by type, so auditctl can send to it.
func TestEveryForwardedTypeIsRegistered(t *testing.T) {
	for _, typ := range destinations.Types {
		_, ok := sinks.Lookup(typ)
		if want := typ != destinations.TypeStorage; ok != want {
			t.Errorf("type %s registered: %v, want %v", typ, ok, want)
		}
	}
}

// A registration decodes settings strictly, as its forwarder does: an
// unknown field is refused by name, by Check and by New alike.
func TestRegistrationsDecodeStrictly(t *testing.T) {
	for _, typ := range sinks.Types() {
		t.Run(typ, func(t *testing.T) {
			table, err := destinations.Parse([]byte("connections:\n  c1:\n    type: " + typ + "\n    settings:\n      no_such_field: 1\n"))
			if err != nil {
				t.Fatal(err)
			}
			k, _ := sinks.Lookup(typ)
			conn := table.Lookup("c1")
			if err := k.Check(conn); err == nil || !strings.Contains(err.Error(), "no_such_field") {
				t.Errorf("Check: %v, want an error naming no_such_field", err)
			}
			if _, err := k.New(conn); err == nil || !strings.Contains(err.Error(), "no_such_field") {
				t.Errorf("New: %v, want an error naming no_such_field", err)
			}
		})
	}
}
