package destinations

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/secretbox"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

func storeKafka(c *kafkatest.Cluster) kafka.Config {
	k := kafka.Default("destinations-store-test")
	k.Brokers = c.Brokers()
	k.Topics.Destinations.Partitions = 3
	return k
}

// openStore starts a store and waits until it is ready.
func openStore(t *testing.T, c *kafkatest.Cluster, writer bool, hooks ...func(map[string]*AccountConfig)) *Store {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := NewStore(ctx, StoreOptions{Kafka: storeKafka(c), Writer: writer})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		s.OnChange(h)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("store run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := s.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// testSeal "seals" a value by binding it to its context in the clear: it
// lets these tests check that consumers open a secret with the context it
// was written under, without the key ring.
func testSeal(value string, aad map[string]string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"v": base64.StdEncoding.EncodeToString([]byte(value)), "aad": fmt.Sprint(aad)})
	return b
}

func testOpen(_ context.Context, sealed json.RawMessage, aad map[string]string) ([]byte, error) {
	var s struct{ V, AAD string }
	if err := json.Unmarshal(sealed, &s); err != nil {
		return nil, err
	}
	if s.AAD != fmt.Sprint(aad) {
		return nil, errors.New("context does not match")
	}
	return base64.StdEncoding.DecodeString(s.V)
}

func datadogResource(t *testing.T, account, name, key string) *Resource {
	t.Helper()
	sealed := SealedSecret{Sealed: testSeal(key, SecretContext(account, CollectionConnections, name, "api_key"))}
	settings, err := json.Marshal(map[string]any{"site": "datadoghq.eu", "api_key": sealed})
	if err != nil {
		t.Fatal(err)
	}
	return &Resource{Type: TypeDatadog, Enabled: true, Settings: settings}
}

func streamTo(conns ...string) func(*AccountConfig) {
	return func(a *AccountConfig) { a.AuditLogs = AuditLogs{Streaming: true, Connections: conns} }
}

func update(t *testing.T, s *Store, account string, change func(*AccountConfig)) *AccountConfig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := s.Update(ctx, account, "test-token", func(cur *AccountConfig, _ int64) (*AccountConfig, error) {
		if cur == nil {
			cur = &AccountConfig{}
		}
		change(cur)
		return cur, nil
	})
	if err != nil {
		t.Fatalf("update %s: %v", account, err)
	}
	return got
}

type apiSettings struct {
	Site   string        `yaml:"site"`
	APIKey config.Secret `yaml:"api_key"`
}

func TestStoreRoundTripThroughTopic(t *testing.T) {
	c := kafkatest.New(t)
	w := openStore(t, c, true)
	got := update(t, w, "acc-1", func(a *AccountConfig) {
		a.Connections = map[string]*Resource{"dd-main": datadogResource(t, "acc-1", "dd-main", "key-acc-1-0123456789")}
		streamTo("dd-main")(a)
	})
	if got.Version != 1 || got.UpdatedBy != "test-token" {
		t.Fatalf("first write: version %d by %q, want 1 by test-token", got.Version, got.UpdatedBy)
	}
	update(t, w, "acc-2", func(a *AccountConfig) {
		a.Connections = map[string]*Resource{"dd-main": datadogResource(t, "acc-2", "dd-main", "key-acc-2-0123456789")}
	})

	// A reader started afterwards rebuilds both from the topic, and a
	// watcher on it routes acc-1 (streaming on) and not acc-2 (off).
	r := openStore(t, c, false)
	if a := r.Get("acc-1"); a == nil || a.Version != 1 || a.Connections["dd-main"] == nil {
		t.Fatalf("reader's acc-1 = %+v", a)
	}
	w2 := readerWatcher(t, c)
	tab := w2.Current()
	route := tab.ForType(TypeDatadog).Route("acc-1")
	if len(route) != 1 || route[0].Name != "acc-1/dd-main" || route[0].Account != "acc-1" {
		t.Fatalf("acc-1 routes to %v, want acc-1/dd-main", connNames(route))
	}
	if route := tab.ForType(TypeDatadog).Route("acc-2"); len(route) != 0 {
		t.Fatalf("acc-2 has streaming off but routes to %v", connNames(route))
	}
	if route := tab.ForType(TypeEventBridge).Route("acc-1"); len(route) != 0 {
		t.Fatalf("the eventbridge view routes acc-1 to %v", connNames(route))
	}
	// The secret opens with the context it was sealed under.
	var s apiSettings
	if err := route[0].Decode(&s); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.APIKey.Value(); v != "key-acc-1-0123456789" || s.Site != "datadoghq.eu" {
		t.Fatalf("decoded settings: site %q key %q", s.Site, v)
	}
	// Another account's connection looked up by its qualified name opens its own key.
	var s2 apiSettings
	if err := tab.Lookup("acc-2/dd-main").Decode(&s2); err != nil {
		t.Fatal(err)
	}
	if v, _ := s2.APIKey.Value(); v != "key-acc-2-0123456789" {
		t.Fatalf("acc-2 key decoded as %q", v)
	}
}

