package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/auditlog/v1/auditlogv1connect"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// restartable is a broker persisted in a directory, so a test can stop it
// and start it again on the same port with the same data.
type restartable struct {
	t    *testing.T
	dir  string
	port int
}

func newRestartable(t *testing.T) (*kafkatest.Cluster, *restartable) {
	t.Helper()
	dir := t.TempDir()
	c := kafkatest.New(t, kfake.DataDir(dir))
	_, portStr, err := net.SplitHostPort(c.Brokers()[0])
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	return c, &restartable{t: t, dir: dir, port: port}
}

// start brings the broker back on its old port with its old data.
func (r *restartable) start() *kfake.Cluster {
	r.t.Helper()
	var c *kfake.Cluster
	var err error
	// the old listener's port is free once Close returned, but give the
	// kernel a few tries
	for range 50 {
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(r.port), kfake.DataDir(r.dir))
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("restart kfake on port %d: %v", r.port, err)
	}
	r.t.Cleanup(c.Close)
	return c
}

// readyz returns the readiness status code and its JSON detail.
func (h *harness) readyz() (int, map[string]any) {
	h.t.Helper()
	code, body := h.get("/readyz")
	var detail map[string]any
	if err := json.Unmarshal(body, &detail); err != nil {
		h.t.Fatalf("readyz body %q: %v", body, err)
	}
	return code, detail
}

func TestKafkaDownAnswers503AndRecovers(t *testing.T) {
	cluster, broker := newRestartable(t)
	h := newHarnessOn(t, cluster)
	if a := h.post(jsonReq(newEvent("acc-1").JSON())); a.status != http.StatusAccepted {
		t.Fatalf("before the outage: %v", a)
	}
	if code, _ := h.readyz(); code != http.StatusOK {
		t.Fatalf("readyz before the outage: %d", code)
	}

	cluster.Close()

	// The first request may find the service still believing Kafka is up:
	// it waits out the produce timeout at most, and is never a 202.
	start := time.Now()
	a := h.post(jsonReq(jsonArray(newEvent("acc-1"), newEvent("acc-2"), newEvent("acc-3"))))
	// franz-go notices a failed produce only at its next retry decision,
	// which can come some seconds after the produce timeout.
	if took := time.Since(start); took > h.cfg.Ingest.ProduceTimeout+10*time.Second {
		t.Errorf("the first request during the outage took %v", took)
	}
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("during the outage: %v", a)
	}
	if n, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
	}
	switch a.err.Error.Code {
	case "kafka_write_failed":
		if len(a.err.Written) != 0 || len(a.err.Failed) != 3 || !slices.Equal(a.err.IDs, a.err.Failed) {
			t.Errorf("nothing can be written with Kafka down: %s", a.raw)
		}
	case "unavailable":
	default:
		t.Errorf("code %q", a.err.Error.Code)
	}

	// From then on requests are refused at once.
	waitFor(t, 5*time.Second, "the service to notice the outage", func() bool { return !h.svc.available.Load() })
	start = time.Now()
	a = h.post(jsonReq(newEvent("acc-1").JSON()))
	if a.status != http.StatusServiceUnavailable || a.err.Error.Code != "unavailable" || a.header.Get("Retry-After") == "" {
		t.Fatalf("while known down: %v (Retry-After %q)", a, a.header.Get("Retry-After"))
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("a request while Kafka is known down took %v", took)
	}
	code, detail := h.readyz()
	if code != http.StatusServiceUnavailable || detail["status"] != "not ready" {
		t.Fatalf("readyz during the outage: %d %v", code, detail)
	}
	if c, _ := detail["checks"].(map[string]any)["kafka"].(map[string]any); c["status"] != "failing" || c["error"] == "" {
		t.Errorf("readyz kafka check: %v", detail)
	}
	if code, _ := h.get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz during the outage: %d", code)
	}
	// Connect answers the same way.
	_, err := connectClient(h).Publish(context.Background(), connect.NewRequest(&auditlogv1.PublishRequest{Events: []*auditlogv1.AuditEvent{protoEvent("acc-1")}}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("connect during the outage: %v", err)
	} else if ce := (*connect.Error)(nil); errors.As(err, &ce) && ce.Meta().Get("Retry-After") == "" {
		t.Errorf("connect Unavailable without Retry-After: %v", ce.Meta())
	}

	broker.start()
	waitFor(t, 15*time.Second, "readyz to come back", func() bool { c, _ := h.readyz(); return c == http.StatusOK })
	if a := h.post(jsonReq(newEvent("acc-4").JSON())); a.status != http.StatusAccepted {
		t.Fatalf("after the outage: %v", a)
	}
	// Nothing of the refused requests was written: the topic holds the
	// event before and the one after the outage.
	if n := h.endOffsets(); n != 2 {
		t.Errorf("topic holds %d records, want 2", n)
	}
	m := h.scrape()
	if m["auditstream_ingest_kafka_available"] != 1 || m[`auditstream_ingest_events_rejected_total{reason="unavailable"}`] < 1 {
		t.Errorf("availability metrics: available %v, rejected unavailable %v", m["auditstream_ingest_kafka_available"], m[`auditstream_ingest_events_rejected_total{reason="unavailable"}`])
	}
}

