package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/auditstream/auditstream/services/auditctl/internal/partitions"
	"github.com/auditstream/auditstream/services/auditctl/internal/rebuild"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/objstore"
	// Every store kind, as the archiver links them.
	_ "github.com/auditstream/auditstream/services/internal/objstore/all"
)

// storageType is the destinations connection type of the archive.
const storageType = "storage"

func newArchiveCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Rebuild and verify the archive in storage connections",
		Long: `archive works on what the archiver wrote into storage connections: objects of
gzip-compressed JSON lines and each account's signed manifest chain.

  rebuild  writes missing objects of a day again from the topic, exactly as
           the archiver wrote them, and reports objects that differ;
  verify   checks objects against their manifests, the manifests' signatures
           and each account's chain, and the day digests.

Both take the storage connection from the destinations file (--destinations,
or destinations.file of --config); --config may be the archiver's own file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newArchiveRebuildCommand(g), newArchiveVerifyCommand(g))
	return cmd
}

// dateFlag is a UTC day, given as a date or as any time parseTime reads
// (-1d is yesterday).
type dateFlag struct {
	t   time.Time
	set bool
	now func() time.Time
}

const dateForms = "a date (2024-02-16, a UTC day) or relative to now (-1d: yesterday)"

func newDateFlag(now func() time.Time) *dateFlag { return &dateFlag{now: now} }

func (f *dateFlag) Set(s string) error {
	t, err := parseTime(s, f.now())
	if err != nil {
		return fmt.Errorf("%q is not a date: want %s", s, dateForms)
	}
	f.t, f.set = t.UTC().Truncate(24*time.Hour), true
	return nil
}

func (f *dateFlag) String() string {
	if !f.set {
		return ""
	}
	return f.t.Format(time.DateOnly)
}

func (f *dateFlag) Type() string { return "date" }

// storageConnections returns the storage connection name of the
// destinations file, or every enabled one when name is empty.
func storageConnections(file, name string) ([]*destinations.Connection, error) {
	if file == "" {
		return nil, errors.New("no destinations file: give --destinations, or destinations.file in --config")
	}
	table, err := destinations.Load(file)
	if err != nil {
		return nil, fmt.Errorf("destinations file %s: %w", file, err)
	}
	return storageConnectionsIn(table, file, name)
}

// storageConnectionsIn is storageConnections of a table read from source.
func storageConnectionsIn(table *destinations.Table, file, name string) ([]*destinations.Connection, error) {
	var storage []*destinations.Connection
	var names []string
	for _, c := range table.Connections() {
		if c.Type == storageType {
			storage = append(storage, c)
			names = append(names, c.Name)
		}
	}
	if name == "" {
		var enabled []*destinations.Connection
		for _, c := range storage {
			if c.Enabled {
				enabled = append(enabled, c)
			}
		}
		if len(enabled) == 0 {
			return nil, fmt.Errorf("%s has no enabled storage connection", file)
		}
		return enabled, nil
	}
	conn := table.Lookup(name)
	switch {
	case conn == nil && len(names) == 0:
		return nil, fmt.Errorf("unknown connection %q: %s has no storage connection", name, file)
	case conn == nil:
		return nil, fmt.Errorf("unknown connection %q in %s (storage connections: %s)", name, file, strings.Join(names, ", "))
	case conn.Type != storageType:
		return nil, fmt.Errorf("connection %s in %s is of type %s; the archive is in storage connections", name, file, conn.Type)
	}
	return []*destinations.Connection{conn}, nil
}

// openStore opens a storage connection's store, as the archiver does.
func openStore(ctx context.Context, conn *destinations.Connection) (objstore.Store, error) {
	settings, err := destinations.DecodeSettings[objstore.Settings](conn)
	if err != nil {
		return nil, err
	}
	st, err := objstore.Open(ctx, settings)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", conn.Name, err)
	}
	return st, nil
}

func checkAccounts(accounts []string) error {
	for _, a := range accounts {
		if !destinations.ValidAccountID(a) {
			return fmt.Errorf("--account %q is not an account id (1-128 of A-Z a-z 0-9 . _ : -)", a)
		}
	}
	return nil
}

type archiveRebuildOptions struct {
	date         *dateFlag
	accounts     []string
	connection   string
	destinations string
	topic        string
	spoolDir     string
	dryRun       bool
	output       outputFlag
}

func newArchiveRebuildCommand(g *globals) *cobra.Command {
	o := archiveRebuildOptions{date: newDateFlag(g.env.Now), output: outputText}
	cmd := &cobra.Command{
		Use:   "rebuild --date D --connection CONNECTION",
		Short: "Write a day's missing archive objects again from the topic",
		Long: `rebuild re-runs the archiver's work for one UTC day from the topic. The
