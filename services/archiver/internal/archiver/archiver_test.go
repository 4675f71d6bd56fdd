package archiver

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

var day0 = time.Date(2024, 2, 16, 0, 0, 0, 0, time.UTC)

const testPartitions = 4

// clock is a time source shared by a test and its services: it stands
// still at a set time, or, once running, moves on from it in real time.
type clock struct {
	mu      sync.Mutex
	now     time.Time
	running time.Time // when Run was called; zero while standing still
	reads   atomic.Int64
}

func (c *clock) Now() time.Time {
	c.reads.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running.IsZero() {
		return c.now
	}
	return c.now.Add(time.Since(c.running))
}

func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now, c.running = t, time.Time{}; c.mu.Unlock() }

// Run lets the clock move on in real time from t.
func (c *clock) Run(t time.Time) { c.mu.Lock(); c.now, c.running = t, time.Now(); c.mu.Unlock() }

func newClock(t time.Time) *clock { return &clock{now: t} }

// waitReads waits until the services have read the clock n more times:
// each partition's worker reads it on every tick to find the groups due.
func (c *clock) waitReads(t *testing.T, n int64) {
	t.Helper()
	from := c.reads.Load()
	forwardingtest.WaitFor(t, fmt.Sprintf("%d reads of the clock", n), 10*time.Second, func() bool { return c.reads.Load()-from >= n })
}

