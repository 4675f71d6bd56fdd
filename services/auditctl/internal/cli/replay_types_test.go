package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/auditctl/internal/replay"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
)

// replayFake is one connection type's fake, started for a test, as the
// replay test drives and reads it. Its destinations file routes acc-a and
// acc-b to connection <prefix>-a and acc-c to <prefix>-c, both on the fake.
type replayFake struct {
	destinations string
	// received are the audit ids connection conn accepted, in any order.
	received func(t *testing.T, conn string) []string
	// count is how many events connection conn accepted.
	count func(conn string) int
	// stumble makes the next calls fail as the destination fails for a
	// while; replay must retry through it.
	stumble func()
	// checkEncoded fails the test unless what conn accepted is encoded as
	// the forwarder encodes it.
	checkEncoded func(t *testing.T, conn string)
}

// replayType is a connection type replay sends to: what is its own, the
// rest of TestReplayToEachType is the same for every type.
type replayType struct {
	typ    string
	prefix string // of its connections' names
	// group is the type's forwarder's consumer group, which replay must
	// leave where it is.
	group string
	// secret is a credential in the destinations file that must never be
	// printed.
	secret string
	// olderThanWindow: the type's destination keeps events only so long,
	// and the replayed ones (a day old) are counted as older.
	olderThanWindow bool
	start           func(t *testing.T) replayFake
}

var replayTypes = []replayType{
	{typ: "datadog", prefix: "dd", group: "auditstream-datadog", secret: ddKey("dd-a"), olderThanWindow: true, start: datadogFake},
	{typ: "eventbridge", prefix: "eb", group: "auditstream-eventbridge", secret: ebSecret, start: eventBridgeFake},
	{typ: "otlp", prefix: "otlp", group: "auditstream-otlp", secret: otlpToken, start: otlpFake},
}

