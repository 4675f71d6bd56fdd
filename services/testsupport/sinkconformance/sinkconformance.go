// Package sinkconformance is the forwarders' end-to-end and fault suite,
// written once for every sink as storetest is for stores. A forwarder runs
// it with an Adapter for its protocol fake: how to point a connection at
// the fake, how to make it fail (server errors, throttling, a refused
// connection, entries refused for good, slowness) and how to read what it
// accepted. A new forwarder gets the whole fault set by writing one.
//
// Every scenario runs the real forwarder (forwarding.Run, or its binary)
// against a kfake broker and the fake over 127.0.0.1 sockets.
//
// Most scenarios run for every forwarder (scenarios). Those that need a
// destination feature not every destination has run only for the
// adapters that opt in, and Run logs the ones it leaves out and why:
//   - retryAfterScenarios need Adapter.RetryAfter and a RetryAfterFake: a
//     destination that tells a throttled sender when to come back (HTTP
//     429 with Retry-After; Datadog, OTLP). EventBridge gives no such hint.
package sinkconformance

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Entry is what the suite reads of an accepted entry.
type Entry struct {
	ID      string // the event's id
	Account string // the event's account id
	// Email and IP are the event's actor email and request IP address as
	// the entry carries them (nil when absent), for the redaction checks.
	Email, IP any
	// Raw is the entry as the destination received it.
	Raw string
}

// Failures counts the requests a fake answered with a failure, or whose
// answer the forwarder did not wait for.
type Failures struct {
	ServerErrors int // answered with a server error (ServerErrors)
	Throttled    int // answered as throttled (Throttle)
	Abandoned    int // given up on by the client before the answer
	Other        int // answered with any other failure
}

// Fake is one protocol fake as the suite drives it. Connections are told
// apart by name: the fake keeps what it accepted per connection name.
type Fake interface {
	// Connection returns connection name's entry of the destinations
	// file's connections map (lines indented by two spaces), a connection
	// to this fake whose requests time out after timeout. It may write
	// secret files into dir.
	Connection(name, dir string, timeout time.Duration) string
	// Accepted returns the entries the fake accepted for connection name,
	// in the order it accepted them, duplicates included.
	Accepted(name string) []Entry
	// AcceptedCount is len(Accepted(name)) without decoding the entries:
	// what the scenarios poll while delivery is under way, where decoding
	// thousands of entries a poll (slow under -race) let a whole backlog be
	// delivered between a poll that saw a part of it and the kill.
	AcceptedCount(name string) int
	// ServerErrors answers the next n requests with a server error.
	ServerErrors(n int)
	// Throttle answers the next n requests as throttled (rate limited).
	Throttle(n int)
	// Refuse refuses every request of connection name for a reason a
	// customer fixes (a revoked key, a denied bus): the forwarder parks.
	Refuse(name string)
	// Allow undoes Refuse.
	Allow(name string)
	// RejectAction refuses for good every entry whose event has action;
	// the rest of a request is accepted or can be.
	RejectAction(action string)
	// Slow delays every answer by d (0 stops it).
	Slow(d time.Duration)
	// MaxInFlight is the most requests the fake answered at once.
	MaxInFlight() int
	// Failures counts the failed and abandoned requests so far.
	Failures() Failures
	// CheckRequests fails t if a request the fake took broke a rule of
	// the destination (its size limits, its signature).
	CheckRequests(t *testing.T)
}

// RetryAfterFake is a Fake whose destination tells a throttled sender
// when to come back, for retryAfterScenarios.
type RetryAfterFake interface {
	Fake
	// ThrottleRetryAfter answers the next n requests as throttled, asking
	// the sender to come back after d (whole seconds).
	ThrottleRetryAfter(n int, d time.Duration)
	// Answers returns every request the fake answered (or found its
	// client gone), in the order it did.
	Answers() []Answer
}

// Answer is one request as a RetryAfterFake answered it.
type Answer struct {
	At        time.Time // when the answer was written
	Throttled bool      // answered as throttled
	Accepted  bool      // accepted (whole, or but for entries refused for good)
}

// Adapter is what a forwarder hands the suite.
type Adapter struct {
	// Spec is the forwarder's; DefaultConfig its default configuration.
	Spec          forwarding.Spec
	DefaultConfig forwarding.Config
	// NewFake starts a fake, closed at the end of the test.
	NewFake func(t *testing.T) Fake
	// RejectedError is what the dead-letter error header of an entry
	// refused by RejectAction holds (the destination's code).
	RejectedError string
	// OversizeReason and OversizeError are the dead-letter reason and a
	// part of the error of an event over every limit of the destination
	// (default encode_failed and entry_too_large: the encoder refuses it).
	OversizeReason, OversizeError string
	// Binary is the forwarder's main package, relative to the test's
	// directory ("../.."), for the scenarios that kill the process.
	Binary string
	// DuplicateWindow bounds the duplicates after a kill -9 of a process
	// with max_inflight_bytes inflightBytes: what the cap lets be out plus
	// what finishes between two commits.
	DuplicateWindow func(inflightBytes int) int
	// RetryAfter says the destination tells a throttled sender when to
	// come back and the sink honours it: NewFake returns a RetryAfterFake
	// and retryAfterScenarios run. Every scenario checks that the fake
	// agrees.
	RetryAfter bool
}

