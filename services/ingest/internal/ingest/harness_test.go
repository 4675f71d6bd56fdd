package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/server"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/auditstream/auditstream/services/testsupport/testwait"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

const testTopic = "audit.events"

// harness is one ingest service over real sockets: a kfake broker, the
// service's Kafka client, and the service's own HTTP server (health,
// readiness, metrics, POST /v1/events and Connect/gRPC over h2c) on an
// ephemeral port of 127.0.0.1.
type harness struct {
	t       *testing.T
	cluster *kafkatest.Cluster
	cfg     Config
	svc     *Service
	srv     *server.Server
	client  *kgo.Client
	url     string
}

// testConfig is the service's default configuration pointed at brokers,
// with short timeouts so that failure tests stay fast.
func testConfig(brokers []string) Config {
	cfg := DefaultConfig()
	cfg.Log.Level = "warn"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.ShutdownTimeout = 10 * time.Second
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.DialTimeout = time.Second
	cfg.Kafka.RequestTimeout = 2 * time.Second
	cfg.Kafka.Topics.Events.Partitions = 3
	cfg.Kafka.Topics.DeadLetter.Partitions = 1
	cfg.Ingest.ProduceTimeout = 2 * time.Second
	cfg.Ingest.Auth.Disabled = true
	return cfg
}

// newHarness starts a broker and an ingest service on it.
func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	return newHarnessOn(t, kafkatest.New(t), mutate...)
}

