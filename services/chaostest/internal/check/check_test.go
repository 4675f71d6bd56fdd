package check

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	accA, accB = "acc-a", "acc-b"
	keyA, keyB = "key-of-a", "key-of-b"
)

var at = time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)

func newChecker() *Checker {
	return New(
		Destination{Name: "datadog", Owner: map[string]string{keyA: accA, keyB: accB}, Routed: map[string]bool{accA: true, accB: true}},
		Destination{Name: "eventbridge", Owner: map[string]string{"bus-a": accA}, Routed: map[string]bool{accA: true}},
		Destination{Name: "otlp", Owner: map[string]string{"tenant-b": accB}, Routed: map[string]bool{accB: true}},
	)
}

func token(id string) string { return RawTokenMarker + "0123456789" + id }

// eventJSON is an event as the pipeline writes it, its token masked.
func eventJSON(idKey, id, account, tok string, ts time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		idKey:       id,
		"actor":     map[string]any{"access-token": map[string]any{"type": "session", "token": tok}},
		"target":    map[string]any{"context": map[string]any{"account": map[string]any{"id": account}}},
		"timestamp": ts.Format("2006-01-02T15:04:05.000000"),
	})
	return b
}

// archiveWriter lays objects and their manifests out as docs/archiver.md
// describes.
type archiveWriter struct {
	t    *testing.T
	dir  string
	seq  map[string]int
	prev map[string][2]string
}

func (w *archiveWriter) object(account string, first int, lines ...[]byte) string {
	w.t.Helper()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for _, l := range lines {
		zw.Write(append(l, '\n'))
	}
	zw.Close()
	start := at.Truncate(time.Minute)
	name := fmt.Sprintf("%s-60s-p00003-%020d-%020d", start.Format("20060102T150405Z"), first, first+len(lines)-1)
	key := account + "/" + start.Format("2006/01/02") + "/" + name + ".json.gz"
	w.write(key, gz.Bytes())
	sum := sha256.Sum256(gz.Bytes())
	if w.seq == nil {
		w.seq, w.prev = map[string]int{}, map[string][2]string{}
	}
	seq := w.seq[account]
	w.seq[account]++
	m := map[string]any{"account": account, "sequence": seq, "previous": nil,
		"objects": []any{map[string]any{"key": key, "sha256": hex.EncodeToString(sum[:]), "size": gz.Len(), "records": len(lines)}}}
	if p, ok := w.prev[account]; ok {
		m["previous"] = map[string]string{"key": p[0], "sha256": p[1]}
	}
	mb, _ := json.Marshal(m)
	mkey := fmt.Sprintf("%s/_manifests/%010d-%s.json", account, seq, name)
	w.write(mkey, mb)
	msum := sha256.Sum256(mb)
	w.prev[account] = [2]string{mkey, hex.EncodeToString(msum[:])}
	return key
}

func (w *archiveWriter) write(key string, data []byte) {
	w.t.Helper()
	p := filepath.Join(w.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// healthy builds a run where every property holds: e1 and e2 of account
// A go to Datadog and EventBridge, e3 of account B to Datadog and OTLP,
// all three archived once. Each test breaks one thing and expects exactly that
// failure.
type run struct {
	c   *Checker
	arc *archiveWriter
}

func healthy(t *testing.T) *run {
	r := &run{c: newChecker(), arc: &archiveWriter{t: t, dir: t.TempDir()}}
	for _, e := range []struct{ id, acc string }{{"e1", accA}, {"e2", accA}, {"e3", accB}} {
		r.c.Record(e.id, e.acc, token(e.id), Accepted)
	}
	r.c.Record("e4", accB, token("e4"), Rejected)
	return r
}

func (r *run) deliverAll() {
	for _, id := range []string{"e1", "e2"} {
		r.c.DatadogEntry("datadog", keyA, eventJSON("audit-id", id, accA, MaskedToken(token(id)), at), at)
		r.c.EventBridgeEntry("eventbridge", "bus-a", eventJSON("id", id, accA, MaskedToken(token(id)), at), at)
	}
	r.c.DatadogEntry("datadog", keyB, eventJSON("audit-id", "e3", accB, MaskedToken(token("e3")), at), at)
	r.c.OTLPRecord("otlp", "tenant-b", "e3", eventJSON("id", "e3", accB, MaskedToken(token("e3")), at), at)
}

func (r *run) archiveAll() {
	r.arc.object(accA, 10, eventJSON("id", "e1", accA, MaskedToken(token("e1")), at), eventJSON("id", "e2", accA, MaskedToken(token("e2")), at))
	r.arc.object(accB, 20, eventJSON("id", "e3", accB, MaskedToken(token("e3")), at))
}

func (r *run) judge(t *testing.T) Report {
	t.Helper()
	if err := r.c.ScanArchive(r.arc.dir); err != nil {
		t.Fatal(err)
	}
	return r.c.Judge(map[string]Bound{"datadog": {Allowed: 1}, "eventbridge": {Allowed: 0}, "otlp": {Allowed: 0}})
}

func wantFailure(t *testing.T, rep Report, want string) {
	t.Helper()
	if len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0], want) {
		t.Fatalf("failures %q, want exactly one saying %q\n%s", rep.Failures, want, rep)
	}
}