// BatchRequestWindow is the DuplicateWindow of a sink that sends a batch
// in one request: what max_inflight_bytes lets be out (encoded test
// records of about entryBytes each), plus requestsInFlight batches of 200
// for each of the 4 rounds that can finish between two commits (a 50 ms
// commit interval and its own round trip, against the suite's 20 ms fake).
func BatchRequestWindow(entryBytes, requestsInFlight int) func(inflightBytes int) int {
	return func(inflightBytes int) int { return inflightBytes/entryBytes + requestsInFlight*4*200 }
}

// StatusFailures is Failures of requests answered over HTTP with
// status(r): serverError counts as a server error, 429 as throttled, 0
// (no answer) as abandoned, ok as no failure and any other as other.
func StatusFailures[R any](requests []R, status func(R) int, serverError, ok int) Failures {
	var out Failures
	for _, r := range requests {
		switch status(r) {
		case serverError:
			out.ServerErrors++
		case http.StatusTooManyRequests:
			out.Throttled++
		case 0:
			out.Abandoned++
		case ok:
		default:
			out.Other++
		}
	}
	return out
}

// RetryAfterHeader is the header of an HTTP 429 asking the sender to come
// back after d, in whole seconds (RFC 9110 delay-seconds).
func RetryAfterHeader(d time.Duration) http.Header {
	return http.Header{"Retry-After": {strconv.Itoa(int(d.Round(time.Second) / time.Second))}}
}

// StatusAnswers is Answers of requests answered over HTTP with status(r)
// at at(r): 429 is throttled and ok accepted.
func StatusAnswers[R any](requests []R, status func(R) int, at func(R) time.Time, ok int) []Answer {
	out := make([]Answer, 0, len(requests))
	for _, r := range requests {
		out = append(out, Answer{At: at(r), Throttled: status(r) == http.StatusTooManyRequests, Accepted: status(r) == ok})
	}
	return out
}

// Run runs every scenario of the suite the adapter opts into as a subtest,
// and logs those it does not run.
func Run(t *testing.T, a Adapter) {
	run := scenarios
	if a.RetryAfter {
		run = append(slices.Clip(run), retryAfterScenarios...)
	} else {
		for _, s := range retryAfterScenarios {
			t.Logf("not run: %s (the destination gives no Retry-After; Adapter.RetryAfter is unset)", s.name)
		}
	}
	for _, s := range run {
		t.Run(s.name, func(t *testing.T) { s.run(t, a) })
	}
}

// scenario is one scenario of the suite, run as a subtest of its name.
type scenario struct {
	name string
	run  func(*testing.T, Adapter)
}

// scenarios run for every adapter.
var scenarios = []scenario{
	{"EndToEndEveryEventReachesExactlyItsAccountsConnections", testEndToEnd},
	{"DestinationsReloadWithoutRestart", testReload},
	{"ServerErrorAndThrottleStormThenRecovery", testStorm},
	{"RefusedConnectionDoesNotStallOtherAccounts", testRefused},
	{"PoisonRecordsAreDeadLettered", testPoison},
	{"RejectedEntriesAreDeadLettered", testRejected},
	{"OversizedEventIsDeadLetteredWithReason", testOversized},
	{"SlowDestinationTimesOutAndRetries", testSlow},
	{"TwoInstancesWithRebalanceLoseNothing", testRebalance},
	{"KilledMidBatchLosesNothing", testKilled},
	{"FiltersAndRedactionPerConnection", testPolicy},
}

// retryAfterScenarios run for an adapter with RetryAfter set.
var retryAfterScenarios = []scenario{
	{"RateLimitedWithRetryAfterBacksOffAndDelivers", testRetryAfter},
}

// Pipeline is a broker, a fake and the forwarder's config pointing at
// both, over real sockets on ephemeral ports: what the suite's scenarios
// and a forwarder's own tests run against.
type Pipeline struct {
	*forwardingtest.Pipeline
	Spec forwarding.Spec
	Fake Fake
	// Timeout is the connections' timeout for one request (2s, so that
	// fault tests give up on a slow fake quickly).
	Timeout time.Duration
}

