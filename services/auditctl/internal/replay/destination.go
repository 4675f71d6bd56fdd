// Package replay delivers events read back from the topic through a
// connection's own sink, as the forwarder of its type would: the same
// encoder and WriteBatch, batched by the delivery runtime's BatchPolicy and
// retried with its Backoff and Classify.
package replay

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/sinks"
	// Every destination type can be replayed to.
	_ "github.com/auditstream/auditstream/services/internal/sinks/all"
)

// Types are the connection types events can be replayed to: every type
// registered with sinks.
func Types() []string { return sinks.Types() }

// Destination is one connection of the destinations file.
type Destination struct {
	Name string
	Type string
	// File is the destinations file it was read from.
	File  string
	conn  *destinations.Connection
	table *destinations.Table
	kind  sinks.Kind
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
			if _, ok := sinks.Lookup(c.Type); ok {
				known = append(known, c.Name)
			}
		}
		if len(known) == 0 {
			return nil, fmt.Errorf("unknown connection %q: %s has no %s connection", name, file, strings.Join(Types(), " or "))
		}
		return nil, fmt.Errorf("unknown connection %q in %s (there are %s)", name, file, strings.Join(known, ", "))
	}
	kind, ok := sinks.Lookup(conn.Type)
	if !ok {
		return nil, fmt.Errorf("connection %s in %s is of type %s; events can be sent to %s connections", name, file, conn.Type, strings.Join(Types(), " or "))
	}
	if !conn.Enabled {
		return nil, fmt.Errorf("connection %s is disabled in %s", name, file)
	}
	d := &Destination{Name: name, Type: conn.Type, File: file, conn: conn, table: table, kind: kind}
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
// the destination keeps (Datadog may not index logs older than 18 h).
func (d *Destination) AtRisk(t, now time.Time) bool {
	return d.kind.MaxAge > 0 && !t.IsZero() && now.Sub(t) > d.kind.MaxAge
}

// NewSink builds the connection's sink, as its forwarder builds it.
func (d *Destination) NewSink() (delivery.EntrySink, error) {
	s, err := d.kind.New(d.conn)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", d.Name, err)
	}
	return s, nil
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
	return d.kind.Check(d.conn)
}
