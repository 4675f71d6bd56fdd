package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/archive"
)

// policyFilter and the redaction below are the storage profile's policy.
const policyFilter = `event.outcome.result == "FAILURE"`

// policyArchive is an archive the real archiver wrote through a storage
// profile with a filter and a redaction (hash with a key, mask): 12 events
// of acc-f on the last closed day, every third a failure (the 4 the filter
// keeps).
type policyArchive struct {
	store, destFile, cfgFile, keyFile string
	day                               time.Time
}

func newPolicyArchive(t *testing.T) *policyArchive {
	t.Helper()
	bin := buildArchiver(t)
	k := newTestKafka(t)
	dir := t.TempDir()
	a := &policyArchive{store: filepath.Join(dir, "archive"), day: archive.DayBefore(time.Now().Add(-time.Minute))}
	keyFile := writeFile(t, "redaction.key", "redaction-key-of-the-archive")
	a.keyFile = keyFile
	a.destFile = writeFile(t, "destinations.yaml", fmt.Sprintf(`connections:
  bucket:
    type: storage
    filter: '%s'
    redact:
      - {path: actor.email, action: hash}
      - {path: actor.access_token.token, action: mask, keep: 3}
    redaction_key: {file: %q}
    settings:
      kind: local
      local: {dir: %q}
routes:
  - account: "*"
    connections: [bucket]
`, policyFilter, keyFile, a.store))
	signing, _, _ := writeSigningKey(t, dir, "signing")
	a.cfgFile = archiverConfig(t, k, a.destFile, signing)
	var recs []*kgo.Record
	for i := range 12 {
		at := a.day.Add(time.Duration(i)*40*time.Minute + time.Minute)
		ev := &auditlogv1.AuditEvent{
			Id:      fmt.Sprintf("acc-f-%02d", i),
			Actor:   &auditlogv1.Actor{Id: "user-1", Type: "user", Email: "jane.doe@example.com", AccessToken: &auditlogv1.AccessToken{Type: "session", Token: "secret-token-value-B6wifA"}},
			Request: &auditlogv1.Request{Action: "discard-run", Source: "ui"},
			Outcome: &auditlogv1.Outcome{Result: "SUCCESS", StatusCode: 202},
			Target:  &auditlogv1.Target{Id: "run-1", Type: "runs", Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: "acc-f"}}},
		}
		if i%3 == 0 {
			ev.Outcome.Result = "FAILURE"
		}
		if err := auditevent.Prepare(ev, at); err != nil {
			t.Fatal(err)
		}
		rec, err := auditevent.NewRecord(topic, ev)
		if err != nil {
			t.Fatal(err)
		}
		rec.Partition, rec.Timestamp = 0, at
		recs = append(recs, rec)
	}
	k.produce(t, recs...)
	runArchiverOnce(t, k, bin, a.cfgFile, a.store, archive.DigestKey("acc-f", a.day, 0))
	return a
}

func (a *policyArchive) verify(t *testing.T, output string) result {
	t.Helper()
	return ctl(t, "archive", "verify", "--config", a.cfgFile, "-o", output)
}

// A filtered and redacted profile's day verifies, and verify says what
// its policy did: the filter, the rules and the events left out, in text
// and JSON.
func TestArchiveVerifyFilteredProfile(t *testing.T) {
	a := newPolicyArchive(t)
	r := a.verify(t, "json")
	var sum verifySummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || r.err != nil {
		t.Fatalf("verify: %v %v\n%s\n%s", r.err, err, r.stdout, r.stderr)
	}
	c := sum.Connections[0]
	if !sum.OK || c.Records != 4 || len(c.Policies) != 1 {
		t.Fatalf("verify: ok %v, %d records, policies %+v; want 4 records of one filtered day", sum.OK, c.Records, c.Policies)
	}
	dp := c.Policies[0]
	if dp.Account != "acc-f" || dp.Day != a.day.Format(time.DateOnly) || dp.Filtered != 8 || dp.Whole != 0 || len(dp.Policies) != 1 ||
		dp.Policies[0].Filter != policyFilter || len(dp.Policies[0].Redact) != 2 || dp.Policies[0].Redact[1].Keep != 3 {
		t.Fatalf("the day's policy: %+v", dp)
	}
	if !strings.Contains(r.stdout, `"policies"`) || strings.Contains(r.stdout, "redaction-key-of-the-archive") {
		t.Fatalf("JSON report:\n%s", r.stdout)
	}
	r = a.verify(t, "text")
	for _, want := range []string{
		"filtered or redacted days",
		"acc-f " + a.day.Format(time.DateOnly) + ": 8 events left out by the filter",
		"filter " + policyFilter + "; redact actor.email hash, actor.access_token.token mask keep 3",
		"OK: 1 connection(s), no problem",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify's text lacks %q:\n%s", want, r.stdout)
		}
	}
}

