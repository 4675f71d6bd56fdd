// Package replay delivers events read back from the topic through a
// connection's own sink, as the forwarder of its type would: the same
// encoder and WriteBatch, batched by the delivery runtime's BatchPolicy and
// retried with its Backoff and Classify.
package replay

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/sink/datadog"
	"github.com/auditstream/auditstream/services/internal/sink/eventbridge"
)

// Types are the connection types events can be replayed to.
var Types = []string{destinations.TypeDatadog, destinations.TypeEventBridge}

// Destination is one connection of the destinations file.
type Destination struct {
	Name string
	Type string
	// File is the destinations file it was read from.
	File  string
	conn  *destinations.Connection
	table *destinations.Table
}

// OpenDestination reads the destinations file and finds the connection
// name in it, which must be enabled and of one of Types. Its settings are
// checked as its forwarder checks them.
func OpenDestination(file, name string) (*Destination, error) {
	if file == "" {
		return nil, errors.New("no destinations file: give --destinations, or destinations.file in --config")
	}
	table, err := destinations.Load(file)
	if err != nil {
		return nil, fmt.Errorf("destinations file %s: %w", file, err)
	}
	return OpenDestinationIn(table, file, name)
}

// OpenDestinationIn finds the connection name in table, read from source
// (a destinations file, or the destinations topic for a connection an
// account configured through the API, named <account>/<name>).
func OpenDestinationIn(table *destinations.Table, file, name string) (*Destination, error) {
	conn := table.Lookup(name)
	if conn == nil {
		var known []string
		for _, c := range table.Connections() {
			if slices.Contains(Types, c.Type) {
				known = append(known, c.Name)
			}
		}
		if len(known) == 0 {
			return nil, fmt.Errorf("unknown connection %q: %s has no %s connection", name, file, strings.Join(Types, " or "))
		}
		return nil, fmt.Errorf("unknown connection %q in %s (there are %s)", name, file, strings.Join(known, ", "))
	}
	if !slices.Contains(Types, conn.Type) {
		return nil, fmt.Errorf("connection %s in %s is of type %s; events can be sent to %s connections", name, file, conn.Type, strings.Join(Types, " or "))
	}
	if !conn.Enabled {
		return nil, fmt.Errorf("connection %s is disabled in %s", name, file)
	}
	d := &Destination{Name: name, Type: conn.Type, File: file, conn: conn, table: table}
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

// Routes reports whether account's events go to this connection: the
// tenant-isolation rule of the forwarders, which replay keeps too.
func (d *Destination) Routes(account string) bool {
	for _, c := range d.table.Route(account) {
		if c.Name == d.Name {
			return true
		}
	}
	return false
}

// AtRisk reports whether an event of time t, delivered now, is older than
// the destination keeps: Datadog may not index logs older than 18 h.
func (d *Destination) AtRisk(t, now time.Time) bool {
	return d.Type == destinations.TypeDatadog && !t.IsZero() && now.Sub(t) > datadog.MaxLogAge
}

// NewSink builds the connection's sink, as its forwarder builds it.
func (d *Destination) NewSink() (delivery.EntrySink, error) {
	switch d.Type {
	case destinations.TypeDatadog:
		c, err := destinations.DecodeSettings[datadog.Config](d.conn)
		if err != nil {
			return nil, err
		}
		sink, err := datadog.New(c, datadog.Options{})
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", d.Name, err)
		}
		return delivery.NewEntrySink(c.Encoder(), sink), nil
	case destinations.TypeEventBridge:
		c, err := destinations.DecodeSettings[eventbridge.Config](d.conn)
		if err != nil {
			return nil, err
		}
		sink, err := eventbridge.New(c, eventbridge.Options{})
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", d.Name, err)
		}
		return delivery.NewEntrySink(c.Encoder(), sink), nil
	}
	return nil, fmt.Errorf("connection %s: type %s has no sink", d.Name, d.Type)
}

// Policy is the connection's filter and redaction, what its forwarder
// applies to every event (nil for none).
func (d *Destination) Policy() (*eventfilter.Policy, error) { return d.conn.Policy() }

// check decodes the connection's settings as its forwarder does, and
// builds its policy.
func (d *Destination) check() error {
	if _, err := d.conn.Policy(); err != nil {
		return err
	}
	switch d.Type {
	case destinations.TypeDatadog:
		_, err := destinations.DecodeSettings[datadog.Config](d.conn)
		return err
	case destinations.TypeEventBridge:
		_, err := destinations.DecodeSettings[eventbridge.Config](d.conn)
		return err
	}
	return fmt.Errorf("connection %s: type %s has no sink", d.Name, d.Type)
}
