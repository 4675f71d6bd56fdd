package forwarder

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// The Datadog forwarder keeps more batches out per connection than the
// runtime's default (one request per batch, a WAN round trip away): with
// the default configuration, a slow intake sees DefaultRequestsInFlight
// requests of one connection at once, and never more. A config file or the
// environment still sets it.
func TestDefaultRequestsInFlight(t *testing.T) {
	if runtimeDefault := delivery.DefaultConfig(Name).RequestsInFlight; DefaultRequestsInFlight <= runtimeDefault {
		t.Fatalf("the Datadog default (%d) is not above the runtime's (%d)", DefaultRequestsInFlight, runtimeDefault)
	}
	p := newPipeline(t, "dd-a")
	p.WriteRoutes(map[string][]string{"*": {"dd-a"}})
	// Small batches, so that the backlog is many more batches than can be
	// out at once; each request waits long enough for the others to start.
	p.Cfg.Delivery.Batch = sink.BatchPolicy{Count: 20, Bytes: 4 << 20, Period: 20 * time.Millisecond}
	p.intake.Slow(300 * time.Millisecond)
	ids := p.PublishEvents([]string{"acc-00"}, 400, nil)["acc-00"] // 20 batches
	p.StartForwarder()
	forwardingtest.WaitFor(t, "every event", 30*time.Second, func() bool { return len(forwardingtest.Counts(p.IDs("dd-a"))) >= len(ids) })
	if got := p.intake.MaxInFlight(); got != DefaultRequestsInFlight {
		t.Fatalf("the intake saw at most %d requests at once with the default config; want %d (DefaultRequestsInFlight)", got, DefaultRequestsInFlight)
	}

	var stdout, stderr bytes.Buffer
	code := Execute(t.Context(), []string{"--check-config"}, []string{"AUDITSTREAM_DELIVERY_REQUESTS_IN_FLIGHT=0"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "requests_in_flight") {
		t.Errorf("requests_in_flight 0 from the environment: exit %d, stderr %q", code, stderr.String())
	}
}
