package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
)

// timeline prints and keeps what the controller did, with the time since
// the run started.
type timeline struct {
	start time.Time
	out   func(string)

	mu      sync.Mutex
	counts  map[string]int
	entries []string
}

func (t *timeline) add(kind, format string, args ...any) {
	line := fmt.Sprintf("%7.1fs  %-14s %s", time.Since(t.start).Seconds(), kind, fmt.Sprintf(format, args...))
	t.mu.Lock()
	if t.counts == nil {
		t.counts = map[string]int{}
	}
	t.counts[kind]++
	t.entries = append(t.entries, line)
	t.mu.Unlock()
	t.out(line)
}

func (t *timeline) count(kind string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[kind]
}

// storm is one kind of sink trouble: start begins it, and the returned
// function ends it.
type storm struct {
	name string
	// hits is the service whose sink the storm troubles.
	hits  string
	start func() (end func())
}

// storms are the sink troubles the controller injects, in turn, through
// the fakes' scripting; two in a row trouble different sinks.
func storms(dd *ddfake.Server, eb *ebfake.Server, ot *otlpfake.Server, ts []tenant) []storm {
	pick := func(want func(tenant) bool) tenant {
		var c []tenant
		for _, t := range ts {
			if want(t) {
				c = append(c, t)
			}
		}
		return c[rand.IntN(len(c))]
	}
	return []storm{
		{"datadog-429", "datadog-forwarder", func() func() {
			// Rate limited: the client must wait as told, then send again.
			return failing(func() { dd.FailNext(20, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}) }, dd.Reset)
		}},
		{"eventbridge-503", "eventbridge-forwarder", func() func() {
			return failing(func() { eb.FailNext(20, http.StatusServiceUnavailable, "", "") }, eb.Reset)
		}},
		{"otlp-429", "otlp-forwarder", func() func() {
			// Rate limited as a Loki or Collector is: wait as told.
			return failing(func() { ot.FailNext(20, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}) }, ot.Reset)
		}},
		{"slow-answers", "", func() func() {
			// Around the connections' 2 s timeout: some calls time out and
			// are sent again, the rest are slow.
			dd.Slow(1500 * time.Millisecond)
			eb.Slow(2500 * time.Millisecond)
			ot.Slow(1500 * time.Millisecond)
			return func() { dd.Slow(0); eb.Slow(0); ot.Slow(0) }
		}},
		{"datadog-key-refused", "datadog-forwarder", func() func() {
			// One account's key is refused (403): its connection turns
			// unhealthy and its events are parked until a probe succeeds;
			// the other accounts keep flowing.
			t := pick(func(t tenant) bool { return t.datadog != "" })
			dd.RemoveKey(t.ddKey)
			return func() { dd.AddKey(t.ddKey) }
		}},
		{"otlp-tenant-refused", "otlp-forwarder", func() func() {
			// One account's receiver refuses its credentials (401): the
			// connection turns unhealthy and its events are parked until
			// a probe succeeds; the other accounts keep flowing.
			t := pick(func(t tenant) bool { return t.otlp != "" })
			ot.Always(t.otlpTenant, http.StatusUnauthorized, nil)
			return func() { ot.Always(t.otlpTenant, 0, nil) }
		}},
		{"datadog-503", "datadog-forwarder", func() func() {
			return failing(func() { dd.FailNext(20, http.StatusServiceUnavailable, nil) }, dd.Reset)
		}},
		{"eventbridge-throttled", "eventbridge-forwarder", func() func() {
			return failing(func() { eb.Throttle(20) }, eb.Reset)
		}},
		{"otlp-503", "otlp-forwarder", func() func() {
			return failing(func() { ot.FailNext(20, http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}}) }, ot.Reset)
		}},
		{"eventbridge-bus-denied", "eventbridge-forwarder", func() func() {
			t := pick(func(t tenant) bool { return t.eventbridge != "" })
			eb.DenyBus(t.eventbridge)
			return func() { eb.AllowBus(t.eventbridge) }
		}},
	}
}

// failing keeps a fake failing for a whole storm: arm queues failing
// answers (20 calls), and is called again every 100 ms, more than the
// forwarders' calls use up, until the storm ends; then reset drops what is
// left of the script (the fakes' keys stay).
func failing(arm, reset func()) (end func()) {
	stop, done := make(chan struct{}), make(chan struct{})
	arm()
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				arm()
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		reset()
	}
}

