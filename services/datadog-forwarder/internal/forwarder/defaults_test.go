package forwarder

import (
	"bytes"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/internal/delivery"
)

// The Datadog forwarder keeps more batches out per connection than the
// runtime's default (one request per batch, a WAN round trip away), and a
// config file or the environment still sets it.
func TestDefaultRequestsInFlight(t *testing.T) {
	cfg := DefaultConfig()
	if got := cfg.Delivery.RequestsInFlight; got != DefaultRequestsInFlight {
		t.Errorf("requests_in_flight = %d, want %d", got, DefaultRequestsInFlight)
	}
	if DefaultRequestsInFlight <= delivery.DefaultConfig(Name).RequestsInFlight {
		t.Errorf("the Datadog default (%d) is not above the runtime's (%d)", DefaultRequestsInFlight, delivery.DefaultConfig(Name).RequestsInFlight)
	}
	var stdout, stderr bytes.Buffer
	code := Execute(t.Context(), []string{"--check-config"}, []string{"AUDITSTREAM_DELIVERY_REQUESTS_IN_FLIGHT=0"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "requests_in_flight") {
		t.Errorf("requests_in_flight 0 from the environment: exit %d, stderr %q", code, stderr.String())
	}
}
