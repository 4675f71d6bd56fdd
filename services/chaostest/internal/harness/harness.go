// Package harness runs the chaos test: the real ingest, forwarders and
// archiver as child processes (two replicas of each consumer) against an
// in-process broker and the Datadog, EventBridge and OTLP fakes, a load
// generator posting events of many accounts, and a controller that kills
// replicas, injects sink storms and restarts the broker. The independent
// checker (package check) then judges what came out.
package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/services/chaostest/internal/check"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
)

// Config is one run.
type Config struct {
	// BinDir holds the services' binaries (make build).
	BinDir string
	// Dir is the run's directory: broker data, configs, logs, archive.
	Dir string
	// Duration is how long load and chaos last.
	Duration time.Duration
	// Rate is the events posted per second; Accounts how many accounts.
	Rate     float64
	Accounts int
	// KillEvery is the mean pause between two kills.
	KillEvery time.Duration
	// StormHold is how long each storm lasts, twice the calm between two.
	StormHold time.Duration
	// BrokerDown is how long the broker stays away when it restarts.
	BrokerDown time.Duration
	// DrainTimeout bounds the wait, after the chaos, for every event to
	// arrive and every consumer group to commit the end of its topics.
	DrainTimeout time.Duration
	// Out receives the timeline, progress and the report.
	Out io.Writer
}

const replicasPerConsumer = 2