func readerWatcher(t *testing.T, c *kafkatest.Cluster) *Watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := NewStore(ctx, StoreOptions{Kafka: storeKafka(c)})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(Options{Store: s, Open: testOpen})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return w
}

func connNames(cs []*Connection) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

func TestStoreSecretMovedToAnotherAccountDoesNotOpen(t *testing.T) {
	c := kafkatest.New(t)
	w := openStore(t, c, true)
	// acc-2's connection carries the sealed key of acc-1.
	update(t, w, "acc-2", func(a *AccountConfig) {
		a.Connections = map[string]*Resource{"dd-main": datadogResource(t, "acc-1", "dd-main", "key-acc-1-0123456789"),
			"dd-other": datadogResource(t, "acc-2", "dd-other", "key-acc-2-0123456789")}
		streamTo("dd-main", "dd-other")(a)
	})
	tab := readerWatcher(t, c).Current().ForType(TypeDatadog)
	var s apiSettings
	err := tab.Lookup("acc-2/dd-main").Decode(&s)
	if err == nil || !strings.Contains(err.Error(), "open secret api_key") || strings.Contains(err.Error(), "key-acc") {
		t.Fatalf("moved secret: err = %v, want an open error naming the field and not the value", err)
	}
	// The account's other connection is not harmed.
	if err := tab.Lookup("acc-2/dd-other").Decode(&s); err != nil {
		t.Fatalf("the other connection: %v", err)
	}
}

func TestStoreDeleteWritesTombstoneAndStopsRouting(t *testing.T) {
	c := kafkatest.New(t)
	w := openStore(t, c, true)
	changes := make(chan map[string]*AccountConfig, 16)
	reader := openStore(t, c, false, func(m map[string]*AccountConfig) { changes <- maps.Clone(m) })
	<-changes // the initial, empty set
	update(t, w, "acc-1", func(a *AccountConfig) {
		a.Connections = map[string]*Resource{"dd-main": datadogResource(t, "acc-1", "dd-main", "k")}
		streamTo("dd-main")(a)
	})
	if m := <-changes; m["acc-1"] == nil {
		t.Fatalf("reader saw %v, want acc-1 configured", m)
	}
	ctx := context.Background()
	got, err := w.Update(ctx, "acc-1", "t", func(cur *AccountConfig, _ int64) (*AccountConfig, error) { return nil, nil })
	if err != nil || got != nil {
		t.Fatalf("delete: %v, %v", got, err)
	}
	if m := <-changes; len(m) != 1 || m["acc-1"] != nil {
		t.Fatalf("reader saw %v, want acc-1 deleted", m)
	}
	if reader.Get("acc-1") != nil {
		t.Fatal("reader still has acc-1")
	}
	recs := kafkatest.ReadAll(t, c.Brokers(), "audit.destinations", 2, 10*time.Second)
	if len(recs) != 2 || recs[1].Value != nil {
		t.Fatalf("topic holds %d records, the last with value %q; want a tombstone last", len(recs), recs[len(recs)-1].Value)
	}
	// Configuring the account again continues its versions.
	if a := update(t, w, "acc-1", streamTo()); a.Version != 3 {
		t.Fatalf("after the tombstone the version is %d, want 3", a.Version)
	}
}

