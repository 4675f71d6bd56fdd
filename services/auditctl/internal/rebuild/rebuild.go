// Package rebuild rebuilds a day of archived objects from the events topic.
// The manifests in the store name every group the archiver cut (window,
// partition, first and last offset); a rebuild reads exactly those offsets
// again, files each record with archive.FileRecord, the function the
// archiver files records with, spools and builds each account's object as
// the archiver does, and puts it back only where it is missing. Nothing is
// ever overwritten: an object that differs is reported.
package rebuild

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/services/auditctl/internal/partitions"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/objstore"
)

// What a rebuild did with an object the manifests list.
const (
	// StatusCreated: the object was missing and was written again, with
	// the bytes its manifest records.
	StatusCreated = "created"
	// StatusWouldCreate: as created, in a dry run (nothing written).
	StatusWouldCreate = "would-create"
	// StatusIdentical: the stored object is the rebuilt one.
	StatusIdentical = "identical"
	// StatusDifferent: the stored object, or the object rebuilt from the
	// topic, is not what the manifest records. Nothing was written.
	StatusDifferent = "different"
	// StatusMissingInTopic: the group's records are no longer on the topic
	// (retention removed them), so its objects cannot be rebuilt.
	StatusMissingInTopic = "missing-in-topic"
	// StatusBadManifest: the manifest listing the object does not parse or
	// does not match its own key, so it cannot say what to rebuild.
	StatusBadManifest = "bad-manifest"
)

// Statuses lists the statuses in report order.
var Statuses = []string{StatusCreated, StatusWouldCreate, StatusIdentical, StatusDifferent, StatusMissingInTopic, StatusBadManifest}

// Failed reports whether a status means the object is not as its manifest
// records and the rebuild could not make it so.
func Failed(status string) bool {
	return status == StatusDifferent || status == StatusMissingInTopic || status == StatusBadManifest
}

// Options describe a rebuild.
type Options struct {
	// Kafka and Topic are where the events are read.
	Kafka kafka.Config
	Topic string
	// Store is the storage connection's store.
	Store objstore.Store
	// Date is the UTC day whose windows are rebuilt: every group whose
	// window starts on it.
	Date time.Time
	// Accounts limits the rebuild to these accounts; empty is every account
	// folder of the store.
	Accounts []string
	// Rules are the archiver's filing rules. MaxFutureSkew applies as
	// given; the window length is each group's own, as its manifest records
	// it.
	Rules archive.PartitionConfig
	// Policy is the storage profile's filter and redaction as it stands
	// (nil for none). An object whose manifest records a policy is rebuilt
	// with it applied, as the archiver wrote it, when it is the same policy
	// (its version); one whose manifest records none is rebuilt whole.
	Policy *eventfilter.Policy
	// SpoolDir holds the spooled events and built objects (unlinked files).
	SpoolDir string
	// DryRun reads and compares; it writes nothing.
	DryRun bool
}

// Validate checks the options.
func (o *Options) Validate() error {
	switch {
	case o.Topic == "":
		return errors.New("no topic")
	case o.Store == nil:
		return errors.New("no store")
	case o.Date.IsZero() || !o.Date.Equal(o.Date.UTC().Truncate(24*time.Hour)):
		return fmt.Errorf("date %s is not a UTC midnight", o.Date)
	case o.Rules.MaxFutureSkew < 0:
		return errors.New("max_future_skew must not be negative")
	case o.SpoolDir == "":
		return errors.New("no spool directory")
	}
	return nil
}

