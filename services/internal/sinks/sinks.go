// Package sinks is the registry of destination types: for each connection
// type, how to decode and check its settings and how to build its encoder
// and sink as its forwarder builds them. Paths that send to any type of
// connection (the forwarders, auditctl replay and dlq redrive, the
// destinations API's test call) look a type up here, so a new destination
// registers once, in a package of its own under sinks that sinks/all
// imports, instead of being added to every switch. A forwarder imports
// only its own type's registration, so it links no other destination's SDK.
package sinks

import (
	"slices"
	"sync"
	"time"

	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/sink"
	"go.uber.org/zap"
)

// Kind is one registered destination type.
type Kind struct {
	// Check decodes a connection's settings strictly, as its forwarder's
	// Check does; the rest of their validation is New's.
	Check func(c *destinations.Connection) error
	// New builds the connection's encoder and sink with default options.
	// Its error does not name the connection; the caller's context does.
	New func(c *destinations.Connection) (delivery.EntrySink, error)
	// Settings decodes a connection's settings strictly, as Check does,
	// and returns them (defaults applied), e.g. to find their secrets.
	Settings func(c *destinations.Connection) (any, error)
	// Describe, when set, is what a forwarder logs of a connection whose
	// sink it built: fields that help an operator and hold no secret.
	Describe func(c *destinations.Connection) []zap.Field
	// MaxAge is how old an event may be for the destination to keep it
	// (zero: no limit).
	MaxAge time.Duration
}

// Of makes the Kind of a destination whose settings decode as C and that
// build makes a sink of from them. build gets the settings already
// decoded; it validates them (the sinks' New does).
func Of[C interface{ WithDefaults() C }, E any](build func(C) (sink.Encoder[E], sink.Sink[E], error)) Kind {
	return Kind{
		Check: func(c *destinations.Connection) error {
			_, err := destinations.DecodeSettings[C](c)
			return err
		},
		New: func(c *destinations.Connection) (delivery.EntrySink, error) {
			s, err := destinations.DecodeSettings[C](c)
			if err != nil {
				return nil, err
			}
			enc, snk, err := build(s)
			if err != nil {
				return nil, err
			}
			return delivery.NewEntrySink(enc, snk), nil
		},
		Settings: func(c *destinations.Connection) (any, error) {
			return destinations.DecodeSettings[C](c)
		},
	}
}

// Describe makes a Kind's Describe of a function of the settings, decoded
// as C. Settings that do not decode are described by nothing (New has
// refused them already).
func Describe[C interface{ WithDefaults() C }](describe func(C) []zap.Field) func(c *destinations.Connection) []zap.Field {
	return func(c *destinations.Connection) []zap.Field {
		s, err := destinations.DecodeSettings[C](c)
		if err != nil {
			return nil
		}
		return describe(s)
	}
}

var (
	mu    sync.RWMutex
	kinds = map[string]Kind{}
)

// Register makes connections of type typ buildable. It panics on a second
// registration of one type, a programming error.
func Register(typ string, k Kind) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := kinds[typ]; dup {
		panic("sinks: type " + typ + " registered twice")
	}
	kinds[typ] = k
}

// Lookup returns the Kind of connection type typ.
func Lookup(typ string) (Kind, bool) {
	mu.RLock()
	defer mu.RUnlock()
	k, ok := kinds[typ]
	return k, ok
}

// Types are the registered connection types, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	types := make([]string, 0, len(kinds))
	for t := range kinds {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}