func TestPartialWriteNamesWrittenAndFailedIDs(t *testing.T) {
	h := newHarness(t)
	accs := accountsByPartition(int(h.cfg.Kafka.Topics.Events.Partitions))
	const bad = 1 // the partition that refuses writes
	fault := h.cluster.Fault(kfake.Fault{
		Keys:       []kmsg.Key{kmsg.Produce},
		Topic:      testTopic,
		Partitions: []int32{bad},
		Err:        kerr.InvalidRecord, // not retryable: the client gives up at once
		Count:      -1,
	})

	cases := []struct {
		name  string
		given bool // the producer sets the ids
	}{
		{"producer ids", true},
		{"generated ids", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.readAllEventsOrNone()
			var events []ev
			var wantFailed []int
			for i := range 3 * len(accs) {
				acc := accs[i%len(accs)]
				e := newEvent(acc)
				if tc.given {
					e = e.with("id", fmt.Sprintf("%s-evt-%d", strings.ReplaceAll(tc.name, " ", "-"), i))
				}
				events = append(events, e)
				if partitionOf(acc, len(accs)) == bad {
					wantFailed = append(wantFailed, i)
				}
			}
			a := h.post(jsonReq(jsonArray(events...)))
			if a.status != http.StatusServiceUnavailable || a.err.Error.Code != "kafka_write_failed" || a.header.Get("Retry-After") == "" {
				t.Fatalf("answer %v", a)
			}
			ids := a.err.IDs
			if len(ids) != len(events) {
				t.Fatalf("answer lists %d ids for %d events: %s", len(ids), len(events), a.raw)
			}
			if tc.given {
				for i, e := range events {
					if ids[i] != e["id"] {
						t.Errorf("id %d is %q, sent %q", i, ids[i], e["id"])
					}
				}
			}
			// written and failed split the ids exactly, in request order
			var wantW, wantF []string
			for i, id := range ids {
				if slices.Contains(wantFailed, i) {
					wantF = append(wantF, id)
				} else {
					wantW = append(wantW, id)
				}
			}
			if !slices.Equal(a.err.Written, wantW) || !slices.Equal(a.err.Failed, wantF) {
				t.Fatalf("written %v failed %v, want %v and %v", a.err.Written, a.err.Failed, wantW, wantF)
			}
			// the written ones are on the topic, the failed ones are not
			onTopic := h.readAllEvents()
			for _, id := range wantW {
				if _, ok := onTopic[id]; !ok {
					t.Errorf("written id %s is not on the topic", id)
				}
			}
			for _, id := range wantF {
				if _, ok := onTopic[id]; ok {
					t.Errorf("failed id %s is on the topic", id)
				}
			}
			if len(onTopic) != len(before)+len(wantW) {
				t.Errorf("topic grew by %d records, %d were written", len(onTopic)-len(before), len(wantW))
			}
		})
	}
	m := h.scrape()
	if m[`auditstream_ingest_events_rejected_total{reason="kafka_error"}`] < 2 {
		t.Errorf("kafka_error rejections: %v", m[`auditstream_ingest_events_rejected_total{reason="kafka_error"}`])
	}

	// Once the partition takes writes again, retrying the failed events
	// with their ids completes the request without a duplicate.
	fault.Remove()
	retry := []ev{newEvent(accs[bad]).with("id", "retry-1"), newEvent(accs[0]).with("id", "retry-2")}
	if a := h.post(jsonReq(jsonArray(retry...))); a.status != http.StatusAccepted || !slices.Equal(a.ids, []string{"retry-1", "retry-2"}) {
		t.Fatalf("after the fault: %v", a)
	}
}

