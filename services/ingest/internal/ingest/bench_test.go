package ingest

// Throughput benchmarks for `make bench`. BenchmarkRawProduceCeiling is what
// a bare franz-go client with ingest's producer options writes to the
// in-process broker; BenchmarkIngestBatch is what the ingest service accepts
// over HTTP against the same kind of broker. benchreport prints the second
// as a share of the first. Performance targets live here, never in timed
// unit tests.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/testsupport/benchutil"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

const (
	// benchEventBytes is the size of one event's JSON form.
	benchEventBytes = 1024
	// benchAccounts is how many accounts the events are spread over (the
	// record key, so the partitioner spreads them like real traffic).
	benchAccounts = 50
	// benchBatch events go in one POST /v1/events request.
	benchBatch = 500
	// benchClients requests are in flight at once.
	benchClients = 8
	// benchPool distinct events are cycled through.
	benchPool = 8 * benchBatch

	// The broker keeps at most this much log per partition, so a long run
	// measures the pipeline's memory, not an ever-growing in-memory log.
	benchRetentionBytes = 2 << 20
	benchSegmentBytes   = 1 << 20

	benchToken = "bench-token-0123456789abcdef"
)

// benchConfig is ingest's default configuration with a bearer token, as a
// deployment runs it. The broker addresses are set by benchBroker.
func benchConfig() Config {
	cfg := DefaultConfig()
	sum := sha256.Sum256([]byte(benchToken))
	cfg.Ingest.Auth.Tokens = []Token{{Name: "bench", SHA256: hex.EncodeToString(sum[:])}}
	return cfg
}

// benchBroker starts one in-process broker with ingest's topics, created as
// bootstrap would (same partitions and retention.ms) plus a bounded log,
// and points cfg at it. Both benchmarks use it, so they write to the same
// broker settings.
func benchBroker(b *testing.B, cfg *Config) *kafkatest.Cluster {
	b.Helper()
	cluster := kafkatest.New(b)
	cluster.ReleaseOnCleanup()
	cfg.Kafka.Brokers = cluster.Brokers()
	for _, spec := range []kafka.TopicSpec{cfg.Kafka.Topics.Events, cfg.Kafka.Topics.DeadLetter} {
		configs := map[string]string{
			"retention.ms":    strconv.FormatInt(spec.Retention.Milliseconds(), 10),
			"retention.bytes": strconv.Itoa(benchRetentionBytes),
			"segment.bytes":   strconv.Itoa(benchSegmentBytes),
		}
		if err := cluster.CreateTopic(spec.Name, spec.Partitions, configs); err != nil {
			b.Fatalf("create topic %s: %v", spec.Name, err)
		}
	}
	// kfake applies retention on a timer of log.cleaner.backoff.ms; trim
	// here instead, often enough to keep the log near its bound.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				cluster.ApplyRetention()
			}
		}
	}()
	// Cleanups run last-registered first: stop trimming before the broker
	// closes.
	b.Cleanup(func() { close(stop); <-done })
	return cluster
}

// benchHighWatermarks sums the end offsets of topic: every record ever written,
// whatever retention removed since.
func benchHighWatermarks(cluster *kafkatest.Cluster, topic string) int64 {
	var n int64
	for _, p := range cluster.PartitionInfos(topic) {
		n += p.HighWatermark
	}
	return n
}

