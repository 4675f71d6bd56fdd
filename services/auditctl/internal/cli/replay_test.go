package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The replayed range: two hours out of the two days of events.
var (
	replayFrom = testNow.Add(-30 * time.Hour)
	replayTo   = testNow.Add(-28 * time.Hour)
)

// accountPartition puts each test account on its own partition, as the
// record key would.
var accountPartition = map[string]int32{"acc-a": 0, "acc-b": 1, "acc-c": 2}

// twoDays is a topic holding an event every 5 minutes for each of acc-a,
// acc-b and acc-c over the two days before testNow, with record times equal
// to event times, plus records at the edges of the replayed range whose
// record and event times differ.
type twoDays struct {
	*testKafka
	// inRange are the ids of the events whose own time is in the replayed
	// range, by account.
	inRange map[string][]string
}

func newTwoDays(t *testing.T) *twoDays {
	t.Helper()
	k := &twoDays{testKafka: newTestKafka(t), inRange: map[string][]string{}}
	var recs []*kgo.Record
	add := func(account, id string, eventTime, recordTime time.Time) {
		_, r := eventAt(t, account, id, accountPartition[account], eventTime)
		r.Timestamp = recordTime
		recs = append(recs, r)
		if !eventTime.Before(replayFrom) && eventTime.Before(replayTo) {
			k.inRange[account] = append(k.inRange[account], id)
		}
	}
	start := testNow.Add(-48 * time.Hour)
	for i := 0; start.Add(time.Duration(i) * 5 * time.Minute).Before(testNow); i++ {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		for acc := range accountPartition {
			add(acc, fmt.Sprintf("%s-%04d", acc, i), at, at)
		}
	}
	// Written 2 minutes after it happened, just before the end: its record
	// time is after --to, within the grace.
	add("acc-a", "late-inside", replayTo.Add(-time.Minute), replayTo.Add(time.Minute))
	// Happened just before --from, written just after it.
	add("acc-a", "early-outside", replayFrom.Add(-time.Second), replayFrom.Add(time.Second))
	// Exactly at --to: outside; exactly at --from: inside (both on the
	// 5-minute grid already; these make sure with sub-second times too).
	add("acc-b", "at-to", replayTo, replayTo)
	add("acc-b", "just-before-to", replayTo.Add(-time.Nanosecond*1000), replayTo.Add(-time.Millisecond))
	// Sort by record time within each partition, as a live topic is.
	slices.SortStableFunc(recs, func(a, b *kgo.Record) int { return a.Timestamp.Compare(b.Timestamp) })
	for chunk := range slices.Chunk(recs, 500) {
		k.produce(t, chunk...)
	}
	return k
}

