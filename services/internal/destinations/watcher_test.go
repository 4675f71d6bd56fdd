package destinations

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const interval = 100 * time.Millisecond

const fileV1 = `
connections:
  dd-acme:
    type: datadog
    settings: {site: datadoghq.eu, api_key: {file: /keys/acme}}
  dd-globex:
    type: datadog
    settings: {site: datadoghq.com, api_key: {file: /keys/globex}}
  eb-acme:
    type: eventbridge
routes:
  - {account: acc-acme, connections: [dd-acme, eb-acme]}
  - {account: acc-globex, connections: [dd-globex]}
`

// fileV2 moves acc-globex to the EU site and disables eb-acme.
const fileV2 = `
connections:
  dd-acme:
    type: datadog
    settings: {site: datadoghq.eu, api_key: {file: /keys/acme}}
  dd-globex:
    type: datadog
    settings: {site: datadoghq.eu, api_key: {file: /keys/globex}}
  eb-acme:
    type: eventbridge
    enabled: false
routes:
  - {account: acc-acme, connections: [dd-acme, eb-acme]}
  - {account: acc-globex, connections: [dd-globex]}
`

type harness struct {
	t    *testing.T
	path string
	w    *Watcher
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
	subs <-chan *Table
}

// start writes content, builds a Watcher on it and runs it until the test
// ends. Call it inside a synctest bubble.
func start(t *testing.T, path, content string, check func(*Table) error) *harness {
	t.Helper()
	if content != "" {
		write(t, path, content)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	w, err := NewWatcher(Options{Path: path, PollInterval: interval, Check: check, Logger: zap.New(core), Registerer: reg})
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	subs, unsubscribe := w.Subscribe()
	if first := <-subs; first != w.Current() {
		t.Fatal("Subscribe should deliver the current table first")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		unsubscribe()
		if _, open := <-subs; open {
			t.Error("the channel should be closed once unsubscribed")
		}
	})
	return &harness{t: t, path: path, w: w, reg: reg, logs: logs, subs: subs}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// next waits for the next published table, for at most a few polls (of the
// bubble's clock, so the wait costs no real time).
func (h *harness) next() *Table {
	h.t.Helper()
	select {
	case tab := <-h.subs:
		return tab
	case <-time.After(5 * interval):
		h.t.Fatal("no new table was published")
		return nil
	}
}

// quiet asserts that nothing is published over a few polls.
func (h *harness) quiet() {
	h.t.Helper()
	select {
	case tab := <-h.subs:
		h.t.Fatalf("unexpected table published: %v", names(tab.Connections()))
	case <-time.After(5 * interval):
	}
}

func (h *harness) failures() float64 { return testutil.ToFloat64(h.w.m.failures) }

func TestWatcherReloadsOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, filepath.Join(t.TempDir(), "destinations.yaml"), fileV1, nil)
		v1 := h.w.Current()
		if got := names(v1.Route("acc-acme")); !slices.Equal(got, []string{"dd-acme", "eb-acme"}) {
			t.Fatalf("v1 Route(acc-acme) = %v", got)
		}
		write(t, h.path, fileV2)
		v2 := h.next()
		if v2 != h.w.Current() {
			t.Error("the published table should be Current")
		}
		if got := names(v2.Route("acc-acme")); !slices.Equal(got, []string{"dd-acme"}) {
			t.Errorf("v2 Route(acc-acme) = %v", got)
		}
		// A runtime keeps dd-acme's client and rebuilds dd-globex's.
		if v1.Lookup("dd-acme").Fingerprint != v2.Lookup("dd-acme").Fingerprint {
			t.Error("dd-acme did not change but its fingerprint did")
		}
		if v1.Lookup("dd-globex").Fingerprint == v2.Lookup("dd-globex").Fingerprint {
			t.Error("dd-globex changed but its fingerprint did not")
		}
		// Comments and formatting alone publish nothing.
		write(t, h.path, "# reformatted\n"+strings.ReplaceAll(fileV2, "  - {", "  -   {"))
		h.quiet()
		if h.w.Current() != v2 {
			t.Error("a comment-only change replaced the table")
		}
		if h.failures() != 0 {
			t.Errorf("failures = %v", h.failures())
		}
	})
}

func TestWatcherFollowsRenameSwap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := start(t, filepath.Join(dir, "destinations.yaml"), fileV1, nil)
		// How editors and most config tools replace a file.
		tmp := filepath.Join(dir, ".destinations.yaml.tmp")
		write(t, tmp, fileV2)
		if err := os.Rename(tmp, h.path); err != nil {
			t.Fatal(err)
		}
		if got := names(h.next().Route("acc-acme")); !slices.Equal(got, []string{"dd-acme"}) {
			t.Errorf("after rename, Route(acc-acme) = %v", got)
		}
	})
}

