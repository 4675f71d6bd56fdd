// Package producer publishes audit events straight to the auditstream topic
// from Go, with the same preparation, validation and record format as the
// ingest service: a Go producer that uses it needs no HTTP hop.
//
//	cl, _ := kgo.NewClient(kgo.SeedBrokers("kafka:9092"))  // acks=all, idempotent by default
//	p := producer.New(cl, producer.DefaultTopic)
//	res, err := p.Publish(ctx, events)
package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/internal/unchecked"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultTopic is the topic auditstream reads events from.
const DefaultTopic = "audit.events"

// Producer writes audit events to Kafka. It is safe for concurrent use.
type Producer struct {
	client *kgo.Client
	topic  string
	now    func() time.Time
}

// New returns a Producer writing to topic through client. The client should
// keep franz-go's defaults of acks=all and idempotent writes: Publish reports
// an event written only when every in-sync replica has it.
func New(client *kgo.Client, topic string) *Producer {
	return &Producer{client: client, topic: topic, now: time.Now}
}

// Prepare masks tokens, assigns ids and timestamps, and validates every
// event, changing them in place. It stops at nothing: the returned errors
// (one *auditevent.FieldError per bad event, with its index) let a caller
// reject a whole request before anything is written.
func Prepare(events []*auditlogv1.AuditEvent, now time.Time, opts ...Option) []error {
	validate := auditevent.Validate
	if newOptions(opts).fromJSON {
		validate = unchecked.Validate
	}
	return prepare(events, now, validate)
}

// An Option tells Prepare, Publish and PublishPrepared more about a batch.
// Give PublishPrepared the options the batch was prepared with.
type Option func(*options)

type options struct {
	fromJSON bool
}

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// FromJSON says every event of the batch is as auditevent.DecodeJSON or
// auditevent.DecodeJSONObject returned it, changed by nothing but Prepare
// since. Their strings are then valid UTF-8 (the decoder refuses anything
// else, and Prepare keeps it so), so that check, a good part of validation's
// cost, is not run again; every other rule is. A batch with any other event
// must go without it: an invalid string would reach the topic and be
// dead-lettered by every consumer instead of refused here.
func FromJSON() Option {
	return func(o *options) { o.fromJSON = true }
}

func prepare(events []*auditlogv1.AuditEvent, now time.Time, validate func(*auditlogv1.AuditEvent) error) []error {
	var errs []error
	for i, ev := range events {
		if ev == nil {
			errs = append(errs, &auditevent.FieldError{Index: i, Reason: auditevent.ReasonRequired, Message: "event is null"})
			continue
		}
		if err := auditevent.Prepare(ev, now); err != nil {
			errs = append(errs, fmt.Errorf("event %d: %w", i, err))
			continue
		}
		if err := validate(ev); err != nil {
			var fe *auditevent.FieldError
			if errors.As(err, &fe) {
				err = fe.AtIndex(i)
			}
			errs = append(errs, err)
		}
	}
	return errs
}

// Result is the outcome of one Publish: for each event, in order, its id and
// the error that kept it from Kafka (nil when Kafka acknowledged it).
type Result struct {
	IDs    []string
	Errors []error
}

// Written returns the ids Kafka acknowledged.
func (r Result) Written() []string { return r.pick(true) }

// Failed returns the ids that were not written.
func (r Result) Failed() []string { return r.pick(false) }

// FirstError returns the first per-event error, or nil.
func (r Result) FirstError() error {
	for _, err := range r.Errors {
		if err != nil {
			return err
		}
	}
	return nil
}

func (r Result) pick(written bool) []string {
	var ids []string
	for i, err := range r.Errors {
		if (err == nil) == written {
			ids = append(ids, r.IDs[i])
		}
	}
	return ids
}

// ErrInvalid wraps the validation errors of a Publish that wrote nothing.
var ErrInvalid = errors.New("invalid audit events")

// Publish prepares and validates every event, then writes them all and waits
// for Kafka's acknowledgement of each. If any event is invalid nothing is
// written and the error wraps ErrInvalid. Otherwise the Result tells, event
// by event, what was written; the error is the first write failure, if any.
// Retrying the failed events with the same ids is safe: consumers drop
// repeated ids.
func (p *Producer) Publish(ctx context.Context, events []*auditlogv1.AuditEvent, opts ...Option) (Result, error) {
	if errs := Prepare(events, p.now(), opts...); len(errs) > 0 {
		return Result{}, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return p.PublishPrepared(ctx, events, opts...)
}

// PublishPrepared writes events already passed through Prepare, with the
// same options, without errors.
func (p *Producer) PublishPrepared(ctx context.Context, events []*auditlogv1.AuditEvent, opts ...Option) (Result, error) {
	newRecord := auditevent.NewRecord
	if newOptions(opts).fromJSON {
		newRecord = unchecked.NewRecord
	}
	return p.publish(ctx, events, newRecord)
}

func (p *Producer) publish(ctx context.Context, events []*auditlogv1.AuditEvent, newRecord func(string, *auditlogv1.AuditEvent) (*kgo.Record, error)) (Result, error) {
	res := Result{IDs: make([]string, len(events)), Errors: make([]error, len(events))}
	var wg sync.WaitGroup
	for i, ev := range events {
		res.IDs[i] = ev.GetId()
		rec, err := newRecord(p.topic, ev)
		if err != nil {
			res.Errors[i] = err
			continue
		}
		wg.Add(1)
		p.client.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				res.Errors[i] = fmt.Errorf("write event %s to %s: %w", ev.GetId(), p.topic, err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	return res, res.FirstError()
}