// benchEvents are benchPool distinct events, each benchEventBytes of JSON:
// the seed's example event with its own account (one of benchAccounts),
// actor, request, target and timestamp, a longer user agent, and extra
// attributes a producer would send (trace ids, the referring page).
var benchEvents = sync.OnceValues(func() ([][]byte, error) {
	seed, err := os.ReadFile("../../../../proto/auditevent/testdata/seed-attributes.json")
	if err != nil {
		seed = []byte(benchFallbackSeed)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC)
	userAgents := []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
		"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"scalr-cli/0.15.4 (linux; amd64) go-tfe/1.49.0 terraform/1.7.5",
	}
	events := make([][]byte, benchPool)
	for i := range events {
		var ev map[string]any
		if err := json.Unmarshal(seed, &ev); err != nil {
			return nil, fmt.Errorf("seed event: %w", err)
		}
		actor := benchObject(ev, "actor")
		user := "user-" + benchRandString(rng, 15)
		actor["id"] = user
		actor["email"] = user + "@example.com"
		req := benchObject(ev, "request")
		req["id"] = benchRandHex(rng, 16)
		req["ip-address"] = fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
		req["user-agent"] = userAgents[i%len(userAgents)]
		target := benchObject(ev, "target")
		run := "run-" + benchRandString(rng, 15)
		target["id"], target["display-name"] = run, run
		account := benchObject(benchObject(benchObject(ev, "target"), "context"), "account")
		account["id"] = fmt.Sprintf("acc-bench%04d", i%benchAccounts)
		account["display-name"] = fmt.Sprintf("account %d", i%benchAccounts)
		ev["timestamp"] = auditevent.FormatTimestamp(base.Add(time.Duration(i) * 1777 * time.Microsecond))
		extra := map[string]string{
			"trace-id": benchRandHex(rng, 16),
			"span-id":  benchRandHex(rng, 8),
			"referer":  "",
		}
		ev["extra"] = extra
		raw, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		// Size the referring page's address to bring the event to size.
		room := max(benchEventBytes-len(raw), 0)
		page := "https://app.example.com/v2/e/org-sscctbkdgkdrqg0/workspaces/ws-v0o370ouv5kbjmk9h/runs/" + run + "?q="
		if len(page) > room {
			page = page[:room]
		} else {
			page += benchRandString(rng, room-len(page))
		}
		extra["referer"] = page
		if raw, err = json.Marshal(ev); err != nil {
			return nil, err
		}
		events[i] = raw
	}
	return events, nil
})

// benchFallbackSeed is the seed's example event, for checkouts without the
// proto test data.
const benchFallbackSeed = `{"actor":{"id":"user-stp8qjepev3a123","access-token":{"type":"session","token":"...B6wifA"},"type":"user","email":"[email protected]"},
"request":{"ip-address":"69.206.111.123","action":"discard-run","id":"a3a473d725c730382558c25d52bd1234","source":"ui","user-agent":"Mozilla/5.0"},
"hostname":"docs.scalr.io","service":"audit-log","outcome":{"result":"SUCCESS","status-code":202},
"target":{"display-name":"run-v0o370pcff0e53123","context":{"environment":{"display-name":"CS-M","id":"org-sscctbkdgkdrqg0"},
"workspace":{"display-name":"demo-ws","id":"ws-v0o370ouv5kbjmk9h"},"account":{"display-name":"docs","id":"acc-sscctbisjkl3123"}},"id":"run-v0o370pcff0e53","type":"runs"},
"timestamp":"2024-02-16T12:58:38.577846"}`

func benchObject(m map[string]any, key string) map[string]any {
	o, ok := m[key].(map[string]any)
	if !ok {
		o = map[string]any{}
		m[key] = o
	}
	return o
}

func benchRandString(rng *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

func benchRandHex(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b)
}

// benchArray joins events into one request body.
func benchArray(events [][]byte) []byte {
	n := 2
	for _, e := range events {
		n += len(e) + 1
	}
	body := make([]byte, 0, n)
	body = append(body, '[')
	for i, e := range events {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e...)
	}
	return append(body, ']')
}

// benchRecords are the Kafka records ingest writes for benchEvents: decoded,
// prepared (id, masked token) and encoded exactly as a request's events are.
func benchRecords(b *testing.B, topic string) []*kgo.Record {
	b.Helper()
	events, err := benchEvents()
	if err != nil {
		b.Fatal(err)
	}
	decoded := make([]*auditlogv1.AuditEvent, len(events))
	for i, raw := range events {
		if decoded[i], err = auditevent.DecodeJSON(raw, auditevent.DecodeOptions{DisallowUnknownFields: true}); err != nil {
			b.Fatalf("event %d: %v", i, err)
		}
	}
	if errs := producer.Prepare(decoded, time.Now()); len(errs) > 0 {
		b.Fatalf("prepare: %v", errors.Join(errs...))
	}
	records := make([]*kgo.Record, len(decoded))
	for i, ev := range decoded {
		if records[i], err = auditevent.NewRecord(topic, ev); err != nil {
			b.Fatal(err)
		}
	}
	return records
}