manifests in the storage connection name every group the archiver cut (its
window, partition and first and last offsets); for each group whose window
starts on --date, rebuild reads exactly those offsets again, directly and
without a consumer group, files every record with the archiver's own rules
(the window of each group, max_future_skew of the archive section of
--config, which may be the archiver's file), and builds each account's
object byte for byte as the archiver does: through the storage profile's
filter and redaction when the object's manifest records them (the
profile's policy must still be the one the manifest names).

Each object its manifest lists is then
  created           when it is missing and the rebuilt bytes are the ones
                    its manifest records,
  identical         when the stored object is the rebuilt one,
  different         when the stored object, or the one rebuilt from the
                    topic, is not what the manifest records: nothing is
                    written, the stored object is never replaced,
  missing-in-topic  when retention removed the group's records,
  bad-manifest      when its manifest does not parse or match its name.
Nothing else is written: no manifest, no conflict copy. --dry-run compares
and writes nothing (would-create). The exit status is 1 when any object is
different, missing-in-topic or bad-manifest.`,
		Example: `  auditctl archive rebuild --config archiver.yaml --date 2024-02-16 --connection acme-archive --dry-run
  auditctl archive rebuild --config archiver.yaml --date 2024-02-16 --connection acme-archive --account acc-123
  auditctl archive rebuild --destinations destinations.yaml --date -1d --connection acme-archive -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(cmd); err != nil {
				return err
			}
			cfg, err := g.loadWithDefaults(&o.topic, &o.destinations)
			if err != nil {
				return err
			}
			return runArchiveRebuild(cmd.Context(), g, cfg, o)
		},
	}
	f := cmd.Flags()
	f.Var(o.date, "date", "the UTC day whose windows are rebuilt (required): "+dateForms)
	f.StringVar(&o.connection, "connection", "", "storage connection of the destinations file holding the archive (required)")
	f.StringVar(&o.destinations, "destinations", "", "destinations file (default destinations.file of --config)")
	f.StringArrayVar(&o.accounts, "account", nil, "rebuild only this account's objects (repeatable; default every account in the store)")
	f.StringVar(&o.topic, "topic", "", "topic to read (default kafka.topics.events.name, audit.events)")
	f.StringVar(&o.spoolDir, "spool-dir", os.TempDir(), "directory for the events and objects being rebuilt")
	f.BoolVar(&o.dryRun, "dry-run", false, "rebuild and compare; write nothing")
	f.VarP(&o.output, "output", "o", "text or json (the report)")
	return cmd
}

func (o *archiveRebuildOptions) check(cmd *cobra.Command) error {
	switch {
	case !o.date.set:
		return errors.New("--date is required: " + dateForms)
	case strings.TrimSpace(o.connection) == "":
		return errors.New("--connection is required: the storage connection holding the archive (a name in the destinations file)")
	case cmd.Flags().Changed("topic") && o.topic == "":
		return errors.New("--topic must not be empty")
	case o.spoolDir == "":
		return errors.New("--spool-dir must not be empty")
	}
	return checkAccounts(o.accounts)
}

