// Command chaos runs the pipeline's chaos test (make chaos): the real
// binaries under load while replicas are killed, sinks storm and the broker
// restarts, then an independent check of what came out. See docs/chaos.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/auditstream/auditstream/services/chaostest/internal/harness"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfg := harness.Config{Out: os.Stdout}
	var keep bool
	flag.StringVar(&cfg.BinDir, "bin-dir", "bin", "directory of the services' binaries (make build)")
	flag.StringVar(&cfg.Dir, "dir", os.Getenv("CHAOS_DIR"), "run directory (default: a new temporary directory, removed after a passing run)")
	flag.DurationVar(&cfg.Duration, "duration", envDuration("CHAOS_DURATION", 75*time.Second), "how long load and chaos last ($CHAOS_DURATION)")
	flag.Float64Var(&cfg.Rate, "rate", envFloat("CHAOS_RATE", 150), "events posted per second ($CHAOS_RATE)")
	flag.IntVar(&cfg.Accounts, "accounts", int(envFloat("CHAOS_ACCOUNTS", 24)), "accounts the events belong to ($CHAOS_ACCOUNTS)")
	flag.DurationVar(&cfg.KillEvery, "kill-every", envDuration("CHAOS_KILL_EVERY", 4*time.Second), "mean pause between two SIGKILLs ($CHAOS_KILL_EVERY)")
	flag.DurationVar(&cfg.StormHold, "storm-hold", envDuration("CHAOS_STORM_HOLD", 5*time.Second), "how long a sink storm lasts, twice the calm between two ($CHAOS_STORM_HOLD)")
	flag.DurationVar(&cfg.BrokerDown, "broker-down", envDuration("CHAOS_BROKER_DOWN", 3*time.Second), "how long the broker stays away when it restarts, half way through ($CHAOS_BROKER_DOWN)")
	flag.DurationVar(&cfg.DrainTimeout, "drain-timeout", envDuration("CHAOS_DRAIN_TIMEOUT", 3*time.Minute), "how long to wait, after the chaos, for every event to arrive ($CHAOS_DRAIN_TIMEOUT)")
	flag.BoolVar(&keep, "keep", os.Getenv("CHAOS_KEEP") != "", "keep the run directory after a passing run ($CHAOS_KEEP)")
	flag.Parse()
	if cfg.Duration <= 0 || cfg.Rate <= 0 || cfg.Accounts < 4 || cfg.KillEvery <= 0 || cfg.StormHold <= 0 || cfg.BrokerDown <= 0 || cfg.DrainTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "chaos: duration, rate, kill-every, storm-hold, broker-down and drain-timeout must be positive, and accounts at least 4")
		return 2
	}
	created := false
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "auditstream-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
		cfg.Dir, created = d, true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep, err := harness.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %v\nthe run's files (logs, configs, broker data) are in %s\n", err, cfg.Dir)
		return 1
	}
	fmt.Printf("\n== chaos report (%s)\n%s", time.Since(start).Round(time.Second), rep)
	if !rep.OK() {
		fmt.Printf("the run's files (logs, configs, broker data, archive) are in %s\n", cfg.Dir)
		return 1
	}
	if created && !keep {
		_ = os.RemoveAll(cfg.Dir)
	}
	return 0
}

func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %s=%q is not a duration (e.g. 30m): %v\n", name, v, err)
		os.Exit(2)
	}
	return d
}

func envFloat(name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %s=%q is not a number: %v\n", name, v, err)
		os.Exit(2)
	}
	return f
}
