package eventbridge

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/ebfake"
	"github.com/auditstream/auditstream/services/testsupport/sinktest"
)

// seedAttributesPath is the seed's example `attributes` object, shared with
// the event codec's own golden test.
var seedAttributesPath = sinktest.SeedAttributesPath

// Test credentials. The secret parts must never appear in an error.
const (
	testKeyID  = "AKIDEVENTBRIDGETEST1"
	testSecret = "wJalrXUtnFEMI-secret-never-printed"
)

// The events the tests encode (sinktest).
var (
	readFile  = sinktest.ReadFile
	seedEvent = sinktest.SeedEvent
	event     = sinktest.Event
)

// fakeBus starts a fake EventBridge that knows the test key (and verifies
// its signatures) and refuses any other, and returns it with a connection
// to its bus "audit".
func fakeBus(t *testing.T) (*ebfake.Server, Config) {
	t.Helper()
	f := ebfake.New()
	t.Cleanup(f.Close)
	f.AddKey(ebfake.Key{AccessKeyID: testKeyID, SecretAccessKey: testSecret})
	f.RequireKnownKeys(true)
	return f, Config{
		Region:   "eu-west-1",
		EventBus: "audit",
		Endpoint: f.URL(),
		Timeout:  2 * time.Second,
		Credentials: Credentials{
			AccessKeyID:     config.SecretLiteral(testKeyID),
			SecretAccessKey: config.SecretLiteral(testSecret),
		},
	}
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// encodeN encodes n small events with cfg's encoder.
func encodeN(t *testing.T, cfg Config, n int) []sink.Entry[Entry] {
	t.Helper()
	enc := cfg.Encoder()
	at := time.Date(2024, 2, 16, 12, 58, 38, 577000000, time.UTC)
	out := make([]sink.Entry[Entry], n)
	for i := range out {
		b, err := enc.EncodeEntry(event(i, at.Add(time.Duration(i)*time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// detailIDs is the id in the Detail of each entry.
func detailIDs(t *testing.T, entries []ebfake.Entry) []string {
	t.Helper()
	ids := make([]string, len(entries))
	for i, e := range entries {
		var d struct{ ID string }
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
			t.Fatalf("detail does not decode: %v", err)
		}
		ids[i] = d.ID
	}
	return ids
}

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