func runArchiveRebuild(ctx context.Context, g *globals, cfg *Config, o archiveRebuildOptions) error {
	conns, err := g.storageConnections(ctx, cfg, o.destinations, o.connection)
	if err != nil {
		return err
	}
	conn := conns[0]
	if !conn.Enabled {
		return fmt.Errorf("connection %s is disabled in %s", conn.Name, o.destinations)
	}
	if st, err := os.Stat(o.spoolDir); err != nil || !st.IsDir() {
		return fmt.Errorf("--spool-dir %s is not a directory", o.spoolDir)
	}
	// The profile's filter and redaction, as the archiver applies them.
	policy, err := conn.Policy()
	if err != nil {
		return fmt.Errorf("connection %s: %w", conn.Name, err)
	}
	store, err := openStore(ctx, conn)
	if err != nil {
		return err
	}
	defer store.Close()
	ro := rebuild.Options{
		Kafka: cfg.Kafka, Topic: o.topic, Store: store, Date: o.date.t, Accounts: o.accounts,
		Rules: cfg.Archive.PartitionConfig(), Policy: policy, SpoolDir: o.spoolDir, DryRun: o.dryRun,
	}
	if err := ro.Validate(); err != nil {
		return err
	}
	cl, err := g.connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	plan, err := rebuild.NewPlan(ctx, ro)
	if err != nil {
		return err
	}
	var runErr error
	if plan.Groups() > 0 {
		rctx, cancel := g.requestContext(ctx)
		bounds, err := partitions.Bounds(rctx, kadm.NewClient(cl), o.topic)
		cancel()
		if err != nil {
			return err
		}
		runErr = plan.Run(ctx, bounds)
	}
	sum := plan.Summary()
	if len(sum.Objects) == 0 && runErr == nil {
		fmt.Fprintf(g.env.Stderr, "auditctl: warning: no manifest in %s names a window starting on %s for %s: nothing to rebuild\n",
			sum.Store, sum.Date, accountsText(sum.Accounts))
	}
	if err := report(g.env.Stdout, o.output, sum, rebuildReport{sum, conn.Name}.writeText); err != nil {
		return err
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case runErr != nil:
		return runErr
	}
	if n := sum.Failures(); n > 0 {
		return fmt.Errorf("%d of %d objects of %s could not be rebuilt as their manifests record them (different %d, missing-in-topic %d, bad-manifest %d)",
			n, len(sum.Objects), sum.Date, sum.Counts[rebuild.StatusDifferent], sum.Counts[rebuild.StatusMissingInTopic], sum.Counts[rebuild.StatusBadManifest])
	}
	return nil
}

func accountsText(accounts []string) string {
	switch {
	case len(accounts) == 0:
		return "any account"
	case len(accounts) <= 5:
		return strings.Join(accounts, ", ")
	}
	return fmt.Sprintf("%s and %d more accounts", strings.Join(accounts[:5], ", "), len(accounts)-5)
}

type rebuildReport struct {
	s    *rebuild.Summary
	conn string
}

func (r rebuildReport) writeText(w io.Writer) error {
	s := r.s
	var b strings.Builder
	fmt.Fprintf(&b, "rebuild %s in %s (%s) from %s", s.Date, r.conn, s.Store, s.Topic)
	if s.DryRun {
		b.WriteString(", dry run: nothing written")
	}
	b.WriteString("\n")
	if len(s.Objects) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "STATUS\tACCOUNT\tRECORDS\tKEY\n")
		for _, o := range s.Objects {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", o.Status, o.Account, o.Records, o.Key)
		}
		_ = tw.Flush()
		for _, o := range s.Objects {
			if rebuild.Failed(o.Status) {
				fmt.Fprintf(&b, "%s %s: %s\n", o.Status, o.Key, printable(o.Detail))
			}
		}
	}
	created := rebuild.StatusCreated
	if s.DryRun {
		created = rebuild.StatusWouldCreate
	}
	var counts []string
	for _, st := range rebuild.Statuses {
		always := st == created || st == rebuild.StatusIdentical || st == rebuild.StatusDifferent || st == rebuild.StatusMissingInTopic
		if n := s.Counts[st]; n > 0 || always {
			counts = append(counts, fmt.Sprintf("%s %d", st, n))
		}
	}
	fmt.Fprintf(&b, "%d groups, %d objects: %s; %d records read", s.Groups, len(s.Objects), strings.Join(counts, ", "), s.RecordsRead)
	if s.Undecodable > 0 {
		fmt.Fprintf(&b, ", of which %d not valid events (skipped, as the archiver dead-letters them)", s.Undecodable)
	}
	fmt.Fprintf(&b, "\ntook %s\n", time.Duration(s.Duration*float64(time.Second)).Round(time.Millisecond))
	_, err := io.WriteString(w, b.String())
	return err
}