// TestReplayToEachType replays the range to each connection type's fake:
// every event of the accounts asked for, and only those, reaches the
// connection, encoded as the forwarder encodes it, through transient
// failures; nothing reaches the other connection, no consumer group
// moves, no credential is printed, and the summary counts it all.
func TestReplayToEachType(t *testing.T) {
	k := newTwoDays(t)
	for _, rt := range replayTypes {
		k.commit(t, rt.group, map[int32]int64{0: 10, 1: 20, 2: 30})
	}
	before := groupState(t, k.testKafka)
	if len(k.inRange["acc-a"]) != 25 || len(k.inRange["acc-b"]) != 25 { // 24 on the grid + late-inside / just-before-to
		t.Fatalf("fixture: %d and %d events in range", len(k.inRange["acc-a"]), len(k.inRange["acc-b"]))
	}
	cases := []struct {
		name     string
		accounts []string
		stumble  bool
		json     bool // -o json, else the text summary
		want     []string
	}{
		{"every routed account", nil, false, true, sortedConcat(k.inRange["acc-a"], k.inRange["acc-b"])},
		{"acc-a only", []string{"acc-a"}, false, false, sortedConcat(k.inRange["acc-a"])},
		{"acc-b only", []string{"acc-b"}, false, true, sortedConcat(k.inRange["acc-b"])},
		{"failing then recovering", nil, true, false, sortedConcat(k.inRange["acc-a"], k.inRange["acc-b"])},
	}
	for _, rt := range replayTypes {
		for _, c := range cases {
			t.Run(rt.typ+"/"+c.name, func(t *testing.T) {
				fake := rt.start(t)
				if c.stumble {
					fake.stumble()
				}
				dest, other := rt.prefix+"-a", rt.prefix+"-c"
				args := []string{"replay", "--config", testConfig(t, fake.destinations), "--brokers", k.addr, "--destination", dest,
					"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339)}
				for _, a := range c.accounts {
					args = append(args, "--account", a)
				}
				if c.json {
					args = append(args, "-o", "json")
				}
				r := mustCtl(t, args...)
				got := fake.received(t, dest)
				slices.Sort(got)
				if !slices.Equal(got, c.want) {
					t.Errorf("%s received %d events:\n%v\nwant %d:\n%v", dest, len(got), got, len(c.want), c.want)
				}
				if n := fake.count(other); n != 0 {
					t.Errorf("%s received %d events; replay to %s must send nothing elsewhere", other, n, dest)
				}
				fake.checkEncoded(t, dest)
				if strings.Contains(r.stdout+r.stderr, rt.secret) {
					t.Errorf("the secret %q was printed:\n%s\n%s", rt.secret, r.stdout, r.stderr)
				}
				atRisk := 0
				if rt.olderThanWindow {
					atRisk = len(c.want)
				}
				if !c.json {
					if !strings.Contains(r.stdout, fmt.Sprintf("\ntotal    %d       %d         0\n", len(c.want), len(c.want))) {
						t.Errorf("summary:\n%s", r.stdout)
					}
					if warned := strings.Contains(r.stdout, fmt.Sprintf("warning: %d events were older than", atRisk)); warned != (atRisk > 0) {
						t.Errorf("warning about old events: %v, want %v:\n%s", warned, atRisk > 0, r.stdout)
					}
					return
				}
				var sum replay.Summary
				if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
					t.Fatalf("summary is not JSON: %v\n%s", err, r.stdout)
				}
				if sum.Matched != int64(len(c.want)) || sum.Delivered != sum.Matched || sum.Rejected != 0 || sum.Error != "" {
					t.Errorf("summary: %+v", sum)
				}
				// acc-c does not route to the connection; with --account it
				// is one of the other accounts first.
				if sum.Skipped.OutsideTimeRange == 0 || (c.accounts == nil) != (sum.Skipped.NotRouted > 0) || (c.accounts != nil) != (sum.Skipped.OtherAccounts > 0) {
					t.Errorf("skipped: %+v", sum.Skipped)
				}
				if sum.AtRisk != int64(atRisk) {
					t.Errorf("%d events counted older than the destination's window, want %d", sum.AtRisk, atRisk)
				}
			})
		}
	}
	if after := groupState(t, k.testKafka); after != before {
		t.Errorf("replay moved consumer groups:\nbefore %s\nafter  %s", before, after)
	}
}

// ddKey is the API key of Datadog connection conn, which the intake takes.
func ddKey(conn string) string { return conn + "-api-key-never-printed" }

