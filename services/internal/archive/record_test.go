package archive

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/objstore/local"
)

func testRecord(t *testing.T, account, id string, eventTime, recordTime time.Time) *kgo.Record {
	t.Helper()
	ev := &auditlogv1.AuditEvent{
		Id:      id,
		Actor:   &auditlogv1.Actor{Id: "user-1", Type: "user"},
		Request: &auditlogv1.Request{Action: "discard-run", Source: "ui"},
		Outcome: &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 202},
		Target: &auditlogv1.Target{Id: "run-1", Type: "runs", Context: &auditlogv1.Context{
			Account: &auditlogv1.Ref{Id: account},
		}},
	}
	if err := auditevent.Prepare(ev, eventTime); err != nil {
		t.Fatal(err)
	}
	rec, err := auditevent.NewRecord("audit.events", ev)
	if err != nil {
		t.Fatal(err)
	}
	rec.Partition, rec.Offset, rec.Timestamp = 2, 41, recordTime
	return rec
}

func TestFileRecord(t *testing.T) {
	cfg := PartitionConfig{Window: time.Hour, MaxFutureSkew: time.Hour}
	at := day0.Add(5*time.Hour + 10*time.Minute)

	f, ok, err := FileRecord(cfg, testRecord(t, "acc-a", "id-1", at, at.Add(time.Minute)), nil, nil)
	if err != nil || !ok {
		t.Fatalf("FileRecord = %v, %v", ok, err)
	}
	ev, _ := auditevent.DecodeRecord(testRecord(t, "acc-a", "id-1", at, at))
	if f.Account != "acc-a" || f.ID != "id-1" || !f.Time.Equal(at) ||
		f.Window != WindowOf(at, time.Hour) || !bytes.Equal(f.Line, auditevent.EncodeJSON(ev)) {
		t.Fatalf("filed %+v (line %s)", f, f.Line)
	}

	// Stamped 3h ahead of its record: filed under the record's time.
	f, _, _ = FileRecord(cfg, testRecord(t, "acc-a", "id-2", at.Add(3*time.Hour), at), nil, nil)
	if f.Window.Start != day0.Add(5*time.Hour) || !f.Time.Equal(at.Add(3*time.Hour)) {
		t.Fatalf("future event filed under %s (time %s), want the record's window", f.Window, f.Time)
	}
	// Within the skew: its own window.
	f, _, _ = FileRecord(cfg, testRecord(t, "acc-a", "id-3", at.Add(50*time.Minute), at), nil, nil)
	if f.Window.Start != day0.Add(6*time.Hour) {
		t.Fatalf("event within the skew filed under %s", f.Window)
	}

	// Refused accounts are not encoded; the buffer is reused.
	buf := make([]byte, 0, 4096)
	f, ok, err = FileRecord(cfg, testRecord(t, "acc-b", "id-4", at, at), func(a string) bool { return a == "acc-a" }, buf)
	if err != nil || ok || f.Account != "acc-b" || f.Line != nil {
		t.Fatalf("refused account: %+v, %v, %v", f, ok, err)
	}
	f, ok, _ = FileRecord(cfg, testRecord(t, "acc-a", "id-5", at, at), func(a string) bool { return a == "acc-a" }, buf)
	if !ok || &f.Line[0] != &buf[:1][0] {
		t.Fatal("the line was not appended to buf")
	}

	// Not an event: an error, as the archiver dead-letters it.
	bad := &kgo.Record{Topic: "audit.events", Value: []byte{0xff, 0xff}, Headers: []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeProtobuf)}}}
	if _, ok, err := FileRecord(cfg, bad, nil, nil); err == nil || ok {
		t.Fatalf("undecodable record filed: %v, %v", ok, err)
	}
}

func TestEnsureCreatesComparesAndWritesNothingElse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	obj := func(body string) Object {
		sp, err := NewSpool(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		if err := sp.Add("acc-a", "x", 1, day0, []byte(`{"id":"`+body+`"}`)); err != nil {
			t.Fatal(err)
		}
		b, _ := sp.Partition()
		var buf bytes.Buffer
		stats, err := sp.Build(b[0], &buf)
		if err != nil {
			t.Fatal(err)
		}
		return Object{Body: bytes.NewReader(buf.Bytes()), Stats: stats}
	}
	key := ObjectKey("acc-a", Group{Window: WindowOf(day0, time.Hour), Partition: 0, First: 1, Last: 1})
	if existed, err := Ensure(ctx, st, key, obj("one")); err != nil || existed {
		t.Fatalf("create: existed %v, %v", existed, err)
	}
	if existed, err := Ensure(ctx, st, key, obj("one")); err != nil || !existed {
		t.Fatalf("identical: existed %v, %v", existed, err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
	_, err = Ensure(ctx, st, key, obj("two"))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("different: %v, want ErrConflict", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
	if !bytes.Equal(before, after) {
		t.Fatal("the stored object was replaced")
	}
	var keys []string
	for info, err := range st.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, info.Key)
	}
	if len(keys) != 1 || keys[0] != key {
		t.Fatalf("store holds %v, want only %s (no conflict copy, no manifest)", keys, key)
	}
}

func TestConfigRulesAndKeys(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if pc := c.PartitionConfig(); pc.Window != 24*time.Hour || pc.MaxFutureSkew != time.Hour {
		t.Fatalf("partition config %+v", pc)
	}
	c.Window, c.MaxFutureSkew, c.SpoolDir = 7*time.Minute, -time.Second, ""
	err := c.ValidateRules()
	if err == nil || !strings.Contains(err.Error(), "window") || !strings.Contains(err.Error(), "max_future_skew") || strings.Contains(err.Error(), "spool_dir") {
		t.Fatalf("ValidateRules = %v, want window and max_future_skew only", err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	c = DefaultConfig()
	c.SigningKey = config.SecretLiteral(string(MarshalSigningKey(priv)))
	s, err := c.Signer()
	if err != nil || !s.Public().Equal(priv.Public()) {
		t.Fatalf("signer from the signing key: %v", err)
	}
}