func TestWatcherFollowsConfigMapSymlinkSwap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The layout of a mounted ConfigMap: the file is a symlink through
		// ..data, which the kubelet swaps atomically to a new directory.
		dir := t.TempDir()
		version := func(name, content string) {
			if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, name, "destinations.yaml"), content)
		}
		swap := func(name string) {
			tmp := filepath.Join(dir, "..data_tmp")
			if err := os.Symlink(name, tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
		}
		version("..2025_01_01_00_00_00.000000001", fileV1)
		swap("..2025_01_01_00_00_00.000000001")
		path := filepath.Join(dir, "destinations.yaml")
		if err := os.Symlink(filepath.Join("..data", "destinations.yaml"), path); err != nil {
			t.Fatal(err)
		}
		h := start(t, path, "", nil)
		version("..2025_01_01_00_01_00.000000002", fileV2)
		swap("..2025_01_01_00_01_00.000000002")
		if err := os.RemoveAll(filepath.Join(dir, "..2025_01_01_00_00_00.000000001")); err != nil {
			t.Fatal(err)
		}
		if got := names(h.next().Route("acc-acme")); !slices.Equal(got, []string{"dd-acme"}) {
			t.Errorf("after the swap, Route(acc-acme) = %v", got)
		}
	})
}

func TestWatcherKeepsTableOnBadVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, filepath.Join(t.TempDir(), "destinations.yaml"), fileV1, nil)
		v1 := h.w.Current()
		before := testutil.ToFloat64(h.w.m.lastSuccess)

		bad := strings.Replace(fileV2, "connections: [dd-globex]", "connections: [dd-globex, dd-nope]", 1)
		write(t, h.path, bad)
		h.quiet() // several polls of the same bad bytes
		if h.w.Current() != v1 {
			t.Fatal("a bad version replaced the table")
		}
		if h.failures() != 1 {
			t.Errorf("failures = %v, want 1: a bad version counts once, not at every poll", h.failures())
		}
		if got := testutil.ToFloat64(h.w.m.lastOK); got != 0 {
			t.Errorf("last_reload_successful = %v, want 0", got)
		}
		if testutil.ToFloat64(h.w.m.lastSuccess) != before {
			t.Error("a rejected version moved the success timestamp")
		}
		rejected := h.logs.FilterMessage("destinations file rejected; the current table stays").All()
		if len(rejected) != 1 || !strings.Contains(rejected[0].ContextMap()["error"].(string), `routes[1].connections[1]: line 14: no connection is named "dd-nope"`) {
			t.Errorf("rejection logs = %v", rejected)
		}
		// Reload says why.
		if err := h.w.Reload(); err == nil || !strings.Contains(err.Error(), "dd-nope") {
			t.Errorf("Reload() = %v", err)
		}
		if h.failures() != 2 {
			t.Errorf("failures after Reload = %v, want 2", h.failures())
		}

		// A missing file is a bad version too.
		if err := os.Remove(h.path); err != nil {
			t.Fatal(err)
		}
		h.quiet()
		if h.w.Current() != v1 || h.failures() != 3 {
			t.Errorf("missing file: failures = %v, table kept = %v", h.failures(), h.w.Current() == v1)
		}

		// The fixed version goes through, a fake second later.
		time.Sleep(time.Second)
		write(t, h.path, fileV2)
		if got := names(h.next().Route("acc-acme")); !slices.Equal(got, []string{"dd-acme"}) {
			t.Errorf("after the fix, Route(acc-acme) = %v", got)
		}
		if got := testutil.ToFloat64(h.w.m.lastOK); got != 1 {
			t.Errorf("last_reload_successful = %v, want 1", got)
		}
		if after := testutil.ToFloat64(h.w.m.lastSuccess); after <= before {
			t.Errorf("success timestamp %v did not move past %v", after, before)
		}
	})
}