func TestHealthyRunPasses(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	rep := r.judge(t)
	if !rep.OK() {
		t.Fatalf("a healthy run failed:\n%s", rep)
	}
	if done, ps := r.c.Done(); !done {
		t.Fatalf("Done = false with everything delivered: %+v", ps)
	}
}

func TestMissingDelivery(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	r.c.dests["eventbridge"].got["e2"] = 0 // as if never delivered
	if done, _ := r.c.Done(); done {
		t.Fatal("Done = true with an event missing")
	}
	wantFailure(t, r.judge(t), "eventbridge: 1 accepted events never delivered")
}

func TestDuplicatesAboveTheBound(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	r.c.DatadogEntry("datadog", keyA, eventJSON("audit-id", "e1", accA, MaskedToken(token("e1")), at), at)
	if rep := r.judge(t); !rep.OK() {
		t.Fatalf("one duplicate within a bound of one failed:\n%s", rep)
	}
	r.c.DatadogEntry("datadog", keyB, eventJSON("audit-id", "e3", accB, MaskedToken(token("e3")), at), at)
	wantFailure(t, r.judge(t), "datadog: 2 duplicates, above the in-flight bound 1")
}

func TestResentEntriesWidenTheBound(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	r.c.EventBridgeEntry("eventbridge", "bus-a", eventJSON("id", "e1", accA, MaskedToken(token("e1")), at), at)
	wantFailure(t, r.judge(t), "eventbridge: 1 duplicates")
	r.c.Resent("eventbridge", 1)
	if rep := r.judge(t); !rep.OK() {
		t.Fatalf("a duplicate of an unanswered request failed:\n%s", rep)
	}
}

func TestCrossTenantDelivery(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	// An event of B under A's key.
	r.c.DatadogEntry("datadog", keyA, eventJSON("audit-id", "e3", accB, MaskedToken(token("e3")), at), at)
	rep := r.judge(t)
	if rep.OK() || !strings.Contains(strings.Join(rep.Failures, "\n"), "datadog: 1 cross-tenant deliveries") {
		t.Fatalf("a cross-tenant delivery passed:\n%s", rep)
	}
}

func TestUnroutedAccountDelivered(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	// B has no EventBridge route: its event on A's bus is cross-tenant.
	r.c.EventBridgeEntry("eventbridge", "bus-a", eventJSON("id", "e3", accB, MaskedToken(token("e3")), at), at)
	rep := r.judge(t)
	if !strings.Contains(strings.Join(rep.Failures, "\n"), "eventbridge: 1 cross-tenant deliveries") {
		t.Fatalf("an unrouted account's delivery passed:\n%s", rep)
	}
}