// NewPipeline is a Pipeline for the forwarder of spec, starting from cfg,
// against fake.
func NewPipeline(t *testing.T, spec forwarding.Spec, cfg forwarding.Config, fake Fake) *Pipeline {
	t.Helper()
	return &Pipeline{Pipeline: forwardingtest.NewPipeline(t, cfg), Spec: spec, Fake: fake, Timeout: 2 * time.Second}
}

// WriteRoutes writes the destinations file: account → connection names,
// each a connection to the fake (Fake.Connection).
func (p *Pipeline) WriteRoutes(routes map[string][]string) {
	p.T.Helper()
	WriteRoutes(p.Pipeline, p.Fake, p.Timeout, routes)
}

// WriteRoutes writes p's destinations file: account → connection names,
// each a connection to fake whose requests time out after timeout.
func WriteRoutes(p *forwardingtest.Pipeline, fake Fake, timeout time.Duration, routes map[string][]string) {
	p.T.Helper()
	var b strings.Builder
	conns := map[string]bool{}
	b.WriteString("routes:\n")
	for _, acc := range sortedKeys(routes) {
		fmt.Fprintf(&b, "  - account: %q\n    connections: [%s]\n", acc, strings.Join(routes[acc], ", "))
		for _, n := range routes[acc] {
			conns[n] = true
		}
	}
	if len(conns) == 0 {
		p.WriteDestinations("connections: {}\nroutes: []\n")
		return
	}
	b.WriteString("connections:\n")
	for _, n := range sortedKeys(conns) {
		b.WriteString(fake.Connection(n, p.DestDir, timeout))
	}
	p.WriteDestinations(b.String())
}

// StartForwarder runs the forwarder in this process until stop.
func (p *Pipeline) StartForwarder() (stop func()) {
	p.T.Helper()
	return p.Start(p.Spec)
}

// PublishEvents writes n test events for each account and returns their
// ids by account; change, when set, alters each event first.
func (p *Pipeline) PublishEvents(accounts []string, n int, change func(i int, ev *auditlogv1.AuditEvent)) map[string][]string {
	p.T.Helper()
	return p.Publish(accounts, n, forwardingtest.TestEvents(change))
}

// Received returns the event ids and accounts of the entries the fake
// accepted for connection name, in the order it accepted them.
func (p *Pipeline) Received(name string) (ids, accounts []string) {
	for _, e := range p.Fake.Accepted(name) {
		ids = append(ids, e.ID)
		accounts = append(accounts, e.Account)
	}
	return ids, accounts
}

// IDs is the ids of the entries the fake accepted for connection name.
func (p *Pipeline) IDs(name string) []string {
	ids, _ := p.Received(name)
	return ids
}

// pipeline is a Pipeline for a scenario of the suite.
type pipeline struct {
	*Pipeline
	a Adapter
}

func newPipeline(t *testing.T, a Adapter) *pipeline {
	t.Helper()
	f := a.NewFake(t)
	if _, ok := f.(RetryAfterFake); ok != a.RetryAfter {
		t.Fatalf("Adapter.RetryAfter is %t, but the fake (%T) is a RetryAfterFake: %t", a.RetryAfter, f, ok)
	}
	return &pipeline{Pipeline: NewPipeline(t, a.Spec, a.DefaultConfig, f), a: a}
}

// ids is the ids of the entries the fake accepted for name.
func ids(f Fake, name string) []string {
	var out []string
	for _, e := range f.Accepted(name) {
		out = append(out, e.ID)
	}
	return out
}

// count is how many entries the fake accepted for name.
func count(f Fake, name string) int { return f.AcceptedCount(name) }

// distinct is how many events the fake accepted for name, each once.
func distinct(f Fake, name string) int { return len(forwardingtest.Counts(ids(f, name))) }

func recordEventID(t *testing.T, rec *kgo.Record) string {
	t.Helper()
	ev, err := auditevent.DecodeRecord(rec)
	if err != nil {
		t.Fatalf("record does not decode: %v", err)
	}
	return ev.GetId()
}

func all(byAccount ...map[string][]string) []string {
	var out []string
	for _, m := range byAccount {
		for _, acc := range sortedKeys(m) {
			out = append(out, m[acc]...)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// produce writes raw records to the events topic.
func (p *pipeline) produce(recs ...*kgo.Record) {
	p.T.Helper()
	if err := p.Cluster.Client().ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		p.T.Fatal(err)
	}
}

// secondDestinations moves the destinations file to a new directory, so
// that a second forwarder reads a file of its own.
func (p *pipeline) secondDestinations() {
	p.Cfg.Destinations.File = filepath.Join(p.T.TempDir(), "destinations.yaml")
}
