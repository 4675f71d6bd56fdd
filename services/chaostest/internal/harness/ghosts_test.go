package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A member that stopped sending anything while the broker keeps it is
// removed, and reported; a live one is left alone. The dead member is a
// static one (its Close does not leave the group) with a session timeout
// far longer than the reaper's limit, standing in for the member kfake
// forgets to expire.
func TestGhostReaperRemovesSilentMembers(t *testing.T) {
	b, err := startBroker(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(b.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	member := func(group string, opts ...kgo.Opt) *kgo.Client {
		t.Helper()
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.addr()), kgo.ConsumerGroup(group), kgo.ConsumeTopics("t"),
			kgo.SessionTimeout(time.Minute), kgo.HeartbeatInterval(200 * time.Millisecond)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	members := func(group string) int {
		t.Helper()
		d, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		return len(d[group].Members)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	dead := member("dead", kgo.InstanceID("gone"))
	live := member("live")
	defer live.Close()
	for _, cl := range []*kgo.Client{dead, live} {
		go cl.PollFetches(ctx)
	}
	waitFor("both groups joined", func() bool { return members("dead") == 1 && members("live") == 1 })
	dead.Close() // a static member stays in its group
	if n := members("dead"); n != 1 {
		t.Fatalf("the closed static member is gone already (%d members): the test needs it kept", n)
	}

	var lines []string
	r := &ghostReaper{b: b, tl: &timeline{start: time.Now(), out: func(s string) { lines = append(lines, s) }}, after: time.Second, groups: []string{"dead", "live"}}
	sweeper, err := kgo.NewClient(kgo.SeedBrokers(b.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer sweeper.Close()
	waitFor("the silent member removed", func() bool {
		r.sweep(ctx, sweeper, adm)
		return members("dead") == 0
	})
	if n := members("live"); n != 1 {
		t.Fatalf("the live group has %d members after the sweeps, want its one heartbeating member", n)
	}
	rep := r.report()
	if len(rep) != 1 || !strings.Contains(rep[0], "dead member") || !strings.Contains(rep[0], "removed with LeaveGroup") {
		t.Fatalf("report %q, want one removal from group dead", rep)
	}
}
