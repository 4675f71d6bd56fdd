package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/auditstream/auditstream/services/destinations-api/internal/e2eharness"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// testDelivery are delivery settings that make faults and retries quick.
const testDelivery = e2eharness.TestDelivery

func kafkaOf(h *harness) e2eharness.Kafka {
	return e2eharness.Kafka{Brokers: h.cfg.Kafka.Brokers, EventsTopic: h.cfg.Kafka.Topics.Events.Name,
		EventsPartitions: h.cfg.Kafka.Topics.Events.Partitions, DestinationsPartitions: h.cfg.Kafka.Topics.Destinations.Partitions}
}

// startForwarder runs the real Datadog forwarder against the harness's
// broker and key ring (e2eharness).
func startForwarder(t testing.TB, h *harness, delivery string) *e2eharness.Log {
	t.Helper()
	return e2eharness.StartDatadogForwarder(t, kafkaOf(h), h.cfg.Encryption.KeyringFile, delivery)
}

// publishEvent writes one event of account and returns its id.
func publishEvent(t testing.TB, h *harness, account, action string) string {
	t.Helper()
	return e2eharness.PublishEvent(t, kafkaOf(h), account, action)
}

// committedToEnd reports whether group has committed every partition of the
// events topic up to its end.
func (h *harness) committedToEnd(t testing.TB, group string) bool {
	t.Helper()
	adm := kadm.NewClient(h.cluster.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	topic := h.cfg.Kafka.Topics.Events.Name
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		c, found := committed.Lookup(topic, o.Partition)
		if o.Offset > 0 && (!found || c.At < o.Offset) {
			ok = false
		}
	})
	return ok
}

func receivedIDs(intake *ddfake.Server, key string) map[string]string {
	out := map[string]string{}
	for _, log := range intake.Logs(key) {
		id, _ := log["audit-id"].(string)
		acc := ""
		if tg, ok := log["target"].(map[string]any); ok {
			if c, ok := tg["context"].(map[string]any); ok {
				if a, ok := c["account"].(map[string]any); ok {
					acc, _ = a["id"].(string)
				}
			}
		}
		out[id] = acc
	}
	return out
}

// An account admin turns Datadog on through the API; the real forwarder,
// configured with no destinations file, delivers the account's next event
// and no other account's; routing changes apply to the next events without
// a restart; a refused key holds the events back until the key is
// replaced, and then they arrive.
func TestEndToEndAdminTurnsOnDatadog(t *testing.T) {
	const key1, key2, badKey = "dd-e2e-key-one-0123456789", "dd-e2e-key-two-0123456789", "dd-e2e-key-bad-0123456789"
	intake := ddfake.New(key1, key2)
	t.Cleanup(intake.Close)
	h := newHarness(t, func(c *Config) { c.API.AllowCustomEndpoints = true })
	fwdLog := startForwarder(t, h, testDelivery)
	conn := func(key string) map[string]any {
		return map[string]any{"type": "datadog", "settings": map[string]any{"base_url": intake.URL(), "api_key": key, "timeout": "2s"}}
	}
	streamTo := func(names ...string) {
		t.Helper()
		mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"streaming": true, "connections": names}), http.StatusOK)
	}

	mustStatus(t, h.do("PUT", connPath(accountA, "dd-one"), tokenA, conn(key1)), http.StatusCreated)
	streamTo("dd-one")
	e1 := publishEvent(t, h, accountA, "e2e-first")
	other := publishEvent(t, h, accountB, "e2e-other-account")
	forwardingtest.WaitFor(t, "the first event at Datadog", time.Minute, func() bool { return receivedIDs(intake, key1)[e1] == accountA })

	// Routing moves to a second connection: the next event goes there only.
	mustStatus(t, h.do("PUT", connPath(accountA, "dd-two"), tokenA, conn(key2)), http.StatusCreated)
	streamTo("dd-two")
	e2 := publishEvent(t, h, accountA, "e2e-second")
	forwardingtest.WaitFor(t, "the second event at the second connection", time.Minute, func() bool { return receivedIDs(intake, key2)[e2] == accountA })
	if _, ok := receivedIDs(intake, key1)[e2]; ok {
		t.Fatal("the event published after streaming moved to dd-two reached dd-one")
	}
	for _, k := range []string{key1, key2} {
		for id, acc := range receivedIDs(intake, k) {
			if acc != accountA || id == other {
				t.Fatalf("connection %s received event %s of account %q", k, id, acc)
			}
		}
	}

	// A bad key: the intake refuses it, the event is held back, and it
	// arrives once the admin replaces the key.
	mustStatus(t, h.do("PUT", connPath(accountA, "dd-two"), tokenA, conn(badKey)), http.StatusOK)
	var v verdict
	tested := h.do("POST", connPath(accountA, "dd-two")+"/test", tokenA, nil)
	mustStatus(t, tested, http.StatusOK)
	tested.json(t, &v)
	if v.Result == "ok" || v.Code != "bad_credentials" {
		t.Fatalf("testing the bad key: %+v", v)
	}
	e3 := publishEvent(t, h, accountA, "e2e-held")
	forwardingtest.WaitFor(t, "the intake refusing the bad key", time.Minute, func() bool {
		for _, r := range intake.Requests() {
			if r.Status == http.StatusForbidden {
				return true
			}
		}
		return false
	})
	mustStatus(t, h.do("PUT", connPath(accountA, "dd-two"), tokenA, conn(key2)), http.StatusOK)
	h.do("POST", connPath(accountA, "dd-two")+"/test", tokenA, nil).json(t, &v)
	if v.Result != "ok" {
		t.Fatalf("testing the replaced key: %+v", v)
	}
	forwardingtest.WaitFor(t, "the held event after the key was replaced", time.Minute, func() bool { return receivedIDs(intake, key2)[e3] == accountA })

	// Turning streaming off stops delivery: an event published after it
	// goes nowhere, while one routed through a still-streaming account
	// arrives.
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"streaming": false}), http.StatusOK)
	mustStatus(t, h.do("PUT", connPath(accountB, "dd-b"), tokenB, conn(key1)), http.StatusCreated)
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountB+"/audit-logs", tokenB, map[string]any{"streaming": true, "connections": []string{"dd-b"}}), http.StatusOK)
	e4 := publishEvent(t, h, accountA, "e2e-after-off")
	marker := publishEvent(t, h, accountB, "e2e-marker")
	forwardingtest.WaitFor(t, "account B's marker", time.Minute, func() bool { return receivedIDs(intake, key1)[marker] == accountB })
	// The forwarder commits an offset only after the events before it were
	// delivered or dropped as unrouted; wait until it read past e4.
	forwardingtest.WaitFor(t, "the forwarder to read past the event of the account turned off", time.Minute, func() bool {
		return h.committedToEnd(t, "auditstream-datadog")
	})
	for _, k := range []string{key1, key2} {
		if _, ok := receivedIDs(intake, k)[e4]; ok {
			t.Fatal("an event published after streaming was turned off was delivered")
		}
	}
	for _, secret := range []string{key1, key2, badKey} {
		if strings.Contains(fwdLog.String(), secret) || strings.Contains(h.logs.String(), secret) {
			t.Fatal("a log holds an API key")
		}
	}
}
