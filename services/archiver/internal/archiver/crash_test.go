package archiver

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/s3fake"
)

// archiverProcess runs the real binary against the test's broker and
// bucket, so it can be killed with SIGKILL at any instant.
type archiverProcess struct {
	t    *testing.T
	e    *env
	bin  string
	cfg  string // config without the http section
	mu   sync.Mutex
	cmd  *exec.Cmd
	addr string
}

func (e *env) process(spool string) *archiverProcess {
	e.t.Helper()
	bin := forwardingtest.BuildBinary(e.t, "../..")
	cfg := fmt.Sprintf(`log: {level: warn, format: json}
kafka:
  brokers: [%s]
  topics:
    events: {name: audit.events, partitions: %d}
    dead_letter: {name: audit.events.dlq, partitions: 1}
destinations: {file: %q, poll_interval: 100ms}
archive:
  group: crash-test
  window: 24h
  grace: 1m
  late_flush_after: 1s
  spool_dir: %q
  commit_interval: 50ms
  digest_interval: 100ms
  session_timeout: 6s
  rebalance_timeout: 8s
  signing_key: {file: %q}
`, strings.Join(e.cluster.Brokers(), ", "), testPartitions, e.destFile, spool, e.keyFile)
	return &archiverProcess{t: e.t, e: e, bin: bin, cfg: cfg}
}

func (p *archiverProcess) start() {
	p.t.Helper()
	addr := forwardingtest.FreeAddr(p.t)
	f := filepath.Join(p.t.TempDir(), "archiver.yaml")
	if err := os.WriteFile(f, []byte(p.cfg+"http: {addr: "+addr+"}\n"), 0o600); err != nil {
		p.t.Fatal(err)
	}
	cmd := forwardingtest.StartProcess(p.t, nil, &forwardingtest.TestWriter{T: p.t, Prefix: "archiver"}, p.bin, "--config", f)
	p.mu.Lock()
	p.cmd, p.addr = cmd, addr
	p.mu.Unlock()
}

