// Package check is the chaos run's checker. It judges the pipeline only by
// what left it: the entries the Datadog, EventBridge and OTLP fakes
// accepted, the objects in the archive directory, the topics' bytes and
// the services' logs, read with encoding/json, compress/gzip and the
// layout documented in docs/archiver.md and docs/record-format.md. It
// imports no package of the pipeline, so a bug in the pipeline's codec or
// layout cannot hide itself by being shared with the checker.
package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// State is what ingest answered for an event.
type State uint8

const (
	// Accepted events were answered 202: each must reach every one of its
	// destinations at least once and the archive exactly once.
	Accepted State = iota + 1
	// Unconfirmed events may or may not have been written (a 503
	// kafka_write_failed listing them as failed, or no answer): they may
	// appear, at most once in the archive, but need not.
	Unconfirmed
	// Rejected events were answered with nothing written (400, 503
	// unavailable or overloaded): they must appear nowhere.
	Rejected
)

// RawTokenMarker starts every raw access token the load generator sends.
// A masked token keeps only the last six characters, so the marker in any
// output is a raw token that escaped masking.
const RawTokenMarker = "rawtok-"

// MaskedToken is the documented mask of a raw token longer than 12
// characters: "..." and its last six characters (docs/record-format.md).
func MaskedToken(raw string) string {
	r := []rune(raw)
	if len(r) <= 12 {
		return "..."
	}
	return "..." + string(r[len(r)-6:])
}

type event struct {
	account string
	masked  string
	state   State
}

// Destination is one real-time destination kind (Datadog, EventBridge,
// OTLP): which accounts route to it and which connection identity (API
// key, bus, tenant) belongs to which account.
type Destination struct {
	Name string
	// Owner maps a connection identity (a Datadog API key, an EventBridge
	// bus, an OTLP tenant) to the one account routed to it.
	Owner map[string]string
	// Routed says which accounts have a route to this destination.
	Routed map[string]bool
}

type destination struct {
	Destination
	got          map[string]uint32
	entries      int
	unknownConn  int
	crossTenant  int
	wrongAccount int
	badToken     int
	rawToken     int
	unknownID    int
	malformed    int
	perSecond    map[int64]int
	dupSecond    map[int64]int
	extraResends int
}

// Checker collects the run's ledger and what came out, and judges them.
// Its methods are safe for concurrent use: the fakes call it from their
// request goroutines.
type Checker struct {
	mu       sync.Mutex
	events   map[string]*event
	accounts map[string]bool
	dests    map[string]*destination
	archive  *archiveState
	scans    map[string]*scanResult
	secrets  []string
	problems []string
}

// New returns a checker for the given destinations.
func New(dests ...Destination) *Checker {
	c := &Checker{events: map[string]*event{}, accounts: map[string]bool{}, dests: map[string]*destination{}, archive: newArchiveState(), scans: map[string]*scanResult{}}
	for _, d := range dests {
		c.dests[d.Name] = &destination{Destination: d, got: map[string]uint32{}, perSecond: map[int64]int{}, dupSecond: map[int64]int{}}
	}
	return c
}

// Secrets adds values (connection API keys, AWS secret keys) that must
// never appear in a scanned text.
func (c *Checker) Secrets(values ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secrets = append(c.secrets, values...)
}

// Record puts an event the generator posted in the ledger, with the raw
// token it carried and what ingest answered; a later call for the same id
// replaces the state.
func (c *Checker) Record(id, account, rawToken string, st State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.accounts[account] = true
	if e, ok := c.events[id]; ok {
		e.state = st
		return
	}
	c.events[id] = &event{account: account, masked: MaskedToken(rawToken), state: st}
}