type env struct {
	t        *testing.T
	cluster  *kafkatest.Cluster
	destFile string
	keyFile  string
	pub      ed25519.PublicKey
	svc      *Service // the last one started
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := kafkatest.New(t, kfake.SeedTopics(testPartitions, "audit.events"))
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(crand.Reader)
	keyFile := filepath.Join(dir, "signing.pem")
	if err := os.WriteFile(keyFile, archive.MarshalSigningKey(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, cluster: c, destFile: filepath.Join(dir, "destinations.yaml"), keyFile: keyFile, pub: pub}
}

func (e *env) config(group string) Config {
	cfg := DefaultConfig()
	cfg.Log.Level = "warn"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = e.cluster.Brokers()
	cfg.Kafka.Topics.Events.Partitions = testPartitions
	cfg.Kafka.Topics.DeadLetter.Partitions = 1
	cfg.Destinations.File = e.destFile
	cfg.Destinations.Topic = false // these tests route through the file and run Consume alone
	cfg.Destinations.PollInterval = 100 * time.Millisecond
	cfg.Archive.Group = group
	cfg.Archive.Grace = 30 * time.Minute
	cfg.Archive.LateFlushAfter = 5 * time.Minute
	cfg.Archive.SpoolDir = e.t.TempDir()
	cfg.Archive.CommitInterval = 50 * time.Millisecond
	cfg.Archive.SigningKey = config.SecretFile(e.keyFile)
	return cfg
}

// start runs a service in process with the given clock until the test ends
// or stop is called.
func (e *env) start(cfg Config, clk *clock) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := newService(ctx, cfg, zaptest.NewLogger(e.t, zaptestLevel()), prometheus.NewRegistry(), clk.Now)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = s
	done := make(chan error, 1)
	go func() { done <- s.Consume(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("archiver: %v", err)
				}
			case <-time.After(30 * time.Second):
				var buf bytes.Buffer
				_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
				e.t.Errorf("archiver did not stop; goroutines:\n%s", buf.String())
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// waitFiled waits until the service started last has filed n records
// into its groups, so that a clock moved next finds them there.
func (e *env) waitFiled(n int) {
	e.t.Helper()
	s := e.svc
	forwardingtest.WaitFor(e.t, fmt.Sprintf("%d records filed", n), 30*time.Second, func() bool { return s.filed.Load() >= int64(n) })
}

func zaptestLevel() zaptest.LoggerOption {
	return zaptest.Level(zapcore.WarnLevel)
}

// event is one test event and when it happened.
type event struct {
	id      string
	account string
	ts      time.Time
}

func makeEvents(accounts, days, perAccountDay int) []event {
	var out []event
	for d := range days {
		for a := range accounts {
			for i := range perAccountDay {
				ts := day0.Add(time.Duration(d)*24*time.Hour + time.Duration(i*7919%86400)*time.Second)
				out = append(out, event{id: fmt.Sprintf("ev-%d-%02d-%03d", d, a, i), account: fmt.Sprintf("acc-%02d", a), ts: ts})
			}
		}
	}
	return out
}

func (e *env) publish(evs []event) {
	e.t.Helper()
	cl := e.cluster.Client(kgo.DefaultProduceTopic("audit.events"), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	recs := make([]*kgo.Record, 0, len(evs))
	for _, ev := range evs {
		pe := forwardingtest.TestEvent(ev.account, 1)
		pe.Id = ev.id
		pe.Timestamp = timestamppb.New(ev.ts)
		if err := auditevent.Prepare(pe, ev.ts); err != nil {
			e.t.Fatal(err)
		}
		rec, err := auditevent.NewRecord("audit.events", pe)
		if err != nil {
			e.t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// archived reads every data object in dir: event ids by object key.
func archived(t *testing.T, st objstore.Store, skip ...string) map[string][]*auditlogv1.AuditEvent {
	t.Helper()
	out := map[string][]*auditlogv1.AuditEvent{}
	for info, err := range st.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := archive.ParseObjectKey(info.Key); !ok || slices.Contains(skip, info.Key) {
			continue
		}
		rc, _, err := st.Open(context.Background(), info.Key)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatalf("%s: %v", info.Key, err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ev, err := auditevent.DecodeJSON(sc.Bytes(), auditevent.DecodeOptions{})
			if err != nil {
				t.Fatalf("%s: line does not decode as an event: %v\n%s", info.Key, err, sc.Bytes())
			}
			out[info.Key] = append(out[info.Key], ev)
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", info.Key, err)
		}
		rc.Close()
	}
	return out
}

func countIDs(objs map[string][]*auditlogv1.AuditEvent) map[string]int {
	n := map[string]int{}
	for _, evs := range objs {
		for _, ev := range evs {
			n[ev.GetId()]++
		}
	}
	return n
}

func waitArchived(t *testing.T, st objstore.Store, want int, timeout time.Duration) map[string][]*auditlogv1.AuditEvent {
	t.Helper()
	var objs map[string][]*auditlogv1.AuditEvent
	forwardingtest.WaitFor(t, fmt.Sprintf("%d archived events", want), timeout, func() bool {
		objs = archived(t, st)
		n := 0
		for _, evs := range objs {
			n += len(evs)
		}
		return n >= want
	})
	return objs
}

func objectBytes(t *testing.T, st objstore.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for info, err := range st.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := archive.ParseObjectKey(info.Key); !ok {
			continue
		}
		sum, _, err := archive.HashObject(context.Background(), st, info.Key)
		if err != nil {
			t.Fatal(err)
		}
		out[info.Key] = sum
	}
	return out
}

func versions(t *testing.T, st objstore.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for info, err := range st.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		out[info.Key] = info.Version
	}
	return out
}

func TestArchiveDaysOfShuffledEventsExactlyOnce(t *testing.T) {
	forEachBackend(t, testArchiveDays)
}

func testArchiveDays(t *testing.T, be backend) {
	e := newEnv(t)
	b1 := be.newBucket(t)
	e.route(b1)
	evs := makeEvents(50, 3, 6)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	e.publish(evs)

	clk := newClock(day0.Add(2*24*time.Hour + time.Hour)) // every window still open
	stop := e.start(e.config("archiver-a"), clk)
	e.waitFiled(len(evs))
	clk.waitReads(t, 2*testPartitions) // each worker looked for due groups
	st := b1.st
	if n := len(archived(t, st)); n != 0 {
		t.Fatalf("%d objects written while every window was open", n)
	}
	clk.Set(day0.Add(3*24*time.Hour + time.Hour)) // past the last window's grace
	objs := waitArchived(t, st, len(evs), 30*time.Second)

	counts := countIDs(objs)
	for _, ev := range evs {
		if counts[ev.id] != 1 {
			t.Errorf("event %s archived %d times", ev.id, counts[ev.id])
		}
	}
	if len(counts) != len(evs) {
		t.Errorf("%d distinct events archived, published %d", len(counts), len(evs))
	}
	perFolder := map[string]int{}
	for key, list := range objs {
		ref, _ := archive.ParseObjectKey(key)
		folder := ref.Account + "/" + ref.Group.DateFolder()
		perFolder[folder]++
		for _, ev := range list {
			if auditevent.AccountID(ev) != ref.Account {
				t.Errorf("%s holds an event of account %s", key, auditevent.AccountID(ev))
			}
			if !ref.Group.Window.Contains(ev.GetTimestamp().AsTime()) {
				t.Errorf("%s holds an event stamped %s", key, ev.GetTimestamp().AsTime())
			}
		}
	}
	if len(perFolder) != 50*3 {
		t.Errorf("%d account-day folders, want 150", len(perFolder))
	}
	rep := verifyEventually(t, st, archive.VerifyOptions{PublicKey: e.pub}, (*archive.Report).OK)
	if !rep.OK() {
		t.Fatalf("verify: %v", rep.Problems)
	}
	if rep.Objects != len(objs) || rep.Accounts != 50 {
		t.Errorf("verify checked %d objects of %d accounts, want %d of 50", rep.Objects, rep.Accounts, len(objs))
	}
	stop()

	// The same topic archived again from scratch gives the same names and
	// the same bytes.
	b2 := be.newBucket(t)
	e.route(b2)
	clk2 := newClock(day0.Add(2*24*time.Hour + time.Hour))
	e.start(e.config("archiver-b"), clk2)
	e.waitFiled(len(evs))
	clk2.Set(day0.Add(3*24*time.Hour + time.Hour))
	st2 := b2.st
	waitArchived(t, st2, len(evs), 30*time.Second)
	a, b := objectBytes(t, st), objectBytes(t, st2)
	if len(a) != len(b) {
		t.Fatalf("re-run wrote %d objects, first run %d", len(b), len(a))
	}
	for k, sum := range a {
		if b[k] != sum {
			t.Errorf("object %s: re-run sha256 %q, first run %q", k, b[k], sum)
		}
	}
}

func TestLateEventGetsANewObjectAndManifestEntry(t *testing.T) {
	forEachBackend(t, testLateEvent)
}

func testLateEvent(t *testing.T, be backend) {
	e := newEnv(t)
	b := be.newBucket(t)
	e.route(b)
	e.publish(makeEvents(3, 1, 4))
	clk := newClock(day0.Add(12 * time.Hour))
	e.start(e.config("archiver"), clk)
	e.waitFiled(12)
	clk.Set(day0.Add(25 * time.Hour))
	st := b.st
	waitArchived(t, st, 12, 30*time.Second)
	before := versions(t, st)

	e.publish([]event{{id: "late-1", account: "acc-01", ts: day0.Add(3 * time.Hour)}})
	e.waitFiled(13)
	clk.Set(day0.Add(25*time.Hour + 6*time.Minute)) // past late_flush_after
	objs := waitArchived(t, st, 13, 30*time.Second)
	var lateKey string
	for key, evs := range objs {
		for _, ev := range evs {
			if ev.GetId() == "late-1" {
				lateKey = key
			}
		}
	}
	if _, existed := before[lateKey]; lateKey == "" || existed {
		t.Fatalf("late event in %q, want a new object", lateKey)
	}
	if !strings.HasPrefix(lateKey, "acc-01/2024/02/16/") {
		t.Fatalf("late object %s is not in its day's folder", lateKey)
	}
	after := versions(t, st)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed (version %s → %s)", k, v, after[k])
		}
	}
	rep := verifyEventually(t, st, archive.VerifyOptions{PublicKey: e.pub, Accounts: []string{"acc-01"}}, func(r *archive.Report) bool { return r.OK() && r.Manifests == 2 })
	if !rep.OK() {
		t.Fatalf("verify: %v", rep.Problems)
	}
	if rep.Manifests != 2 {
		t.Fatalf("acc-01 has %d manifests, want 2 (the day's and the late object's, chained)", rep.Manifests)
	}
}

func TestPreplantedObjectRaisesAlarmAndOthersContinue(t *testing.T) {
	forEachBackend(t, testPreplanted)
}

func testPreplanted(t *testing.T, be backend) {
	e := newEnv(t)
	evs := makeEvents(4, 1, 3)
	e.publish(evs)

	// Find where acc-02's day will go by archiving once elsewhere.
	probe := be.newBucket(t)
	e.route(probe)
	clk := newClock(day0.Add(25 * time.Hour))
	cfg := e.config("probe")
	cfg.Archive.LateFlushAfter = time.Second
	stop := e.start(cfg, clk)
	clk.Run(day0.Add(26 * time.Hour))
	var target string
	for k := range waitArchived(t, probe.st, len(evs), 30*time.Second) {
		if strings.HasPrefix(k, "acc-02/") {
			target = k
		}
	}
	stop()

	b := be.newBucket(t)
	const planted = "not what the archiver would write"
	if _, err := b.st.Create(context.Background(), target, strings.NewReader(planted), int64(len(planted)), objstore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	plantedVersion := versions(t, b.st)[target]
	e.route(b)
	clk2 := newClock(day0.Add(25 * time.Hour))
	cfg2 := e.config("real")
	cfg2.Archive.LateFlushAfter = time.Second
	e.start(cfg2, clk2)
	clk2.Run(day0.Add(26 * time.Hour))
	st := b.st
	// Every event lands (acc-02's beside the planted object), the planted
	// bytes stay.
	forwardingtest.WaitFor(t, "all accounts archived", 30*time.Second, func() bool {
		n := 0
		for _, evs := range archived(t, st, target) {
			n += len(evs)
		}
		return n == len(evs)
	})
	rc, _, err := st.Open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != planted || versions(t, st)[target] != plantedVersion {
		t.Fatal("planted object was overwritten")
	}
	kinds := map[string]string{}
	rep := verifyEventually(t, st, archive.VerifyOptions{PublicKey: e.pub}, func(r *archive.Report) bool {
		clear(kinds)
		for _, p := range r.Problems {
			kinds[p.Kind] = p.Key
		}
		return kinds[archive.ProblemExtra] == target && kinds[archive.ProblemConflictCopy] != "" && len(r.Problems) == 2
	})
	if kinds[archive.ProblemExtra] != target || kinds[archive.ProblemConflictCopy] == "" || len(rep.Problems) != 2 {
		t.Fatalf("verify problems %v, want the planted object as extra and the conflict copy reported", rep.Problems)
	}
}

func TestMalformedRecordsGoToTheDeadLetterTopic(t *testing.T) {
	e := newEnv(t)
	b := localBackend().newBucket(t)
	e.route(b)
	cl := e.cluster.Client(kgo.DefaultProduceTopic("audit.events"))
	bad := []*kgo.Record{
		{Key: []byte("acc-00"), Value: []byte("{not json")},
		{Key: []byte("acc-00"), Value: []byte{0xff, 0xfe, 0x00}},
		{Key: []byte("acc-00"), Value: []byte(`{"id":"x"}`), Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}},
		{Key: []byte("acc-00"), Value: bytes.Repeat([]byte("a"), 100_000)},
	}
	if err := cl.ProduceSync(context.Background(), bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.publish(makeEvents(2, 1, 2))
	clk := newClock(day0.Add(25 * time.Hour))
	cfg := e.config("archiver")
	cfg.Archive.LateFlushAfter = time.Second
	e.start(cfg, clk)
	clk.Run(day0.Add(26 * time.Hour))
	waitArchived(t, b.st, 4, 30*time.Second)
	dlq := kafkatest.ReadAll(t, e.cluster.Brokers(), "audit.events.dlq", len(bad), 20*time.Second)
	if len(dlq) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dlq), len(bad))
	}
	for _, r := range dlq {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["auditstream-dlq-reason"] != reasonDecode || h["auditstream-forwarder"] != Name || h["auditstream-source-offset"] == "" || h["auditstream-dlq-error"] == "" {
			t.Errorf("dead letter headers %v", h)
		}
	}
}

