package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/auditctl/internal/partitions"
	"github.com/auditstream/auditstream/services/auditctl/internal/replay"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newDLQCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect dead letters and send them back",
		Long: `dlq works on the dead-letter topic (kafka.topics.dead_letter.name,
audit.events.dlq), where the forwarders put the records they could not
deliver: malformed records, events a destination rejected for good, events
parked too long. Each carries why in its headers (auditstream-dlq-reason,
auditstream-dlq-error) and where it came from (auditstream-source-topic,
-partition, -offset, auditstream-forwarder, auditstream-connection).

A dead letter is named by its position on the dead-letter topic,
partition:offset (0:12), as list prints it; a bare offset is enough when the
topic has one partition. Reading never joins a consumer group.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("dlq needs a subcommand: list, show or redrive (see '%s --help')", cmd.CommandPath())
		},
	}
	cmd.AddCommand(newDLQListCommand(g), newDLQShowCommand(g), newDLQRedriveCommand(g))
	return cmd
}

// dlqFilter selects dead letters by their headers.
type dlqFilter struct {
	topic      string
	forwarders []string
	reasons    []string
	accounts   []string
}

func (f *dlqFilter) flags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.topic, "topic", "", "dead-letter topic (default kafka.topics.dead_letter.name, audit.events.dlq)")
	fs.StringArrayVar(&f.forwarders, "forwarder", nil, "only dead letters of this forwarder: datadog, eventbridge, ... (repeatable)")
	fs.StringArrayVar(&f.reasons, "reason", nil, "only dead letters with this reason, e.g. rejected, malformed_protobuf (repeatable)")
	fs.StringArrayVar(&f.accounts, "account", nil, "only dead letters whose record key is this account id (repeatable)")
}

// resolve fills the topic from the configuration and checks the flags.
func (f *dlqFilter) resolve(cmd *cobra.Command, cfg *Config) error {
	if cmd.Flags().Changed("topic") && f.topic == "" {
		return errors.New("--topic must not be empty")
	}
	if f.topic == "" {
		f.topic = cfg.Kafka.Topics.DeadLetter.Name
	}
	return nil
}

func (f *dlqFilter) match(d DeadLetter) bool {
	return (len(f.forwarders) == 0 || slices.Contains(f.forwarders, d.Forwarder)) &&
		(len(f.reasons) == 0 || slices.Contains(f.reasons, d.Reason)) &&
		(len(f.accounts) == 0 || slices.Contains(f.accounts, d.Key))
}

// DeadLetter is one record of the dead-letter topic, its headers read.
type DeadLetter struct {
	Position   string    `json:"position"`
	Partition  int32     `json:"partition"`
	Offset     int64     `json:"offset"`
	Timestamp  time.Time `json:"timestamp"`
	Key        string    `json:"key"`
	Reason     string    `json:"reason"`
	Error      string    `json:"error,omitempty"`
	Forwarder  string    `json:"forwarder,omitempty"`
	Connection string    `json:"connection,omitempty"`
	// Source is where the record was first read, topic/partition@offset.
	Source string `json:"source,omitempty"`
}

func readDeadLetter(rec *kgo.Record) DeadLetter {
	d := DeadLetter{Position: position(rec.Partition, rec.Offset), Partition: rec.Partition, Offset: rec.Offset,
		Timestamp: rec.Timestamp.UTC(), Key: printable(string(rec.Key))}
	l := deadletter.Read(rec)
	d.Reason = printable(l.Reason)
	d.Error = printable(l.ErrorText())
	d.Forwarder = printable(l.Consumer)
	d.Connection = printable(l.Connection)
	if l.SourceTopic != "" {
		d.Source = printable(fmt.Sprintf("%s/%d@%d", l.SourceTopic, l.SourcePartition, l.SourceOffset))
	}
	return d
}

func position(p int32, o int64) string { return fmt.Sprintf("%d:%d", p, o) }

// sourceRecord is the dead letter as it was on its source topic
// (deadletter.Read): the producer's headers only, and the source
// position, so that an event without an id gets the id it had there.
func sourceRecord(rec *kgo.Record) *kgo.Record { return deadletter.Read(rec).Source }

// parsePositions reads dead-letter positions: partition:offset, or a bare
// offset when the topic has a single partition. Items may also be
// comma-separated.
func parsePositions(args []string, bounds map[int32]partitions.Range, topic string) (map[int32][]int64, error) {
	out := map[int32][]int64{}
	for _, arg := range args {
		for _, item := range splitList(arg) {
			ps, os, hasPartition := strings.Cut(item, ":")
			if !hasPartition {
				ps, os = "", item
			}
			o, err := strconv.ParseInt(os, 10, 64)
			if err != nil || o < 0 {
				return nil, fmt.Errorf("%q is not a dead-letter position: want partition:offset, e.g. 0:12", item)
			}
			var p int32
			if hasPartition {
				n, err := strconv.ParseInt(ps, 10, 32)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("%q is not a dead-letter position: want partition:offset, e.g. 0:12", item)
				}
				p = int32(n)
			} else if len(bounds) > 1 {
				return nil, fmt.Errorf("offset %d is ambiguous: %s has %d partitions; write partition:offset, e.g. 0:%d", o, topic, len(bounds), o)
			}
			r, ok := bounds[p]
			if !ok {
				return nil, fmt.Errorf("dead letter %s does not exist: %s has no partition %d", position(p, o), topic, p)
			}
			if o < r.Start || o >= r.End {
				return nil, fmt.Errorf("dead letter %s does not exist: partition %d of %s holds offsets %d to %d", position(p, o), p, topic, r.Start, r.End-1)
			}
			if !slices.Contains(out[p], o) {
				out[p] = append(out[p], o)
			}
		}
	}
	return out, nil
}

// positionRanges is the smallest range of each partition that holds the
// positions.
func positionRanges(pos map[int32][]int64) map[int32]partitions.Range {
	out := map[int32]partitions.Range{}
	for p, os := range pos {
		out[p] = partitions.Range{Start: slices.Min(os), End: slices.Max(os) + 1}
	}
	return out
}

// openDLQ connects and returns the admin client and the dead-letter topic's
// bounds.
func openDLQ(ctx context.Context, g *globals, cfg *Config, topic string) (*kgo.Client, map[int32]partitions.Range, error) {
	cl, err := g.connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := g.requestContext(ctx)
	defer cancel()
	bounds, err := partitions.Bounds(rctx, kadm.NewClient(cl), topic)
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	return cl, bounds, nil
}

// --- list

type dlqListOptions struct {
	filter dlqFilter
	limit  int
	output outputFlag
}

func newDLQListCommand(g *globals) *cobra.Command {
	o := dlqListOptions{output: outputText}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the dead letters with their reasons",
		Long: `list reads the dead-letter topic from its oldest record to its current end
