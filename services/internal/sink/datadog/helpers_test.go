package datadog

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/auditstream/auditstream/services/testsupport/sinktest"
)

// seedAttributesPath is the seed's example `attributes` object, shared with
// the event codec's own golden test.
var seedAttributesPath = sinktest.SeedAttributesPath

// seedTags are the tags of the seed's example log, as the documentation
// shows them.
var seedTags = []string{
	"scalr-workspace-name:demo-ws",
	"scalr-environment-name:cs-m",
	"scalr-workspace:ws-v0o370ouv5kbjmk9h",
	"scalr-user-email:[email protected]",
	"scalr-action:discard-run",
	"scalr-environment:org-sscctbkdgkdr123",
	"source:scalr",
	"datadog.submission_auth:private_api_key",
}

// The events the tests encode (sinktest).
var (
	readFile  = sinktest.ReadFile
	seedEvent = sinktest.SeedEvent
	event     = sinktest.Event
)

func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}

func jsonEqual(t testing.TB, got, want []byte) {
	t.Helper()
	g, w := decode(t, got), decode(t, want)
	if !reflect.DeepEqual(g, w) {
		gi, _ := json.MarshalIndent(g, "", "  ")
		wi, _ := json.MarshalIndent(w, "", "  ")
		t.Fatalf("JSON differs\n got: %s\nwant: %s", gi, wi)
	}
}
