package ingest

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

func TestSeedEventRoundTrip(t *testing.T) {
	h := newHarness(t)
	seed, err := os.ReadFile("../../../../proto/auditevent/testdata/seed-attributes.json")
	if err != nil {
		seed = []byte(`{"actor":{"id":"user-1","access-token":{"type":"session","token":"abcdefghijklmnopqrstuvwxyzB6wifA"}},"target":{"context":{"account":{"id":"acc-1"}}},"timestamp":"2024-02-16T12:58:38.577846"}`)
	}
	resp, err := http.Post(h.url+"/v1/events", "application/json", strings.NewReader(string(seed)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ IDs []string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusAccepted || len(body.IDs) != 1 {
		t.Fatalf("status %d ids %v", resp.StatusCode, body.IDs)
	}
	recs := kafkatest.ReadAll(t, h.cluster.Brokers(), "audit.events", 1, 10*time.Second)
	if len(recs) != 1 {
		t.Fatalf("read %d records", len(recs))
	}
	ev, err := auditevent.DecodeRecord(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if ev.Id != body.IDs[0] {
		t.Fatalf("id %q, answered %q", ev.Id, body.IDs[0])
	}
	t.Logf("%s", auditevent.EncodeJSON(ev))
}