and prints one line per dead letter: its position, when it was
dead-lettered, the forwarder and connection, the reason and error, where it
came from and its key (the account id). Then a count by reason.`,
		Example: `  auditctl dlq list
  auditctl dlq list --forwarder datadog --reason rejected
  auditctl dlq list --output json | jq -r '.dead_letters[] | select(.reason == "malformed_json") | .position'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.limit < 0 {
				return fmt.Errorf("--limit must be 0 (no limit) or more, not %d", o.limit)
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := o.filter.resolve(cmd, cfg); err != nil {
				return err
			}
			return dlqList(cmd.Context(), g, cfg, o)
		},
	}
	o.filter.flags(cmd)
	cmd.Flags().IntVar(&o.limit, "limit", 0, "list at most this many (0 = all); the counts cover all")
	cmd.Flags().VarP(&o.output, "output", "o", "text or json")
	return cmd
}

func dlqList(ctx context.Context, g *globals, cfg *Config, o dlqListOptions) error {
	cl, bounds, err := openDLQ(ctx, g, cfg, o.filter.topic)
	if err != nil {
		return err
	}
	defer cl.Close()
	out := newListWriter(g.env.Stdout, o.filter.topic, o.output)
	byReason := map[string]int{}
	listed := 0
	err = partitions.Read(ctx, cfg.Kafka, o.filter.topic, bounds, func(rec *kgo.Record) error {
		d := readDeadLetter(rec)
		if !o.filter.match(d) {
			return nil
		}
		byReason[d.Reason]++
		if o.limit > 0 && listed >= o.limit {
			return nil
		}
		listed++
		return out.add(d)
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", o.filter.topic, err)
	}
	return out.finish(byReason)
}

// listWriter streams dead letters as a table or one JSON document, so a
// large topic never sits in memory.
type listWriter struct {
	w     io.Writer
	topic string
	json  bool
	tw    *tabwriter.Writer
	rows  int
}

func newListWriter(w io.Writer, topic string, o outputFlag) *listWriter {
	return &listWriter{w: w, topic: topic, json: o.json()}
}

func (l *listWriter) add(d DeadLetter) error {
	if l.json {
		sep := ",\n    "
		if l.rows == 0 {
			t, _ := json.Marshal(l.topic)
			sep = fmt.Sprintf("{\n  \"topic\": %s,\n  \"dead_letters\": [\n    ", t)
		}
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		l.rows++
		_, err = fmt.Fprintf(l.w, "%s%s", sep, b)
		return err
	}
	if l.tw == nil || l.rows%256 == 0 {
		if err := l.flush(); err != nil {
			return err
		}
		l.tw = tabwriter.NewWriter(l.w, 0, 4, 2, ' ', 0)
		if l.rows == 0 {
			fmt.Fprintln(l.tw, "POSITION\tTIME\tFORWARDER\tCONNECTION\tREASON\tSOURCE\tKEY\tERROR")
		}
	}
	l.rows++
	_, err := fmt.Fprintf(l.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Position, d.Timestamp.Format(time.RFC3339),
		dash(d.Forwarder), dash(d.Connection), dash(d.Reason), dash(d.Source), dash(d.Key), dash(shorten(d.Error, 100)))
	return err
}

func (l *listWriter) flush() error {
	if l.tw == nil {
		return nil
	}
	return l.tw.Flush()
}

func (l *listWriter) finish(byReason map[string]int) error {
	total := 0
	for _, n := range byReason {
		total += n
	}
	if l.json {
		if l.rows == 0 {
			t, _ := json.Marshal(l.topic)
			fmt.Fprintf(l.w, "{\n  \"topic\": %s,\n  \"dead_letters\": [", t)
		} else {
			fmt.Fprint(l.w, "\n  ")
		}
		counts, err := json.Marshal(byReason)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(l.w, "],\n  \"count\": %d,\n  \"by_reason\": %s\n}\n", total, counts)
		return err
	}
	if err := l.flush(); err != nil {
		return err
	}
	parts := make([]string, 0, len(byReason))
	for _, r := range sortedKeys(byReason) {
		parts = append(parts, fmt.Sprintf("%s %d", dash(r), byReason[r]))
	}
	line := fmt.Sprintf("%d dead letters on %s", total, l.topic)
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, ", ")
	}
	if l.rows < total {
		line += fmt.Sprintf(" (%d listed)", l.rows)
	}
	_, err := fmt.Fprintln(l.w, line)
	return err
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// --- show

