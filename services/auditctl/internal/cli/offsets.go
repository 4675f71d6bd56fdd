package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func newOffsetsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offsets",
		Short: "Inspect and move consumer group offsets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("offsets needs a subcommand: reset (see '%s --help')", cmd.CommandPath())
		},
	}
	cmd.AddCommand(newOffsetsResetCommand(g))
	return cmd
}

type resetOptions struct {
	group   string
	to      *timeFlag
	topics  []string
	execute bool
	output  outputFlag
}

func newOffsetsResetCommand(g *globals) *cobra.Command {
	o := resetOptions{to: newTimeFlag(g.env.Now), output: outputText}
	cmd := &cobra.Command{
		Use:   "reset --group G --to-time T",
		Short: "Move a consumer group to the first offsets at or after a time",
		Long: `reset moves a consumer group's committed offsets, on every partition of the
topic, to the first record written at or after --to-time (by the record's
Kafka timestamp); a partition with nothing after that time moves to its end.
The group then re-reads (or skips) from there when it starts again.

It is a dry run unless --execute is given: it shows each partition's offset
now and where it would go, and changes nothing. A group with active members
is refused, since its members would overwrite the new offsets with their next
commit: stop the service first (scale its Deployment to zero).`,
		Example: `  auditctl offsets reset --group auditstream-datadog --to-time 2024-02-16T10:00:00Z
  auditctl offsets reset --group auditstream-datadog --to-time -2h --execute
  auditctl offsets reset --group auditstream-eventbridge --to-time 2024-02-16 --execute --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(o.group) == "" {
				return errors.New("--group is required: the consumer group to move (see auditctl lag)")
			}
			if !o.to.set {
				return errors.New("--to-time is required: " + timeFormats)
			}
			for _, t := range o.topics {
				if t == "" {
					return errors.New("--topic must not be empty")
				}
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if len(o.topics) == 0 {
				o.topics = []string{cfg.Kafka.Topics.Events.Name}
			}
			return resetOffsets(cmd.Context(), g, cfg, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.group, "group", "", "consumer group to move (required)")
	f.Var(o.to, "to-time", "move to the first record at or after this time (required): "+timeForms)
	f.StringArrayVar(&o.topics, "topic", nil, "topic whose offsets move (repeatable; default kafka.topics.events.name, audit.events)")
	f.BoolVar(&o.execute, "execute", false, "commit the new offsets (without it, only show them)")
	f.VarP(&o.output, "output", "o", "text or json")
	return cmd
}

// OffsetMove is one partition's offset before and after a reset.
type OffsetMove struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Old is the committed offset, -1 when the group has none.
	Old int64 `json:"old"`
	New int64 `json:"new"`
}

// ResetReport is what offsets reset prints.
type ResetReport struct {
	Group      string       `json:"group"`
	ToTime     time.Time    `json:"to_time"`
	Executed   bool         `json:"executed"`
	Partitions []OffsetMove `json:"partitions"`
}

func resetOffsets(ctx context.Context, g *globals, cfg *Config, o resetOptions) error {
	cl, err := g.connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := checkTopics(ctx, g, adm, o.topics...); err != nil {
		return err
	}
	if err := checkIdle(ctx, g, adm, o.group); err != nil {
		return err
	}

	rctx, cancel := g.requestContext(ctx)
	defer cancel()
	current, err := adm.FetchOffsetsForTopics(rctx, o.group, o.topics...)
	if err != nil {
		return fmt.Errorf("fetch the offsets of group %s: %w", o.group, err)
	}
	listed, err := adm.ListOffsetsAfterMilli(rctx, o.to.t.UnixMilli(), o.topics...)
	if err != nil {
		return fmt.Errorf("list offsets at %s: %w", o.to.t.Format(time.RFC3339), err)
	}
	rep := ResetReport{Group: o.group, ToTime: o.to.t, Partitions: []OffsetMove{}}
	commit := kadm.Offsets{}
	for _, t := range o.topics {
		for _, p := range sortedKeys(listed[t]) {
			l := listed[t][p]
			if l.Err != nil {
				return fmt.Errorf("list offsets of %s partition %d at %s: %w", t, p, o.to.t.Format(time.RFC3339), l.Err)
			}
			old := int64(-1)
			if c, ok := current.Lookup(t, p); ok && c.Err == nil {
				old = c.At
			}
			rep.Partitions = append(rep.Partitions, OffsetMove{Topic: t, Partition: p, Old: old, New: l.Offset})
			commit.Add(kadm.Offset{Topic: t, Partition: p, At: l.Offset, LeaderEpoch: -1})
		}
	}
	if o.execute {
		// Check again right before committing: a member that joined
		// meanwhile would overwrite the new offsets.
		if err := checkIdle(ctx, g, adm, o.group); err != nil {
			return err
		}
		resp, err := adm.CommitOffsets(rctx, o.group, commit)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("commit the new offsets of group %s: %w", o.group, err)
		}
		rep.Executed = true
	}
	return report(g.env.Stdout, o.output, rep, rep.writeText)
}

// checkIdle fails unless group exists and has no active member.
func checkIdle(ctx context.Context, g *globals, adm *kadm.Client, group string) error {
	rctx, cancel := g.requestContext(ctx)
	defer cancel()
	described, err := adm.DescribeGroups(rctx, group)
	if err != nil {
		return fmt.Errorf("describe group %s: %w", group, err)
	}
	d, ok := described[group]
	if !ok || errors.Is(d.Err, kerr.GroupIDNotFound) || (d.Err == nil && d.State == "Dead") {
		return fmt.Errorf("consumer group %s not found (see auditctl lag for the groups there are)", group)
	}
	if d.Err != nil {
		return fmt.Errorf("describe group %s: %w", group, d.Err)
	}
	if n := len(d.Members); n > 0 {
		var who []string
		for _, m := range d.Members {
			who = append(who, m.ClientID+"@"+m.ClientHost)
		}
		return fmt.Errorf("consumer group %s has %d active member(s) (%s): stop them first (scale the service to zero), or they overwrite the new offsets",
			group, n, strings.Join(who, ", "))
	}
	return nil
}

func (r ResetReport) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOLD\tNEW\tMOVE")
	for _, p := range r.Partitions {
		move := "-"
		if p.Old >= 0 {
			move = fmt.Sprintf("%+d", p.New-p.Old)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", p.Topic, p.Partition, p.Old, p.New, move)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	at := r.ToTime.UTC().Format(time.RFC3339Nano)
	if r.Executed {
		_, err := fmt.Fprintf(w, "group %s moved to the first records at or after %s\n", r.Group, at)
		return err
	}
	_, err := fmt.Fprintf(w, "dry run: group %s not changed; add --execute to move it to the first records at or after %s\n", r.Group, at)
	return err
}
