package destinations

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/secretbox"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

// benchAccount is a realistic account configuration: a Datadog and an
// EventBridge connection and an S3 storage profile, every secret sealed.
func benchAccount(b *testing.B, box *secretbox.Box, account string, version int64) []byte {
	b.Helper()
	seal := func(coll, name, field, v string) SealedSecret {
		s, err := box.Seal(context.Background(), []byte(v), secretbox.Context(SecretContext(account, coll, name, field)))
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := json.Marshal(s)
		return SealedSecret{Sealed: raw, Last4: v[len(v)-4:]}
	}
	settings := func(v any) json.RawMessage { raw, _ := json.Marshal(v); return raw }
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cfg := &AccountConfig{
		Account: account, Version: version, UpdatedAt: now, UpdatedBy: "admin-" + account,
		Connections: map[string]*Resource{
			"dd-main": {Type: TypeDatadog, Enabled: true, Revision: version, CreatedAt: now, UpdatedAt: now,
				Settings: settings(map[string]any{"site": "datadoghq.eu", "api_key": seal(CollectionConnections, "dd-main", "api_key", "0123456789abcdef0123456789abcdef")})},
			"eb-main": {Type: TypeEventBridge, Enabled: true, Revision: version, CreatedAt: now, UpdatedAt: now,
				Settings: settings(map[string]any{"region": "eu-west-1", "event_bus": "audit", "credentials": map[string]any{
					"role_arn": "arn:aws:iam::123456789012:role/auditstream", "external_id": seal(CollectionConnections, "eb-main", "credentials.external_id", "ext-id-0123456789")}})},
		},
		StorageProfiles: map[string]*Resource{
			"s3-main": {Type: TypeStorage, Enabled: true, Revision: version, CreatedAt: now, UpdatedAt: now,
				Settings: settings(map[string]any{"kind": "s3", "prefix": "audit", "s3": map[string]any{"region": "eu-west-1", "bucket": "acme-audit-archive",
					"credentials": map[string]any{"access_key_id": seal(CollectionStorageProfiles, "s3-main", "s3.credentials.access_key_id", "AKIAEXAMPLE000000000"),
						"secret_access_key": seal(CollectionStorageProfiles, "s3-main", "s3.credentials.secret_access_key", "secret0123456789secret0123456789")}}})},
		},
		AuditLogs: AuditLogs{Streaming: true, Connections: []string{"dd-main", "eb-main"}, StorageProfile: "s3-main", Revision: version, UpdatedAt: now},
	}
	data, err := cfg.Encode()
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// preload writes accounts × versions records of realistic configurations.
func preload(b *testing.B, c *kafkatest.Cluster, accounts, versions int) int {
	b.Helper()
	dir := b.TempDir()
	keyring := filepath.Join(dir, "keyring.yaml")
	if err := secretbox.GenerateKeyring(keyring, "k1"); err != nil {
		b.Fatal(err)
	}
	kek, err := secretbox.NewKEK(context.Background(), secretbox.Config{KeyringFile: keyring}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	box := secretbox.New(kek)
	cl := c.Client(kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<20))
	if err := c.CreateTopic("audit.destinations", 6, map[string]string{"cleanup.policy": "compact"}); err != nil {
		b.Fatal(err)
	}
	// One sealed template per version, its account swapped in: sealing
	// 100,000 accounts would time the key ring, not the reader.
	bytesTotal := 0
	ctx := context.Background()
	for v := 1; v <= versions; v++ {
		var recs []*kgo.Record
		for i := range accounts {
			account := fmt.Sprintf("acc-%07d", i)
			data := benchAccount(b, box, account, int64(v))
			bytesTotal += len(data)
			recs = append(recs, &kgo.Record{Topic: "audit.destinations", Key: []byte(account), Value: data,
				Headers: []kgo.RecordHeader{{Key: HeaderVersion, Value: []byte(strconv.Itoa(v))}}})
			if len(recs) == 5000 {
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					b.Fatal(err)
				}
				recs = recs[:0]
			}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	return bytesTotal
}

// processCPU is the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkDestinationsStartup measures a consumer's start with many
// accounts configured: how long until it is ready (it has read the whole
// destinations topic and routes every account) against a bare franz-go
// read of the same records in the same run, and the memory it keeps per
// account. With versions > 1 each account was written that many times:
// the memory must follow the accounts, not the records.
func BenchmarkDestinationsStartup(b *testing.B) {
	for _, tc := range []struct{ accounts, versions int }{{25_000, 1}, {100_000, 1}, {10_000, 10}} {
		b.Run(fmt.Sprintf("accounts=%d/versions=%d", tc.accounts, tc.versions), func(b *testing.B) {
			c := kafkatest.New(b)
			c.ReleaseOnCleanup()
			topicBytes := preload(b, c, tc.accounts, tc.versions)
			records := tc.accounts * tc.versions
			kcfg := storeKafka(c)
			kcfg.Topics.Destinations.Partitions = 6

			var ready, raw, readyCPU, rawCPU time.Duration
			var live uint64
			for b.Loop() {
				// The ceiling: a bare client reading every record.
				start, cpu := time.Now(), processCPU()
				cl := c.Client(kgo.ConsumeTopics("audit.destinations"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
				for n := 0; n < records; {
					n += cl.PollFetches(context.Background()).NumRecords()
				}
				raw, rawCPU = time.Since(start), processCPU()-cpu
				cl.Close()

				base := liveHeap()
				start, cpu = time.Now(), processCPU()
				ctx, cancel := context.WithCancel(context.Background())
				s, err := NewStore(ctx, StoreOptions{Kafka: kcfg, Types: []string{TypeDatadog}})
				if err != nil {
					b.Fatal(err)
				}
				w, err := NewWatcher(Options{Store: s, Open: testOpen})
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan struct{})
				go func() { defer close(done); _ = s.Run(ctx) }()
				if err := s.WaitReady(ctx); err != nil {
					b.Fatal(err)
				}
				ready, readyCPU = time.Since(start), processCPU()-cpu
				if got := len(w.Current().ForType(TypeDatadog).Route(fmt.Sprintf("acc-%07d", tc.accounts-1))); got != 1 {
					b.Fatalf("the last account routes to %d Datadog connections, want 1", got)
				}
				live = liveHeap() - base
				runtime.KeepAlive(w)
				cancel()
				<-done
				s.Close()
			}
			b.ReportMetric(ready.Seconds(), "ready-s")
			b.ReportMetric(raw.Seconds(), "raw-read-s")
			b.ReportMetric(ready.Seconds()/raw.Seconds(), "ready/raw")
			// CPU time, the broker's included for both: on a shared machine
			// the wall clock measures the neighbours as much as the reader.
			b.ReportMetric(readyCPU.Seconds(), "ready-cpu-s")
			b.ReportMetric(rawCPU.Seconds(), "raw-read-cpu-s")
			b.ReportMetric(float64(readyCPU.Microseconds())/float64(records), "cpu-µs/record")
			b.ReportMetric(float64(live)/(1<<20), "live-MB")
			b.ReportMetric(float64(live)/float64(tc.accounts), "B/account")
			b.ReportMetric(float64(topicBytes)/float64(records), "B/record")
		})
	}
}