// A filtered and redacted profile's day is rebuilt from the topic with the
// profile's policy, byte for byte as the archiver wrote it, and then
// verifies; with the redaction key changed since, it is not: nothing is
// written and the detail says why.
func TestArchiveRebuildFilteredProfile(t *testing.T) {
	a := newPolicyArchive(t)
	var objects []string
	written := map[string][]byte{}
	for _, key := range listFiles(t, a.store) {
		if _, ok := archive.ParseObjectKey(key); !ok {
			continue
		}
		body, err := os.ReadFile(filepath.Join(a.store, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		objects, written[key] = append(objects, key), body
		if err := os.Remove(filepath.Join(a.store, filepath.FromSlash(key))); err != nil {
			t.Fatal(err)
		}
	}
	// 12 events over 8 hours in 3-hour windows: three objects.
	if len(objects) != 3 {
		t.Fatalf("objects %v, want three", objects)
	}
	rebuildDay := func() (rebuildSummary, result) {
		t.Helper()
		r := ctl(t, "archive", "rebuild", "--config", a.cfgFile, "--connection", "bucket", "--date", a.day.Format(time.DateOnly), "-o", "json")
		var sum rebuildSummary
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
			t.Fatalf("rebuild: %v: %v\n%s\n%s", r.err, err, r.stdout, r.stderr)
		}
		return sum, r
	}

	// The redaction key changed since: the objects were hashed under
	// another one, and cannot be rebuilt.
	keyFile := a.keyFile
	old, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte("another-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum, r := rebuildDay()
	if r.err == nil || sum.Counts["different"] != 3 || !strings.Contains(sum.Objects[0].Detail, "the storage profile's policy is now version") {
		t.Fatalf("rebuild after the key changed: %v %+v", r.err, sum)
	}
	if left := listFiles(t, a.store); len(left) == 0 || slicesContainObject(left) {
		t.Fatalf("rebuild after the key changed wrote objects: %v", left)
	}

	if err := os.WriteFile(keyFile, old, 0o600); err != nil {
		t.Fatal(err)
	}
	sum, r = rebuildDay()
	if r.err != nil || sum.Counts["created"] != 3 {
		t.Fatalf("rebuild: %v %+v\n%s", r.err, sum, r.stderr)
	}
	for _, key := range objects {
		body, err := os.ReadFile(filepath.Join(a.store, filepath.FromSlash(key)))
		if err != nil || !bytes.Equal(body, written[key]) {
			t.Fatalf("%s rebuilt is not the archiver's object: %v", key, err)
		}
	}
	var vs verifySummary
	r = a.verify(t, "json")
	if err := json.Unmarshal([]byte(r.stdout), &vs); err != nil || r.err != nil || !vs.OK || vs.Connections[0].Records != 4 {
		t.Fatalf("verify after the rebuild: %v %v\n%s", r.err, err, r.stdout)
	}
}

// rebuildSummary is the JSON of archive rebuild, as a script reads it.
type rebuildSummary struct {
	Objects []struct {
		Key    string `json:"key"`
		Status string `json:"status"`
		Detail string `json:"detail"`
	} `json:"objects"`
	Counts map[string]int `json:"counts"`
}

func slicesContainObject(keys []string) bool {
	for _, k := range keys {
		if _, ok := archive.ParseObjectKey(k); ok {
			return true
		}
	}
	return false
}
