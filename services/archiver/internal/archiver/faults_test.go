package archiver

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/auditstream/auditstream/services/testsupport/s3fake"
)

// A store that answers 500 and 503 for a while: the archiver retries and
// every event still ends in exactly one object.
func TestStorageErrorsAreRetried(t *testing.T) {
	e := newEnv(t)
	var fake *s3fake.Fake
	b := s3Backend(&fake).newBucket(t)
	e.route(b)
	for range 6 {
		fake.FailNext("put", 500, "InternalError")
	}
	fake.FailNext("put", 503, "SlowDown")
	evs := makeEvents(3, 1, 4)
	e.publish(evs)
	clk := newClock(day0.Add(12 * time.Hour))
	e.start(e.config("archiver"), clk)
	e.waitFiled(len(evs))
	clk.Set(day0.Add(25 * time.Hour))
	objs := waitArchived(t, b.st, len(evs), 60*time.Second)
	for id, n := range countIDs(objs) {
		if n != 1 {
			t.Errorf("event %s archived %d times", id, n)
		}
	}
}

// One account's bucket is broken for good: after storage_retry_for its
// events go to the dead-letter topic (reason storage_failed, connection
// named), and the other accounts, on the same partitions, are archived.
func TestBrokenBucketIsolatedAndDeadLettered(t *testing.T) {
	e := newEnv(t)
	good := localBackend().newBucket(t)
	var fake *s3fake.Fake
	broken := s3Backend(&fake).newBucket(t)
	if err := fake.Backend.DeleteBucket(brokenBucketName(t, broken.settings)); err != nil {
		t.Fatal(err)
	}
	yaml := "connections:\n  good:\n    type: storage\n    settings:\n" + good.settings +
		"  broken:\n    type: storage\n    settings:\n" + broken.settings +
		"routes:\n  - account: acc-01\n    connections: [broken]\n  - account: acc-00\n    connections: [good]\n  - account: acc-02\n    connections: [good]\n"
	if err := os.WriteFile(e.destFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	evs := makeEvents(3, 1, 4)
	e.publish(evs)
	cfg := e.config("archiver")
	cfg.Archive.StorageRetryFor = 2 * time.Second
	clk := newClock(day0.Add(12 * time.Hour))
	e.start(cfg, clk)
	e.waitFiled(len(evs))
	clk.Set(day0.Add(25 * time.Hour))
	waitArchived(t, good.st, 8, 30*time.Second)
	dlq := kafkatest.ReadAll(t, e.cluster.Brokers(), "audit.events.dlq", 4, 30*time.Second)
	if len(dlq) != 4 {
		t.Fatalf("%d dead letters, want acc-01's 4 events", len(dlq))
	}
	for _, r := range dlq {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["auditstream-dlq-reason"] != reasonStorageFailed || h["auditstream-connection"] != "broken" || string(r.Key) != "acc-01" {
			t.Errorf("dead letter key %q headers %v", r.Key, h)
		}
	}
	// The status published for the destinations API says which one fails.
	status := map[string]connstatus.Status{}
	for _, s := range e.svc.health.Snapshot() {
		status[s.Connection] = s
	}
	if g := status["good"]; !g.Healthy || g.Delivered != 8 || g.DeliveredToday != 8 || g.LastSuccess == nil {
		t.Errorf("good bucket's status: %+v", g)
	}
	if b := status["broken"]; b.Healthy || b.FailedSince == nil || b.LastError == "" || b.DeadLettered != 4 || b.Delivered != 0 {
		t.Errorf("broken bucket's status: %+v", b)
	}
}

func brokenBucketName(t *testing.T, settings string) string {
	t.Helper()
	var name string
	for _, line := range strings.Split(settings, "\n") {
		if _, err := fmt.Sscanf(line, "        bucket: %s", &name); err == nil {
			return name
		}
	}
	t.Fatal("no bucket in settings")
	return ""
}