func TestRawTokenDelivered(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	r.c.dests["datadog"].got["e1"]-- // replaced by the unmasked copy below
	r.c.DatadogEntry("datadog", keyA, eventJSON("audit-id", "e1", accA, token("e1"), at), at)
	rep := r.judge(t)
	all := strings.Join(rep.Failures, "\n")
	if !strings.Contains(all, "datadog: 1 entries holding a raw token") || !strings.Contains(all, "datadog: 1 tokens not masked") {
		t.Fatalf("a raw token passed:\n%s", rep)
	}
}

func TestRejectedEventDelivered(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	r.c.DatadogEntry("datadog", keyB, eventJSON("audit-id", "e4", accB, MaskedToken(token("e4")), at), at)
	rep := r.judge(t)
	if !strings.Contains(strings.Join(rep.Failures, "\n"), "datadog: 1 deliveries of rejected events") {
		t.Fatalf("a rejected event's delivery passed:\n%s", rep)
	}
}

func TestArchiveTwice(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	r.arc.object(accA, 30, eventJSON("id", "e2", accA, MaskedToken(token("e2")), at))
	wantFailure(t, r.judge(t), "archive: 1 accepted events archived more than once")
}

func TestArchiveMissing(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.arc.object(accA, 10, eventJSON("id", "e1", accA, MaskedToken(token("e1")), at), eventJSON("id", "e2", accA, MaskedToken(token("e2")), at))
	wantFailure(t, r.judge(t), "archive: 1 accepted events not archived")
}

func TestArchiveInAnotherAccountsFolder(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.arc.object(accA, 10, eventJSON("id", "e1", accA, MaskedToken(token("e1")), at), eventJSON("id", "e2", accA, MaskedToken(token("e2")), at))
	r.arc.object(accA, 20, eventJSON("id", "e3", accB, MaskedToken(token("e3")), at))
	wantFailure(t, r.judge(t), "archive: 1 events in another account's folder")
}

func TestArchiveObjectChanged(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.arc.object(accA, 10, eventJSON("id", "e1", accA, MaskedToken(token("e1")), at), eventJSON("id", "e2", accA, MaskedToken(token("e2")), at))
	key := r.arc.object(accB, 20, eventJSON("id", "e3", accB, MaskedToken(token("e3")), at))
	// The same events, other bytes than the manifest lists.
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(append(eventJSON("id", "e3", accB, MaskedToken(token("e3")), at), '\n'))
	zw.Close()
	r.arc.write(key, gz.Bytes())
	wantFailure(t, r.judge(t), "archive: 1 manifest entries that do not match their object")
}

func TestArchiveManifestChainBroken(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.arc.object(accA, 10, eventJSON("id", "e1", accA, MaskedToken(token("e1")), at))
	r.arc.seq[accA]++ // sequence 1 is missing
	r.arc.object(accA, 11, eventJSON("id", "e2", accA, MaskedToken(token("e2")), at))
	r.arc.object(accB, 20, eventJSON("id", "e3", accB, MaskedToken(token("e3")), at))
	wantFailure(t, r.judge(t), "archive: 1 breaks in a manifest chain")
}

func TestArchiveEventOutsideItsWindow(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.arc.object(accA, 10, eventJSON("id", "e1", accA, MaskedToken(token("e1")), at), eventJSON("id", "e2", accA, MaskedToken(token("e2")), at.Add(-time.Second)))
	r.arc.object(accB, 20, eventJSON("id", "e3", accB, MaskedToken(token("e3")), at))
	wantFailure(t, r.judge(t), "archive: 1 events outside their object's window")
}

func TestScanFileAcrossChunks(t *testing.T) {
	c := newChecker()
	c.Secrets("the-api-key-value")
	// A secret across the 1 MiB chunk boundary, a raw token inside the
	// overlap, and one more at the end.
	data := bytes.Repeat([]byte("x"), 1<<20-5)
	data = append(data, "the-api-key-value "...)
	data = append(data, RawTokenMarker...)
	data = append(data, bytes.Repeat([]byte("y"), 1<<20)...)
	data = append(data, RawTokenMarker...)
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.ScanFile("log", p); err != nil {
		t.Fatal(err)
	}
	s := c.scans["log"]
	if s.secrets != 1 || s.rawTokens != 2 || s.bytes != int64(len(data)) {
		t.Fatalf("scan found %d secrets, %d raw tokens in %d bytes; want 1, 2, %d", s.secrets, s.rawTokens, s.bytes, len(data))
	}
}

