package forwarder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// Paths from this package's directory.
var (
	seedAttributesPath = filepath.Join("..", "..", "..", "..", "proto", "auditevent", "testdata", "seed-attributes.json")
	docPath            = filepath.Join("..", "..", "..", "..", "docs", "eventbridge-forwarder.md")
)

// The seed's example event, posted to the real ingest binary, lands on the
// bus as one entry whose Detail is the seed's JSON plus the event id, with
// the documented Source, DetailType and Time; and the rules the
// documentation shows match it as EventBridge delivers it.
func TestGoldenSeedEventFromIngestToEventBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ingest binary")
	}
	p := newPipeline(t)
	p.WriteRoutes(map[string][]string{"acc-sscctbisjkl3123": {"eb-docs"}})
	p.StartForwarder()
	addr := forwardingtest.StartIngest(t, filepath.Join("..", "..", "..", "ingest"), p.Cfg.Kafka.Brokers)

	seed, err := os.ReadFile(seedAttributesPath)
	if err != nil {
		t.Fatal(err)
	}
	id := forwardingtest.PostEvent(t, addr, seed)

	forwardingtest.WaitFor(t, "the entry on the bus", 20*time.Second, func() bool { return p.bus.Count("eb-docs") == 1 })
	entry := p.bus.Entries("eb-docs")[0]
	checkSeedEntry(t, entry, id)
	checkDocumentedRules(t, entry.Event())
}

// checkSeedEntry checks the entry of the seed's event: Detail is exactly
// the seed's JSON plus the id.
func checkSeedEntry(t *testing.T, e ebfake.Entry, id string) {
	t.Helper()
	var got, want map[string]any
	if err := json.Unmarshal([]byte(e.Detail), &got); err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(seedAttributesPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(seed, &want); err != nil {
		t.Fatal(err)
	}
	want["id"] = id
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("Detail differs from the seed's JSON plus its id:\n got: %s\nwant: %s", g, w)
	}
	wantTime := time.Date(2024, 2, 16, 12, 58, 38, 577000000, time.UTC) // 12:58:38.577846 to the millisecond the API carries
	if e.Source != "scalr.audit-log" || e.DetailType != "Audit Event" || e.EventBusName != "eb-docs" || len(e.Resources) != 0 ||
		e.Time == nil || !e.Time.Equal(wantTime) {
		t.Fatalf("entry Source %q DetailType %q EventBusName %q Resources %v Time %v", e.Source, e.DetailType, e.EventBusName, e.Resources, e.Time)
	}
}

// documentedRules reads the event patterns of the documentation: each is
// a ```json block right after a "<!-- rule: match -->" or
// "<!-- rule: no match -->" line, saying whether it matches the seed's
// event.
func documentedRules(t *testing.T) (match, noMatch [][]byte) {
	t.Helper()
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(doc))
	var want string
	var block *bytes.Buffer
	for sc.Scan() {
		line := sc.Text()
		switch {
		case block != nil && strings.TrimSpace(line) == "```":
			if want == "match" {
				match = append(match, block.Bytes())
			} else {
				noMatch = append(noMatch, block.Bytes())
			}
			block, want = nil, ""
		case block != nil:
			block.WriteString(line + "\n")
		case strings.TrimSpace(line) == "<!-- rule: match -->":
			want = "match"
		case strings.TrimSpace(line) == "<!-- rule: no match -->":
			want = "no match"
		case want != "" && strings.TrimSpace(line) == "```json":
			block = &bytes.Buffer{}
		case want != "" && strings.TrimSpace(line) != "":
			t.Fatalf("a rule marker is not followed by a ```json block: %q", line)
		}
	}
	if len(match) < 3 || len(noMatch) < 1 {
		t.Fatalf("the documentation shows %d matching and %d non-matching rules; want some of each", len(match), len(noMatch))
	}
	return match, noMatch
}

func checkDocumentedRules(t *testing.T, event map[string]any) {
	t.Helper()
	// compare numbers as EventBridge does: the envelope via JSON again
	b, _ := json.Marshal(event)
	var ev map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	match, noMatch := documentedRules(t)
	for _, r := range match {
		if ok, err := ebfake.Match(r, ev); err != nil || !ok {
			t.Errorf("documented rule does not match the seed's event (%v):\n%s", err, r)
		}
	}
	for _, r := range noMatch {
		if ok, err := ebfake.Match(r, ev); err != nil || ok {
			t.Errorf("documented rule said not to match does (%v):\n%s", err, r)
		}
	}
}

// The rules of the documentation, written against the mapping it shows,
// match the seed's event as the forwarder puts it on the bus; the example
// event the documentation shows is what the bus holds.
func TestDocumentedRulesMatchTheSeedEvent(t *testing.T) {
	seed, err := os.ReadFile(seedAttributesPath)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := auditevent.DecodeJSON(seed, auditevent.DecodeOptions{DisallowUnknownFields: true})
	if err != nil {
		t.Fatal(err)
	}
	p := newPipeline(t)
	p.WriteRoutes(map[string][]string{"acc-sscctbisjkl3123": {"eb-docs"}})
	p.StartForwarder()
	res, err := producer.New(p.Cluster.Client(), p.Cfg.Kafka.Topics.Events.Name).Publish(context.Background(), []*auditlogv1.AuditEvent{ev})
	if err != nil {
		t.Fatal(err)
	}
	forwardingtest.WaitFor(t, "the entry on the bus", 20*time.Second, func() bool { return p.bus.Count("eb-docs") == 1 })
	entry := p.bus.Entries("eb-docs")[0]
	checkSeedEntry(t, entry, res.IDs[0])
	checkDocumentedRules(t, entry.Event())
	checkDocumentedExample(t, entry.Event())
}

// checkDocumentedExample compares the example event of the documentation
// (the ```json block after "<!-- example: seed event -->") with the event
// on the bus, but for the values that differ per delivery.
func checkDocumentedExample(t *testing.T, event map[string]any) {
	t.Helper()
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := bytes.Cut(doc, []byte("<!-- example: seed event -->"))
	if !ok {
		t.Fatal("the documentation lacks the seed's example event")
	}
	_, after, _ = bytes.Cut(after, []byte("```json\n"))
	block, _, _ := bytes.Cut(after, []byte("```"))
	var want map[string]any
	if err := json.Unmarshal(block, &want); err != nil {
		t.Fatalf("the example event does not parse: %v\n%s", err, block)
	}
	b, _ := json.Marshal(event)
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	for _, k := range []string{"id", "region"} {
		if _, ok := want[k]; !ok {
			t.Errorf("the example lacks %q", k)
		}
		want[k], got[k] = nil, nil
	}
	want["detail"].(map[string]any)["id"], got["detail"].(map[string]any)["id"] = nil, nil
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("the documentation's example differs from the event on the bus:\n%s", g)
	}
}