// Two writers (two API replicas) update one account from the same version
// at once: exactly one wins, the other is told, every reader agrees on the
// winner, and so does a reader of the compacted topic.
func TestStoreConcurrentWritersOneWinsAndCompactionAgrees(t *testing.T) {
	c := kafkatest.New(t, kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": "3600000"}))
	// One partition, so that a later record of another account makes every
	// record of acc-1 cleanable: compaction keeps a key's last batch.
	if err := c.CreateTopic("audit.destinations", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	a, b := openStore(t, c, true), openStore(t, c, true)
	update(t, a, "acc-1", streamTo())
	for round := range 20 {
		// Both writers have read the same version before racing.
		waitVersion(t, b, "acc-1", a.Get("acc-1").Version)
		waitVersion(t, a, "acc-1", b.Get("acc-1").Version)
		var wg, read sync.WaitGroup
		read.Add(2)
		errs := make([]error, 2)
		for i, s := range []*Store{a, b} {
			wg.Go(func() {
				_, errs[i] = s.Update(context.Background(), "acc-1", fmt.Sprint("writer-", i), func(cur *AccountConfig, _ int64) (*AccountConfig, error) {
					read.Done()
					read.Wait() // both have read the same version
					cur.AuditLogs.StorageProfile = ""
					cur.Connections = map[string]*Resource{fmt.Sprintf("w%d-r%d", i, round): datadogResource(t, "acc-1", "x", "k")}
					return cur, nil
				})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrConflict):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d writers won (errors %v), want exactly one", round, won, errs)
		}
	}
	// The last writer read its write back; the other store may be behind.
	last := max(a.Get("acc-1").Version, b.Get("acc-1").Version)
	inForce := waitVersion(t, openStore(t, c, false), "acc-1", last)
	for _, w := range []*Store{a, b} {
		if got := waitVersion(t, w, "acc-1", last); fmt.Sprint(keys(got.Connections)) != fmt.Sprint(keys(inForce.Connections)) {
			t.Fatalf("a writer holds %v, a reader %v", keys(got.Connections), keys(inForce.Connections))
		}
	}
	conflicts := testutil.ToFloat64(a.m.conflicts) + testutil.ToFloat64(b.m.conflicts)
	t.Logf("20 racing rounds: %v records not in force across both writers", conflicts)

	update(t, a, "acc-other", streamTo())
	c.Compact()
	if n := len(kafkatest.ReadAll(t, c.Brokers(), "audit.destinations", 2, 10*time.Second)); n != 2 {
		t.Fatalf("the compacted topic holds %d records, want 2 (one per account)", n)
	}
	after := openStore(t, c, false).Get("acc-1")
	if after == nil || fmt.Sprint(keys(after.Connections)) != fmt.Sprint(keys(inForce.Connections)) {
		t.Fatalf("after compaction the account holds %v, before it held %v", keys(after.Connections), keys(inForce.Connections))
	}
}

// waitVersion waits until s has account at version v or later.
func waitVersion(t *testing.T, s *Store, account string, v int64) *AccountConfig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ch := s.changedCh()
		if got := s.Get(account); got != nil && got.Version >= v {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("store never reached version %d of %s", v, account)
		case <-ch:
		}
	}
}

func (s *Store) changedCh() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func TestStoreRefusesBadRecordsAndKeepsOthers(t *testing.T) {
	c := kafkatest.New(t)
	w := openStore(t, c, true)
	update(t, w, "acc-good", streamTo())
	cl := c.Client()
	good, _ := (&AccountConfig{Account: "acc-2", Version: 1}).Encode()
	hdr := func(v string) []kgo.RecordHeader { return []kgo.RecordHeader{{Key: HeaderVersion, Value: []byte(v)}} }
	bad := []*kgo.Record{
		{Key: []byte("acc-1"), Value: []byte("{not json"), Headers: hdr("1")},
		{Key: []byte("acc-1"), Value: good, Headers: hdr("1")}, // key does not match the value
		{Key: []byte("acc-2"), Value: good},                    // no version header
		{Key: []byte("acc-2"), Value: good, Headers: hdr("x")}, // bad version header
		{Key: []byte("acc/2"), Value: good, Headers: hdr("1")}, // bad account id
		{Key: []byte("acc-2"), Value: []byte(`{"schema":"other"}`), Headers: hdr("1")},
		{Key: []byte("acc-2"), Value: []byte(strings.Repeat(" ", MaxAccountRecordBytes+1)), Headers: hdr("1")},
	}
	for _, r := range bad {
		r.Topic = "audit.destinations"
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	update(t, w, "acc-after", streamTo())
	r := openStore(t, c, false)
	if r.Get("acc-good") == nil || r.Get("acc-after") == nil {
		t.Fatal("good accounts around the bad records are missing")
	}
	if r.Get("acc-1") != nil || r.Get("acc-2") != nil {
		t.Fatal("a bad record was applied")
	}
	if n := testutil.ToFloat64(r.m.refused); n != float64(len(bad)) {
		t.Fatalf("refused %v records, want %d", n, len(bad))
	}
}

// A consumer whose key ring lacks the key a secret was sealed under, or
// that finds the sealed bytes altered, fails that connection with an error
// that says why, and opens every other connection.
func TestStoreMissingKeyOrTamperedSecretHarmsOnlyItsConnection(t *testing.T) {
	c := kafkatest.New(t)
	dir := t.TempDir()
	apiRing, consumerRing := filepath.Join(dir, "api.yaml"), filepath.Join(dir, "consumer.yaml")
	if err := secretbox.GenerateKeyring(consumerRing, "k1"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(consumerRing)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(apiRing, data, 0o600); err != nil {
		t.Fatal(err)
	}
	boxFor := func(path string) *secretbox.Box {
		kek, err := secretbox.NewKEK(context.Background(), secretbox.Config{KeyringFile: path}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		return secretbox.New(kek)
	}
	apiBox := boxFor(apiRing)
	sealed := func(account, name, key string) *Resource {
		s, err := apiBox.Seal(context.Background(), []byte(key), secretbox.Context(SecretContext(account, CollectionConnections, name, "api_key")))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(s)
		settings, _ := json.Marshal(map[string]any{"api_key": SealedSecret{Sealed: raw}})
		return &Resource{Type: TypeDatadog, Enabled: true, Settings: settings}
	}
	w := openStore(t, c, true)
	good := sealed("acc-good", "dd", "key-good-0123456789")
	tampered := sealed("acc-tampered", "dd", "key-tampered-0123456789")
	tampered.Settings = []byte(strings.Replace(string(tampered.Settings), `"ct":"`, `"ct":"AAAA`, 1))
	// The API moves to a key the consumer's ring does not have yet.
	if err := secretbox.AddKey(apiRing, "k2", true); err != nil {
		t.Fatal(err)
	}
	newKey := sealed("acc-newkey", "dd", "key-newkey-0123456789")
	for account, r := range map[string]*Resource{"acc-good": good, "acc-tampered": tampered, "acc-newkey": newKey} {
		update(t, w, account, func(a *AccountConfig) {
			a.Connections = map[string]*Resource{"dd": r}
			streamTo("dd")(a)
		})
	}

	s, err := NewStore(context.Background(), StoreOptions{Kafka: storeKafka(c)})
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := NewWatcher(Options{Store: s, Open: SecretboxOpener(boxFor(consumerRing))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done; s.Close() }()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tab := watcher.Current().ForType(TypeDatadog)
	decode := func(account string) error {
		var v apiSettings
		return tab.Route(account)[0].Decode(&v)
	}
	if err := decode("acc-good"); err != nil {
		t.Fatalf("the good connection: %v", err)
	}
	for account, want := range map[string]error{"acc-tampered": secretbox.ErrTampered, "acc-newkey": secretbox.ErrUnknownKey} {
		err := decode(account)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), "open secret api_key") || strings.Contains(err.Error(), "0123456789") {
			t.Fatalf("%s: %v, want %v naming the field and no key", account, err, want)
		}
	}
}
