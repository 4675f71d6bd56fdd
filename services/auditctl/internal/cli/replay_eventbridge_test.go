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

	"github.com/auditstream/auditstream/services/testsupport/ebfake"
)

// The AWS keys the EventBridge fake checks every signature with.
const (
	ebKeyID  = "AKIDAUDITCTLTEST0001"
	ebSecret = "auditctl-secret-never-printed"
)

// newBus starts an EventBridge fake that verifies signatures with the test
// keys.
func newBus(t *testing.T) *ebfake.Server {
	t.Helper()
	bus := ebfake.New()
	t.Cleanup(bus.Close)
	bus.AddKey(ebfake.Key{AccessKeyID: ebKeyID, SecretAccessKey: ebSecret})
	bus.RequireKnownKeys(true)
	return bus
}

// ebDestinations writes a destinations file with EventBridge connections
// eb-a (acc-a and acc-b route to it) and eb-c (acc-c), each writing to the
// fake's bus of its own name, with the test keys in Secret files.
func ebDestinations(t *testing.T, bus *ebfake.Server) string {
	t.Helper()
	dir := t.TempDir()
	for name, value := range map[string]string{"key-id": ebKeyID, "secret": ebSecret} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	b.WriteString("connections:\n")
	for _, name := range []string{"eb-a", "eb-c"} {
		fmt.Fprintf(&b, `  %s:
    type: eventbridge
    settings:
      region: eu-west-1
      event_bus: %s
      endpoint: %s
      prefix: scalr
      timeout: 5s
      credentials:
        access_key_id: {file: "%s"}
        secret_access_key: {file: "%s"}
`, name, name, bus.URL(), filepath.Join(dir, "key-id"), filepath.Join(dir, "secret"))
	}
	b.WriteString("routes:\n  - account: acc-a\n    connections: [eb-a]\n  - account: acc-b\n    connections: [eb-a]\n  - account: acc-c\n    connections: [eb-c]\n")
	file := filepath.Join(dir, "destinations.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// busIDs returns the audit ids of the events on a bus, sorted.
func busIDs(t *testing.T, bus *ebfake.Server, name string) []string {
	t.Helper()
	var ids []string
	for _, e := range bus.Entries(name) {
		var detail struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(e.Detail), &detail); err != nil {
			t.Fatalf("detail is not JSON: %v", err)
		}
		ids = append(ids, detail.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestReplayToEventBridge(t *testing.T) {
	k := newTwoDays(t)
	k.commit(t, "auditstream-eventbridge", map[int32]int64{0: 10, 1: 20, 2: 30})
	before := groupState(t, k.testKafka)
	for _, c := range []struct {
		name     string
		accounts []string
		fail     func(*ebfake.Server)
		want     []string
	}{
		{"every routed account", nil, nil, sortedConcat(k.inRange["acc-a"], k.inRange["acc-b"])},
		{"one account", []string{"acc-a"}, nil, sortedConcat(k.inRange["acc-a"])},
		{"throttled then recovering", nil, func(b *ebfake.Server) { b.Throttle(4); b.FailNext(3, http.StatusInternalServerError, "", "") },
			sortedConcat(k.inRange["acc-a"], k.inRange["acc-b"])},
	} {
		t.Run(c.name, func(t *testing.T) {
			bus := newBus(t)
			if c.fail != nil {
				c.fail(bus)
			}
			cfgFile := testConfig(t, ebDestinations(t, bus))
			args := []string{"replay", "--config", cfgFile, "--brokers", k.addr, "--destination", "eb-a",
				"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339)}
			for _, a := range c.accounts {
				args = append(args, "--account", a)
			}
			r := mustCtl(t, args...)
			if got := busIDs(t, bus, "eb-a"); !slices.Equal(got, c.want) {
				t.Errorf("eb-a received %d events:\n%v\nwant %d:\n%v", len(got), got, len(c.want), c.want)
			}
			if n := bus.Count("eb-c"); n != 0 {
				t.Errorf("eb-c received %d events", n)
			}
			if !strings.Contains(r.stdout, fmt.Sprintf("\ntotal    %d       %d         0\n", len(c.want), len(c.want))) {
				t.Errorf("summary:\n%s", r.stdout)
			}
			if strings.Contains(r.stdout+r.stderr, ebSecret) {
				t.Error("the secret key was printed")
			}
			for _, e := range bus.Entries("eb-a") {
				if e.Source != "scalr.audit-log" || e.DetailType != "Audit Event" {
					t.Fatalf("entry %+v is not what the forwarder sends", e)
				}
			}
		})
	}
	if after := groupState(t, k.testKafka); after != before {
		t.Errorf("replay moved consumer groups:\nbefore %s\nafter  %s", before, after)
	}
}
