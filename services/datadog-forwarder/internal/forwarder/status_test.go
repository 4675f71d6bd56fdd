package forwarder

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/secretbox"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// statusReader follows the pipeline's status topic as the destinations API
// does (forwardingtest.Pipeline.StatusReader).
func statusReader(t *testing.T, p *pipeline) *connstatus.Reader { return p.StatusReader() }

// waitStatus waits until the merged status of conn satisfies cond.
func waitStatus(t *testing.T, r *connstatus.Reader, conn, what string, cond func(connstatus.View) bool) connstatus.View {
	t.Helper()
	return forwardingtest.WaitStatus(t, r, conn, what, cond)
}

// statusTopicBytes returns every record of the status topic, key and value.
func statusTopicBytes(t *testing.T, p *pipeline) string { return p.StatusTopicBytes() }

func TestStatusFollowsARefusedKeyAndItsRecovery(t *testing.T) {
	const key = "dd-key-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
	p := newPipeline(t, key)
	p.Cfg.Status.Interval = 200 * time.Millisecond
	keyFile := filepath.Join(p.DestDir, "dd.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.WriteDestinations(fmt.Sprintf(`connections:
  dd:
    type: datadog
    settings:
      base_url: %s
      api_key: {file: %s}
      tag_prefix: scalr
      timeout: 2s
routes:
  - account: acc-1
    connections: [dd]
`, p.intake.URL(), keyFile))
	r := statusReader(t, p)
	p.StartForwarder()

	p.PublishEvents([]string{"acc-1"}, 20, nil)
	v := waitStatus(t, r, "dd", "20 delivered", func(v connstatus.View) bool { return v.Delivered == 20 })
	if v.State != connstatus.StateHealthy || v.DeliveredToday != 20 || v.LastSuccess == nil || v.FailedSince != nil {
		t.Fatalf("delivering connection: %+v", v)
	}
	if len(v.Consumers) != 1 || v.Consumers[0].Consumer != Name {
		t.Fatalf("reports: %+v", v.Consumers)
	}

	// The intake refuses the key (403): the connection turns failed.
	p.intake.RemoveKey(key)
	p.PublishEvents([]string{"acc-1"}, 5, nil)
	v = waitStatus(t, r, "dd", "failed", func(v connstatus.View) bool { return v.State == connstatus.StateFailed })
	if v.FailedSince == nil || v.LastErrorAt == nil || !strings.Contains(v.LastError, "403") {
		t.Fatalf("failed connection: want since when and the 403, got %+v", v)
	}
	if v.Delivered != 20 {
		t.Fatalf("delivered %d while refused, want 20", v.Delivered)
	}
	// Its events wait on the retry topic: the oldest is reported.
	published := time.Now()
	v = waitStatus(t, r, "dd", "the oldest undelivered event", func(v connstatus.View) bool { return v.OldestUndelivered != nil })
	if v.OldestUndelivered.After(published) {
		t.Fatalf("oldest undelivered %s is after the events were published (%s)", v.OldestUndelivered, published)
	}

	// The key is accepted again: the parked events go through and the
	// connection reads healthy.
	p.intake.AddKey(key)
	v = waitStatus(t, r, "dd", "recovery", func(v connstatus.View) bool {
		return v.State == connstatus.StateHealthy && v.Delivered == 25 && v.OldestUndelivered == nil
	})
	if v.Parked != 5 || v.FailedSince != nil {
		t.Fatalf("recovered connection: want its 5 events parked on the way (each counted once) and no failure, got %+v", v)
	}
	if raw := statusTopicBytes(t, p); strings.Contains(raw, key) || !strings.Contains(raw, `"connection":"dd"`) {
		t.Fatalf("the status topic must carry the connection's status and never its key")
	}
}

func TestStatusSaysWhenASecretCannotBeOpened(t *testing.T) {
	const goodKey, badKey = "good-key-0a1b2c3d4e5f60718293a4b5c6d7e8f9", "bad-key-f9e8d7c6b5a4039281706f5e4d3c2b1a"
	// The intake takes both keys: only the sealed secret stops "bad".
	p := newPipeline(t, goodKey, badKey)
	p.Cfg.Status.Interval = 200 * time.Millisecond
	ring := filepath.Join(p.DestDir, "keyring.yaml")
	other := filepath.Join(p.DestDir, "other-keyring.yaml")
	if err := secretbox.GenerateKeyring(ring, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := secretbox.GenerateKeyring(other, "k-elsewhere"); err != nil {
		t.Fatal(err)
	}
	p.Cfg.Destinations.Topic = true
	p.Cfg.Destinations.Encryption.KeyringFile = ring
	p.WriteDestinations("connections: {}\nroutes: []\n")

	// What the destinations API would write: "good" sealed under the
	// forwarder's key ring, "bad" under a key it lacks.
	const account = "acc-x"
	settings := func(ringFile, name, key string) json.RawMessage {
		kr, err := secretbox.OpenKeyring(ringFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := secretbox.New(kr).Seal(context.Background(), []byte(key),
			secretbox.Context(destinations.SecretContext(account, destinations.CollectionConnections, name, "api_key")))
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(map[string]any{"base_url": p.intake.URL(), "tag_prefix": "scalr", "timeout": "2s",
			"api_key": destinations.SealedSecret{Sealed: mustJSON(t, sealed)}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	store, err := destinations.NewStore(context.Background(), destinations.StoreOptions{Kafka: p.Cfg.Kafka, Writer: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = store.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; store.Close() })
	now := time.Now().UTC()
	if _, err := store.Update(ctx, account, "test", func(_ *destinations.AccountConfig, next int64) (*destinations.AccountConfig, error) {
		return &destinations.AccountConfig{Schema: destinations.AccountSchema,
			AuditLogs: destinations.AuditLogs{Streaming: true, Connections: []string{"bad", "good"}, Revision: next, UpdatedAt: now},
			Connections: map[string]*destinations.Resource{
				"good": {Type: destinations.TypeDatadog, Enabled: true, Settings: settings(ring, "good", goodKey), Revision: next, CreatedAt: now, UpdatedAt: now},
				"bad":  {Type: destinations.TypeDatadog, Enabled: true, Settings: settings(other, "bad", badKey), Revision: next, CreatedAt: now, UpdatedAt: now},
			}}, nil
	}); err != nil {
		t.Fatal(err)
	}

	r := statusReader(t, p)
	p.StartForwarder()
	p.PublishEvents([]string{account}, 10, nil)

	good := destinations.QualifiedConnection(account, "good")
	bad := destinations.QualifiedConnection(account, "bad")
	v := waitStatus(t, r, bad, "failed", func(v connstatus.View) bool { return v.State == connstatus.StateFailed })
	if !strings.Contains(v.LastError, "build sink") || !strings.Contains(v.LastError, "open secret api_key") || v.FailedSince == nil {
		t.Fatalf("the reason must say the secret cannot be opened: %+v", v)
	}
	gv := waitStatus(t, r, good, "10 delivered", func(v connstatus.View) bool { return v.Delivered == 10 })
	if gv.State != connstatus.StateHealthy {
		t.Fatalf("the other connection must keep delivering: %+v", gv)
	}
	if n := p.intake.Count(badKey); n != 0 {
		t.Fatalf("%d events reached the intake under the key that cannot be opened", n)
	}
	if n := p.intake.Count(goodKey); n != 10 {
		t.Fatalf("good connection: intake has %d events, want 10", n)
	}
	// The failed connection's events wait on the retry topic, never dropped.
	v = waitStatus(t, r, bad, "parked", func(v connstatus.View) bool { return v.Parked >= 10 && v.OldestUndelivered != nil })
	if v.Parked != 10 || v.State != connstatus.StateFailed {
		t.Fatalf("want its 10 events parked, each counted once, and still failed: %+v", v)
	}
	if raw := statusTopicBytes(t, p); strings.Contains(raw, goodKey) || strings.Contains(raw, badKey) {
		t.Fatal("a key reached the status topic")
	}
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