// A producer retry (the same event id twice in an account's window) is
// archived once.
func TestDuplicateEventArchivedOnce(t *testing.T) {
	e := newEnv(t)
	b := localBackend().newBucket(t)
	e.route(b)
	evs := makeEvents(2, 1, 5)
	e.publish(evs)
	e.publish(evs[:3]) // retried by the producer
	clk := newClock(day0.Add(12 * time.Hour))
	e.start(e.config("archiver"), clk)
	e.waitFiled(len(evs) + 3)
	clk.Set(day0.Add(25 * time.Hour))
	waitArchived(t, b.st, len(evs), 30*time.Second)
	e.cluster.WaitCommitted(t, 30*time.Second, "archiver", "audit.events") // a second copy would be written before
	objs := archived(t, b.st)
	for id, n := range countIDs(objs) {
		if n != 1 {
			t.Errorf("event %s archived %d times", id, n)
		}
	}
	if n := len(countIDs(objs)); n != len(evs) {
		t.Errorf("%d distinct events archived, want %d", n, len(evs))
	}
}

// verifyEventually verifies st until done accepts the report (the last
// manifest is written just after the last object) or 30 s pass, and
// returns the last report.
func verifyEventually(t *testing.T, st objstore.Store, opts archive.VerifyOptions, done func(*archive.Report) bool) *archive.Report {
	t.Helper()
	var rep *archive.Report
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		rep, err = archive.Verify(context.Background(), st, opts)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if done(rep) || time.Now().After(deadline) {
			return rep
		}
		time.Sleep(50 * time.Millisecond)
	}
}
