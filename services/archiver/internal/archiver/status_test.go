package archiver

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"
)

// /status reports, for each partition, the offset its last commit stored,
// read while the workers go on committing.
func TestStatusReportsEachPartitionsCommit(t *testing.T) {
	e := newEnv(t)
	b := localBackend().newBucket(t)
	e.route(b)
	evs := makeEvents(3, 1, 4)
	e.publish(evs)
	clk := newClock(day0.Add(12 * time.Hour))
	e.start(e.config("archiver"), clk)
	e.waitFiled(len(evs))
	clk.Set(day0.Add(25 * time.Hour))
	waitArchived(t, b.st, len(evs), 30*time.Second)
	e.cluster.WaitCommitted(t, 30*time.Second, "archiver", "audit.events")

	rec := httptest.NewRecorder()
	e.svc.serveStatus(rec, httptest.NewRequest("GET", "/status", nil))
	var st struct {
		Partitions []status `json:"partitions"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, rec.Body.Bytes())
	}
	committed := map[int32]int64{}
	for _, p := range st.Partitions {
		committed[p.Partition] = p.Committed
	}
	checked := 0
	for _, p := range e.cluster.PartitionInfos("audit.events") {
		if p.HighWatermark == 0 {
			continue // nothing to commit: -1, never committed
		}
		checked++
		if got, ok := committed[p.Partition]; !ok || got != p.HighWatermark {
			t.Errorf("partition %d: /status reports commit %d (listed %v), the group committed %d", p.Partition, got, ok, p.HighWatermark)
		}
	}
	if checked == 0 {
		t.Fatal("no partition holds an event")
	}
}