// readAllEventsOrNone is readAllEvents that allows an empty topic.
func (h *harness) readAllEventsOrNone() map[string]bool {
	h.t.Helper()
	out := map[string]bool{}
	if h.endOffsets() == 0 {
		return out
	}
	for id := range h.readAllEvents() {
		out[id] = true
	}
	return out
}

func TestInflightBytesCap(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Ingest.Limits = Limits{MaxBodyBytes: 16 << 10, MaxEvents: 100, MaxEventBytes: 16 << 10}
		c.Ingest.MaxInflightBytes = 32 << 10
		c.Ingest.ProduceTimeout = 10 * time.Second
		c.Kafka.RequestTimeout = 10 * time.Second
	})
	// Hold every produce request until release is closed.
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	var held atomic.Int32
	h.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		held.Add(1)
		h.cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})

	body := []byte(newEvent("acc-1").with("hostname", strings.Repeat("h", 12<<10)).JSON())
	type result struct {
		a   answer
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			a, err := doPost(h.url, request{contentType: "application/json", body: body})
			results <- result{a, err}
		}()
	}
	gauge := func() float64 { return testutil.ToFloat64(h.svc.metrics.inflightBytes) }
	waitFor(t, 5*time.Second, "two requests in flight", func() bool { return gauge() == float64(2*len(body)) && held.Load() > 0 })

	overloaded := func(name string, a answer) {
		t.Helper()
		if a.status != http.StatusServiceUnavailable || a.err.Error.Code != "overloaded" || a.header.Get("Retry-After") == "" {
			t.Errorf("%s: %v (Retry-After %q)", name, a, a.header.Get("Retry-After"))
		}
	}
	start := time.Now()
	overloaded("third request", h.post(request{contentType: "application/json", body: body}))
	overloaded("small request without length", h.post(request{contentType: "application/json", chunked: true, body: []byte(newEvent("acc-1").JSON())}))
	overloaded("gzip request", h.post(request{contentType: "application/json", contentEncoding: "gzip", body: gzipped(t, []byte(newEvent("acc-1").JSON()))}))
	big := protoEvent("acc-1")
	big.Hostname = strings.Repeat("h", 12<<10)
	_, err := connectClient(h).Publish(context.Background(), connect.NewRequest(&auditlogv1.PublishRequest{Events: []*auditlogv1.AuditEvent{big}}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("connect request over the cap: %v", err)
	}
	grpc := auditlogv1connect.NewIngestServiceClient(h2cClient(t), h.url, connect.WithGRPC())
	_, err = grpc.Publish(context.Background(), connect.NewRequest(&auditlogv1.PublishRequest{Events: []*auditlogv1.AuditEvent{big}}))
	if ce := (*connect.Error)(nil); connect.CodeOf(err) != connect.CodeUnavailable || !errors.As(err, &ce) || ce.Meta().Get("Retry-After") == "" {
		t.Errorf("gRPC request over the cap: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("overloaded answers took %v", took)
	}
	// a request that fits still goes through to Kafka
	if m := h.scrape(); m["auditstream_ingest_inflight_bytes"] != float64(2*len(body)) || m[`auditstream_ingest_events_rejected_total{reason="overloaded"}`] < 5 {
		t.Errorf("metrics while held: inflight %v overloaded %v", m["auditstream_ingest_inflight_bytes"], m[`auditstream_ingest_events_rejected_total{reason="overloaded"}`])
	}

	unblock()
	for range 2 {
		r := <-results
		if r.err != nil || r.a.status != http.StatusAccepted {
			t.Fatalf("held request: %v %v", r.a, r.err)
		}
	}
	if g := gauge(); g != 0 {
		t.Errorf("in-flight bytes after the requests: %v", g)
	}
	if a := h.post(request{contentType: "application/json", body: body}); a.status != http.StatusAccepted {
		t.Errorf("after release: %v", a)
	}
	if n := h.endOffsets(); n != 3 {
		t.Errorf("topic holds %d records, want 3", n)
	}
}

// TestBrokerRestartUnderLoad restarts the broker while producers keep
// posting: every id answered 202 is on the topic afterwards, and requests
// that ran entirely during the outage were refused.
func TestBrokerRestartUnderLoad(t *testing.T) {
	cluster, broker := newRestartable(t)
	h := newHarnessOn(t, cluster)

	type outcome struct {
		start, end time.Time
		a          answer
		err        error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	// Requests start at a steady rate, whatever the answers take, so some
	// start during every phase of the outage. At most 32 are open at once
	// and at most 20000 are sent.
	wg.Go(func() {
		open := make(chan struct{}, 32)
		for i := 0; i < 20000 && !stop.Load(); i++ {
			open <- struct{}{}
			wg.Go(func() {
				defer func() { <-open }()
				events := []ev{newEvent(fmt.Sprintf("acc-%d", i%7)), newEvent(fmt.Sprintf("acc-%d", i%11))}
				o := outcome{start: time.Now()}
				o.a, o.err = doPost(h.url, jsonReq(jsonArray(events...)))
				o.end = time.Now()
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			})
			time.Sleep(5 * time.Millisecond) // the load's steady rate
		}
	})
	// answered reports whether some request that started after from got
	// the status.
	answered := func(status int, from time.Time) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, o := range outcomes {
				if o.start.After(from) && o.err == nil && o.a.status == status {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, 20*time.Second, "a request accepted before the outage", answered(http.StatusAccepted, time.Time{}))
	closedAt := time.Now()
	cluster.Close()
	// Keep the broker down until the service has noticed, and until a
	// request that ran entirely inside the outage was refused.
	waitFor(t, 20*time.Second, "the service to notice the outage", func() bool { return !h.svc.available.Load() })
	waitFor(t, 20*time.Second, "a request refused inside the outage", answered(http.StatusServiceUnavailable, closedAt))
	restartedAt := time.Now()
	broker.start()
	waitFor(t, 30*time.Second, "a request after the restart to be accepted", answered(http.StatusAccepted, restartedAt))
	stop.Store(true)
	wg.Wait()

	accepted := map[string]bool{}
	var before, during, after, refused, refusedInside int
	for _, o := range outcomes {
		if o.err != nil {
			t.Fatalf("request failed: %v", o.err)
		}
		switch o.a.status {
		case http.StatusAccepted:
			for _, id := range o.a.ids {
				accepted[id] = true
			}
			switch {
			case o.end.Before(closedAt):
				before++
			case o.start.After(restartedAt):
				after++
			default:
				if o.start.After(closedAt) && o.end.Before(restartedAt) {
					t.Errorf("a request that ran during the outage (%v after close) was answered 202", o.start.Sub(closedAt))
				}
				during++
			}
		case http.StatusServiceUnavailable:
			refused++
			if o.start.After(closedAt) && o.end.Before(restartedAt) {
				refusedInside++
			}
			if o.a.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After: %s", o.a.raw)
			}
			for _, id := range o.a.err.Written {
				accepted[id] = true // written ids of a partial write must be there too
			}
		default:
			t.Errorf("unexpected answer %v", o.a)
		}
	}
	t.Logf("%d requests: %d accepted before the outage, %d across it, %d after; %d refused, %d of them inside the outage", len(outcomes), before, during, after, refused, refusedInside)
	if before == 0 || after == 0 || refusedInside == 0 {
		t.Fatalf("the load did not span the outage: before %d after %d refused inside %d", before, after, refusedInside)
	}
	onTopic := h.readAllEvents()
	lost := 0
	for id := range accepted {
		if _, ok := onTopic[id]; !ok {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d accepted ids are not on the topic", lost, len(accepted))
	}
}
