package cli

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
)

// otlpToken is the bearer token of the test's OTLP connections.
const otlpToken = "auditctl-otlp-token-never-printed"

// otlpDestinations writes a destinations file with OTLP connections otlp-a
// (acc-a and acc-b route to it) and otlp-c (acc-c), both to recv, each
// with its name as its tenant and the test token in a Secret file.
func otlpDestinations(t *testing.T, recv *otlpfake.Server) string {
	t.Helper()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(otlpToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("connections:\n")
	for _, name := range []string{"otlp-a", "otlp-c"} {
		fmt.Fprintf(&b, "  %s:\n    type: otlp\n    settings:\n      endpoint: %s\n      allow_http: true\n      tenant_id: %s\n      timeout: 5s\n      auth: {token: {file: \"%s\"}}\n",
			name, recv.URL(), name, token)
	}
	b.WriteString("routes:\n  - account: acc-a\n    connections: [otlp-a]\n  - account: acc-b\n    connections: [otlp-a]\n  - account: acc-c\n    connections: [otlp-c]\n")
	file := filepath.Join(dir, "destinations.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestReplayToOTLP(t *testing.T) {
	k := newTwoDays(t)
	k.commit(t, "auditstream-otlp", map[int32]int64{0: 10, 1: 20, 2: 30})
	before := groupState(t, k.testKafka)
	for _, c := range []struct {
		name     string
		accounts []string
		fail     func(*otlpfake.Server)
		want     []string
	}{
		{"every routed account", nil, nil, sortedConcat(k.inRange["acc-a"], k.inRange["acc-b"])},
		{"one account", []string{"acc-a"}, nil, sortedConcat(k.inRange["acc-a"])},
		{"unavailable then recovering", nil, func(r *otlpfake.Server) {
			r.FailNext(3, http.StatusServiceUnavailable, http.Header{"Retry-After": {"0"}})
		}, sortedConcat(k.inRange["acc-a"], k.inRange["acc-b"])},
	} {
		t.Run(c.name, func(t *testing.T) {
			recv := otlpfake.New()
			t.Cleanup(recv.Close)
			recv.RequireAuthorization("Bearer " + otlpToken)
			recv.RequireTenant(true)
			if c.fail != nil {
				c.fail(recv)
			}
			cfgFile := testConfig(t, otlpDestinations(t, recv))
			args := []string{"replay", "--config", cfgFile, "--brokers", k.addr, "--destination", "otlp-a",
				"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339)}
			for _, a := range c.accounts {
				args = append(args, "--account", a)
			}
			r := mustCtl(t, args...)
			got := recv.EventIDs("otlp-a")
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("otlp-a received %d events:\n%v\nwant %d:\n%v", len(got), got, len(c.want), c.want)
			}
			if n := recv.Accepted("otlp-c"); n != 0 {
				t.Errorf("otlp-c received %d events; replay to otlp-a must send nothing elsewhere", n)
			}
			if !strings.Contains(r.stdout, fmt.Sprintf("\ntotal    %d       %d         0\n", len(c.want), len(c.want))) {
				t.Errorf("summary:\n%s", r.stdout)
			}
			if strings.Contains(r.stdout+r.stderr, otlpToken) {
				t.Error("the token was printed")
			}
			// Encoded as the forwarder encodes: the resource its records carry.
			for _, rec := range recv.Records("otlp-a") {
				if rec.Resource["service.name"] != "audit-log" {
					t.Fatalf("record %s has resource %v, not what the forwarder sends", rec.EventID, rec.Resource)
				}
			}
		})
	}
	if after := groupState(t, k.testKafka); after != before {
		t.Errorf("replay moved consumer groups:\nbefore %s\nafter  %s", before, after)
	}
}