// problem keeps the first problems of each kind for the report.
func (c *Checker) problem(format string, args ...any) {
	if len(c.problems) < 40 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// delivered is the part of an event a destination entry must carry.
type delivered struct {
	Actor struct {
		AccessToken struct {
			Token *string `json:"token"`
		} `json:"access-token"`
	} `json:"actor"`
	Target struct {
		Context struct {
			Account struct {
				ID string `json:"id"`
			} `json:"account"`
		} `json:"context"`
	} `json:"target"`
}

// DatadogEntry takes one log entry the Datadog intake accepted under
// apiKey: the event's attributes, its id under "audit-id"
// (docs/datadog-forwarder.md).
func (c *Checker) DatadogEntry(dest, apiKey string, raw []byte, at time.Time) {
	var e struct {
		ID *string `json:"audit-id"`
		delivered
	}
	err := json.Unmarshal(raw, &e)
	c.entry(dest, apiKey, raw, e.ID, &e.delivered, err, at)
}

// EventBridgeEntry takes one PutEvents entry the bus accepted: its Detail
// is the event's JSON with the id first (docs/eventbridge-forwarder.md).
func (c *Checker) EventBridgeEntry(dest, bus string, detail []byte, at time.Time) {
	var e struct {
		ID *string `json:"id"`
		delivered
	}
	err := json.Unmarshal(detail, &e)
	c.entry(dest, bus, detail, e.ID, &e.delivered, err, at)
}

// OTLPRecord takes one log record an OTLP receiver accepted for tenant
// (X-Scope-OrgID): its body is the event's JSON with the id first, and its
// log.record.uid attribute the same id (docs/otlp-forwarder.md). Copies
// are told apart by that id; a record whose uid is not its body's id is
// malformed.
func (c *Checker) OTLPRecord(dest, tenant, uid string, body []byte, at time.Time) {
	var e struct {
		ID *string `json:"id"`
		delivered
	}
	err := json.Unmarshal(body, &e)
	if err == nil && (e.ID == nil || *e.ID != uid) {
		body := "<none>"
		if e.ID != nil {
			body = *e.ID
		}
		err = fmt.Errorf("log.record.uid %q, the body's id %q", uid, body)
		e.ID = nil
	}
	c.entry(dest, tenant, body, e.ID, &e.delivered, err, at)
}

func (c *Checker) entry(name, conn string, raw []byte, id *string, d *delivered, err error, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dst := c.dests[name]
	if dst == nil {
		c.problem("entry for unknown destination %q", name)
		return
	}
	dst.entries++
	dst.perSecond[at.Unix()]++
	if bytes.Contains(raw, []byte(RawTokenMarker)) {
		dst.rawToken++
		c.problem("%s: a raw access token in an entry of %s", name, conn)
	}
	if err != nil || id == nil {
		dst.malformed++
		c.problem("%s: entry of %s without an id or not JSON (%v): %.200s", name, conn, err, raw)
		return
	}
	owner, ok := dst.Owner[conn]
	if !ok {
		dst.unknownConn++
		c.problem("%s: entry for connection %q, which no account routes to", name, conn)
	}
	acc := d.Target.Context.Account.ID
	if ok && acc != owner {
		dst.crossTenant++
		c.problem("%s: event %s of account %s delivered to %s, the connection of account %s", name, *id, acc, conn, owner)
	}
	ev := c.events[*id]
	if ev == nil {
		dst.unknownID++
		c.problem("%s: event %s was never posted", name, *id)
		return
	}
	if acc != ev.account {
		dst.wrongAccount++
		c.problem("%s: event %s carries account %q, posted as %q", name, *id, acc, ev.account)
	}
	if tok := d.Actor.AccessToken.Token; tok == nil || *tok != ev.masked {
		dst.badToken++
		got := "<none>"
		if tok != nil {
			got = *tok
		}
		c.problem("%s: event %s token %q, want the mask %q", name, *id, got, ev.masked)
	}
	if dst.got[*id] > 0 {
		dst.dupSecond[at.Unix()]++
	}
	dst.got[*id]++
}

// DuplicateBursts returns the seconds in which a destination received the
// most copies of events it already had (at most n, most first), to lay
// beside the run's timeline: duplicates should follow disruptions.
func (c *Checker) DuplicateBursts(name string, n int) []Burst {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dests[name]
	if d == nil {
		return nil
	}
	var out []Burst
	for sec, k := range d.dupSecond {
		out = append(out, Burst{At: time.Unix(sec, 0), Copies: k})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Copies != out[j].Copies {
			return out[i].Copies > out[j].Copies
		}
		return out[i].At.Before(out[j].At)
	})
	return out[:min(n, len(out))]
}

