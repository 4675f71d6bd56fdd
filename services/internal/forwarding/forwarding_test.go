package forwarding

import (
	"testing"

	"github.com/auditstream/auditstream/services/internal/delivery"
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
