package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fill writes n events to each partition, in order, with record times one
// minute apart from start.
func (k *testKafka) fill(t *testing.T, counts map[int32]int, start time.Time) {
	t.Helper()
	var recs []*kgo.Record
	for p, n := range counts {
		for i := range n {
			_, r := eventAt(t, "acc-a", fmt.Sprintf("p%d-%d", p, i), p, start.Add(time.Duration(i)*time.Minute))
			recs = append(recs, r)
		}
	}
	k.produce(t, recs...)
}

// commit commits offsets for group through the admin API, as a group with
// no members.
func (k *testKafka) commit(t *testing.T, group string, offsets map[int32]int64) {
	t.Helper()
	adm := kadm.NewClient(k.Client())
	os := kadm.Offsets{}
	for p, o := range offsets {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := adm.CommitAllOffsets(ctx, group, os); err != nil {
		t.Fatalf("commit %s: %v", group, err)
	}
}

// committed returns the group's committed offsets on the topic.
func (k *testKafka) committed(t *testing.T, group string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(k.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

// joinGroup keeps a member in group until the test ends; it consumes the
// topic and commits nothing.
func (k *testKafka) joinGroup(t *testing.T, group, clientID string) {
	t.Helper()
	assigned := make(chan struct{})
	var once sync.Once
	cl := k.Client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ClientID(clientID), kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { once.Do(func() { close(assigned) }) }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.PollRecords(ctx, 1)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-assigned:
	case <-time.After(20 * time.Second):
		t.Fatal("the member did not join the group")
	}
}

func TestLag(t *testing.T) {
	k := newTestKafka(t)
	k.fill(t, map[int32]int{0: 10, 1: 5}, testNow.Add(-time.Hour))
	k.commit(t, "auditstream-datadog", map[int32]int64{0: 4, 1: 5})
	k.commit(t, "auditstream-eventbridge", map[int32]int64{0: 10})
	k.commit(t, "someone-else", map[int32]int64{0: 0})

	r := mustCtl(t, "lag", "--brokers", k.addr, "--output", "json")
	var rep LagReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	got := map[string]string{}
	totals := map[string]int64{}
	for _, g := range rep.Groups {
		totals[g.Group] = g.TotalLag
		for _, p := range g.Partitions {
			got[fmt.Sprintf("%s/%d", g.Group, p.Partition)] = fmt.Sprintf("%d %d %d", p.Committed, p.End, p.Lag)
		}
	}
	want := map[string]string{
		"auditstream-datadog/0":     "4 10 6",
		"auditstream-datadog/1":     "5 5 0",
		"auditstream-datadog/2":     "-1 0 0", // no commit: lag from the start
		"auditstream-eventbridge/0": "10 10 0",
		"auditstream-eventbridge/1": "-1 5 5",
		"auditstream-eventbridge/2": "-1 0 0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("committed end lag:\n%v\nwant\n%v", got, want)
	}
	if totals["auditstream-datadog"] != 6 || totals["auditstream-eventbridge"] != 5 || len(totals) != 2 {
		t.Errorf("totals %v", totals)
	}

	// One group by name, with a member consuming, as text.
	k.joinGroup(t, "someone-else", "the-member")
	r = mustCtl(t, "lag", "--brokers", k.addr, "--group", "someone-else")
	for _, want := range []string{
		"GROUP", "someone-else  Stable  1", "audit.events  0          0          10   10   the-member",
		"someone-else: total lag 15",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestLagWithoutGroups(t *testing.T) {
	k := newTestKafka(t)
	r := mustCtl(t, "lag", "--brokers", k.addr)
	if r.stdout != "" || !strings.Contains(r.stderr, "no auditstream-* consumer group found") {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = mustCtl(t, "lag", "--brokers", k.addr, "-o", "json")
	if strings.TrimSpace(r.stdout) != "{\n  \"groups\": []\n}" {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestBadInputLag(t *testing.T) {
	k := newTestKafka(t)
	checkBadInputs(t, []badInput{
		{[]string{"lag", "--group", ""}, "--group must not be empty"},
		{[]string{"lag", "--output", "xml"}, `invalid argument "xml" for "-o, --output" flag: must be text or json`},
		{[]string{"lag", "extra"}, `unknown command "extra" for "auditctl lag"`},
		{[]string{"lag", "--brokers", k.addr, "--group", "no-such-group"}, "consumer group no-such-group not found"},
		{[]string{"lag", "--timeout", "1s", "--brokers", closedAddr(t)}, "cannot reach Kafka at 127.0.0.1:"},
	})
}
