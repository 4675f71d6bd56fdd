package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Redriven through a connection, a dead letter goes as live delivery would
// send it: through the connection's filter and redaction, except one the
// forwarder dead-lettered already in this very policy's form, which is not
// redacted twice. An event the filter excludes is not redriven.
func TestDLQRedriveAppliesTheConnectionsPolicy(t *testing.T) {
	const (
		filter = `event.actor.id != "user-skip"`
		key    = "key-of-dd-a"
	)
	rules := []eventfilter.Rule{{Path: "actor.email", Action: eventfilter.Hash}}
	policy, err := eventfilter.NewPolicy(filter, rules, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	k := newTestKafka(t, kfake.SeedTopics(1, dlqTopic))
	raw, rawRec := event(t, "acc-a", "ev-raw", 0)
	formed, _ := event(t, "acc-a", "ev-formed", 0)
	redacted, keep, _ := policy.Apply(formed)
	if !keep {
		t.Fatal("fixture: the policy excludes ev-formed")
	}
	formedRec, err := auditevent.NewRecord(topic, redacted)
	if err != nil {
		t.Fatal(err)
	}
	skipped, _ := event(t, "acc-a", "ev-skipped", 0)
	skipped.Actor.Id = "user-skip"
	skippedRec, err := auditevent.NewRecord(topic, skipped)
	if err != nil {
		t.Fatal(err)
	}
	inForm := deadLetter(formedRec, 0, "rejected", "datadog", "dd-a", "0", "2")
	inForm.Headers = append(inForm.Headers, deadletter.Header(deadletter.HeaderPolicy, policy.Version()))
	k.produce(t,
		deadLetter(rawRec, 0, "decode_failed", "archiver", "", "0", "1"),
		inForm,
		deadLetter(skippedRec, 0, "rejected", "datadog", "dd-a", "0", "3"),
	)

	intake := ddfake.New("dd-a")
	t.Cleanup(intake.Close)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "dd-a.key")
	if err := os.WriteFile(keyFile, []byte("dd-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dests := writeFile(t, "destinations.yaml", fmt.Sprintf(`connections:
  dd-a:
    type: datadog
    filter: '%s'
    redact:
      - {path: actor.email, action: hash}
    redaction_key: %s
    settings:
      base_url: %s
      api_key: {file: %q}
      timeout: 2s
routes:
  - account: acc-a
    connections: [dd-a]
`, filter, key, intake.URL(), keyFile))
	r := ctl(t, "dlq", "redrive", "--all", "--destination", "dd-a", "--config", testConfig(t, dests), "--brokers", k.addr)
	if r.err == nil || r.err.Error() != "1 of 3 dead letters not redriven" {
		t.Errorf("redrive = %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "0:2  not redriven: connection dd-a's filter excludes it\n") {
		t.Errorf("redrive does not say the filter excluded ev-skipped:\n%s", r.stdout)
	}
	if got := ddIDs(intake, "dd-a"); !slices.Equal(got, []string{"ev-formed", "ev-raw"}) {
		t.Fatalf("dd-a received %v, want ev-formed and ev-raw", got)
	}
	rawRedacted, _, _ := policy.Apply(raw)
	want := map[string]string{"ev-raw": rawRedacted.GetActor().GetEmail(), "ev-formed": redacted.GetActor().GetEmail()}
	for _, log := range intake.Logs("dd-a") {
		id, _ := log["audit-id"].(string)
		email, _ := log["actor"].(map[string]any)["email"].(string)
		if email != want[id] {
			t.Errorf("%s arrived with actor email %q, want %q (redacted once)", id, email, want[id])
		}
		if email == raw.GetActor().GetEmail() {
			t.Errorf("%s arrived with the raw email", id)
		}
	}
}
