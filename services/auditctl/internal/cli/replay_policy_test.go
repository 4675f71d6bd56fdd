package cli

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/auditctl/internal/replay"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
)

// A replay applies the destination's filter and redaction as live delivery
// does: only the events the filter keeps are sent, in the form the
// redaction gives them.
func TestReplayAppliesTheDestinationsPolicy(t *testing.T) {
	k := newTwoDays(t)
	intake := ddfake.New("dd-a", "dd-c")
	t.Cleanup(intake.Close)
	file := ddDestinations(t, intake)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	policy := `  dd-a:
    type: datadog
    filter: 'event.target.context.account.id == "acc-b"'
    redact:
      - {path: actor.email, action: hash}
    redaction_key: replay-key
`
	content := strings.Replace(string(data), "  dd-a:\n    type: datadog\n", policy, 1)
	if content == string(data) {
		t.Fatal("fixture: dd-a not found")
	}
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustCtl(t, "replay", "--config", testConfig(t, file), "--brokers", k.addr, "--destination", "dd-a",
		"--from", replayFrom.Format(time.RFC3339), "--to", replayTo.Format(time.RFC3339), "-o", "json")
	want := sortedConcat(k.inRange["acc-b"])
	if got := ddIDs(intake, "dd-a"); !slices.Equal(got, want) {
		t.Errorf("dd-a received %d events, want acc-b's %d", len(got), len(want))
	}
	mac := hmac.New(sha256.New, []byte("replay-key"))
	mac.Write([]byte("[email protected]"))
	hash := hex.EncodeToString(mac.Sum(nil))
	for _, l := range intake.Logs("dd-a") {
		actor, _ := l["actor"].(map[string]any)
		if actor["email"] != hash {
			t.Fatalf("actor %v, want the email hashed under the connection's key", actor)
		}
	}
	var sum replay.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, r.stdout)
	}
	if sum.Matched != int64(len(want)) || sum.Delivered != sum.Matched || sum.Skipped.Filtered != int64(len(k.inRange["acc-a"])) {
		t.Errorf("summary: matched %d delivered %d filtered %d; want %d, %d, %d", sum.Matched, sum.Delivered, sum.Skipped.Filtered, len(want), len(want), len(k.inRange["acc-a"]))
	}
}