// controller kills and restarts consumer replicas, injects sink storms and
// restarts the broker once, until its context ends.
type controller struct {
	tl        *timeline
	consumers []*replica
	broker    *broker
	storms    []storm
	killEvery time.Duration
	stormHold time.Duration
	// brokerAt is when, from the start of the chaos, the broker restarts.
	brokerAt   time.Duration
	brokerDown time.Duration

	mu sync.Mutex // one disruptive action at a time

	// storming is the service the current storm troubles ("" for none or
	// several). It has a lock of its own: the storms keep their pace while a
	// kill or the broker's restart holds mu.
	stormMu  sync.Mutex
	storming string
}

func (c *controller) setStorming(svc string) {
	c.stormMu.Lock()
	c.storming = svc
	c.stormMu.Unlock()
}

func (c *controller) stormingService() string {
	c.stormMu.Lock()
	defer c.stormMu.Unlock()
	return c.storming
}

// sleep waits d or until ctx ends; it is the pace of the chaos, not a
// synchronisation.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// kills SIGKILLs a random running consumer replica every killEvery (give
// or take half), and restarts it 0.5 to 3 s later. Every other kill, when
// a storm troubles one forwarder's sink, hits that forwarder: its events
// then pile up in flight, where a kill finds the most to lose.
func (c *controller) kills(ctx context.Context) error {
	for n := 0; sleep(ctx, jitter(c.killEvery)); n++ {
		c.mu.Lock()
		var up, storming []*replica
		troubled := c.stormingService()
		for _, r := range c.consumers {
			if r.running() {
				up = append(up, r)
				if r.service == troubled {
					storming = append(storming, r)
				}
			}
		}
		if n%2 == 1 && len(storming) > 0 {
			up = storming
		}
		if len(up) == 0 {
			c.mu.Unlock()
			continue
		}
		r := up[rand.IntN(len(up))]
		r.kill()
		c.tl.add("kill", "SIGKILL %s", r.name())
		sleep(context.Background(), 500*time.Millisecond+time.Duration(rand.Int64N(int64(2500*time.Millisecond))))
		if err := r.start(); err != nil {
			c.mu.Unlock()
			return err
		}
		c.tl.add("restart", "%s started again", r.name())
		c.mu.Unlock()
	}
	return nil
}

// cutKills SIGKILLs an archiver replica just as it cuts its groups: when a
// window's grace has passed (window end + grace, plus up to 1.5 s), the
// moment it commits its checkpoint, writes objects and appends manifests.
func (c *controller) cutKills(ctx context.Context, window, grace time.Duration) error {
	for {
		next := time.Now().Truncate(window).Add(window + grace + time.Duration(rand.Int64N(int64(1500*time.Millisecond))))
		if !sleep(ctx, time.Until(next)) {
			return nil
		}
		c.mu.Lock()
		var up []*replica
		for _, r := range c.consumers {
			if r.service == "archiver" && r.running() {
				up = append(up, r)
			}
		}
		if len(up) > 0 {
			r := up[rand.IntN(len(up))]
			r.kill()
			c.tl.add("kill", "SIGKILL %s as it cuts its groups", r.name())
			sleep(context.Background(), 500*time.Millisecond+time.Duration(rand.Int64N(int64(2500*time.Millisecond))))
			if err := r.start(); err != nil {
				c.mu.Unlock()
				return err
			}
			c.tl.add("restart", "%s started again", r.name())
		}
		c.mu.Unlock()
	}
}

// brokerRestart restarts the broker once, brokerAt into the chaos.
func (c *controller) brokerRestart(ctx context.Context) error {
	if !sleep(ctx, c.brokerAt) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tl.add("broker-stop", "broker stopped for %s", c.brokerDown)
	if err := c.broker.restart(c.brokerDown); err != nil {
		return err
	}
	c.tl.add("broker-start", "broker started again on %s with its data", c.broker.addr())
	return nil
}

// stormLoop starts the storms in turn, each held for stormHold, with a calm
// stretch half as long between two: so the short run (75 s, 5 s storms)
// goes through every storm of the three forwarders once.
func (c *controller) stormLoop(ctx context.Context) {
	for i := 0; sleep(ctx, c.stormHold/2); i++ {
		s := c.storms[i%len(c.storms)]
		c.tl.add("storm", "%s begins", s.name)
		end := s.start()
		c.setStorming(s.hits)
		sleep(ctx, c.stormHold)
		c.setStorming("")
		end()
		c.tl.add("storm-end", "%s ends", s.name)
	}
}