// Run runs the chaos test and returns the checker's report; an error is a
// harness failure (a service that would not start), not a verdict.
func Run(ctx context.Context, cfg Config) (check.Report, error) {
	printf := func(format string, args ...any) { fmt.Fprintf(cfg.Out, format+"\n", args...) }
	ts := tenants(cfg.Accounts)

	// The fakes, in this process; the checker sees every accepted entry
	// as it is accepted, so nothing is kept but the checker's tallies.
	var ddKeys []string
	ddOwner, ddRouted := map[string]string{}, map[string]bool{}
	ebOwner, ebRouted := map[string]string{}, map[string]bool{}
	otlpOwner, otlpRouted := map[string]string{}, map[string]bool{}
	var otlpAuth []string
	var accounts []string
	for _, t := range ts {
		accounts = append(accounts, t.account)
		if t.datadog != "" {
			ddKeys = append(ddKeys, t.ddKey)
			ddOwner[t.ddKey] = t.account
			ddRouted[t.account] = true
		}
		if t.eventbridge != "" {
			ebOwner[t.eventbridge] = t.account
			ebRouted[t.account] = true
		}
		if t.otlp != "" {
			otlpOwner[t.otlpTenant] = t.account
			otlpRouted[t.account] = true
			otlpAuth = append(otlpAuth, "Bearer "+t.otlpToken)
		}
	}
	chk := check.New(
		check.Destination{Name: "datadog", Owner: ddOwner, Routed: ddRouted},
		check.Destination{Name: "eventbridge", Owner: ebOwner, Routed: ebRouted},
		check.Destination{Name: "otlp", Owner: otlpOwner, Routed: otlpRouted},
	)
	chk.Secrets(append([]string{awsSecret}, ddKeys...)...)
	for _, t := range ts {
		if t.otlp != "" {
			chk.Secrets(t.otlpToken)
		}
	}

	dd := ddfake.New(ddKeys...)
	defer dd.Close()
	dd.Observe(func(o ddfake.Observed) {
		if o.Status != 202 {
			return
		}
		for _, e := range o.Entries {
			chk.DatadogEntry("datadog", o.APIKey, e, o.At)
		}
		if o.Unanswered {
			chk.Resent("datadog", len(o.Entries))
		}
	})
	eb := ebfake.New()
	defer eb.Close()
	eb.AddKey(ebfake.Key{AccessKeyID: awsKeyID, SecretAccessKey: awsSecret})
	eb.RequireKnownKeys(true)
	eb.KeepEntries(false)
	eb.OnAccepted(func(e ebfake.Entry) { chk.EventBridgeEntry("eventbridge", e.Bus, []byte(e.Detail), e.Received) })
	ot := otlpfake.New()
	defer ot.Close()
	// Every account's own token, and its tenant: a request without either
	// is refused (401).
	ot.RequireAuthorization(otlpAuth...)
	ot.RequireTenant(true)
	ot.OnAccepted(func(a otlpfake.Accepted) {
		chk.OTLPRecord("otlp", a.Tenant, a.EventID, []byte(a.Body), a.At)
		if a.Unanswered {
			chk.Resent("otlp", 1)
		}
	})

	b, err := startBroker(filepath.Join(cfg.Dir, "kafka"))
	if err != nil {
		return check.Report{}, err
	}
	defer b.stop()
	f, err := writeConfigs(cfg.Dir, b.addr(), dd.URL(), eb.URL(), ot.URL(), ts)
	if err != nil {
		return check.Report{}, fmt.Errorf("write configs: %w", err)
	}
	logDir := filepath.Join(cfg.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return check.Report{}, err
	}
	printf("run directory %s; broker %s; %d accounts at %.0f events/s for %s", cfg.Dir, b.addr(), cfg.Accounts, cfg.Rate, cfg.Duration)

	tl := &timeline{start: time.Now(), out: func(s string) { printf("%s", s) }}
	var exitsMu sync.Mutex
	var exits []string
	onExit := func(r *replica, err error) {
		exitsMu.Lock()
		exits = append(exits, fmt.Sprintf("%s exited on its own: %v (see %s)", r.name(), err, r.logPath))
		exitsMu.Unlock()
		tl.add("exit", "%s exited on its own: %v; restarting it", r.name(), err)
		// As a supervisor would, a second later; the exit itself fails
		// the run.
		go func() {
			time.Sleep(time.Second)
			if r.stopRequested() {
				return // stopped or killed meanwhile: not to be started here
			}
			if err := r.start(); err != nil {
				tl.add("exit", "%s: %v", r.name(), err)
			}
		}()
	}

	ingest := newReplica("ingest", 0, cfg.BinDir, f.ingest, logDir, nil)
	ingest.onExit = onExit
	var consumers []*replica
	for _, svc := range []struct{ name, config string }{
		{"datadog-forwarder", f.datadog}, {"eventbridge-forwarder", f.eventbridge}, {"otlp-forwarder", f.otlp}, {"archiver", f.archiver},
	} {
		for i := range replicasPerConsumer {
			var env []string
			if svc.name == "archiver" {
				env = []string{"AUDITSTREAM_ARCHIVE_SPOOL_DIR=" + filepath.Join(cfg.Dir, "spool", fmt.Sprint(i))}
			}
			r := newReplica(svc.name, i, cfg.BinDir, svc.config, logDir, env)
			r.onExit = onExit
			consumers = append(consumers, r)
		}
	}
	all := append([]*replica{ingest}, consumers...)
	defer func() {
		for _, r := range all {
			if err := r.stop(20 * time.Second); err != nil {
				printf("%v", err)
			}
		}
	}()

	// Ingest first: it creates the topics.
	readyCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := ingest.start(); err != nil {
		return check.Report{}, err
	}
	if err := ingest.waitReady(readyCtx); err != nil {
		return check.Report{}, err
	}
	for _, r := range consumers {
		if err := r.start(); err != nil {
			return check.Report{}, err
		}
	}
	for _, r := range consumers {
		if err := r.waitReady(readyCtx); err != nil {
			return check.Report{}, err
		}
	}
	tl.add("ready", "ingest and %d consumer replicas ready", len(consumers))

	// A broker fault the pipeline must not be blamed for: see ghostReaper.
	reaper := &ghostReaper{b: b, tl: tl, after: ghostAfter, groups: sortedKeys(groups)}
	reaperCtx, stopReaper := context.WithCancel(ctx)
	reaperDone := make(chan error, 1)
	go func() { reaperDone <- reaper.run(reaperCtx) }()
	defer func() { stopReaper(); <-reaperDone }()

	// Load and chaos.
	gen := newGenerator("http://"+ingest.addr, accounts, cfg.Rate, chk)
	ctrl := &controller{
		tl: tl, consumers: consumers, broker: b, storms: storms(dd, eb, ot, ts),
		killEvery: cfg.KillEvery, stormHold: cfg.StormHold,
		brokerAt: cfg.Duration / 2, brokerDown: cfg.BrokerDown,
	}
	chaosCtx, stopChaos := context.WithTimeout(ctx, cfg.Duration)
	defer stopChaos()
	g, gctx := errgroup.WithContext(chaosCtx)
	g.Go(func() error { gen.run(gctx); return nil })
	g.Go(func() error { return ctrl.kills(gctx) })
	g.Go(func() error { return ctrl.cutKills(gctx, archiveWindow, archiveGrace) })
	g.Go(func() error { return ctrl.brokerRestart(gctx) })
	g.Go(func() error { ctrl.stormLoop(gctx); return nil })
	g.Go(func() error { return progress(gctx, tl, chk, gen.stats, f.archiveDir) })
	if err := g.Wait(); err != nil {
		return check.Report{}, err
	}
	if ctx.Err() != nil {
		return check.Report{}, ctx.Err()
	}
	tl.add("calm", "load and chaos over: %s", gen.stats)

	// Every replica runs again (a kill's restart may have been cut short).
	for _, r := range consumers {
		if !r.running() {
			if err := r.start(); err != nil {
				return check.Report{}, err
			}
		}
	}

	// Drain: wait until every event is where it belongs and every group
	// has committed the end of its topics, so nothing more can arrive.
	drainCtx, stopDrain := context.WithTimeout(ctx, cfg.DrainTimeout)
	defer stopDrain()
	drained, err := drain(drainCtx, b.addr(), chk, f.archiveDir, tl)
	if err != nil {
		return check.Report{}, err
	}
	if !drained {
		tl.add("drain", "not drained within %s: judging what arrived", cfg.DrainTimeout)
	}

	stopReaper()
	if err := <-reaperDone; err != nil {
		return check.Report{}, err
	}
	reaperDone <- nil // for the deferred wait

	// What the services answer about themselves must not hold a secret
	// either: each replica's status page and metrics.
	for _, r := range all {
		for _, path := range []string{"/status", "/metrics"} {
			if r == ingest && path == "/status" {
				continue // ingest has no status page
			}
			body, err := r.get(ctx, path)
			if err != nil {
				tl.add("scan", "%s%s: %v", r.name(), path, err)
				continue
			}
			chk.Scan("http "+r.service+" "+path, body)
		}
	}

	// Stop the services, then read what they left: the topics' bytes and
	// their logs.
	for _, r := range all {
		if err := r.stop(20 * time.Second); err != nil {
			tl.add("stop", "%v", err)
		}
	}
	minRecord, topicText, err := scanTopics(ctx, b.addr(), chk)
	if err != nil {
		return check.Report{}, err
	}
	logs, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
	sort.Strings(logs)
	for _, l := range logs {
		if err := chk.ScanFile("log "+filepath.Base(l), l); err != nil {
			return check.Report{}, err
		}
	}
	if err := chk.ScanArchive(f.archiveDir); err != nil {
		return check.Report{}, err
	}

	// The documented duplicate bound (docs/delivery.md): a kill -9 resends
	// at most max_inflight_bytes of records plus what finished since the
	// last commit. Each kill of a forwarder's replica, each restart (its
	// join moves partitions) and each broker restart (both replicas'
	// commits fail while it is away) is one such disruption.
	bounds := map[string]check.Bound{}
	for name, svc := range map[string]string{"datadog": "datadog-forwarder", "eventbridge": "eventbridge-forwarder", "otlp": "otlp-forwarder"} {
		kills := 0
		for _, r := range consumers {
			if r.service == svc {
				kills += r.kills
			}
		}
		exitsMu.Lock()
		for _, e := range exits {
			if strings.HasPrefix(e, svc+"-") {
				kills++
			}
		}
		exitsMu.Unlock()
		disruptions := 2*kills + replicasPerConsumer*tl.count("broker-start")
		inflightRecords := maxInflightBytes / max(minRecord, 1)
		sinceCommit := int(float64(chk.PeakPerSecond(name)) * 2 * commitInterval.Seconds())
		per := inflightRecords + sinceCommit
		bounds[name] = check.Bound{Allowed: disruptions * per, Why: fmt.Sprintf("%d disruptions × (%d in flight [%d B / %d B records] + %d finished in two commit intervals at the peak rate)",
			disruptions, inflightRecords, maxInflightBytes, minRecord, sinceCommit)}
	}

	rep := chk.Judge(bounds)
	head := []string{
		fmt.Sprintf("load: %s", gen.stats),
		fmt.Sprintf("topics: %s", topicText),
		fmt.Sprintf("chaos: %d kills, %d restarts, %d broker restarts, %d storms (%s)", tl.count("kill"), tl.count("restart"), tl.count("broker-start"), tl.count("storm"), stormNames(tl)),
	}
	for _, name := range []string{"datadog", "eventbridge", "otlp"} {
		var parts []string
		for _, b := range chk.DuplicateBursts(name, 5) {
			parts = append(parts, fmt.Sprintf("%d at %.0fs", b.Copies, b.At.Sub(tl.start.Truncate(time.Second)).Seconds()))
		}
		if len(parts) > 0 {
			head = append(head, fmt.Sprintf("%s duplicates arrived mostly: %s (see the timeline)", name, strings.Join(parts, ", ")))
		}
	}
	if ghosts := reaper.report(); len(ghosts) > 0 {
		head = append(head, fmt.Sprintf("broker: kept %d members of killed processes past their session timeout (a kfake fault, not the pipeline's); the harness removed them:", len(ghosts)))
		for _, g := range ghosts {
			head = append(head, "  "+g)
		}
	}
	rep.Lines = append(head, rep.Lines...)
	exitsMu.Lock()
	rep.Failures = append(rep.Failures, exits...)
	exitsMu.Unlock()
	if !drained {
		rep.Failures = append(rep.Failures, fmt.Sprintf("the pipeline did not settle within %s (events missing or consumer groups behind)", cfg.DrainTimeout))
	}
	return rep, nil
}

func stormNames(tl *timeline) string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	counts := map[string]int{}
	var order []string
	for _, e := range tl.entries {
		if i := strings.Index(e, "storm "); i >= 0 && strings.HasSuffix(e, " begins") {
			name := strings.TrimSuffix(strings.TrimSpace(e[i+len("storm "):]), " begins")
			if counts[name] == 0 {
				order = append(order, name)
			}
			counts[name]++
		}
	}
	var parts []string
	for _, n := range order {
		parts = append(parts, fmt.Sprintf("%s×%d", n, counts[n]))
	}
	return strings.Join(parts, ", ")
}

// progress prints the checker's counts every 10 s.
func progress(ctx context.Context, tl *timeline, chk *check.Checker, st *loadStats, archiveDir string) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := chk.ScanArchive(archiveDir); err != nil {
			return err
		}
		_, ps := chk.Done()
		tl.add("progress", "accepted %d, rejected %d, unconfirmed %d; %s", st.accepted.Load(), st.rejected.Load(), st.unconfirmed.Load(), progressText(ps))
	}
}

func progressText(ps []check.Progress) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s %d/%d", p.Name, p.Got, p.Expected))
	}
	return strings.Join(parts, ", ")
}