// Object is the outcome for one object a manifest lists.
type Object struct {
	Account  string `json:"account"`
	Key      string `json:"key"`
	Manifest string `json:"manifest"`
	// Group is the group's name: window, partition and offsets.
	Group     string `json:"group"`
	Partition int32  `json:"partition"`
	First     int64  `json:"first_offset"`
	Last      int64  `json:"last_offset"`
	Status    string `json:"status"`
	// Records and SHA256 describe the object rebuilt from the topic.
	Records int64  `json:"records"`
	SHA256  string `json:"sha256,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// Summary is the outcome of a rebuild.
type Summary struct {
	Store    string   `json:"store"`
	Topic    string   `json:"topic"`
	Date     string   `json:"date"`
	DryRun   bool     `json:"dry_run"`
	Accounts []string `json:"accounts"`
	Groups   int      `json:"groups"`
	Objects  []Object `json:"objects"`
	// Counts has every status, zero or not.
	Counts map[string]int `json:"counts"`
	// RecordsRead is the number of topic records read; Undecodable counts
	// those that are not valid events (the archiver dead-letters them).
	RecordsRead int64   `json:"records_read"`
	Undecodable int64   `json:"undecodable"`
	Duration    float64 `json:"duration_seconds"`
}

// Failures is the number of objects whose status is a failure.
func (s *Summary) Failures() int {
	n := 0
	for _, o := range s.Objects {
		if Failed(o.Status) {
			n++
		}
	}
	return n
}

// target is one object of a manifest.
type target struct {
	obj      *Object
	manifest archive.ManifestObject
	// policy is what the manifest records, nil for none.
	policy *archive.ManifestPolicy
}

// group is one archived group with the objects to rebuild from it.
type group struct {
	g       archive.Group
	targets []target
	wanted  map[string]bool // accounts of the targets
	spool   *archive.Spool
}

// Plan is a rebuild with its groups found.
type Plan struct {
	o      Options
	start  time.Time
	sum    *Summary
	groups []*group // by partition, then first offset
}

// NewPlan lists the manifests of the accounts and finds the groups whose
// window starts on the date.
func NewPlan(ctx context.Context, o Options) (*Plan, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	p := &Plan{o: o, start: time.Now(), sum: &Summary{
		Store: o.Store.Describe(), Topic: o.Topic, Date: o.Date.Format(time.DateOnly), DryRun: o.DryRun,
		Objects: []Object{}, Counts: map[string]int{},
	}}
	for _, s := range Statuses {
		p.sum.Counts[s] = 0
	}
	accounts := o.Accounts
	if len(accounts) == 0 {
		var err error
		if accounts, err = archive.ListAccounts(ctx, o.Store); err != nil {
			return nil, err
		}
	}
	p.sum.Accounts = accounts
	byGroup := map[archive.Group]*group{}
	end := o.Date.Add(24 * time.Hour)
	for _, acct := range accounts {
		for info, err := range o.Store.List(ctx, archive.ManifestPrefix(acct)) {
			if err != nil {
				return nil, fmt.Errorf("list the manifests of %s in %s: %w", acct, o.Store.Describe(), err)
			}
			ref, ok := archive.ParseManifestKey(info.Key)
			if !ok || ref.Account != acct || ref.Group.Window.Start.Before(o.Date) || !ref.Group.Window.Start.Before(end) {
				continue
			}
			g := byGroup[ref.Group]
			if g == nil {
				g = &group{g: ref.Group, wanted: map[string]bool{}}
				byGroup[ref.Group] = g
			}
			if err := p.addManifest(ctx, g, acct, info.Key); err != nil {
				return nil, err
			}
		}
	}
	for _, g := range byGroup {
		if len(g.targets) > 0 {
			p.groups = append(p.groups, g)
		}
	}
	slices.SortFunc(p.groups, func(a, b *group) int {
		if a.g.Partition != b.g.Partition {
			return int(a.g.Partition - b.g.Partition)
		}
		if a.g.First != b.g.First {
			return cmpInt(a.g.First, b.g.First)
		}
		return a.g.Window.Start.Compare(b.g.Window.Start)
	})
	p.sum.Groups = len(p.groups)
	return p, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// addManifest reads one manifest and adds its objects to g.
func (p *Plan) addManifest(ctx context.Context, g *group, acct, key string) error {
	body, err := readAll(ctx, p.o.Store, key)
	if err != nil {
		return fmt.Errorf("read manifest %s in %s: %w", key, p.o.Store.Describe(), err)
	}
	bad := func(format string, args ...any) {
		p.record(&Object{Account: acct, Key: key, Manifest: key, Group: g.g.Name(), Partition: g.g.Partition, First: g.g.First, Last: g.g.Last,
			Status: StatusBadManifest, Detail: fmt.Sprintf(format, args...)})
	}
	// Signatures are verify's business; the canonical form is checked, so
	// a manifest changed by hand is not trusted to say what to rebuild.
	m, err := archive.OpenManifest(body, nil)
	if err != nil {
		bad("%v", err)
		return nil
	}
	if m.Account != acct || m.Group() != g.g {
		bad("content (account %q, group %s) does not match its key", m.Account, m.Group().Name())
		return nil
	}
	for _, mo := range m.Objects {
		ref, ok := archive.ParseObjectKey(mo.Key)
		if !ok || ref.Account != acct || ref.Group != g.g {
			bad("lists %q, not an object of account %s in group %s", mo.Key, acct, g.g.Name())
			continue
		}
		g.targets = append(g.targets, target{
			obj:      &Object{Account: acct, Key: mo.Key, Manifest: key, Group: g.g.Name(), Partition: g.g.Partition, First: g.g.First, Last: g.g.Last},
			manifest: mo,
			policy:   m.Policy,
		})
		g.wanted[acct] = true
	}
	return nil
}

// Groups is the number of groups to read.
func (p *Plan) Groups() int { return len(p.groups) }

// Summary is the outcome so far.
func (p *Plan) Summary() *Summary {
	p.sum.Duration = time.Since(p.start).Seconds()
	slices.SortStableFunc(p.sum.Objects, func(a, b Object) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return p.sum
}

func (p *Plan) record(o *Object) {
	p.sum.Objects = append(p.sum.Objects, *o)
	p.sum.Counts[o.Status]++
}

// Run reads each group's offsets of the topic, within bounds (each
// partition's oldest offset and end offset, as partitions.Bounds gives
// them), and rebuilds, compares and (unless a dry run) creates the groups'
// objects. Per-object outcomes are in the Summary; an error is returned for
// what stops the whole rebuild (the store or Kafka failing).
func (p *Plan) Run(ctx context.Context, bounds map[int32]partitions.Range) error {
	var runnable []*group
	for _, g := range p.groups {
		b, ok := bounds[g.g.Partition]
		switch {
		case !ok:
			p.missing(g, "partition %d of %s does not exist", g.g.Partition, p.o.Topic)
		case g.g.First < b.Start:
			p.missing(g, "group %s needs offsets %d..%d of %s partition %d, but the partition now starts at offset %d: retention removed the older records",
				g.g.Name(), g.g.First, g.g.Last, p.o.Topic, g.g.Partition, b.Start)
		case g.g.Last >= b.End:
			p.missing(g, "group %s needs offsets %d..%d of %s partition %d, but the partition ends at offset %d (was the topic recreated?)",
				g.g.Name(), g.g.First, g.g.Last, p.o.Topic, g.g.Partition, b.End-1)
		default:
			runnable = append(runnable, g)
		}
	}
	for _, run := range runs(runnable) {
		if err := p.rebuildRun(ctx, run); err != nil {
			return err
		}
	}
	return nil
}

// runs merges groups of one partition whose offset ranges overlap or touch,
// so records read once serve every group they belong to.
func runs(groups []*group) [][]*group {
	var out [][]*group
	var last int64
	for _, g := range groups {
		if n := len(out); n > 0 && out[n-1][0].g.Partition == g.g.Partition && g.g.First <= last+1 {
			out[n-1] = append(out[n-1], g)
			last = max(last, g.g.Last)
			continue
		}
		out = append(out, []*group{g})
		last = g.g.Last
	}
	return out
}

func (p *Plan) missing(g *group, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	for _, t := range g.targets {
		t.obj.Status, t.obj.Detail = StatusMissingInTopic, detail
		p.record(t.obj)
	}
}

// errGap is returned by the read when the first record is not at the run's
// first offset: retention removed records meanwhile.
type errGap struct{ want, got int64 }

func (e errGap) Error() string {
	return fmt.Sprintf("first record at offset %d, not %d", e.got, e.want)
}

func (p *Plan) rebuildRun(ctx context.Context, run []*group) error {
	part := run[0].g.Partition
	first, last := run[0].g.First, run[0].g.Last
	wanted := map[string]bool{}
	for _, g := range run {
		last = max(last, g.g.Last)
		for a := range g.wanted {
			wanted[a] = true
		}
		sp, err := archive.NewSpool(p.o.SpoolDir)
		if err != nil {
			return err
		}
		g.spool = sp
	}
	defer func() {
		for _, g := range run {
			_ = g.spool.Close()
			g.spool = nil
		}
	}()
	accept := func(a string) bool { return wanted[a] }
	type filed struct {
		f   archive.Filed
		ok  bool
		err error
	}
	bufs := map[time.Duration][]byte{}
	seen := false
	err := partitions.Read(ctx, p.o.Kafka, p.o.Topic, map[int32]partitions.Range{part: {Start: first, End: last + 1}}, func(rec *kgo.Record) error {
		if !seen && rec.Offset != first {
			return errGap{want: first, got: rec.Offset}
		}
		seen = true
		p.sum.RecordsRead++
		byLength := map[time.Duration]filed{}
		bad := false
		for _, g := range run {
			if rec.Offset < g.g.First || rec.Offset > g.g.Last {
				continue
			}
			length := g.g.Window.Length
			fr, done := byLength[length]
			if !done {
				rules := p.o.Rules
				rules.Window = length
				fr.f, fr.ok, fr.err = archive.FileRecord(rules, rec, accept, bufs[length])
				if fr.ok {
					bufs[length] = fr.f.Line
				}
				byLength[length] = fr
			}
			if fr.err != nil {
				bad = true
				continue
			}
			if !fr.ok || !g.wanted[fr.f.Account] || !sameWindow(fr.f.Window, g.g.Window) {
				continue
			}
			if err := g.spool.Add(fr.f.Account, fr.f.ID, rec.Offset, fr.f.Time, fr.f.Line); err != nil {
				return err
			}
		}
		if bad {
			p.sum.Undecodable++
		}
		return nil
	})
	var gap errGap
	if err == nil && !seen {
		// Read stops at the first record past the range: everything in it
		// was removed while it ran.
		err = errGap{want: first, got: last + 1}
	}
	switch {
	case errors.As(err, &gap):
		for _, g := range run {
			p.missing(g, "group %s needs offsets %d..%d of %s partition %d, but reading found none before offset %d: retention removed them",
				g.g.Name(), g.g.First, g.g.Last, p.o.Topic, part, gap.got)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read %s partition %d offsets %d..%d: %w", p.o.Topic, part, first, last, err)
	}
	for _, g := range run {
		if err := p.finishGroup(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

func sameWindow(a, b archive.Window) bool { return a.Start.Equal(b.Start) && a.Length == b.Length }

// finishGroup builds each target's object from the group's spool, checks it
// against the manifest, and compares it with (or creates) the stored one.
func (p *Plan) finishGroup(ctx context.Context, g *group) error {
	batches, err := g.spool.Partition()
	if err != nil {
		return err
	}
	byAccount := map[string]archive.AccountBatch{}
	for _, b := range batches {
		byAccount[b.Account] = b
	}
	for _, t := range g.targets {
		if err := p.finishObject(ctx, g, t, byAccount); err != nil {
			return err
		}
		p.record(t.obj)
	}
	return nil
}

func (p *Plan) finishObject(ctx context.Context, g *group, t target, byAccount map[string]archive.AccountBatch) error {
	o, mo := t.obj, t.manifest
	b, ok := byAccount[o.Account]
	if !ok {
		o.Status = StatusDifferent
		o.Detail = fmt.Sprintf("offsets %d..%d of %s partition %d hold no event of %s in window %s, but manifest %s lists %d records: nothing written",
			g.g.First, g.g.Last, p.o.Topic, g.g.Partition, o.Account, g.g.Window, o.Manifest, mo.Records)
		return nil
	}
	policy, detail := p.policyOf(t)
	if detail != "" {
		o.Status, o.Detail = StatusDifferent, detail
		return nil
	}
	f, err := os.CreateTemp(p.o.SpoolDir, "object-*.json.gz")
	if err != nil {
		return fmt.Errorf("create object file: %w", err)
	}
	_ = os.Remove(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	// The archiver's transform: eventfilter.Policy.Apply on each event.
	stats, err := g.spool.BuildWith(b, bw, archive.PolicyLine(policy))
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("build object of %s: %w", o.Account, err)
	}
	sum := hex.EncodeToString(stats.SHA256[:])
	o.Records, o.SHA256 = stats.Records, sum
	if sum != mo.SHA256 || stats.Size != mo.Size {
		o.Status = StatusDifferent
		o.Detail = fmt.Sprintf("rebuilt from the topic: sha256 %s, %d bytes, %d records; manifest %s lists sha256 %s, %d bytes, %d records: nothing written",
			sum, stats.Size, stats.Records, o.Manifest, mo.SHA256, mo.Size, mo.Records)
		return nil
	}
	if p.o.DryRun {
		stored, _, err := archive.HashObject(ctx, p.o.Store, o.Key)
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			o.Status, o.Detail = StatusWouldCreate, "missing; the rebuilt object matches its manifest"
		case err != nil:
			return fmt.Errorf("read %s in %s: %w", o.Key, p.o.Store.Describe(), err)
		case stored == sum:
			o.Status = StatusIdentical
		default:
			o.Status, o.Detail = StatusDifferent, storedDiffers(stored, o.Manifest)
		}
		return nil
	}
	existed, err := archive.Ensure(ctx, p.o.Store, o.Key, archive.Object{Body: f, Stats: stats})
	switch {
	case errors.Is(err, archive.ErrConflict):
		stored, _, herr := archive.HashObject(ctx, p.o.Store, o.Key)
		if herr != nil {
			stored = "unknown (" + herr.Error() + ")"
		}
		o.Status, o.Detail = StatusDifferent, storedDiffers(stored, o.Manifest)
	case err != nil:
		return err
	case existed:
		o.Status = StatusIdentical
	default:
		o.Status, o.Detail = StatusCreated, "was missing; written with the bytes its manifest records"
	}
	return nil
}

// policyOf is the policy a target's object was written with: none when its
// manifest records none; the profile's when its version is the one the
// manifest records; or, for a policy that needs no key (no hash rule),
// the one the manifest's filter and rules compile to. detail says why
// none of these is it (the profile's policy changed since).
func (p *Plan) policyOf(t target) (*eventfilter.Policy, string) {
	mp := t.policy
	if mp == nil {
		return nil, ""
	}
	if p.o.Policy.Version() == mp.Version {
		return p.o.Policy, ""
	}
	if recorded, err := eventfilter.NewPolicy(mp.Filter, mp.Redact, nil); err == nil && recorded.Version() == mp.Version {
		return recorded, ""
	}
	now := "none"
	if p.o.Policy != nil {
		now = "version " + p.o.Policy.Version()
	}
	return nil, fmt.Sprintf("manifest %s records policy version %s, the storage profile's policy is now %s (its filter, rules or redaction key changed): the object cannot be rebuilt as it was written; nothing written",
		t.obj.Manifest, mp.Version, now)
}

func storedDiffers(stored, manifest string) string {
	return fmt.Sprintf("the stored object (sha256 %s) is not the one rebuilt from the topic, which matches manifest %s: left as it is", stored, manifest)
}

func readAll(ctx context.Context, s objstore.Store, key string) ([]byte, error) {
	rc, _, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 64<<20))
}
