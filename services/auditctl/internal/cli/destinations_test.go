package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/secretbox"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
)

// sealedAccount is an account with one Datadog connection whose key is
// sealed by box, as the destinations API stores it.
func sealedAccount(t *testing.T, box *secretbox.Box, account, key string) *destinations.AccountConfig {
	t.Helper()
	sealed, err := box.Seal(context.Background(), []byte(key), secretbox.Context(destinations.SecretContext(account, destinations.CollectionConnections, "dd", "api_key")))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(sealed)
	settings, _ := json.Marshal(map[string]any{"api_key": destinations.SealedSecret{Sealed: raw}})
	return &destinations.AccountConfig{
		Connections: map[string]*destinations.Resource{"dd": {Type: destinations.TypeDatadog, Enabled: true, Settings: settings}},
		AuditLogs:   destinations.AuditLogs{Streaming: true, Connections: []string{"dd"}},
	}
}

func runStore(t *testing.T, kcfg kafka.Config, writer bool) *destinations.Store {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := destinations.NewStore(ctx, destinations.StoreOptions{Kafka: kcfg, Writer: writer})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	if err := s.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// Rotation: a new primary key, rewrap dry run counts, --execute re-seals,
// and then a key ring without the old key opens every secret.
func TestDestinationsRewrap(t *testing.T) {
	k := newTestKafka(t)
	keyring := filepath.Join(t.TempDir(), "keyring.yaml")
	if err := secretbox.GenerateKeyring(keyring, "k1"); err != nil {
		t.Fatal(err)
	}
	kek, err := secretbox.NewKEK(context.Background(), secretbox.Config{KeyringFile: keyring}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	kcfg := kafka.Default("rewrap-test")
	kcfg.Brokers = []string{k.addr}
	writer := runStore(t, kcfg, true)
	box := secretbox.New(kek)
	const n = 5
	for i := range n {
		account := fmt.Sprintf("acc-%d", i)
		want := sealedAccount(t, box, account, fmt.Sprintf("dd-key-of-%s-0123456789", account))
		if _, err := writer.Update(context.Background(), account, "test", func(*destinations.AccountConfig, int64) (*destinations.AccountConfig, error) { return want, nil }); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := writeFile(t, "auditctl.yaml", fmt.Sprintf("kafka: {brokers: [%s]}\ndestinations: {encryption: {keyring_file: %s}}\n", k.addr, keyring))

	// Nothing is stale under the key everything was sealed with.
	r := mustCtl(t, "destinations", "rewrap", "--config", cfgFile, "--output", "json")
	var rep rewrapReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if rep.Accounts != n || rep.Secrets != n || rep.Stale != 0 || rep.KeyID != "k1" {
		t.Fatalf("before rotation: %+v", rep)
	}

	if err := secretbox.AddKey(keyring, "k2", true); err != nil {
		t.Fatal(err)
	}
	r = mustCtl(t, "destinations", "rewrap", "--config", cfgFile)
	if !strings.Contains(r.stdout, fmt.Sprintf("%d sealed under another key than k2; would re-seal 0", n)) {
		t.Fatalf("dry run: %s", r.stdout)
	}
	r = mustCtl(t, "destinations", "rewrap", "--config", cfgFile, "--execute", "--output", "json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Stale != n || rep.Rewrapped != n || len(rep.Failed) != 0 {
		t.Fatalf("execute: %+v", rep)
	}
	r = mustCtl(t, "destinations", "rewrap", "--config", cfgFile, "--output", "json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Stale != 0 {
		t.Fatalf("after execute: %+v %v", rep, err)
	}

	// The old key can go: a consumer whose key ring holds k2 alone opens
	// every account's key.
	if err := secretbox.RemoveKey(keyring, "k1"); err != nil {
		t.Fatal(err)
	}
	dcfg := destinations.DefaultConfig()
	dcfg.Encryption.KeyringFile = keyring
	f, err := destinations.Follow(context.Background(), dcfg, kcfg, nil, nil, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	defer func() { cancel(); <-done; f.Close() }()
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		account := fmt.Sprintf("acc-%d", i)
		route := f.Watcher.Current().ForType(destinations.TypeDatadog).Route(account)
		if len(route) != 1 {
			t.Fatalf("%s routes to %d connections", account, len(route))
		}
		var s struct {
			APIKey config.Secret `yaml:"api_key"`
		}
		if err := route[0].Decode(&s); err != nil {
			t.Fatalf("%s after rotation: %v", account, err)
		}
		if v, _ := s.APIKey.Value(); v != fmt.Sprintf("dd-key-of-%s-0123456789", account) {
			t.Fatalf("%s opened to the wrong key", account)
		}
	}
}

// Replay to a connection an account configured through the API: found by
// its qualified name in the destinations topic, its sealed key opened with
// the key ring, and only that account's events sent.
func TestReplayToAPIConnection(t *testing.T) {
	k := newTwoDays(t)
	intake := ddfake.New("dd-key-of-acc-b-0123456789")
	t.Cleanup(intake.Close)
	keyring := filepath.Join(t.TempDir(), "keyring.yaml")
	if err := secretbox.GenerateKeyring(keyring, "k1"); err != nil {
		t.Fatal(err)
	}
	kek, err := secretbox.NewKEK(context.Background(), secretbox.Config{KeyringFile: keyring}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	kcfg := kafka.Default("replay-api-test")
	kcfg.Brokers = []string{k.addr}
	writer := runStore(t, kcfg, true)
	acc := sealedAccount(t, secretbox.New(kek), "acc-b", "dd-key-of-acc-b-0123456789")
	var settings map[string]any
	_ = json.Unmarshal(acc.Connections["dd"].Settings, &settings)
	settings["base_url"] = intake.URL()
	acc.Connections["dd"].Settings, _ = json.Marshal(settings)
	if _, err := writer.Update(context.Background(), "acc-b", "test", func(*destinations.AccountConfig, int64) (*destinations.AccountConfig, error) { return acc, nil }); err != nil {
		t.Fatal(err)
	}
	cfgFile := writeFile(t, "auditctl.yaml", fmt.Sprintf(`delivery:
  batch: {count: 50, bytes: 1MB, period: 20ms}
  send_timeout: 5s
destinations:
  encryption: {keyring_file: %s}
`, keyring))
	r := mustCtl(t, "replay", "--config", cfgFile, "--brokers", k.addr, "--destination", "acc-b/dd",
		"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339), "-o", "json")
	if got := ddIDs(intake, "dd-key-of-acc-b-0123456789"); !slices.Equal(got, sortedConcat(k.inRange["acc-b"])) {
		t.Fatalf("the API connection received %d events, want acc-b's %d\n%s", len(got), len(k.inRange["acc-b"]), r.stdout)
	}
	// A name no account configured is refused, saying where it looked.
	bad := ctl(t, "replay", "--config", cfgFile, "--brokers", k.addr, "--destination", "acc-b/nope",
		"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339))
	if bad.err == nil || !strings.Contains(bad.err.Error(), "the destinations topic") {
		t.Fatalf("unknown API connection: %v", bad.err)
	}
}
