package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Tail output formats.
const (
	formatJSON    = "json"
	formatSummary = "summary"
)

type tailOptions struct {
	topic         string
	fromBeginning bool
	accounts      []string
	actions       []string
	max           int
	format        string
}

func newTailCommand(g *globals) *cobra.Command {
	var o tailOptions
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Follow the audit event topic and print its events",
		Long: `tail reads every partition of the audit event topic (without a consumer
group, so it commits nothing and disturbs no one) and prints each event on
stdout: as one JSON line in the seed's attributes shape (--format json, the
default) or as a one-line summary (--format summary). A record that is not a
valid event is reported on stderr with its partition, offset and reason, and
tail goes on. Ctrl-C stops it.

By default tail starts at the end of the topic and prints new events only.
--account and --action may be repeated; an event is printed when it matches
one of each.`,
		Example: `  auditctl tail --from-beginning
  auditctl tail --account acc-sscctbisjkl3123 --max 10 --brokers kafka-1:9092,kafka-2:9092
  auditctl tail --action discard-run --action apply-run --format summary`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.max < 0 {
				return fmt.Errorf("--max must be 0 (no limit) or more, not %d", o.max)
			}
			if o.format != formatJSON && o.format != formatSummary {
				return fmt.Errorf("--format must be %s or %s, not %q", formatJSON, formatSummary, o.format)
			}
			if cmd.Flags().Changed("topic") && o.topic == "" {
				return errors.New("--topic must not be empty")
			}
			cfg, err := g.loadWithDefaults(&o.topic, nil)
			if err != nil {
				return err
			}
			return tail(cmd.Context(), g, cfg, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.topic, "topic", "", "topic to read (default kafka.topics.events.name, audit.events)")
	f.BoolVar(&o.fromBeginning, "from-beginning", false, "start at the oldest event instead of the newest")
	f.StringArrayVar(&o.accounts, "account", nil, "print only the events of this account id (repeatable)")
	f.StringArrayVar(&o.actions, "action", nil, "print only the events with this request action, e.g. discard-run (repeatable)")
	f.IntVar(&o.max, "max", 0, "stop after this many events (0 = run until Ctrl-C)")
	f.StringVar(&o.format, "format", formatJSON, "json (one event JSON per line) or summary (one short line per event)")
	return cmd
}

func tail(ctx context.Context, g *globals, cfg *Config, o tailOptions) error {
	start := kgo.NewOffset().AtEnd()
	if o.fromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	cl, err := g.connect(ctx, cfg, kgo.ConsumeTopics(o.topic), kgo.ConsumeResetOffset(start))
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted: not an error
		}
		return err
	}
	defer cl.Close()

	stderr := g.env.Stderr
	out := bufio.NewWriter(g.env.Stdout)
	var (
		buf     []byte
		printed int
	)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return out.Flush()
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				fmt.Fprintf(stderr, "auditctl: warning: fetch %s partition %d: %v\n", topic, partition, err)
			}
		})
		for it := fetches.RecordIter(); !it.Done(); {
			rec := it.Next()
			ev, err := auditevent.DecodeRecord(rec)
			if err != nil {
				fmt.Fprintf(stderr, "auditctl: warning: skipping record at partition %d offset %d: %s\n", rec.Partition, rec.Offset, describe(err))
				continue
			}
			if !o.matches(ev) {
				continue
			}
			if o.format == formatSummary {
				buf = appendSummary(buf[:0], ev, rec)
			} else {
				buf = auditevent.AppendJSON(buf[:0], ev)
			}
			buf = append(buf, '\n')
			if _, err := out.Write(buf); err != nil {
				return err
			}
			printed++
			if o.max > 0 && printed >= o.max {
				return out.Flush()
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

func (o tailOptions) matches(ev *auditlogv1.AuditEvent) bool {
	if len(o.accounts) > 0 && !slices.Contains(o.accounts, auditevent.AccountID(ev)) {
		return false
	}
	if len(o.actions) > 0 && !slices.Contains(o.actions, ev.GetRequest().GetAction()) {
		return false
	}
	return true
}

// appendSummary writes one line about ev: when, account, who, what, on
// what, how it ended, and where the record is.
//
//	2024-02-16T12:58:38.577846 acc-sscctbisjkl3123 [email protected] discard-run runs/run-v0o370pcff0e53 SUCCESS 202 id=... p0@12
func appendSummary(dst []byte, ev *auditlogv1.AuditEvent, rec *kgo.Record) []byte {
	field := func(s string) {
		if s == "" {
			s = "-"
		}
		dst = append(dst, s...)
		dst = append(dst, ' ')
	}
	field(auditevent.FormatTimestamp(auditevent.EventTime(ev, rec)))
	field(auditevent.AccountID(ev))
	actor := ev.GetActor().GetEmail()
	if actor == "" {
		actor = ev.GetActor().GetId()
	}
	field(actor)
	field(ev.GetRequest().GetAction())
	target := ev.GetTarget().GetId()
	if t := ev.GetTarget().GetType(); t != "" {
		target = t + "/" + target
	}
	field(target)
	field(ev.GetOutcome().GetResult())
	if code := ev.GetOutcome().GetStatusCode(); code != 0 {
		field(strconv.Itoa(int(code)))
	}
	dst = append(dst, "id="...)
	dst = append(dst, ev.GetId()...)
	return fmt.Appendf(dst, " p%d@%d", rec.Partition, rec.Offset)
}

// describe renders a decode error as "reason (field): message".
func describe(err error) string {
	var fe *auditevent.FieldError
	if !errors.As(err, &fe) {
		return err.Error()
	}
	s := fe.Reason
	if fe.Field != "" {
		s += " (" + fe.Field + ")"
	}
	return s + ": " + fe.Message
}