// Burst is one second's duplicate copies.
type Burst struct {
	At     time.Time
	Copies int
}

// Resent notes n entries a destination accepted whose answer the client
// never saw (it gave up first), so it sends them again: duplicates the
// client could not avoid.
func (c *Checker) Resent(name string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.dests[name]; d != nil {
		d.extraResends += n
	}
}

// Progress is how far a destination has come: distinct accepted events
// received against those expected.
type Progress struct {
	Name            string
	Expected, Got   int
	Entries         int
	DistinctPresent int
}

// Done says whether every destination holds every accepted event routed to
// it, and the archive every accepted event.
func (c *Checker) Done() (bool, []Progress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	done := true
	var out []Progress
	for _, name := range c.destNames() {
		d := c.dests[name]
		p := Progress{Name: name, Entries: d.entries}
		for id, e := range c.events {
			if e.state != Accepted || !d.Routed[e.account] {
				continue
			}
			p.Expected++
			if d.got[id] > 0 {
				p.Got++
			}
		}
		done = done && p.Got == p.Expected
		out = append(out, p)
	}
	p := Progress{Name: "archive", Entries: c.archive.lines}
	for id, e := range c.events {
		if e.state != Accepted {
			continue
		}
		p.Expected++
		if c.archive.got[id] > 0 {
			p.Got++
		}
	}
	done = done && p.Got == p.Expected
	return done, append(out, p)
}