// BenchmarkRawProduceCeiling is the ceiling: a franz-go client with
// ingest's producer options (acks=all, idempotent, same linger, batch size,
// compression and buffer bound) producing pre-built event records
// asynchronously, b.N records in all.
func BenchmarkRawProduceCeiling(b *testing.B) {
	cfg := benchConfig()
	cluster := benchBroker(b, &cfg)
	topic := cfg.Kafka.Topics.Events.Name
	records := benchRecords(b, topic)
	cl := cluster.Client(ProducerOpts(cfg)...)
	ctx := context.Background()

	// Connect, load metadata and get a producer id before timing.
	warm := *records[0]
	if err := cl.ProduceSync(ctx, &warm).FirstErr(); err != nil {
		b.Fatalf("warm-up produce: %v", err)
	}
	before := benchHighWatermarks(cluster, topic)

	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		firstErr atomic.Pointer[error]
	)
	mem := benchutil.StartPeakMemory(0)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		// The client owns a record until its promise runs: hand it a copy
		// sharing the encoded key, value and headers.
		rec := *records[i%len(records)]
		wg.Add(1)
		cl.Produce(ctx, &rec, func(_ *kgo.Record, err error) {
			if err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	peak := mem.Stop()

	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d records failed; first: %v", n, b.N, *firstErr.Load())
	}
	if got := benchHighWatermarks(cluster, topic) - before; got != int64(b.N) {
		b.Fatalf("broker holds %d new records, produced %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(benchutil.MB(peak), "peak-MB")
}

// BenchmarkIngestBatch is the ingest service as deployed — bearer-token
// auth, metrics, its Kafka client built by kafka.NewClient with
// ProducerOpts — behind an HTTP server on a loopback socket, taking
// POST /v1/events with JSON arrays of benchBatch events from benchClients
// concurrent clients, b.N events in all. It reports events/s, the p50 and
// p99 request latency seen by the clients, and the peak memory.
func BenchmarkIngestBatch(b *testing.B) {
	cfg := benchConfig()
	cluster := benchBroker(b, &cfg)
	topic := cfg.Kafka.Topics.Events.Name
	if err := cfg.Validate(); err != nil {
		b.Fatalf("config: %v", err)
	}
	events, err := benchEvents()
	if err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, 0, len(events)/benchBatch)
	for i := 0; i+benchBatch <= len(events); i += benchBatch {
		bodies = append(bodies, benchArray(events[i:i+benchBatch]))
	}

	log := zap.NewNop()
	reg := prometheus.NewRegistry()
	client, err := kafka.NewClient(cfg.Kafka, log, reg, ProducerOpts(cfg)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(client.Close)
	svc := NewService(cfg, client, log, reg)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go svc.Run(ctx)
	srv := httptest.NewServer(svc.Handler())
	b.Cleanup(srv.Close)
	waitFor(b, 10*time.Second, "ingest to become available", svc.available.Load)

	transport := &http.Transport{MaxIdleConns: benchClients, MaxIdleConnsPerHost: benchClients, IdleConnTimeout: time.Minute}
	b.Cleanup(transport.CloseIdleConnections)
	hc := &http.Client{Transport: transport, Timeout: time.Minute}
	url := srv.URL + "/v1/events"

	// Open every client's connection and warm the producer before timing.
	var warm sync.WaitGroup
	warmErrs := make(chan error, benchClients)
	for i := range benchClients {
		warm.Go(func() { warmErrs <- benchPost(hc, url, benchArray(events[i:i+1]), 1) })
	}
	warm.Wait()
	close(warmErrs)
	for err := range warmErrs {
		if err != nil {
			b.Fatalf("warm-up request: %v", err)
		}
	}
	before := benchHighWatermarks(cluster, topic)

	var (
		next     atomic.Int64
		stopped  atomic.Bool
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
	)
	lat := benchutil.NewLatencies(b.N/benchBatch + benchClients)
	mem := benchutil.StartPeakMemory(0)
	b.ResetTimer()
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for !stopped.Load() {
				from := next.Add(benchBatch) - benchBatch
				if from >= int64(b.N) {
					return
				}
				n := int(min(benchBatch, int64(b.N)-from))
				body := bodies[(from/benchBatch)%int64(len(bodies))]
				if n < benchBatch {
					body = benchArray(events[:n])
				}
				t0 := time.Now()
				err := benchPost(hc, url, body, n)
				lat.Record(time.Since(t0))
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					stopped.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	peak := mem.Stop()

	if p := firstErr.Load(); p != nil {
		b.Fatalf("request failed: %v", *p)
	}
	if got := benchHighWatermarks(cluster, topic) - before; got != int64(b.N) {
		b.Fatalf("broker holds %d new records, ingest accepted %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(benchutil.Millis(lat.Percentile(50)), "p50-ms")
	b.ReportMetric(benchutil.Millis(lat.Percentile(99)), "p99-ms")
	b.ReportMetric(benchutil.MB(peak), "peak-MB")
}

// benchPost sends one request of n events and checks that ingest answered
// 202 with n ids.
func benchPost(hc *http.Client, url string, body []byte, n int) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("status %d: %.300s", resp.StatusCode, answer)
	}
	// {"ids":["a","b",...]}: the ids hold no quotes or commas.
	if ids := bytes.Count(answer, []byte(`","`)) + 1; ids != n {
		return fmt.Errorf("answer holds %d ids for %d events", ids, n)
	}
	return nil
}

// parseJSONArrayFast is the fast path of parseJSON that BenchmarkIngestBatch
// drives; it must accept exactly the arrays encoding/json's exact path
// accepts, with the same events. Whatever it declines goes to that path.
func FuzzParseJSONArrayFast(f *testing.F) {
	ev := `{"actor":{"id":"u-1","email":"a@b"},"target":{"context":{"account":{"id":"acc-1"}}},"extra":{"k":"v"}}`
	for _, s := range []string{
		`[` + ev + `]`,
		"[ \n\t" + ev + " ,\r\n" + ev + "\n]",
		`[` + ev + `,` + ev + `,` + ev + `]`,
		`[{"target":{"context":{"account":{"id":"acc-\"}{]["}}},"extra":{"a\\":"\\\"","b":"\u00e9{"}}]`,
		`[{"target":{"context":{"account":{"id":"acc-1"}}},"extra":{"z":"[[[{{{"}}]`,
		`[]`, `[ ]`, `[,]`, `[` + ev + `,]`, `[` + ev + ` ` + ev + `]`, `[` + ev + `]]`, `[` + ev + `] x`, `[` + ev,
		`[` + ev + `,1]`, `[1,` + ev + `]`, `[null]`, `[[` + ev + `]]`, `["{}"]`, `[{]`, `[{"a":[}]]`, `[{"a":]}]`,
		`[{"unknown":1}]`, `[{"timestamp":"yesterday"}]`, `[{"outcome":{"status-code":"x"}}]`, `[{"ACTOR":{"ID":"u"}}]`,
		`[{"actor":{"id":"u"},"actor":{"email":"e"}}]`, `[{"actor":null}]`, "[{\"actor\":{\"id\":\"\xff\"}}]",
		`{"actor":{}}`, `null`, `[` + ev + "]\u00a0",
	} {
		f.Add([]byte(s), 3, 200)
	}
	f.Fuzz(func(t *testing.T, body []byte, maxEvents, maxEventBytes int) {
		if maxEvents < 1 || maxEvents > 1000 || maxEventBytes < 1 {
			t.Skip()
		}
		limits := Limits{MaxBodyBytes: 1 << 20, MaxEvents: maxEvents, MaxEventBytes: config.ByteSize(maxEventBytes)}
		trimmed := bytes.TrimSpace(body)
		got, ok := parseJSONArrayFast(trimmed, limits)

		// What the exact path accepts: a JSON array of 1 to MaxEvents
		// elements, each within MaxEventBytes and a valid event.
		var want []*auditlogv1.AuditEvent
		accepted := len(trimmed) > 0 && trimmed[0] == '['
		var raws []json.RawMessage
		if accepted && json.Unmarshal(trimmed, &raws) != nil || len(raws) == 0 || len(raws) > maxEvents {
			accepted = false
		}
		for _, raw := range raws {
			if !accepted {
				break
			}
			ev, err := auditevent.DecodeJSON(raw, auditevent.DecodeOptions{DisallowUnknownFields: true})
			if len(raw) > maxEventBytes || err != nil {
				accepted = false
			}
			want = append(want, ev)
		}
		if ok != accepted {
			t.Fatalf("fast path ok=%v, exact path accepts=%v for %q", ok, accepted, body)
		}
		if !ok {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("fast path decoded %d events, exact path %d", len(got), len(want))
		}
		for i := range got {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("event %d differs:\nfast  %v\nexact %v", i, got[i], want[i])
			}
		}
		// parseJSON answers the same.
		events, aerr := parseJSON(body, limits)
		if aerr != nil || len(events) != len(want) {
			t.Fatalf("parseJSON: %d events, error %+v", len(events), aerr)
		}
	})
}
