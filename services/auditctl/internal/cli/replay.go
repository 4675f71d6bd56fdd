package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/auditstream/auditstream/services/auditctl/internal/replay"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Defaults of replay.
const (
	// DefaultGrace widens the records read by their Kafka time, for events
	// written a little after they happened.
	DefaultGrace = 15 * time.Minute
	// DefaultRetryBudget is how long replay retries a failing batch. A
	// forwarder parks events after delivery.retry_budget; replay has no
	// retry topic, so it waits longer before giving up.
	DefaultRetryBudget = 5 * time.Minute
	// maxWarnings bounds the undecodable records reported one by one.
	maxWarnings = 20
)

type replayOptions struct {
	from, to     *timeFlag
	accounts     []string
	destination  string
	destinations string
	topic        string
	rate         float64
	dryRun       bool
	grace        time.Duration
	retryBudget  time.Duration
	output       outputFlag
}

func newReplayCommand(g *globals) *cobra.Command {
	o := replayOptions{from: newTimeFlag(g.env.Now), to: newTimeFlag(g.env.Now), grace: DefaultGrace, retryBudget: DefaultRetryBudget, output: outputText}
	cmd := &cobra.Command{
		Use:   "replay --from T1 --to T2 --destination CONNECTION",
		Short: "Deliver a time range of the topic again through one connection",
		Long: `replay backfills a destination: it reads the events whose own timestamp is in
[--from, --to) and delivers them through one connection of the destinations
file, with the very sink, batching, backoff and retry rules its forwarder
uses (the delivery section of --config), so a replay behaves as live
delivery did.

It finds the offsets of the range on every partition by the records' Kafka
timestamps (widened by --grace on both sides, for events written a little
after they happened), reads those ranges directly, without joining or moving
any consumer group, and keeps only the events inside the range. Tenant
isolation holds as in live delivery: only the events of accounts that route
to the connection are sent; --account narrows it to some of them.

A batch the destination keeps failing is retried for --retry-budget, then
replay stops with an error; events it rejects for good are listed and make
the exit status non-zero. --dry-run reads and counts per account what would
be sent, and sends nothing. Progress goes to stderr: a bar on a terminal,
a line every 10 s otherwise.`,
		Example: `  auditctl replay --config datadog-forwarder.yaml --from 2024-02-16T10:00:00Z --to 2024-02-16T12:00:00Z --destination dd-acme
  auditctl replay --config eventbridge-forwarder.yaml --from -6h --to -4h --destination eb-acme --account acc-123 --dry-run
  auditctl replay --destinations destinations.yaml --from 2024-02-15 --to 2024-02-16 --destination dd-acme --rate 500 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(cmd); err != nil {
				return err
			}
			cfg, err := g.loadWithDefaults(&o.topic, &o.destinations)
			if err != nil {
				return err
			}
			return runReplay(cmd.Context(), g, cfg, o)
		},
	}
	f := cmd.Flags()
	f.Var(o.from, "from", "replay events at or after this time (required): "+timeForms)
	f.Var(o.to, "to", "replay events before this time (required), same forms as --from")
	f.StringVar(&o.destination, "destination", "", "connection of the destinations file to deliver to (required)")
	f.StringVar(&o.destinations, "destinations", "", "destinations file (default destinations.file of --config)")
	f.StringArrayVar(&o.accounts, "account", nil, "replay only this account's events (repeatable; default every account routed to the connection)")
	f.StringVar(&o.topic, "topic", "", "topic to read (default kafka.topics.events.name, audit.events)")
	f.Float64Var(&o.rate, "rate", 0, "send at most this many events a second (0 = no limit)")
	f.BoolVar(&o.dryRun, "dry-run", false, "count per account what would be sent; send nothing")
	f.DurationVar(&o.grace, "grace", DefaultGrace, "read records written this long before --from and after --to, for late events")
	f.DurationVar(&o.retryBudget, "retry-budget", DefaultRetryBudget, "give up when one batch keeps failing this long")
	f.VarP(&o.output, "output", "o", "text or json (the summary)")
	return cmd
}

func (o *replayOptions) check(cmd *cobra.Command) error {
	switch {
	case !o.from.set:
		return errors.New("--from is required: " + timeFormats)
	case !o.to.set:
		return errors.New("--to is required: " + timeFormats)
	case !o.from.t.Before(o.to.t):
		return fmt.Errorf("--from (%s) must be before --to (%s)", o.from, o.to)
	case strings.TrimSpace(o.destination) == "":
		return errors.New("--destination is required: the connection to deliver to (a name in the destinations file)")
	case o.rate < 0:
		return fmt.Errorf("--rate must be 0 (no limit) or more, not %g", o.rate)
	case o.grace < 0:
		return fmt.Errorf("--grace must not be negative, not %s", o.grace)
	case o.retryBudget <= 0:
		return fmt.Errorf("--retry-budget must be positive, not %s", o.retryBudget)
	case cmd.Flags().Changed("topic") && o.topic == "":
		return errors.New("--topic must not be empty")
	}
	for _, a := range o.accounts {
		if strings.TrimSpace(a) == "" {
			return errors.New("--account must not be empty")
		}
	}
	return nil
}

func runReplay(ctx context.Context, g *globals, cfg *Config, o replayOptions) error {
	dest, err := g.openDestination(ctx, cfg, o.destinations, o.destination)
	if err != nil {
		return err
	}
	ro := replay.Options{
		Kafka: cfg.Kafka, Topic: o.topic, From: o.from.t, To: o.to.t, Grace: o.grace, Accounts: o.accounts, Dest: dest,
		Sender: senderOptions(cfg, o.rate, o.retryBudget, o.dryRun),
		Warn:   newWarner(g.env.Stderr, maxWarnings),
	}
	if err := ro.Validate(); err != nil {
		return err
	}
	cl, err := g.connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := g.requestContext(ctx)
	defer cancel()
	run, err := replay.Plan(rctx, kadm.NewClient(cl), ro)
	if err != nil {
		return err
	}
	p := run.Progress()
	stop := showProgress(g.env.Stderr, g.env.IsTerminal(g.env.Stderr), "replay to "+dest.Name,
		progressSource{total: p.Total, done: &p.Done, delivered: &p.Delivered})
	sum, runErr := run.Run(ctx)
	stop()
	if err := report(g.env.Stdout, o.output, sum, replaySummary(sum).writeText); err != nil {
		return err
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case runErr != nil:
		return runErr
	case sum.Rejected > 0:
		return fmt.Errorf("%d of %d events were rejected by connection %s", sum.Rejected, sum.Matched, dest.Name)
	}
	return nil
}

// senderOptions are the delivery runtime's settings from the config.
func senderOptions(cfg *Config, rate float64, budget time.Duration, dryRun bool) replay.SenderOptions {
	d := cfg.Delivery
	return replay.SenderOptions{Batch: d.Batch, Backoff: d.Backoff, SendTimeout: d.SendTimeout, InFlight: d.RequestsInFlight,
		RetryBudget: budget, Rate: rate, DryRun: dryRun}
}

// newWarner returns a Warn that prints the first max warnings on w and
// counts the rest in a last line.
func newWarner(w io.Writer, limit int) func(string) {
	var mu sync.Mutex
	n := 0
	return func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		n++
		switch {
		case n <= limit:
			fmt.Fprintf(w, "auditctl: warning: %s\n", printable(msg))
		case n == limit+1:
			fmt.Fprintf(w, "auditctl: warning: more records are not valid events; the summary counts them\n")
		}
	}
}

type replaySummary replay.Summary

func (s replaySummary) writeText(w io.Writer) error {
	verb := "delivered"
	if s.DryRun {
		verb = "would send"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "replay %s → %s (%s), events in [%s, %s)", s.Topic, s.Destination, s.Type, s.From.Format(time.RFC3339Nano), s.To.Format(time.RFC3339Nano))
	if s.DryRun {
		b.WriteString(", dry run: nothing sent")
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ACCOUNT\tMATCHED\t%s\tREJECTED\n", strings.ToUpper(verb))
	for _, a := range sortedKeys(s.ByAccount) {
		c := s.ByAccount[a]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", a, c.Matched, c.Delivered, c.Rejected)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\n", s.Matched, s.Delivered, s.Rejected)
	_ = tw.Flush()
	fmt.Fprintf(&b, "%d records read; skipped: %d outside the time range, %d of other accounts, %d not routed to %s, %d not valid events\n",
		s.Records, s.Skipped.OutsideTimeRange, s.Skipped.OtherAccounts, s.Skipped.NotRouted, s.Destination, s.Skipped.Undecodable)
	for _, r := range s.RejectedEvents {
		fmt.Fprintf(&b, "rejected: %s event %s of %s: %s\n", r.Position, r.EventID, r.Account, r.Error)
	}
	if n := s.Rejected - int64(len(s.RejectedEvents)); n > 0 {
		fmt.Fprintf(&b, "rejected: %d more not listed\n", n)
	}
	if s.AtRisk > 0 {
		fmt.Fprintf(&b, "warning: %d events were older than Datadog's 18h window when sent; Datadog may not index them\n", s.AtRisk)
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "stopped early: %s\n%d matched events were not sent; run the same replay again to send them (events already delivered are sent again)\n",
			s.Error, s.Matched-s.Delivered-s.Rejected)
	}
	fmt.Fprintf(&b, "took %s\n", time.Duration(s.Duration*float64(time.Second)).Round(time.Millisecond))
	_, err := io.WriteString(w, b.String())
	return err
}
