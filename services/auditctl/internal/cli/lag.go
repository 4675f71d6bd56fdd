package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// GroupPrefix starts the name of every auditstream consumer group
// (auditstream-datadog, auditstream-eventbridge, ...).
const GroupPrefix = "auditstream-"

type lagOptions struct {
	groups []string
	output outputFlag
}

func newLagCommand(g *globals) *cobra.Command {
	o := lagOptions{output: outputText}
	cmd := &cobra.Command{
		Use:   "lag",
		Short: "Show how far consumer groups are behind, per partition",
		Long: `lag shows, for each partition a consumer group consumes, the offset it
committed, the partition's end offset and the difference: the records it
still has to process. Without --group it shows every auditstream group (the
groups named ` + GroupPrefix + `*). A partition without a commit shows
committed -1 and its lag counts from the oldest record still on the topic.`,
		Example: `  auditctl lag
  auditctl lag --group auditstream-datadog
  auditctl lag --output json | jq '.groups[] | {group, total_lag}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, grp := range o.groups {
				if strings.TrimSpace(grp) == "" {
					return fmt.Errorf("--group must not be empty")
				}
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return lag(cmd.Context(), g, cfg, o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.groups, "group", nil, "consumer group (repeatable; default every "+GroupPrefix+"* group)")
	f.VarP(&o.output, "output", "o", "text or json")
	return cmd
}

// GroupLag is one group's lag.
type GroupLag struct {
	Group      string         `json:"group"`
	State      string         `json:"state"`
	Members    int            `json:"members"`
	TotalLag   int64          `json:"total_lag"`
	Partitions []PartitionLag `json:"partitions"`
}

// PartitionLag is one partition's lag in a group.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the group's committed offset, -1 when it has none.
	Committed int64 `json:"committed"`
	End       int64 `json:"end"`
	Lag       int64 `json:"lag"`
	// Member is the client id of the member consuming it, if any.
	Member string `json:"member,omitempty"`
	Error  string `json:"error,omitempty"`
}

// LagReport is what lag prints.
type LagReport struct {
	Groups []GroupLag `json:"groups"`
}

func lag(ctx context.Context, g *globals, cfg *Config, o lagOptions) error {
	cl, err := g.connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rctx, cancel := g.requestContext(ctx)
	defer cancel()

	groups := o.groups
	if len(groups) == 0 {
		listed, err := adm.ListGroups(rctx)
		if err != nil {
			return fmt.Errorf("list consumer groups: %w", err)
		}
		for _, name := range listed.Groups() {
			if strings.HasPrefix(name, GroupPrefix) {
				groups = append(groups, name)
			}
		}
		if len(groups) == 0 {
			fmt.Fprintf(g.env.Stderr, "auditctl: no %s* consumer group found\n", GroupPrefix)
			if o.output.json() {
				return writeJSON(g.env.Stdout, LagReport{Groups: []GroupLag{}})
			}
			return nil
		}
	}
	lags, err := adm.Lag(rctx, groups...)
	if err != nil {
		return fmt.Errorf("lag of %s: %w", strings.Join(groups, ", "), err)
	}
	rep := LagReport{Groups: []GroupLag{}}
	var missing []string
	for _, l := range lags.Sorted() {
		if err := l.Error(); errors.Is(err, kerr.GroupIDNotFound) {
			missing = append(missing, l.Group)
			continue
		} else if err != nil {
			return fmt.Errorf("lag of group %s: %w", l.Group, err)
		}
		if l.State == "Dead" && len(l.Lag) == 0 {
			missing = append(missing, l.Group)
			continue
		}
		rep.Groups = append(rep.Groups, groupLag(l))
	}
	if len(missing) > 0 {
		return fmt.Errorf("consumer group %s not found", strings.Join(missing, ", "))
	}
	return report(g.env.Stdout, o.output, rep, rep.writeText)
}

func groupLag(l kadm.DescribedGroupLag) GroupLag {
	out := GroupLag{Group: l.Group, State: l.State, Members: len(l.Members), Partitions: []PartitionLag{}}
	for _, m := range l.Lag.Sorted() {
		p := PartitionLag{Topic: m.Topic, Partition: m.Partition, Committed: m.Commit.At, End: m.End.Offset, Lag: m.Lag}
		if m.Member != nil {
			p.Member = m.Member.ClientID
		}
		if m.Err != nil {
			p.Error = m.Err.Error()
		} else if m.Lag > 0 {
			out.TotalLag += m.Lag
		}
		out.Partitions = append(out.Partitions, p)
	}
	return out
}

func (r LagReport) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tMEMBERS\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
	for _, grp := range r.Groups {
		if len(grp.Partitions) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\t-\t-\t-\n", grp.Group, grp.State, grp.Members)
		}
		for _, p := range grp.Partitions {
			lag := fmt.Sprint(p.Lag)
			if p.Error != "" {
				lag = "error: " + p.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\n", grp.Group, grp.State, grp.Members, p.Topic, p.Partition, p.Committed, p.End, lag, dash(p.Member))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, grp := range r.Groups {
		if _, err := fmt.Fprintf(w, "%s: total lag %d\n", grp.Group, grp.TotalLag); err != nil {
			return err
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// report writes v as JSON, or through text for people.
func report(w io.Writer, o outputFlag, v any, text func(io.Writer) error) error {
	if o.json() {
		return writeJSON(w, v)
	}
	return text(w)
}

// sortedKeys returns m's keys in order.
func sortedKeys[K interface{ ~string | ~int32 }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