// newHarnessOn starts an ingest service on an existing broker.
func newHarnessOn(t *testing.T, cluster *kafkatest.Cluster, mutate ...func(*Config)) *harness {
	t.Helper()
	cfg := testConfig(cluster.Brokers())
	for _, m := range mutate {
		m(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	srv := server.New(cfg.HTTP, log)
	client, err := newTestClient(cfg, log, srv.Registry)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	svc := NewService(cfg, client, log, srv.Registry)
	srv.Handle("/", svc.Handler())
	srv.AddCheck("kafka", svc.Ready)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	serveDone := make(chan error, 1)
	go func() { defer close(runDone); svc.Run(ctx) }()
	go func() { serveDone <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-runDone
		if err := <-serveDone; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	h := &harness{t: t, cluster: cluster, cfg: cfg, svc: svc, srv: srv, client: client, url: "http://" + srv.Addr()}
	h.waitAvailable()
	return h
}

func (h *harness) waitAvailable() {
	h.t.Helper()
	waitFor(h.t, 10*time.Second, "ingest to become available", func() bool { return h.svc.available.Load() })
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, timeout, cond)
}

// answer is a response of POST /v1/events, read whole.
type answer struct {
	status int
	header http.Header
	raw    []byte
	ids    []string
	err    errorBody
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.raw) }

// request is one POST /v1/events.
type request struct {
	contentType     string // "" sends no Content-Type
	contentEncoding string
	auth            string // Authorization header value
	body            []byte
	chunked         bool // send without Content-Length
}

func (h *harness) post(r request) answer {
	h.t.Helper()
	a, err := doPost(h.url, r)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// doPost sends r and reads the answer; safe to call from any goroutine.
func doPost(baseURL string, r request) (answer, error) {
	var body io.Reader = bytes.NewReader(r.body)
	if r.chunked {
		body = io.MultiReader(bytes.NewReader(r.body)) // hides the length
	}
	req, err := http.NewRequest(http.MethodPost, baseURL+"/v1/events", body)
	if err != nil {
		return answer{}, err
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.contentEncoding != "" {
		req.Header.Set("Content-Encoding", r.contentEncoding)
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if a.raw, err = io.ReadAll(resp.Body); err != nil {
		return a, err
	}
	if resp.StatusCode == http.StatusAccepted {
		var ok struct {
			IDs []string `json:"ids"`
		}
		if err := json.Unmarshal(a.raw, &ok); err != nil {
			return a, fmt.Errorf("202 body %q: %w", a.raw, err)
		}
		a.ids = ok.IDs
		return a, nil
	}
	if err := json.Unmarshal(a.raw, &a.err); err != nil {
		return a, fmt.Errorf("%d body %q is not an error object: %w", resp.StatusCode, a.raw, err)
	}
	return a, nil
}

func jsonReq(body string) request {
	return request{contentType: "application/json", body: []byte(body)}
}

func ndjsonReq(body string) request {
	return request{contentType: "application/x-ndjson", body: []byte(body)}
}

// ev is an event in its JSON form, built as a map so tests can add or break
// any field.
type ev map[string]any

// newEvent returns a valid event for account.
func newEvent(account string) ev {
	return ev{
		"actor":     map[string]any{"id": "user-1", "type": "user", "email": "a@example.com"},
		"request":   map[string]any{"action": "workspaces:update", "source": "api", "ip-address": "10.0.0.1"},
		"outcome":   map[string]any{"result": "SUCCESS", "status-code": 200},
		"target":    map[string]any{"id": "ws-1", "type": "workspace", "context": map[string]any{"account": map[string]any{"id": account}}},
		"timestamp": "2024-02-16T12:58:38.577846",
	}
}

func (e ev) with(key string, value any) ev {
	e[key] = value
	return e
}

func (e ev) JSON() string {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// jsonArray joins events as a JSON array.
func jsonArray(events ...ev) string {
	parts := make([]string, len(events))
	for i, e := range events {
		parts[i] = e.JSON()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// ndjson joins events one a line.
func ndjson(events ...ev) string {
	parts := make([]string, len(events))
	for i, e := range events {
		parts[i] = e.JSON()
	}
	return strings.Join(parts, "\n") + "\n"
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// endOffsets is the number of records ever written to the events topic, over
// all partitions.
func (h *harness) endOffsets() int64 {
	h.t.Helper()
	return endOffsets(h.t, h.client, h.cfg.Kafka.Topics.Events.Name)
}

func endOffsets(t testing.TB, cl *kgo.Client, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		n += o.Offset
	})
	return n
}

// assertNothingWritten checks that the topic holds exactly before records.
func (h *harness) assertNothingWritten(before int64) {
	h.t.Helper()
	if got := h.endOffsets(); got != before {
		h.t.Fatalf("topic holds %d records, want %d: something was written", got, before)
	}
}

// readTopic reads n records of the events topic (all of them when the topic
// holds n).
func (h *harness) readTopic(n int) []*kgo.Record {
	h.t.Helper()
	recs := kafkatest.ReadAll(h.t, h.cfg.Kafka.Brokers, h.cfg.Kafka.Topics.Events.Name, n, 10*time.Second)
	if len(recs) != n {
		h.t.Fatalf("read %d records from the topic, want %d", len(recs), n)
	}
	return recs
}

// readAllEvents reads every record of the topic and decodes it, by id.
func (h *harness) readAllEvents() map[string]*kgo.Record {
	h.t.Helper()
	recs := h.readTopic(int(h.endOffsets()))
	out := make(map[string]*kgo.Record, len(recs))
	for _, r := range recs {
		e := decode(h.t, r)
		if _, dup := out[e.GetId()]; dup {
			h.t.Errorf("id %s is on the topic twice", e.GetId())
		}
		out[e.GetId()] = r
	}
	return out
}

func decode(t testing.TB, r *kgo.Record) *auditlogv1.AuditEvent {
	t.Helper()
	e, err := auditevent.DecodeRecord(r)
	if err != nil {
		t.Fatalf("record at %d/%d does not decode: %v", r.Partition, r.Offset, err)
	}
	return e
}

// hashToken is the configured form of a token.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// partitionOf is the partition the service's producer puts account's events
// in (kgo's default, Kafka-compatible key hashing).
func partitionOf(account string, partitions int) int32 {
	p := kgo.StickyKeyPartitioner(nil).ForTopic(testTopic)
	return int32(p.Partition(&kgo.Record{Key: []byte(account)}, partitions))
}

// accountsByPartition finds, for each of the partitions, an account id
// whose events land there.
func accountsByPartition(partitions int) []string {
	out := make([]string, partitions)
	found := 0
	for i := 0; found < partitions; i++ {
		acc := "acc-" + strconv.Itoa(i)
		p := partitionOf(acc, partitions)
		if out[p] == "" {
			out[p] = acc
			found++
		}
	}
	return out
}

// scrape returns the /metrics page as series → value, e.g.
// `auditstream_ingest_requests_total{code="202",protocol="http"}` → 3.
func (h *harness) scrape() map[string]float64 {
	h.t.Helper()
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			h.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// get fetches path and returns the status and body.
func (h *harness) get(path string) (int, []byte) {
	h.t.Helper()
	resp, err := http.Get(h.url + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, b
}
