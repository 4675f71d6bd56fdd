package eventbridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/sink/eventbridge/ebfake"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// seedAttributesPath is the seed's example `attributes` object, shared with
// the event codec's own golden test.
var seedAttributesPath = filepath.Join("..", "..", "..", "..", "proto", "auditevent", "testdata", "seed-attributes.json")

// Test credentials. The secret parts must never appear in an error.
const (
	testKeyID  = "AKIDEVENTBRIDGETEST1"
	testSecret = "wJalrXUtnFEMI-secret-never-printed"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedEvent(t testing.TB) *auditlogv1.AuditEvent {
	t.Helper()
	ev, err := auditevent.DecodeJSON(readFile(t, seedAttributesPath), auditevent.DecodeOptions{DisallowUnknownFields: true})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// event returns a small event numbered n, timestamped at.
func event(n int, at time.Time) *auditlogv1.AuditEvent {
	return &auditlogv1.AuditEvent{
		Id:       fmt.Sprintf("evt-%06d", n),
		Actor:    &auditlogv1.Actor{Id: "user-1", Email: "jane@example.com"},
		Request:  &auditlogv1.Request{Action: "update-workspace"},
		Hostname: "app.example.com",
		Outcome:  &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 200},
		Target: &auditlogv1.Target{Id: fmt.Sprintf("ws-%d", n), Type: "workspaces", Context: &auditlogv1.Context{
			Account: &auditlogv1.Ref{Id: "acc-1"},
		}},
		Timestamp: timestamppb.New(at),
	}
}

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
func encodeN(t *testing.T, cfg Config, n int) [][]byte {
	t.Helper()
	enc := cfg.Encoder()
	at := time.Date(2024, 2, 16, 12, 58, 38, 577000000, time.UTC)
	out := make([][]byte, n)
	for i := range out {
		b, err := enc.Encode(event(i, at.Add(time.Duration(i)*time.Millisecond)))
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