// ddDestinations writes a destinations file with Datadog connections dd-a
// (acc-a and acc-b route to it) and dd-c (acc-c), both to intake, and
// returns its path. Each connection's API key is its name.
func ddDestinations(t *testing.T, intake *ddfake.Server) string {
	t.Helper()
	dir := t.TempDir()
	var conns strings.Builder
	for _, name := range []string{"dd-a", "dd-c"} {
		key := filepath.Join(dir, name+".key")
		if err := os.WriteFile(key, []byte(name+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conns, "  %s:\n    type: datadog\n    settings:\n      base_url: %s\n      api_key: {file: \"%s\"}\n      tag_prefix: scalr\n      timeout: 2s\n", name, intake.URL(), key)
	}
	file := filepath.Join(dir, "destinations.yaml")
	content := "connections:\n" + conns.String() + `  archive:
    type: storage
  dd-off:
    type: datadog
    enabled: false
    settings:
      api_key: x
routes:
  - account: acc-a
    connections: [dd-a]
  - account: acc-b
    connections: [dd-a]
  - account: acc-c
    connections: [dd-c, archive]
`
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// testConfig is an auditctl config file with the delivery settings tuned
// for tests: small batches, fast backoff.
func testConfig(t *testing.T, destinationsFile string) string {
	t.Helper()
	return writeFile(t, "auditctl.yaml", fmt.Sprintf(`delivery:
  batch: {count: 50, bytes: 1MB, period: 20ms}
  backoff: {initial: 20ms, max: 200ms, multiplier: 2, jitter: 0.2}
  send_timeout: 5s
destinations:
  file: %s
`, destinationsFile))
}

// ddIDs returns the audit ids the intake accepted for key, sorted.
func ddIDs(intake *ddfake.Server, key string) []string {
	var ids []string
	for _, l := range intake.Logs(key) {
		id, _ := l["audit-id"].(string)
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func sortedConcat(lists ...[]string) []string {
	out := slices.Concat(lists...)
	slices.Sort(out)
	return out
}

// groupState is every group's committed offsets, to prove a command
// moved none of them.
func groupState(t *testing.T, k *testKafka) string {
	t.Helper()
	adm := kadm.NewClient(k.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, g := range groups.Sorted() {
		fmt.Fprintf(&b, "%s:%v ", g.Group, k.committed(t, g.Group))
	}
	return b.String()
}

func TestReplayRecoversFromFailures(t *testing.T) {
	k := newTwoDays(t)
	for _, c := range []struct {
		name   string
		status int
		header http.Header
	}{
		{"server errors", http.StatusInternalServerError, nil},
		{"rate limited", http.StatusTooManyRequests, http.Header{"X-RateLimit-Remaining": {"0"}, "X-RateLimit-Reset": {"0"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			intake := ddfake.New("dd-a", "dd-c")
			t.Cleanup(intake.Close)
			intake.FailNext(6, c.status, c.header)
			cfgFile := testConfig(t, ddDestinations(t, intake))
			r := mustCtl(t, "replay", "--config", cfgFile, "--brokers", k.addr, "--destination", "dd-a",
				"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339))
			want := sortedConcat(k.inRange["acc-a"], k.inRange["acc-b"])
			if got := ddIDs(intake, "dd-a"); !slices.Equal(got, want) {
				t.Errorf("after recovery dd-a holds %d events, want each of %d once", len(got), len(want))
			}
			failed := 0
			for _, req := range intake.Requests() {
				if req.Status == c.status {
					failed++
				}
			}
			if failed != 6 {
				t.Errorf("the intake failed %d requests, want 6", failed)
			}
			if !strings.Contains(r.stdout, fmt.Sprintf("\ntotal    %d       %d         0\n", len(want), len(want))) {
				t.Errorf("summary:\n%s", r.stdout)
			}
		})
	}
}

func TestReplayStopsWhenTheDestinationKeepsFailing(t *testing.T) {
	k := newTwoDays(t)
	for _, c := range []struct {
		name   string
		setup  func(*ddfake.Server)
		args   []string
		want   string
		output string
	}{
		{"retries spent", func(s *ddfake.Server) { s.Always("dd-a", http.StatusServiceUnavailable, nil) }, []string{"--retry-budget", "500ms"},
			"connection dd-a still failing after", "stopped early: connection dd-a still failing"},
		{"credentials refused", func(s *ddfake.Server) { s.RemoveKey("dd-a") }, nil,
			"connection dd-a refuses us (fix its settings, then run again): delivery unhealthy: HTTP 403", "matched events were not sent"},
		{"some events rejected", func(s *ddfake.Server) {
			s.RejectEntries(func(e []byte) bool { return strings.Contains(string(e), `"acc-b-0`) })
		}, nil, "24 of 50 events were rejected by connection dd-a", "rejected: audit.events/1@"},
	} {
		t.Run(c.name, func(t *testing.T) {
			intake := ddfake.New("dd-a", "dd-c")
			t.Cleanup(intake.Close)
			c.setup(intake)
			cfgFile := testConfig(t, ddDestinations(t, intake))
			args := append([]string{"replay", "--config", cfgFile, "--brokers", k.addr, "--destination", "dd-a",
				"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339)}, c.args...)
			start := time.Now()
			r := ctl(t, args...)
			if r.err == nil || !strings.Contains(r.err.Error(), c.want) {
				t.Errorf("replay = %v, want an error containing %q", r.err, c.want)
			}
			if !strings.Contains(r.stdout, c.output) {
				t.Errorf("summary lacks %q:\n%s", c.output, r.stdout)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestReplayDryRun(t *testing.T) {
	k := newTwoDays(t)
	intake := ddfake.New("dd-a", "dd-c")
	t.Cleanup(intake.Close)
	cfgFile := testConfig(t, ddDestinations(t, intake))
	r := mustCtl(t, "replay", "--config", cfgFile, "--brokers", k.addr, "--destination", "dd-a", "--dry-run",
		"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339))
	for _, want := range []string{
		"dry run: nothing sent",
		"ACCOUNT  MATCHED  WOULD SEND  REJECTED\nacc-a    25       25          0\nacc-b    25       25          0\ntotal    50       50          0\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := len(intake.Requests()); n != 0 {
		t.Errorf("a dry run sent %d requests", n)
	}
}

func TestReplayRateAndProgress(t *testing.T) {
	k := newTwoDays(t)
	intake := ddfake.New("dd-a", "dd-c")
	t.Cleanup(intake.Close)
	cfgFile := testConfig(t, ddDestinations(t, intake))
	defer func(d time.Duration) { progressLineInterval = d }(progressLineInterval)
	progressLineInterval = 100 * time.Millisecond
	start := time.Now()
	r := mustCtl(t, "replay", "--config", cfgFile, "--brokers", k.addr, "--destination", "dd-a", "--account", "acc-a", "--rate", "50",
		"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339))
	// 25 events at 50/s with a burst of 5: at least 0.4 s.
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("25 events at --rate 50 took only %s", d)
	}
	if !strings.Contains(r.stderr, "auditctl: replay to dd-a: ") || !strings.Contains(r.stderr, " records/s, ETA ") {
		t.Errorf("no progress lines on stderr:\n%s", r.stderr)
	}

	// On a terminal: a bar with the count, rate and time left.
	var stdout, stderr lockedBuffer
	cmd := NewRootCommand(Env{Stdout: &stdout, Stderr: &stderr, Environ: func() []string { return nil },
		Now: func() time.Time { return testNow }, IsTerminal: func(io.Writer) bool { return true }})
	cmd.SetArgs([]string{"replay", "--config", cfgFile, "--brokers", k.addr, "--destination", "dd-a", "--account", "acc-a", "--rate", "50",
		"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatal(err)
	}
	if bar := stderr.String(); !strings.Contains(bar, "replay to dd-a") || !strings.Contains(bar, "100%") || !strings.Contains(bar, "records/s") {
		t.Errorf("no progress bar on the terminal:\n%q", bar)
	}
}

func TestBadInputReplay(t *testing.T) {
	k := newTestKafka(t)
	intake := ddfake.New("dd-a")
	t.Cleanup(intake.Close)
	dests := ddDestinations(t, intake)
	cfgFile := testConfig(t, dests)
	badDests := writeFile(t, "bad.yaml", "connections:\n  dd-x:\n    type: datadog\n    settings:\n      site: example.com\n      api_key: k\n")
	ok := []string{"replay", "--from", "-2h", "--to", "-1h", "--destination", "dd-a"}
	with := func(extra ...string) []string { return append(slices.Clone(ok), extra...) }
	checkBadInputs(t, []badInput{
		{[]string{"replay", "--to", "-1h", "--destination", "dd-a"}, "--from is required"},
		{[]string{"replay", "--from", "-2h", "--destination", "dd-a"}, "--to is required"},
		{[]string{"replay", "--from", "-2h", "--to", "-1h"}, "--destination is required"},
		{[]string{"replay", "--from", "2024-02-16T12:00:00Z", "--to", "2024-02-16T10:00:00Z", "--destination", "dd-a"},
			"--from (2024-02-16T12:00:00Z) must be before --to (2024-02-16T10:00:00Z)"},
		{[]string{"replay", "--from", "-1h", "--to", "-1h", "--destination", "dd-a"}, "must be before --to"},
		{[]string{"replay", "--from", "yesterday", "--to", "-1h", "--destination", "dd-a"}, `invalid argument "yesterday" for "--from" flag: "yesterday" is not a time`},
		{[]string{"replay", "--from", "-2h", "--to", "2024-02-16T25:00:00Z", "--destination", "dd-a"}, `invalid argument "2024-02-16T25:00:00Z" for "--to" flag`},
		{[]string{"replay", "--from", "-2q", "--to", "-1h", "--destination", "dd-a"}, `bad duration "2q"`},
		{with("--rate", "-5"), "--rate must be 0 (no limit) or more, not -5"},
		{with("--rate", "fast"), `invalid argument "fast" for "--rate"`},
		{with("--grace", "-1m"), "--grace must not be negative"},
		{with("--retry-budget", "0s"), "--retry-budget must be positive"},
		{with("--account", ""), "--account must not be empty"},
		{with("--topic", ""), "--topic must not be empty"},
		{with("-o", "yaml"), `invalid argument "yaml" for "-o, --output" flag: must be text or json`},
		{with(), "no destinations file: give --destinations, or destinations.file in --config"},
		{with("--destinations", "/no/such/file.yaml"), "destinations file /no/such/file.yaml: read destinations: open /no/such/file.yaml: no such file or directory"},
		{[]string{"replay", "--from", "-2h", "--to", "-1h", "--destination", "dd-x", "--destinations", badDests}, "connections.dd-x.settings.site: \"example.com\" is not a Datadog site"},
		{[]string{"replay", "--config", cfgFile, "--from", "-2h", "--to", "-1h", "--destination", "dd-nope"}, `unknown connection "dd-nope" in ` + dests + " (there are dd-a, dd-c, dd-off)"},
		{[]string{"replay", "--config", cfgFile, "--from", "-2h", "--to", "-1h", "--destination", "archive"}, "connection archive in " + dests + " is of type storage; events can be sent to datadog or eventbridge or otlp connections"},
		{[]string{"replay", "--config", cfgFile, "--from", "-2h", "--to", "-1h", "--destination", "dd-off"}, "connection dd-off is disabled in " + dests},
		{[]string{"replay", "--config", cfgFile, "--from", "-2h", "--to", "-1h", "--destination", "dd-a", "--account", "acc-c"},
			"account acc-c does not route to connection dd-a in " + dests + ": replay sends an account's events only to its own connections"},
		{[]string{"replay", "--config", cfgFile, "--brokers", k.addr, "--from", "-2h", "--to", "-1h", "--destination", "dd-a", "--topic", "nope"}, "topic nope does not exist"},
		{[]string{"replay", "--config", cfgFile, "--timeout", "1s", "--brokers", closedAddr(t), "--from", "-2h", "--to", "-1h", "--destination", "dd-a"}, "cannot reach Kafka at 127.0.0.1:"},
	})
}