// A forwarder's own check rejects a whole version for one bad setting of its
// type, and ignores the settings of other types.
func TestWatcherCheckRejectsBadSettings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		check := CheckType(TypeDatadog, func(c *Connection) error {
			var s ddSettings
			return c.Decode(&s)
		})
		h := start(t, filepath.Join(t.TempDir(), "destinations.yaml"), fileV1, check)
		v1 := h.w.Current()
		typo := strings.Replace(fileV2, "settings: {site: datadoghq.eu, api_key: {file: /keys/globex}}", "settings: {site: datadoghq.eu, api_kye: {file: /keys/globex}}", 1)
		write(t, h.path, typo)
		h.quiet()
		if h.w.Current() != v1 || h.failures() != 1 {
			t.Fatalf("a datadog typo: failures = %v, table kept = %v", h.failures(), h.w.Current() == v1)
		}
		err := h.w.Reload()
		if err == nil || !strings.Contains(err.Error(), "connections.dd-globex.settings.api_kye: line 8: unknown field") {
			t.Errorf("Reload() = %v", err)
		}
		// Settings the datadog check does not know, on an eventbridge connection.
		other := strings.Replace(fileV2, "type: eventbridge\n", "type: eventbridge\n    settings: {bus: audit, region: eu-west-1}\n", 1)
		write(t, h.path, other)
		if tab := h.next(); tab.Lookup("eb-acme") == nil || !tab.Lookup("eb-acme").HasSettings() {
			t.Error("the eventbridge settings did not load")
		}
	})
}

// An in-place write is read twice: a half-written file that happens to parse
// (here, the route's "enabled: false" not yet written) is never published.
func TestWatcherWaitsForInPlaceWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		full := fileV1 + "  - account: acc-acme\n    connections: [dd-globex]\n    enabled: false\n"
		h := start(t, filepath.Join(t.TempDir(), "destinations.yaml"), fileV1, nil)
		// The watcher polls at 100ms and reads again 10ms later.
		time.Sleep(interval - 5*time.Millisecond)
		write(t, h.path, strings.TrimSuffix(full, "    enabled: false\n"))
		time.Sleep(10 * time.Millisecond) // the poll has read the partial file
		write(t, h.path, full)
		tab := h.next()
		if got := names(tab.Route("acc-acme")); !slices.Equal(got, []string{"dd-acme", "eb-acme"}) {
			t.Errorf("Route(acc-acme) = %v: a half-written file was published", got)
		}
		if len(tab.Routes()) != 3 {
			t.Errorf("published %d routes, want 3", len(tab.Routes()))
		}
	})
}

func TestWatcherReloadAndSubscribers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "destinations.yaml")
	write(t, path, fileV1)
	w, err := NewWatcher(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if w.interval != DefaultPollInterval || w.settle != maxSettle {
		t.Errorf("defaults: interval %v, settle %v", w.interval, w.settle)
	}
	slow, stopSlow := w.Subscribe()
	defer stopSlow()
	write(t, path, fileV2)
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	write(t, path, fileV1)
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	// The slow subscriber missed v2 and gets the latest, v1 again.
	if got := <-slow; got != w.Current() || len(got.Route("acc-acme")) != 2 {
		t.Errorf("slow subscriber got %v", names(got.Route("acc-acme")))
	}
	select {
	case tab := <-slow:
		t.Errorf("more than the latest table queued: %v", names(tab.Connections()))
	default:
	}
	// An unchanged file is read again but publishes nothing.
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-slow:
		t.Error("an unchanged file was published")
	default:
	}
	stopSlow()
	stopSlow() // twice is fine
}

func TestNewWatcherRejectsBadStart(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	write(t, bad, "connections: {dd: {type: nope}}")
	for name, o := range map[string]Options{
		"no path":      {},
		"missing file": {Path: filepath.Join(dir, "missing.yaml")},
		"invalid file": {Path: bad},
		"failed check": {Path: bad, Check: func(*Table) error { return fmt.Errorf("no") }},
	} {
		if _, err := NewWatcher(o); err == nil {
			t.Errorf("%s: NewWatcher succeeded", name)
		}
	}
}

func TestWatcherMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	w, err := NewWatcher(Options{Path: "testdata/valid/full.yaml", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	// A second watcher on the same registry shares the collectors.
	if _, err := NewWatcher(Options{Path: "testdata/valid/full.yaml", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]float64{TypeDatadog: 2, TypeEventBridge: 1, TypeOTLP: 0, TypeStorage: 1} {
		if got := testutil.ToFloat64(w.m.connections.WithLabelValues(typ)); got != want {
			t.Errorf("connections{type=%s} = %v, want %v", typ, got, want)
		}
	}
	if ts := testutil.ToFloat64(w.m.lastSuccess); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success timestamp = %v", ts)
	}
	n, err := testutil.GatherAndCount(reg,
		"auditstream_destinations_reload_failures_total",
		"auditstream_destinations_last_reload_success_timestamp_seconds",
		"auditstream_destinations_last_reload_successful",
		"auditstream_destinations_connections")
	// one connections series per type
	if want := 3 + len(Types); err != nil || n != want {
		t.Errorf("gathered %d series (%v), want %d", n, err, want)
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config (the topic alone): %v", err)
	}
	off := DefaultConfig()
	off.Topic = false
	if err := off.Validate(); err == nil || !strings.Contains(err.Error(), "file: is required unless topic is on") {
		t.Errorf("neither file nor topic: %v", err)
	}
	bad := DefaultConfig()
	bad.Encryption.KeyringFile = "/k"
	bad.Encryption.KMS.KeyID = "alias/x"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "encryption.") {
		t.Errorf("two key-encryption keys: %v", err)
	}
	c := DefaultConfig()
	c.File = "/etc/auditstream/destinations.yaml"
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c.PollInterval = time.Millisecond
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "poll_interval") {
		t.Errorf("1ms poll: %v", err)
	}
}

// Settings values (here an inline API key) never reach a log line or an
// error, whatever goes wrong with the file; logs name connections only.
func TestSecretsNeverLogged(t *testing.T) {
	const secret = "Zq7Xv9Kp-dd-api-key-0f3c9a1b2e4d"
	withKey := func(key string) string {
		return "connections:\n" +
			"  dd-acme:\n" +
			"    type: datadog\n" +
			"    settings:\n" +
			"      site: datadoghq.eu\n" +
			"      api_key: " + key + "\n" +
			"      batch: {count: 100, period: 1s}\n" +
			"routes:\n" +
			"  - {account: acc-acme, connections: [dd-acme]}\n"
	}
	synctest.Test(t, func(t *testing.T) {
		check := CheckType(TypeDatadog, func(c *Connection) error {
			var s ddSettings
			if err := c.Decode(&s); err != nil {
				return err
			}
			if _, err := s.APIKey.Value(); err != nil {
				return fmt.Errorf("%s.api_key: %w", c.SettingsPath(), err)
			}
			return nil
		})
		h := start(t, filepath.Join(t.TempDir(), "destinations.yaml"), withKey(secret), check)
		fingerprint := h.w.Current().Lookup("dd-acme").Fingerprint
		versions := []struct {
			name string
			src  string
			ok   bool
		}{
			{"unknown connection", withKey(secret) + "  - {account: acc-x, connections: [dd-nope]}\n", false},
			{"key under a misspelt name", strings.Replace(withKey(secret), "api_key:", "api_kye:", 1), false},
			{"key in a number field", strings.Replace(withKey(secret), "count: 100", "count: "+secret, 1), false},
			{"key in a list", strings.Replace(withKey(secret), "site: datadoghq.eu", "site: ["+secret+"]", 1), false},
			{"key as settings", strings.Replace(withKey(secret), "    settings:\n", "    settings: "+secret+"\n    x:\n", 1), false},
			{"broken YAML near the key", strings.Replace(withKey(secret), "api_key: ", "api_key: : {", 1), false},
			{"unset env reference", withKey("{env: AUDITSTREAM_TEST_UNSET_KEY}"), false},
			{"rotated key", withKey(secret + "-rotated"), true},
		}
		for _, v := range versions {
			write(t, h.path, v.src)
			if v.ok {
				h.next()
			} else {
				h.quiet()
			}
			err := h.w.Reload()
			if (err == nil) != v.ok {
				t.Errorf("%s: Reload() = %v", v.name, err)
			}
			if err != nil && strings.Contains(err.Error(), secret[:7]) {
				t.Errorf("%s: the error quotes the key: %v", v.name, err)
			}
		}
		if h.failures() < 7 {
			t.Errorf("failures = %v, want every bad version counted", h.failures())
		}
		entries := h.logs.All()
		if len(entries) < 8 {
			t.Fatalf("only %d log entries", len(entries))
		}
		for _, e := range entries {
			line := e.Message + fmt.Sprint(e.ContextMap())
			for _, leak := range []string{secret[:7], fingerprint} {
				if strings.Contains(line, leak) {
					t.Errorf("a log entry holds %q: %s", leak, line)
				}
			}
		}
		changed := h.logs.FilterMessage("destinations loaded").All()
		if last := changed[len(changed)-1].ContextMap(); fmt.Sprint(last["changed"]) != "[dd-acme]" {
			t.Errorf("the rotation log names %v, want [dd-acme]", last["changed"])
		}
	})
}