type archiveVerifyOptions struct {
	from, to     *dateFlag
	digestDue    time.Duration
	accounts     []string
	connection   string
	destinations string
	publicKeys   []string
	output       outputFlag
}

func newArchiveVerifyCommand(g *globals) *cobra.Command {
	o := archiveVerifyOptions{from: newDateFlag(g.env.Now), to: newDateFlag(g.env.Now), output: outputText}
	cmd := &cobra.Command{
		Use:   "verify [--from D1] [--to D2] [--connection CONNECTION]",
		Short: "Check archived objects against their signed manifests",
		Long: `verify checks the archive in a storage connection (every enabled one without
--connection): each object of the days --from..--to (inclusive UTC days;
without them, every day) against the SHA-256 and size its manifest records,
every manifest's canonical form and signature, each account's chain (no gap,
fork or broken link; chains are always checked whole), and that no object
is left out of every manifest. It reads only: Kafka is not contacted and
nothing is written.

Day digests (<account>/_digests/YYYY/MM/DD[.n].json) are checked too, for
every account that has them: each digest's form and signature; the chain of
days, with no day missing from the first digest to the newest, nor after it
once --digest-due has passed since a day's end; each day's addenda; every
object a digest lists against its manifest and the store (so removing the
newest objects together with their manifests is found); the event counts;
the manifest head each digest names; and that every manifest of a digested
day is listed by a digest.

Signatures are checked with --public-key (an Ed25519 public key PEM, or the
private key, from which the public one is derived), or else with the key
derived from archive.signing_key of --config (the archiver's file). Without
either, signatures are not checked, and the report says so. Across a
rotation of the signing key give --public-key once per key: each manifest
and digest is checked with the key it names, and one signed by a key not
given is an unknown-key problem naming its day.

Each problem is printed with its kind, key and detail; the exit status is 1
when there is any.`,
		Example: `  auditctl archive verify --config archiver.yaml --from 2024-02-01 --to 2024-02-29
  auditctl archive verify --destinations destinations.yaml --connection acme-archive --account acc-123 --public-key archive-signing.pub.pem
  auditctl archive verify --destinations bucket.yaml --public-key old.pub.pem --public-key new.pub.pem --from 2024-02-01 --to 2024-02-29
  auditctl archive verify --config archiver.yaml --from -7d --to now -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if o.destinations == "" {
				o.destinations = cfg.Destinations.File
			}
			return runArchiveVerify(cmd.Context(), g, cfg, o)
		},
	}
	f := cmd.Flags()
	f.Var(o.from, "from", "check objects of this UTC day and later: "+dateForms)
	f.Var(o.to, "to", "check objects up to and including this UTC day, same forms as --from")
	f.StringVar(&o.connection, "connection", "", "storage connection to check (default every enabled storage connection)")
	f.StringVar(&o.destinations, "destinations", "", "destinations file (default destinations.file of --config)")
	f.StringArrayVar(&o.accounts, "account", nil, "check only this account (repeatable; default every account in the store)")
	f.StringArrayVar(&o.publicKeys, "public-key", nil, "Ed25519 key PEM checking the signatures (repeatable, one per signing key across a rotation; default derived from archive.signing_key of --config)")
	f.DurationVar(&o.digestDue, "digest-due", 3*time.Hour, "a day's digest is expected this long after the day's end (more than the archiver's grace)")
	f.VarP(&o.output, "output", "o", "text or json (the report)")
	return cmd
}

func (o *archiveVerifyOptions) check() error {
	if o.digestDue <= 0 {
		return fmt.Errorf("--digest-due %s must be positive", o.digestDue)
	}
	if o.from.set && o.to.set && o.from.t.After(o.to.t) {
		return fmt.Errorf("--from (%s) must not be after --to (%s)", o.from, o.to)
	}
	return checkAccounts(o.accounts)
}

// verifyKey is the keys signatures are checked with, and where they came
// from. KeyID and Source are the first key's (the only one without a
// rotation); Keys lists them all.
type verifyKey struct {
	Checked bool          `json:"checked"`
	KeyID   string        `json:"key_id,omitempty"`
	Source  string        `json:"source,omitempty"`
	Keys    []verifyKeyID `json:"keys,omitempty"`
	pubs    []ed25519.PublicKey
}

type verifyKeyID struct {
	KeyID  string `json:"key_id"`
	Source string `json:"source"`
}

func (k *verifyKey) add(pub ed25519.PublicKey, source string) {
	id := archive.KeyID(pub)
	if !k.Checked {
		k.Checked, k.KeyID, k.Source = true, id, source
	}
	k.Keys = append(k.Keys, verifyKeyID{KeyID: id, Source: source})
	k.pubs = append(k.pubs, pub)
}

func (o *archiveVerifyOptions) key(g *globals, cfg *Config) (verifyKey, error) {
	var k verifyKey
	if len(o.publicKeys) > 0 {
		for _, file := range o.publicKeys {
			data, err := os.ReadFile(file)
			if err != nil {
				return verifyKey{}, fmt.Errorf("--public-key: %w", err)
			}
			pub, err := archive.ParsePublicKey(data)
			if err != nil {
				return verifyKey{}, fmt.Errorf("--public-key %s: %w", file, err)
			}
			k.add(pub, "--public-key "+file)
		}
		return k, nil
	}
	if !cfg.Archive.SigningKey.IsSet() {
		return k, nil
	}
	pemBytes, err := cfg.Archive.SigningKey.Value()
	if err == nil {
		var pub ed25519.PublicKey
		if pub, err = archive.ParsePublicKey([]byte(pemBytes)); err == nil {
			k.add(pub, "archive.signing_key of "+configName(g))
			return k, nil
		}
	}
	return verifyKey{}, fmt.Errorf("archive.signing_key of %s: %w", configName(g), err)
}

func configName(g *globals) string {
	if g.configPath == "" {
		return "the environment"
	}
	return g.configPath
}

// verifyConnection is one connection's verification.
type verifyConnection struct {
	Connection string `json:"connection"`
	Store      string `json:"store"`
	*archive.Report
}

type verifySummary struct {
	From        string             `json:"from,omitempty"`
	To          string             `json:"to,omitempty"`
	Accounts    []string           `json:"accounts,omitempty"`
	Signatures  verifyKey          `json:"signatures"`
	Connections []verifyConnection `json:"connections"`
	Problems    int                `json:"problems"`
	OK          bool               `json:"ok"`
	Duration    float64            `json:"duration_seconds"`
}

func runArchiveVerify(ctx context.Context, g *globals, cfg *Config, o archiveVerifyOptions) error {
	start := time.Now()
	key, err := o.key(g, cfg)
	if err != nil {
		return err
	}
	conns, err := g.storageConnections(ctx, cfg, o.destinations, o.connection)
	if err != nil {
		return err
	}
	sum := verifySummary{From: o.from.String(), To: o.to.String(), Accounts: o.accounts, Signatures: key, Connections: []verifyConnection{}}
	vo := archive.VerifyOptions{Accounts: o.accounts, From: o.from.t, To: o.to.t, PublicKeys: key.pubs, Now: g.env.Now(), DigestDue: o.digestDue}
	for _, conn := range conns {
		store, err := openStore(ctx, conn)
		if err != nil {
			return err
		}
		rep, err := archive.Verify(ctx, store, vo)
		desc := store.Describe()
		_ = store.Close()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			return fmt.Errorf("verify connection %s (%s): %w", conn.Name, desc, err)
		}
		if rep.Problems == nil {
			rep.Problems = []archive.Problem{}
		}
		sum.Connections = append(sum.Connections, verifyConnection{Connection: conn.Name, Store: desc, Report: rep})
		sum.Problems += len(rep.Problems)
	}
	sum.OK = sum.Problems == 0
	sum.Duration = time.Since(start).Seconds()
	if err := report(g.env.Stdout, o.output, sum, sum.writeText); err != nil {
		return err
	}
	if sum.Problems > 0 {
		return fmt.Errorf("archive verification found %d problem(s)", sum.Problems)
	}
	return nil
}

// writeDayPolicy writes what a storage profile's policy did to one day.
func writeDayPolicy(b *strings.Builder, dp archive.DayPolicy) {
	fmt.Fprintf(b, "  %s %s: %d events left out by the filter", dp.Account, dp.Day, dp.Filtered)
	if dp.Whole > 0 {
		fmt.Fprintf(b, "; %d of %d manifests without a policy (whole events)", dp.Whole, dp.Whole+dp.Manifests)
	}
	b.WriteString("\n")
	for _, p := range dp.Policies {
		fmt.Fprintf(b, "    policy %s:", p.Version)
		if p.Filter != "" {
			fmt.Fprintf(b, " filter %s", printable(strings.Join(strings.Fields(p.Filter), " ")))
		} else {
			b.WriteString(" no filter")
		}
		if len(p.Redact) > 0 {
			var rules []string
			for _, r := range p.Redact {
				rule := r.Path + " " + r.Action
				if r.Keep > 0 {
					rule += fmt.Sprintf(" keep %d", r.Keep)
				}
				rules = append(rules, rule)
			}
			fmt.Fprintf(b, "; redact %s", printable(strings.Join(rules, ", ")))
		}
		if len(dp.Policies) > 1 {
			fmt.Fprintf(b, "; %d left out", p.Filtered)
		}
		b.WriteString("\n")
	}
}

func (s verifySummary) writeText(w io.Writer) error {
	var b strings.Builder
	days := "every day"
	switch {
	case s.From != "" && s.To != "":
		days = "days " + s.From + " to " + s.To
	case s.From != "":
		days = "days from " + s.From
	case s.To != "":
		days = "days up to " + s.To
	}
	fmt.Fprintf(&b, "verify objects of %s", days)
	if len(s.Accounts) > 0 {
		fmt.Fprintf(&b, ", accounts %s", strings.Join(s.Accounts, ", "))
	}
	b.WriteString("\n")
	if s.Signatures.Checked && len(s.Signatures.Keys) > 1 {
		b.WriteString("signatures checked with keys ")
		for i, k := range s.Signatures.Keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s)", k.KeyID, k.Source)
		}
		b.WriteString("\n")
	} else if s.Signatures.Checked {
		fmt.Fprintf(&b, "signatures checked with key %s (%s)\n", s.Signatures.KeyID, s.Signatures.Source)
	} else {
		b.WriteString("signatures NOT checked: no --public-key, and no archive.signing_key in --config\n")
	}
	for _, c := range s.Connections {
		fmt.Fprintf(&b, "\nconnection %s (%s)\n", c.Connection, c.Store)
		if len(c.Problems) > 0 {
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "KIND\tKEY\tDETAIL\n")
			for _, p := range c.Problems {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Kind, printable(p.Key), printable(p.Detail))
			}
			_ = tw.Flush()
		}
		if len(c.Policies) > 0 {
			b.WriteString("filtered or redacted days (the storage profile's policy, recorded in the manifests; not problems):\n")
			for _, dp := range c.Policies {
				writeDayPolicy(&b, dp)
			}
		}
		kinds := map[string]int{}
		for _, p := range c.Problems {
			kinds[p.Kind]++
		}
		var byKind []string
		for _, k := range sortedKeys(kinds) {
			byKind = append(byKind, fmt.Sprintf("%s %d", k, kinds[k]))
		}
		verdict := "no problem"
		if len(c.Problems) > 0 {
			verdict = fmt.Sprintf("%d problem(s): %s", len(c.Problems), strings.Join(byKind, ", "))
		}
		fmt.Fprintf(&b, "%d accounts, %d manifests, %d digests, %d objects checked (%d records, %d bytes): %s\n",
			c.Accounts, c.Manifests, c.Digests, c.Objects, c.Records, c.Bytes, verdict)
	}
	if s.OK {
		fmt.Fprintf(&b, "\nOK: %d connection(s), no problem\n", len(s.Connections))
	} else {
		fmt.Fprintf(&b, "\nFAILED: %d problem(s)\n", s.Problems)
	}
	fmt.Fprintf(&b, "took %s\n", time.Duration(s.Duration*float64(time.Second)).Round(time.Millisecond))
	_, err := io.WriteString(w, b.String())
	return err
}
