package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/auditctl/internal/partitions"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// MaxRejectedListed bounds the rejected events a Summary lists; the rest
// are counted.
const MaxRejectedListed = 1000

// Options describe one replay.
type Options struct {
	Kafka kafka.Config
	Topic string
	// From and To bound the events replayed by their own timestamp,
	// [From, To).
	From, To time.Time
	// Grace widens the range of records read on both sides, by their Kafka
	// timestamp, to catch events written a little after (or before) they
	// happened.
	Grace time.Duration
	// Accounts, when set, are the only accounts replayed.
	Accounts []string
	Dest     *Destination
	// Sender's Sink and Connection are set by Run.
	Sender SenderOptions
	// Warn receives one line about each record that is not a valid event.
	Warn func(msg string)
}

// Validate checks the options that do not need Kafka.
func (o *Options) Validate() error {
	if !o.From.Before(o.To) {
		return fmt.Errorf("--from (%s) must be before --to (%s)", o.From.Format(time.RFC3339Nano), o.To.Format(time.RFC3339Nano))
	}
	for _, a := range o.Accounts {
		if !o.Dest.Routes(a) {
			return fmt.Errorf("account %s does not route to connection %s in %s: replay sends an account's events only to its own connections", a, o.Dest.Name, o.Dest.File)
		}
	}
	return nil
}

// Summary is what a replay did.
type Summary struct {
	Destination string     `json:"destination"`
	Type        string     `json:"type"`
	Topic       string     `json:"topic"`
	From        time.Time  `json:"from"`
	To          time.Time  `json:"to"`
	Accounts    []string   `json:"accounts,omitempty"`
	DryRun      bool       `json:"dry_run"`
	Partitions  []Assigned `json:"partitions"`
	// Records is the number of records read.
	Records int64 `json:"records"`
	// Matched events are in the time range, of a selected account that
	// routes to the destination, and kept by its filter; each is then
	// delivered, rejected, or (when the replay stopped early) neither.
	Matched   int64                     `json:"matched"`
	Delivered int64                     `json:"delivered"`
	Rejected  int64                     `json:"rejected"`
	ByAccount map[string]*AccountCounts `json:"by_account"`
	Skipped   Skipped                   `json:"skipped"`
	// AtRisk counts events sent to Datadog older than its 18 h window,
	// which Datadog may not index.
	AtRisk         int64           `json:"older_than_datadog_window,omitempty"`
	RejectedEvents []RejectedEvent `json:"rejected_events"`
	Duration       float64         `json:"duration_seconds"`
	// FilterErrors counts events the destination's filter could not decide
	// on; they were sent, as live delivery sends them.
	FilterErrors int64 `json:"filter_errors,omitempty"`
	// Error is why the replay stopped early, if it did.
	Error string `json:"error,omitempty"`
}

// Assigned is the range of one partition a replay reads.
type Assigned struct {
	Partition int32 `json:"partition"`
	partitions.Range
}

// AccountCounts are one account's events.
type AccountCounts struct {
	Matched   int64 `json:"matched"`
	Delivered int64 `json:"delivered"`
	Rejected  int64 `json:"rejected"`
}

// Skipped counts the records read and not sent, by why.
type Skipped struct {
	OutsideTimeRange int64 `json:"outside_time_range"`
	OtherAccounts    int64 `json:"other_accounts"`
	NotRouted        int64 `json:"not_routed"`
	Undecodable      int64 `json:"undecodable"`
	// Filtered events are ones the destination's filter leaves out, as live
	// delivery does.
	Filtered int64 `json:"filtered"`
}

// RejectedEvent is one event the destination refused for good.
type RejectedEvent struct {
	Position string `json:"position"`
	EventID  string `json:"event_id"`
	Account  string `json:"account"`
	Error    string `json:"error"`
}

// Progress is how far a running replay is; safe to read at any time.
type Progress struct {
	// Total is the number of records in the ranges read.
	Total int64
	// Done counts records finished: skipped, delivered or rejected.
	Done      atomic.Int64
	Delivered atomic.Int64
}

// Replay is one replay run.
type Replay struct {
	o        Options
	policy   *eventfilter.Policy // the destination's filter and redaction
	ranges   map[int32]partitions.Range
	progress *Progress

	mu  sync.Mutex
	sum Summary
}