// owned is the number of partitions the running process works on.
func (p *archiverProcess) owned() int {
	resp, err := http.Get("http://" + p.addr + "/status")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Partitions []json.RawMessage `json:"partitions"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return 0
	}
	return len(st.Partitions)
}

// kill sends SIGKILL and reaps the process; safe to call from any goroutine
// and more than once.
func (p *archiverProcess) kill() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *archiverProcess) stop() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Errorf("archiver exited: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		p.t.Error("archiver did not stop on SIGTERM")
	}
}

// checkArchive asserts the end state: every published event in exactly one
// object, no object ever replaced, and the archive verifies.
func checkArchive(t *testing.T, e *env, st objstore.Store, published []event, seen map[string]string) {
	t.Helper()
	waitArchived(t, st, len(published), 3*time.Minute)
	e.cluster.WaitCommitted(t, 3*time.Minute, "crash-test", "audit.events") // anything written twice is written before
	objs := archived(t, st)
	counts := countIDs(objs)
	for _, ev := range published {
		if counts[ev.id] != 1 {
			t.Errorf("event %s archived %d times", ev.id, counts[ev.id])
		}
	}
	if len(counts) != len(published) {
		t.Errorf("%d distinct events archived, %d published", len(counts), len(published))
	}
	now := versions(t, st)
	for k, v := range seen {
		if now[k] != v {
			t.Errorf("%s was replaced or removed (version %q → %q)", k, v, now[k])
		}
	}
	if rep := verifyEventually(t, st, archive.VerifyOptions{PublicKey: e.pub}, (*archive.Report).OK); !rep.OK() {
		t.Fatalf("verify: %v", rep.Problems)
	}
}

func remember(t *testing.T, st objstore.Store, seen map[string]string) {
	for k, v := range versions(t, st) {
		if old, ok := seen[k]; ok && old != v {
			t.Errorf("%s was replaced (version %q → %q)", k, old, v)
		}
		seen[k] = v
	}
}

func batch(n, from int) []event {
	out := make([]event, n)
	for i := range out {
		k := from + i
		out[i] = event{id: fmt.Sprintf("crash-%05d", k), account: fmt.Sprintf("acc-%02d", k%20), ts: day0.Add(time.Duration(k%3)*24*time.Hour + time.Duration(k)*time.Second)}
	}
	return out
}

// Killed at random instants while events keep arriving, restarted each
// time: each event ends in exactly one object and no object changes.
func TestKilledAtRandomWhileEventsArrive(t *testing.T) {
	e := newEnv(t)
	b := localBackend().newBucket(t)
	e.route(b)
	st := b.st
	p := e.process(t.TempDir())
	published := batch(600, 0)
	e.publish(published)
	seen := map[string]string{}
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 6 {
		p.start()
		// Once the new process owns the partitions (the killed one's
		// session has expired), kill it at a random instant of its work.
		forwardingtest.WaitFor(t, "the restarted archiver to own the partitions", 30*time.Second, func() bool {
			return p.owned() == testPartitions
		})
		// The random instant is what this test is about.
		time.Sleep(time.Duration(500+rng.IntN(3500)) * time.Millisecond)
		p.kill()
		remember(t, st, seen)
		more := batch(150, len(published))
		e.publish(more) // arrives during the outage
		published = append(published, more...)
		t.Logf("round %d: %d objects so far", round, len(seen))
	}
	p.start()
	checkArchive(t, e, st, published, seen)
	p.stop()
}

// Killed at each step of writing a group: after the cut is committed but
// before any object exists, part-way through the objects, and after every
// object and manifest exists but before the commit that moves past them.
// Every backend: what a re-run meets at each step is the store's own
// conditional create.
func TestKilledAtEachStepOfAGroup(t *testing.T) {
	for i, be := range allBackends() {
		t.Run(be.name, func(t *testing.T) { killedAtEachStep(t, i) })
	}
}

// killedAtEachStep runs the steps against allBackends()[i], each with a
// store of its own: a backend's fake server lives as long as the test that
// started it.
func killedAtEachStep(t *testing.T, i int) {
	for _, step := range []string{"before-upload", "mid-upload", "after-upload-before-commit"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			b := allBackends()[i].newBucket(t)
			e.route(b)
			st := b.st
			p := e.process(t.TempDir())
			published := batch(400, 0)
			e.publish(published)

			var killed atomic.Bool
			var intentSeen atomic.Bool
			e.cluster.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
				e.cluster.KeepControl()
				r := req.(*kmsg.OffsetCommitRequest)
				if r.Group != "crash-test" || killed.Load() {
					return nil, nil, false
				}
				intent := false
				for _, tp := range r.Topics {
					for _, pp := range tp.Partitions {
						if pp.Metadata != nil && strings.Contains(*pp.Metadata, ":p") {
							intent = true
						}
					}
				}
				switch {
				case step == "before-upload" && intent:
					// The cut is committed; the process dies before writing.
					killed.Store(true)
					go p.kill()
					return nil, nil, false
				case step == "mid-upload" && intent:
					intentSeen.Store(true)
				case step == "after-upload-before-commit" && intentSeen.Load() && !intent:
					// Every object is written; this commit never lands.
					killed.Store(true)
					p.kill()
					return failCommit(r), nil, true
				case step == "after-upload-before-commit" && intent:
					intentSeen.Store(true)
				}
				return nil, nil, false
			})
			if step == "mid-upload" {
				go func() {
					for !killed.Load() {
						if intentSeen.Load() {
							n := 0
							for k := range versions(t, st) {
								if _, ok := archive.ParseObjectKey(k); ok {
									n++
								}
							}
							if n > 0 {
								killed.Store(true)
								p.kill()
								return
							}
						}
						time.Sleep(time.Millisecond) // the bucket has no event to wait on
					}
				}()
			}
			p.start()
			forwardingtest.WaitFor(t, "the kill at "+step, 60*time.Second, killed.Load)
			p.kill()
			seen := map[string]string{}
			remember(t, st, seen)
			if step != "before-upload" && len(seen) == 0 {
				t.Fatalf("killed at %s with nothing written: the step was not reached", step)
			}
			more := batch(100, len(published))
			e.publish(more)
			published = append(published, more...)
			p.start()
			checkArchive(t, e, st, published, seen)
			p.stop()
		})
	}
}

// failCommit answers a commit with NOT_COORDINATOR for every partition
// without storing it: the commit was lost with the process.
func failCommit(r *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
	resp.Version = r.Version
	for _, tp := range r.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = tp.Topic
		for _, pp := range tp.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = pp.Partition
			rp.ErrorCode = kerr.NotCoordinator.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// Killed in the middle of a multipart upload to S3 (after some parts, before
// the complete): no partial object appears, the restarted archiver uploads
// the object whole, once.
func TestKilledMidMultipartUpload(t *testing.T) {
	e := newEnv(t)
	var fake *s3fake.Fake
	b := s3Backend(&fake).newBucket(t)
	e.route(b)
	p := e.process(t.TempDir())

	// One account with enough incompressible events for an object over
	// the 5 MiB multipart threshold.
	rng := rand.New(rand.NewPCG(3, 4))
	cl := e.cluster.Client(kgo.DefaultProduceTopic("audit.events"))
	var published []event
	var recs []*kgo.Record
	for i := range 9000 {
		ev := event{id: fmt.Sprintf("big-%05d", i), account: "acc-big", ts: day0.Add(time.Duration(i) * time.Second)}
		pe := forwardingtest.TestEvent(ev.account, i)
		pe.Id, pe.Timestamp = ev.id, timestamppb.New(ev.ts)
		pe.Extra = map[string]string{"referer": randText(rng, 900)}
		if err := auditevent.Prepare(pe, ev.ts); err != nil {
			t.Fatal(err)
		}
		rec, err := auditevent.NewRecord("audit.events", pe)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
		published = append(published, ev)
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var parts atomic.Int64
	var killed atomic.Bool
	fake.OnRequest = func(op string, _ *http.Request) {
		if op == "part" && parts.Add(1) == 2 && !killed.Load() {
			killed.Store(true)
			p.kill()
		}
	}
	p.start()
	// 9 MB of incompressible JSON through gzip under -race on two busy
	// cores took over a minute to reach the second part once.
	forwardingtest.WaitFor(t, "a kill mid multipart upload", 3*time.Minute, killed.Load)
	p.kill()
	seen := map[string]string{}
	remember(t, b.st, seen)
	for k := range seen {
		if _, ok := archive.ParseObjectKey(k); ok {
			t.Fatalf("object %s exists after a kill mid-upload", k)
		}
	}
	p.start()
	checkArchive(t, e, b.st, published, seen)
	p.stop()
	if fake.Completes.Load() == 0 {
		t.Fatal("no multipart upload completed: the object was not large enough to test this")
	}
}