type dlqShowOptions struct {
	filter dlqFilter
	output outputFlag
}

func newDLQShowCommand(g *globals) *cobra.Command {
	o := dlqShowOptions{output: outputText}
	cmd := &cobra.Command{
		Use:   "show POSITION",
		Short: "Print one dead letter with its headers and event",
		Long: `show prints one dead letter: its key, every header (the reason and error
among them) and its value, as the event's JSON when it decodes, or else the
decode error and the raw value.`,
		Example: `  auditctl dlq show 0:12
  auditctl dlq show 2:7 --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := o.filter.resolve(cmd, cfg); err != nil {
				return err
			}
			return dlqShow(cmd.Context(), g, cfg, o, args[0])
		},
	}
	cmd.Flags().StringVar(&o.filter.topic, "topic", "", "dead-letter topic (default kafka.topics.dead_letter.name, audit.events.dlq)")
	cmd.Flags().VarP(&o.output, "output", "o", "text or json")
	return cmd
}

// ShownDeadLetter is what show prints.
type ShownDeadLetter struct {
	DeadLetter
	Headers []Header `json:"headers"`
	// Event is the value decoded, when it decodes.
	Event json.RawMessage `json:"event,omitempty"`
	// DecodeError says why the value does not decode.
	DecodeError string `json:"decode_error,omitempty"`
	// Value is the raw value when it is UTF-8, else ValueBase64.
	Value       string `json:"value,omitempty"`
	ValueBase64 string `json:"value_base64,omitempty"`
}

// Header is one record header.
type Header struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func dlqShow(ctx context.Context, g *globals, cfg *Config, o dlqShowOptions, arg string) error {
	cl, bounds, err := openDLQ(ctx, g, cfg, o.filter.topic)
	if err != nil {
		return err
	}
	defer cl.Close()
	pos, err := parsePositions([]string{arg}, bounds, o.filter.topic)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("show prints one dead letter; %q names %d", arg, len(pos))
	}
	var found *kgo.Record
	err = partitions.Read(ctx, cfg.Kafka, o.filter.topic, positionRanges(pos), func(rec *kgo.Record) error {
		if found == nil && slices.Contains(pos[rec.Partition], rec.Offset) {
			found = rec
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", o.filter.topic, err)
	}
	if found == nil {
		return fmt.Errorf("dead letter %s was not found on %s (compacted or removed by retention)", arg, o.filter.topic)
	}
	s := ShownDeadLetter{DeadLetter: readDeadLetter(found), Headers: []Header{}}
	for _, h := range found.Headers {
		s.Headers = append(s.Headers, Header{Key: printable(h.Key), Value: printable(string(h.Value))})
	}
	if ev, err := auditevent.DecodeRecord(sourceRecord(found)); err != nil {
		s.DecodeError = describe(err)
		if utf8.Valid(found.Value) {
			s.Value = string(found.Value)
		} else {
			s.ValueBase64 = base64.StdEncoding.EncodeToString(found.Value)
		}
	} else {
		s.Event = auditevent.EncodeJSON(ev)
	}
	return report(g.env.Stdout, o.output, s, s.writeText)
}

func (s ShownDeadLetter) writeText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "position:  %s\ntimestamp: %s\nkey:       %s\nheaders:\n", s.Position, s.Timestamp.Format(time.RFC3339Nano), s.Key)
	for _, h := range s.Headers {
		fmt.Fprintf(&b, "  %s: %s\n", h.Key, h.Value)
	}
	switch {
	case s.Event != nil:
		b.WriteString("event:\n  ")
		if err := json.Indent(&b, s.Event, "  ", "  "); err != nil {
			return err
		}
		b.WriteString("\n")
	case s.ValueBase64 != "":
		fmt.Fprintf(&b, "value does not decode: %s\nvalue (base64): %s\n", s.DecodeError, s.ValueBase64)
	default:
		fmt.Fprintf(&b, "value does not decode: %s\nvalue: %s\n", s.DecodeError, strconv.Quote(s.Value))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// --- redrive

type dlqRedriveOptions struct {
	filter       dlqFilter
	all          bool
	dryRun       bool
	toTopic      string
	destination  string
	destinations string
	output       outputFlag
}

func newDLQRedriveCommand(g *globals) *cobra.Command {
	o := dlqRedriveOptions{output: outputText}
	cmd := &cobra.Command{
		Use:   "redrive [POSITION...] [--all]",
		Short: "Send dead letters back to the event topic or through a connection",
		Long: `redrive sends the selected dead letters again: the ones named by position
(0:12 2:7, or 0:12,2:7) or, with --all, every dead letter that the filters
select. Each is decoded first with today's codec; one that still does not
decode is not sent, and is reported with its reason.

By default an event goes back to the event topic (kafka.topics.events.name),
with its id kept, so every consumer reads it again: forwarders that already
delivered it deliver it again. With --destination it goes only through that
connection's sink instead, as replay sends it (same batching and retries),
and only when the event's account routes to that connection.

The dead letters stay on the dead-letter topic; redriving the same one twice
sends it twice. --dry-run shows what would be sent and sends nothing. The
exit status is non-zero when any selected dead letter was not sent.`,
		Example: `  auditctl dlq redrive 0:12 0:13 --dry-run
  auditctl dlq redrive --all --forwarder datadog --reason rejected
  auditctl dlq redrive 2:7 --destination dd-acme --config datadog-forwarder.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.all == (len(args) > 0) {
				return errors.New("name the dead letters to redrive (partition:offset ...) or give --all, not both")
			}
			if cmd.Flags().Changed("to-topic") && o.toTopic == "" {
				return errors.New("--to-topic must not be empty")
			}
			if o.destination != "" && cmd.Flags().Changed("to-topic") {
				return errors.New("--to-topic and --destination exclude each other")
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := o.filter.resolve(cmd, cfg); err != nil {
				return err
			}
			if o.toTopic == "" {
				o.toTopic = cfg.Kafka.Topics.Events.Name
			}
			return dlqRedrive(cmd.Context(), g, cfg, o, args)
		},
	}
	o.filter.flags(cmd)
	f := cmd.Flags()
	f.BoolVar(&o.all, "all", false, "redrive every dead letter the filters select")
	f.BoolVar(&o.dryRun, "dry-run", false, "show what would be sent; send nothing")
	f.StringVar(&o.toTopic, "to-topic", "", "topic to send events back to (default kafka.topics.events.name, audit.events)")
	f.StringVar(&o.destination, "destination", "", "send through this connection of the destinations file instead of to the topic")
	f.StringVar(&o.destinations, "destinations", "", "destinations file (default destinations.file of --config)")
	f.VarP(&o.output, "output", "o", "text or json")
	return cmd
}

