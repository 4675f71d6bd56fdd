package forwarding

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	_ "github.com/auditstream/auditstream/services/internal/sinks/otlp"
)

// A forwarder's own delivery defaults apply on top of the runtime's, and
// only to that forwarder.
func TestDefaultConfigAppliesDeliveryDefaults(t *testing.T) {
	plain := DefaultConfig(Spec{Name: "plain", Binary: "plain-forwarder"})
	if got, want := plain.Delivery.RequestsInFlight, delivery.DefaultConfig("plain").RequestsInFlight; got != want {
		t.Errorf("requests_in_flight without DeliveryDefaults = %d, want the runtime's %d", got, want)
	}
	tuned := DefaultConfig(Spec{Name: "tuned", Binary: "tuned-forwarder", DeliveryDefaults: func(c *delivery.Config) { c.RequestsInFlight = 7 }})
	if tuned.Delivery.RequestsInFlight != 7 {
		t.Errorf("requests_in_flight with DeliveryDefaults = %d, want 7", tuned.Delivery.RequestsInFlight)
	}
	if tuned.Delivery.Group != "auditstream-tuned" {
		t.Errorf("DeliveryDefaults lost the runtime's other defaults: group %q", tuned.Delivery.Group)
	}
	if err := tuned.Delivery.Validate(); err != nil {
		t.Errorf("tuned defaults do not validate: %v", err)
	}
}

// A Spec that says only its type builds and checks its connections as the
// registry says, and logs each sink it builds without its secrets.
func TestSpecBuildsFromTheRegistry(t *testing.T) {
	const token = "forwarding-token-never-logged-0000FWD"
	spec := Spec{Name: "otlp", Binary: "otlp-forwarder", Type: destinations.TypeOTLP}
	table, err := destinations.Parse([]byte("connections:\n  good:\n    type: otlp\n    settings:\n      endpoint: https://otlp.example.com\n      auth:\n        token: " + token +
		"\n  bad:\n    type: otlp\n    settings:\n      no_such_field: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	check, err := spec.check()
	if err != nil {
		t.Fatal(err)
	}
	if err := check(table.Lookup("bad")); err == nil || !strings.Contains(err.Error(), "no_such_field") {
		t.Errorf("check of bad settings: %v, want an error naming no_such_field", err)
	}
	core, logs := observer.New(zap.InfoLevel)
	newSink, err := spec.setup(context.Background(), Env{Logger: zap.New(core), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newSink(table.Lookup("good")); err != nil {
		t.Fatal(err)
	}
	ready := logs.FilterMessage("otlp connection ready").All()
	if len(ready) != 1 {
		t.Fatalf("%d lines say the connection is ready, want 1: %v", len(ready), logs.All())
	}
	fields := ready[0].ContextMap()
	if fields["connection"] != "good" || fields["url"] != "https://otlp.example.com/v1/logs" || fields["auth"] != "bearer" {
		t.Errorf("ready line fields %v, want the connection, its URL and auth mode", fields)
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), token) {
			t.Fatalf("the token leaked into the log: %v", e.ContextMap())
		}
	}

	// A type nothing registered is refused at start, by name.
	spec = Spec{Binary: "x-forwarder", Type: "no-such-type"}
	if _, err := spec.check(); err == nil || !strings.Contains(err.Error(), spec.Type) {
		t.Errorf("check of an unregistered type: %v, want an error naming it", err)
	}
	if _, err := spec.setup(context.Background(), Env{}); err == nil || !strings.Contains(err.Error(), spec.Type) {
		t.Errorf("setup of an unregistered type: %v, want an error naming it", err)
	}
}