func TestMaskedToken(t *testing.T) {
	for raw, want := range map[string]string{
		"sess-9f8e7d6c5b4a3210-B6wifA": "...B6wifA", // the documented example
		"twelve-chars":                 "...",
		"ünïcödé-tökèn-ÄÖÜäöü":         "...ÄÖÜäöü",
	} {
		if got := MaskedToken(raw); got != want {
			t.Errorf("MaskedToken(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestRejectedEventArchived(t *testing.T) {
	r := healthy(t)
	r.deliverAll()
	r.archiveAll()
	r.arc.object(accB, 30, eventJSON("id", "e4", accB, MaskedToken(token("e4")), at))
	wantFailure(t, r.judge(t), "archive: 1 rejected events archived")
}

// An event may arrive before its request is answered: it is judged by the
// final answer.
func TestJudgedOnTheFinalAnswer(t *testing.T) {
	r := healthy(t)
	r.c.Record("e5", accB, token("e5"), Unconfirmed)
	r.c.DatadogEntry("datadog", keyB, eventJSON("audit-id", "e5", accB, MaskedToken(token("e5")), at), at)
	r.c.Record("e5", accB, token("e5"), Rejected)
	r.deliverAll()
	r.archiveAll()
	wantFailure(t, r.judge(t), "datadog: 1 deliveries of rejected events")
}

// An OTLP record is the event's JSON as its body and its id as
// log.record.uid: a record that never came is missing, a second copy a
// duplicate, one under another account's tenant cross-tenant, one whose
// uid is not its body's id malformed.
func TestOTLPRecords(t *testing.T) {
	body := func(id, acc string) []byte { return eventJSON("id", id, acc, MaskedToken(token(id)), at) }
	t.Run("missing", func(t *testing.T) {
		r := healthy(t)
		r.deliverAll()
		r.archiveAll()
		r.c.dests["otlp"].got["e3"] = 0 // as if never delivered
		if done, _ := r.c.Done(); done {
			t.Fatal("Done = true with an OTLP record missing")
		}
		wantFailure(t, r.judge(t), "otlp: 1 accepted events never delivered")
	})
	t.Run("duplicate", func(t *testing.T) {
		r := healthy(t)
		r.deliverAll()
		r.archiveAll()
		r.c.OTLPRecord("otlp", "tenant-b", "e3", body("e3", accB), at)
		wantFailure(t, r.judge(t), "otlp: 1 duplicates, above the in-flight bound 0")
	})
	t.Run("cross-tenant", func(t *testing.T) {
		r := healthy(t)
		r.deliverAll()
		r.archiveAll()
		r.c.OTLPRecord("otlp", "tenant-b", "e1", body("e1", accA), at)
		wantFailure(t, r.judge(t), "otlp: 1 cross-tenant deliveries")
	})
	t.Run("unknown tenant", func(t *testing.T) {
		r := healthy(t)
		r.deliverAll()
		r.archiveAll()
		r.c.OTLPRecord("otlp", "tenant-x", "e3", body("e3", accB), at)
		rep := r.judge(t)
		if !strings.Contains(strings.Join(rep.Failures, "\n"), "otlp: 1 entries on connections no account routes to") {
			t.Fatalf("a record of an unknown tenant passed:\n%s", rep)
		}
	})
	t.Run("uid not the body's id", func(t *testing.T) {
		r := healthy(t)
		r.deliverAll()
		r.archiveAll()
		r.c.OTLPRecord("otlp", "tenant-b", "e1", body("e3", accB), at)
		wantFailure(t, r.judge(t), "otlp: 1 malformed entries")
	})
	t.Run("body not JSON", func(t *testing.T) {
		r := healthy(t)
		r.deliverAll()
		r.archiveAll()
		r.c.OTLPRecord("otlp", "tenant-b", "e3", []byte("e3"), at)
		wantFailure(t, r.judge(t), "otlp: 1 malformed entries")
	})
}
