package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ghostAfter is how long a member may go without a request of its own
// before the broker should have dropped it: a live member heartbeats every
// few seconds, and a join it waits in gives up (and is sent again) within
// the rebalance timeout and the client's request timeout (10 s); twice
// that leaves room for a slow machine.
const ghostAfter = sessionTimeout + 2*(rebalanceTimeout+10*time.Second)

// ghostReaper removes group members that the broker keeps although their
// process is gone.
//
// kfake (v0.0.0-20260918054303-01f206a7e32c, the newest) sometimes keeps a
// classic group's member after its process was killed by SIGKILL, past its
// session timeout, still owning its partitions: with members killed and
// restarted every few seconds, a 4 min run ended with the Datadog group
// Stable with four members, two of them gone for minutes, and their six
// partitions never read again; two consumers killed and restarted 40 times
// leave 13 members 30 s after the last kill. Kafka drops a member whose
// heartbeats stop for the session timeout, or that does not rejoin within
// the rebalance timeout; the pipeline relies on it. So the harness does
// what the broker should: a member that sent no join, sync, heartbeat or
// commit for ghostAfter is removed with a LeaveGroup for its member id, and each
// removal is reported, so the run says the broker misbehaved instead of
// the pipeline stalling on it.
type ghostReaper struct {
	b  *broker
	tl *timeline
	// after is ghostAfter, shorter in tests.
	after time.Duration
	// groups are the groups to watch.
	groups []string

	mu      sync.Mutex
	removed []string
}

func (g *ghostReaper) run(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.b.addr()))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		g.sweep(ctx, cl, adm)
	}
}

func (g *ghostReaper) sweep(ctx context.Context, cl *kgo.Client, adm *kadm.Client) {
	names := g.groups
	described, err := adm.DescribeGroups(ctx, names...)
	if err != nil {
		return // the broker may be restarting; next sweep
	}
	for _, name := range names {
		d, ok := described[name]
		if !ok || d.Err != nil || d.State == "Empty" || d.State == "Dead" {
			continue
		}
		for _, m := range d.Members {
			last, seen := g.b.lastSeen(m.MemberID)
			if !seen || time.Since(last) < g.after {
				continue
			}
			req := kmsg.NewPtrLeaveGroupRequest()
			req.Group = name
			lm := kmsg.NewLeaveGroupRequestMember()
			lm.MemberID = m.MemberID
			req.Members = append(req.Members, lm)
			if _, err := req.RequestWith(ctx, cl); err != nil {
				continue
			}
			var parts []int32
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range a.Topics {
					if t.Topic == eventsTopic {
						parts = t.Partitions
					}
				}
			}
			msg := fmt.Sprintf("%s member %s (%s) sent nothing for %.0fs, past the %s session timeout, yet the broker kept it with %s partitions %v; removed with LeaveGroup",
				name, m.MemberID, m.ClientHost, time.Since(last).Seconds(), sessionTimeout, eventsTopic, parts)
			g.mu.Lock()
			g.removed = append(g.removed, msg)
			g.mu.Unlock()
			g.tl.add("broker-ghost", "%s", msg)
		}
	}
}

func (g *ghostReaper) report() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.removed...)
}