// Plan finds the offsets of the time range (widened by Grace) on every
// partition of the topic.
func Plan(ctx context.Context, adm *kadm.Client, o Options) (*Replay, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ranges, err := partitions.Between(ctx, adm, o.Topic, o.From.Add(-o.Grace), o.To.Add(o.Grace))
	if err != nil {
		return nil, err
	}
	r := &Replay{o: o, ranges: ranges, progress: &Progress{Total: partitions.Total(ranges)}}
	r.sum = Summary{Destination: o.Dest.Name, Type: o.Dest.Type, Topic: o.Topic, From: o.From.UTC(), To: o.To.UTC(),
		Accounts: o.Accounts, DryRun: o.Sender.DryRun, ByAccount: map[string]*AccountCounts{}, RejectedEvents: []RejectedEvent{}}
	for _, p := range sortedPartitions(ranges) {
		r.sum.Partitions = append(r.sum.Partitions, Assigned{Partition: p, Range: ranges[p]})
	}
	return r, nil
}

// Progress is the running replay's progress.
func (r *Replay) Progress() *Progress { return r.progress }

// Run reads the ranges and delivers the matching events. The Summary tells
// what happened even when Run returns an error.
func (r *Replay) Run(ctx context.Context) (Summary, error) {
	start := time.Now()
	so := r.o.Sender
	so.Connection = r.o.Dest.Name
	var err error
	if r.policy, err = r.o.Dest.Policy(); err != nil {
		return r.summary(start, err), err
	}
	if so.Sink, err = r.o.Dest.NewSink(); err != nil {
		return r.summary(start, err), err
	}
	sender := Start(ctx, so, r.outcome)
	readErr := partitions.Read(ctx, r.o.Kafka, r.o.Topic, r.ranges, func(rec *kgo.Record) error {
		return r.handle(rec, sender)
	})
	sendErr := sender.Close()
	err = sendErr
	if err == nil && readErr != nil {
		err = fmt.Errorf("read %s: %w", r.o.Topic, readErr)
	}
	if err == nil {
		err = ctx.Err()
	}
	return r.summary(start, err), err
}

func (r *Replay) summary(start time.Time, err error) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sum
	s.Duration = time.Since(start).Seconds()
	if err != nil {
		s.Error = err.Error()
	}
	return s
}

// handle decides about one record and hands a matching event on.
func (r *Replay) handle(rec *kgo.Record, sender *Sender) error {
	ev, err := auditevent.DecodeRecord(rec)
	r.mu.Lock()
	r.sum.Records++
	skip := func(n *int64) error {
		*n++
		r.mu.Unlock()
		r.progress.Done.Add(1)
		return nil
	}
	if err != nil {
		if r.o.Warn != nil {
			r.o.Warn(fmt.Sprintf("skipping record at partition %d offset %d: %s", rec.Partition, rec.Offset, describe(err)))
		}
		return skip(&r.sum.Skipped.Undecodable)
	}
	t := auditevent.EventTime(ev, rec)
	if t.Before(r.o.From) || !t.Before(r.o.To) {
		return skip(&r.sum.Skipped.OutsideTimeRange)
	}
	account := auditevent.AccountID(ev)
	if len(r.o.Accounts) > 0 && !slices.Contains(r.o.Accounts, account) {
		return skip(&r.sum.Skipped.OtherAccounts)
	}
	if !r.o.Dest.Routes(account) {
		return skip(&r.sum.Skipped.NotRouted)
	}
	// What live delivery applies, through the same function: the replayed
	// events reach the destination only if, and only as, they would live.
	ev, keep, ferr := r.policy.Apply(ev)
	if ferr != nil {
		r.sum.FilterErrors++
	}
	if !keep {
		return skip(&r.sum.Skipped.Filtered)
	}
	r.sum.Matched++
	r.account(account).Matched++
	r.mu.Unlock()
	return sender.Send(Item{Event: ev, Account: account, Time: t, Position: fmt.Sprintf("%s/%d@%d", rec.Topic, rec.Partition, rec.Offset)})
}

// outcome counts what became of a sent event.
func (r *Replay) outcome(o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.account(o.Account)
	if o.Err == nil {
		r.sum.Delivered++
		c.Delivered++
		r.progress.Delivered.Add(1)
		if !r.o.Sender.DryRun && r.o.Dest.AtRisk(o.Time, time.Now()) {
			r.sum.AtRisk++
		}
	} else {
		r.sum.Rejected++
		c.Rejected++
		if len(r.sum.RejectedEvents) < MaxRejectedListed {
			r.sum.RejectedEvents = append(r.sum.RejectedEvents, RejectedEvent{Position: o.Position, EventID: o.Event.GetId(), Account: o.Account, Error: o.Err.Error()})
		}
	}
	r.progress.Done.Add(1)
}

func (r *Replay) account(a string) *AccountCounts {
	c := r.sum.ByAccount[a]
	if c == nil {
		c = &AccountCounts{}
		r.sum.ByAccount[a] = c
	}
	return c
}

func sortedPartitions(m map[int32]partitions.Range) []int32 {
	ps := make([]int32, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
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
