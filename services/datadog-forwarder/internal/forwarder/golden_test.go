package forwarder

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// The seed's example event, posted to the real ingest binary, reaches the
// Datadog intake as exactly the seed's log: source, service, hostname, tags
// and attributes.
func TestGoldenSeedEventFromIngestToDatadog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ingest binary")
	}
	p := newPipeline(t, "dd-docs")
	p.WriteRoutes(map[string][]string{"acc-sscctbisjkl3123": {"dd-docs"}})
	p.StartForwarder()
	addr := forwardingtest.StartIngest(t, "../../../ingest", p.Cfg.Kafka.Brokers)

	seed, err := os.ReadFile("../../../../proto/auditevent/testdata/seed-attributes.json")
	if err != nil {
		t.Fatal(err)
	}
	id := forwardingtest.PostEvent(t, addr, seed)

	forwardingtest.WaitFor(t, "the log at the intake", 20*time.Second, func() bool { return p.intake.Count("dd-docs") == 1 })
	// compare as plain JSON values (the fake keeps numbers as json.Number)
	var got map[string]any
	if err := json.Unmarshal(p.intake.Entries("dd-docs")[0], &got); err != nil {
		t.Fatal(err)
	}
	if got["audit-id"] != id {
		t.Fatalf("audit-id %v, ingest answered %s", got["audit-id"], id)
	}
	delete(got, "audit-id")
	var want map[string]any
	golden, err := os.ReadFile("../../../internal/sink/datadog/testdata/seed-datadog-entry.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		for k := range got {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Errorf("member %q: got %#v, want %#v", k, got[k], want[k])
			}
		}
		for k := range want {
			if _, ok := got[k]; !ok {
				t.Errorf("member %q missing", k)
			}
		}
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("Datadog log differs from the seed's:\n got: %s\nwant: %s", g, golden)
	}

	// and the tags are the seed's, less the one Datadog adds itself
	seedTags := []string{"scalr-workspace-name:demo-ws", "scalr-environment-name:cs-m", "scalr-workspace:ws-v0o370ouv5kbjmk9h",
		"scalr-user-email:[email protected]", "scalr-action:discard-run", "scalr-environment:org-sscctbkdgkdrqg0", "source:scalr"}
	if tags := strings.Split(got["ddtags"].(string), ","); !sameSet(tags, seedTags) {
		t.Fatalf("tags %v, want %v", tags, seedTags)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		if m[s] == 0 {
			return false
		}
		m[s]--
	}
	return true
}