func (c *Checker) destNames() []string {
	names := make([]string, 0, len(c.dests))
	for n := range c.dests {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// PeakPerSecond is the most entries a destination accepted in one second.
func (c *Checker) PeakPerSecond(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	peak := 0
	if d := c.dests[name]; d != nil {
		for _, n := range d.perSecond {
			peak = max(peak, n)
		}
	}
	return peak
}

// Bound is the duplicates a destination may show and why.
type Bound struct {
	Allowed int
	Why     string
}

// Report is the run's figures and verdict.
type Report struct {
	Lines    []string
	Failures []string
	Problems []string
}

// OK says whether every property held.
func (r Report) OK() bool { return len(r.Failures) == 0 }

// String is the report as printed.
func (r Report) String() string {
	var b strings.Builder
	for _, l := range r.Lines {
		b.WriteString(l + "\n")
	}
	if len(r.Problems) > 0 {
		b.WriteString("first problems:\n")
		for _, p := range r.Problems {
			b.WriteString("  " + p + "\n")
		}
	}
	if r.OK() {
		b.WriteString("PASS: every property held\n")
	} else {
		b.WriteString("FAIL:\n")
		for _, f := range r.Failures {
			b.WriteString("  " + f + "\n")
		}
	}
	return b.String()
}

// Judge checks every property and returns the figures. bounds gives each
// destination's allowed duplicates (the documented in-flight bound times
// the disruptions the run caused).
func (c *Checker) Judge(bounds map[string]Bound) Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	var r Report
	fail := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	line := func(format string, args ...any) { r.Lines = append(r.Lines, fmt.Sprintf(format, args...)) }

	var accepted, unconfirmed, rejected int
	for _, e := range c.events {
		switch e.state {
		case Accepted:
			accepted++
		case Unconfirmed:
			unconfirmed++
		case Rejected:
			rejected++
		}
	}
	// Unconfirmed events found anywhere: ingest could not tell whether
	// they were written; this says how many were.
	unconfirmedSeen := 0
	for id, e := range c.events {
		if e.state != Unconfirmed {
			continue
		}
		seen := c.archive.got[id] > 0
		for _, d := range c.dests {
			seen = seen || d.got[id] > 0
		}
		if seen {
			unconfirmedSeen++
		}
	}
	line("events: %d posted over %d accounts: %d accepted, %d unconfirmed (%d of them found downstream), %d rejected", len(c.events), len(c.accounts), accepted, unconfirmed, unconfirmedSeen, rejected)
	if accepted == 0 {
		fail("no event was accepted: the run proves nothing")
	}

	for _, name := range c.destNames() {
		d := c.dests[name]
		expected, missing, dups, maxCopies, rejectedSeen := 0, 0, 0, uint32(0), 0
		var missingIDs []string
		for id, e := range c.events {
			n := d.got[id]
			if n > 0 && e.state == Rejected {
				// Judged on the final answer: an event may arrive before
				// its request is answered.
				rejectedSeen++
				c.problem("%s: event %s was answered as not written, yet delivered", name, id)
			}
			if n > 1 {
				dups += int(n - 1)
				maxCopies = max(maxCopies, n)
			}
			if n > 0 && !d.Routed[e.account] {
				// Counted as cross-tenant in entry() when the connection's
				// owner differs; an unrouted account has no connection.
				continue
			}
			if e.state != Accepted || !d.Routed[e.account] {
				continue
			}
			expected++
			if n == 0 {
				missing++
				if len(missingIDs) < 5 {
					missingIDs = append(missingIDs, id+" ("+e.account+")")
				}
			}
		}
		b := bounds[name]
		line("%s: %d entries; %d accepted events routed to it, %d delivered at least once, %d missing; %d duplicates (most copies of one event: %d; bound %d: %s; %d re-sent after an unanswered request)",
			name, d.entries, expected, expected-missing, missing, dups, maxCopies, b.Allowed, b.Why, d.extraResends)
		line("%s: cross-tenant %d, wrong account %d, unknown connection %d, unknown ids %d, rejected-but-delivered %d, masked-token mismatches %d, raw tokens %d, malformed %d",
			name, d.crossTenant, d.wrongAccount, d.unknownConn, d.unknownID, rejectedSeen, d.badToken, d.rawToken, d.malformed)
		if expected == 0 {
			fail("%s: no accepted event was routed to it: the run proves nothing about it", name)
		}
		if missing > 0 {
			fail("%s: %d accepted events never delivered, e.g. %s", name, missing, strings.Join(missingIDs, ", "))
		}
		if dups > b.Allowed+d.extraResends {
			fail("%s: %d duplicates, above the in-flight bound %d (+%d re-sent)", name, dups, b.Allowed, d.extraResends)
		}
		for _, bad := range []struct {
			n    int
			what string
		}{{d.crossTenant, "cross-tenant deliveries"}, {d.wrongAccount, "events with another account than posted"}, {d.unknownConn, "entries on connections no account routes to"},
			{d.unknownID, "entries of events never posted"}, {rejectedSeen, "deliveries of rejected events"}, {d.badToken, "tokens not masked as documented"},
			{d.rawToken, "entries holding a raw token"}, {d.malformed, "malformed entries"}} {
			if bad.n > 0 {
				fail("%s: %d %s", name, bad.n, bad.what)
			}
		}
	}

	c.judgeArchive(line, fail)

	for _, name := range sortedKeys(c.scans) {
		s := c.scans[name]
		line("scanned %s: %d bytes; raw tokens %d, secrets %d", name, s.bytes, s.rawTokens, s.secrets)
		if s.rawTokens > 0 {
			fail("%s: %d raw access tokens", name, s.rawTokens)
		}
		if s.secrets > 0 {
			fail("%s: %d connection secrets in plain text", name, s.secrets)
		}
	}
	r.Problems = append(r.Problems, c.problems...)
	return r
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