// datadogFake is a Datadog intake taking the API key of each connection.
func datadogFake(t *testing.T) replayFake {
	intake := ddfake.New(ddKey("dd-a"), ddKey("dd-c"))
	t.Cleanup(intake.Close)
	dir := t.TempDir()
	return replayFake{
		destinations: typeDestinations(t, "datadog", "dd", func(name string) string {
			key := filepath.Join(dir, name+".key")
			if err := os.WriteFile(key, []byte(ddKey(name)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf(`
      base_url: %s
      api_key: {file: "%s"}
      tag_prefix: scalr
      timeout: 2s`, intake.URL(), key)
		}),
		received: func(_ *testing.T, conn string) []string { return ddIDs(intake, ddKey(conn)) },
		count:    func(conn string) int { return intake.Count(ddKey(conn)) },
		stumble:  func() { intake.FailNext(3, http.StatusInternalServerError, nil) },
		checkEncoded: func(t *testing.T, conn string) {
			for _, l := range intake.Logs(ddKey(conn)) {
				if l["ddsource"] != "scalr" || l["service"] != "audit-log" {
					t.Fatalf("log %v is not what the forwarder sends", l)
				}
			}
		},
	}
}

// The AWS keys the EventBridge fake checks every signature with.
const (
	ebKeyID  = "AKIDAUDITCTLTEST0001"
	ebSecret = "auditctl-secret-never-printed"
)

// eventBridgeFake is an EventBridge that verifies signatures with the test
// keys; connection eb-a writes to its bus eb-a, eb-c to eb-c.
func eventBridgeFake(t *testing.T) replayFake {
	bus := ebfake.New()
	t.Cleanup(bus.Close)
	bus.AddKey(ebfake.Key{AccessKeyID: ebKeyID, SecretAccessKey: ebSecret})
	bus.RequireKnownKeys(true)
	dir := t.TempDir()
	for name, value := range map[string]string{"key-id": ebKeyID, "secret": ebSecret} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dests := typeDestinations(t, "eventbridge", "eb", func(name string) string {
		return fmt.Sprintf(`
      region: eu-west-1
      event_bus: %s
      endpoint: %s
      prefix: scalr
      timeout: 5s
      credentials:
        access_key_id: {file: "%s"}
        secret_access_key: {file: "%s"}`, name, bus.URL(), filepath.Join(dir, "key-id"), filepath.Join(dir, "secret"))
	})
	return replayFake{
		destinations: dests,
		received: func(t *testing.T, conn string) []string {
			var ids []string
			for _, e := range bus.Entries(conn) {
				var detail struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal([]byte(e.Detail), &detail); err != nil {
					t.Fatalf("detail is not JSON: %v", err)
				}
				ids = append(ids, detail.ID)
			}
			return ids
		},
		count:   bus.Count,
		stumble: func() { bus.Throttle(4); bus.FailNext(3, http.StatusInternalServerError, "", "") },
		checkEncoded: func(t *testing.T, conn string) {
			for _, e := range bus.Entries(conn) {
				if e.Source != "scalr.audit-log" || e.DetailType != "Audit Event" {
					t.Fatalf("entry %+v is not what the forwarder sends", e)
				}
			}
		},
	}
}

// otlpToken is the bearer token of the test's OTLP connections.
const otlpToken = "auditctl-otlp-token-never-printed"

// otlpFake is an OTLP receiver that requires the test token and a tenant;
// each connection has its name as its tenant.
func otlpFake(t *testing.T) replayFake {
	recv := otlpfake.New()
	t.Cleanup(recv.Close)
	recv.RequireAuthorization("Bearer " + otlpToken)
	recv.RequireTenant(true)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte(otlpToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dests := typeDestinations(t, "otlp", "otlp", func(name string) string {
		return fmt.Sprintf(`
      endpoint: %s
      allow_http: true
      tenant_id: %s
      timeout: 5s
      auth: {token: {file: "%s"}}`, recv.URL(), name, token)
	})
	return replayFake{
		destinations: dests,
		received:     func(_ *testing.T, conn string) []string { return recv.EventIDs(conn) },
		count:        recv.Accepted,
		stumble:      func() { recv.FailNext(3, http.StatusServiceUnavailable, http.Header{"Retry-After": {"0"}}) },
		checkEncoded: func(t *testing.T, conn string) {
			// The resource the forwarder's records carry.
			for _, rec := range recv.Records(conn) {
				if rec.Resource["service.name"] != "audit-log" {
					t.Fatalf("record %s has resource %v, not what the forwarder sends", rec.EventID, rec.Resource)
				}
			}
		},
	}
}

// typeDestinations writes a destinations file with connections of typ
// <prefix>-a, which acc-a and acc-b route to, and <prefix>-c, which acc-c
// routes to, each with the settings (YAML under "settings:") that
// settings gives for its name, and returns its path.
func typeDestinations(t *testing.T, typ, prefix string, settings func(name string) string) string {
	t.Helper()
	a, c := prefix+"-a", prefix+"-c"
	var b strings.Builder
	b.WriteString("connections:\n")
	for _, name := range []string{a, c} {
		fmt.Fprintf(&b, "  %s:\n    type: %s\n    settings:%s\n", name, typ, settings(name))
	}
	fmt.Fprintf(&b, "routes:\n  - account: acc-a\n    connections: [%s]\n  - account: acc-b\n    connections: [%s]\n  - account: acc-c\n    connections: [%s]\n", a, a, c)
	return writeFile(t, "destinations.yaml", b.String())
}