// Redriven is the outcome of one dead letter.
type Redriven struct {
	Position string `json:"position"`
	EventID  string `json:"event_id,omitempty"`
	Account  string `json:"account,omitempty"`
	// Sent is true when the event went out (or would, in a dry run).
	Sent  bool   `json:"sent"`
	Error string `json:"error,omitempty"`
}

// RedriveReport is what redrive prints.
type RedriveReport struct {
	Topic  string     `json:"topic"`
	To     string     `json:"to"`
	DryRun bool       `json:"dry_run"`
	Sent   int        `json:"sent"`
	Failed int        `json:"failed"`
	Items  []Redriven `json:"items"`
}

// redriveItem is one decoded dead letter waiting to be sent.
type redriveItem struct {
	index int // in the report's Items
	ev    *auditlogv1.AuditEvent
	time  time.Time
}

func dlqRedrive(ctx context.Context, g *globals, cfg *Config, o dlqRedriveOptions, args []string) error {
	var dest *replay.Destination
	if o.destination != "" {
		if o.destinations == "" {
			o.destinations = cfg.Destinations.File
		}
		var err error
		if dest, err = g.openDestination(ctx, cfg, o.destinations, o.destination); err != nil {
			return err
		}
	}
	cl, bounds, err := openDLQ(ctx, g, cfg, o.filter.topic)
	if err != nil {
		return err
	}
	defer cl.Close()
	ranges, pos := bounds, map[int32][]int64(nil)
	if !o.all {
		if pos, err = parsePositions(args, bounds, o.filter.topic); err != nil {
			return err
		}
		ranges = positionRanges(pos)
	}
	to := o.toTopic
	if dest != nil {
		to = "connection " + dest.Name
	} else if !o.dryRun {
		if err := checkTopics(ctx, g, kadm.NewClient(cl), o.toTopic); err != nil {
			return err
		}
	}
	// Through a connection, an event goes as live delivery would send it:
	// through the connection's filter and redaction, unless the dead
	// letter holds it in this very policy's form already.
	var policy *eventfilter.Policy
	if dest != nil {
		if policy, err = dest.Policy(); err != nil {
			return err
		}
	}
	rep := RedriveReport{Topic: o.filter.topic, To: to, DryRun: o.dryRun, Items: []Redriven{}}
	var items []redriveItem
	err = partitions.Read(ctx, cfg.Kafka, o.filter.topic, ranges, func(rec *kgo.Record) error {
		if pos != nil && !slices.Contains(pos[rec.Partition], rec.Offset) {
			return nil
		}
		d := readDeadLetter(rec)
		if pos == nil && !o.filter.match(d) {
			return nil
		}
		r := Redriven{Position: d.Position}
		letter := deadletter.Read(rec)
		ev, err := auditevent.DecodeRecord(letter.Source)
		out, keep := ev, true
		if err == nil && dest != nil {
			// a filter that cannot decide keeps the event, as live delivery does
			out, keep, _ = policy.ApplyTo(ev, letter.Policy)
		}
		if err != nil {
			r.Error = "does not decode: " + describe(err)
		} else {
			r.EventID, r.Account = ev.GetId(), auditevent.AccountID(ev)
			if dest != nil && !dest.Routes(r.Account) {
				r.Error = fmt.Sprintf("account %s does not route to connection %s", r.Account, dest.Name)
			} else if !keep {
				r.Error = fmt.Sprintf("connection %s's filter excludes it", dest.Name)
			} else {
				items = append(items, redriveItem{index: len(rep.Items), ev: out, time: auditevent.EventTime(ev, rec)})
			}
		}
		rep.Items = append(rep.Items, r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", o.filter.topic, err)
	}
	if len(pos) > 0 && len(rep.Items) < countPositions(pos) {
		return fmt.Errorf("only %d of the %d dead letters named were found on %s (compacted or removed by retention)", len(rep.Items), countPositions(pos), o.filter.topic)
	}
	switch {
	case o.dryRun:
		for _, it := range items {
			rep.Items[it.index].Sent = true
		}
	case dest != nil:
		err = redriveThrough(ctx, cfg, dest, items, &rep)
	default:
		err = redriveToTopic(ctx, cl, o.toTopic, items, &rep)
	}
	if err != nil {
		return err
	}
	for _, it := range rep.Items {
		if it.Sent {
			rep.Sent++
		} else {
			rep.Failed++
		}
	}
	if err := report(g.env.Stdout, o.output, rep, rep.writeText); err != nil {
		return err
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d of %d dead letters not redriven", rep.Failed, len(rep.Items))
	}
	return nil
}

func countPositions(pos map[int32][]int64) int {
	n := 0
	for _, os := range pos {
		n += len(os)
	}
	return n
}

// redriveToTopic writes each event back to topic as a new record, its id
// kept, and waits for every write.
func redriveToTopic(ctx context.Context, cl *kgo.Client, topic string, items []redriveItem, rep *RedriveReport) error {
	var recs []*kgo.Record
	var idx []int
	for _, it := range items {
		rec, err := auditevent.NewRecord(topic, it.ev)
		if err != nil {
			rep.Items[it.index].Error = "encode: " + err.Error()
			continue
		}
		recs = append(recs, rec)
		idx = append(idx, it.index)
	}
	results := cl.ProduceSync(ctx, recs...)
	for i, r := range results {
		if r.Err != nil {
			rep.Items[idx[i]].Error = fmt.Sprintf("write to %s: %v", topic, r.Err)
			continue
		}
		rep.Items[idx[i]].Sent = true
	}
	return nil
}

// redriveThrough delivers each event through the destination's sink with
// the delivery settings of the config, as replay does.
func redriveThrough(ctx context.Context, cfg *Config, dest *replay.Destination, items []redriveItem, rep *RedriveReport) error {
	sink, err := dest.NewSink()
	if err != nil {
		return err
	}
	so := senderOptions(cfg, 0, DefaultRetryBudget, false)
	so.Connection, so.Sink = dest.Name, sink
	index := map[string]int{} // position → item in the report
	for _, it := range items {
		index[rep.Items[it.index].Position] = it.index
	}
	sender := replay.Start(ctx, so, func(o replay.Outcome) {
		i := index[o.Position]
		if o.Err != nil {
			rep.Items[i].Error = "rejected: " + o.Err.Error()
			return
		}
		rep.Items[i].Sent = true
	})
	for _, it := range items {
		pos := rep.Items[it.index].Position
		if err := sender.Send(replay.Item{Event: it.ev, Account: auditevent.AccountID(it.ev), Time: it.time, Position: pos}); err != nil {
			break
		}
	}
	if err := sender.Close(); err != nil {
		return fmt.Errorf("redrive through connection %s: %w", dest.Name, err)
	}
	return nil
}

func (r RedriveReport) writeText(w io.Writer) error {
	var b bytes.Buffer
	verb := "sent"
	if r.DryRun {
		verb = "would send"
	}
	for _, it := range r.Items {
		if it.Sent {
			fmt.Fprintf(&b, "%s  %s event %s of %s to %s\n", it.Position, verb, it.EventID, it.Account, r.To)
		} else {
			fmt.Fprintf(&b, "%s  not redriven: %s\n", it.Position, it.Error)
		}
	}
	if r.DryRun {
		fmt.Fprintf(&b, "dry run: %d would be sent to %s, %d would not; nothing sent\n", r.Sent, r.To, r.Failed)
	} else {
		fmt.Fprintf(&b, "redriven %d to %s, not redriven %d\n", r.Sent, r.To, r.Failed)
	}
	_, err := w.Write(b.Bytes())
	return err
}
