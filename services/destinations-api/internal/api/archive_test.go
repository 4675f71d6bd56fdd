package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/destinations-api/internal/e2eharness"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/testsupport/s3fake"
)

// The days of the test archive: events on the 1st and 2nd, quiet days
// after, digests through the 4th; "now" is noon of the 7th.
var (
	archDay0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	archNow  = time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
)

func archDay(n int) time.Time { return archDay0.AddDate(0, 0, n) }

func daysPath(account, query string) string {
	p := "/v1/accounts/" + account + "/archive/days"
	if query != "" {
		p += "?" + query
	}
	return p
}

// archiveHarness is an API whose account A archives to a local directory
// holding a signed archive; keys says whether the API is given the public
// key.
func archiveHarness(t *testing.T, keys bool, change ...func(*Config)) (*harness, string) {
	t.Helper()
	return archiveHarnessWith(t, keys, nil, change...)
}

// archiveHarnessWith is archiveHarness for a storage profile whose objects
// the archiver wrote with policy.
func archiveHarnessWith(t *testing.T, keys bool, policy *eventfilter.Policy, change ...func(*Config)) (*harness, string) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	st, err := objstore.Open(context.Background(), objstore.Settings{Kind: objstore.KindLocal, Prefix: "audit", Local: &objstore.LocalSettings{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e2eharness.WriteFilteredArchive(t, st, archive.NewSigner(priv), accountA, map[time.Time]int{archDay(0): 5, archDay(1): 3}, archDay(3), policy)
	h := newHarness(t, append([]func(*Config){func(c *Config) {
		c.API.AllowLocalStorage = true
		c.API.TestsPerMinute = 100
		if keys {
			c.Archive.PublicKeys = []string{e2eharness.PublicKeyFile(t, t.TempDir(), pub)}
		}
	}}, change...)...)
	h.svc.API.now = func() time.Time { return archNow }
	mustStatus(t, h.do("PUT", profilePath(accountA, "archive"), tokenA, map[string]any{"settings": map[string]any{
		"kind": "local", "prefix": "audit", "local": map[string]any{"dir": dir}}}), http.StatusCreated)
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"streaming": false, "connections": []string{},
		"storage_profile": "archive"}), http.StatusOK)
	return h, filepath.Join(dir, "audit", accountA)
}

func daysOf(t *testing.T, r response) archiveDaysView {
	t.Helper()
	mustStatus(t, r, http.StatusOK)
	var v archiveDaysView
	r.json(t, &v)
	return v
}

func statesOf(v archiveDaysView) map[string]archiveDay {
	out := map[string]archiveDay{}
	for _, d := range v.Days {
		out[d.Date] = d
	}
	return out
}

func TestArchiveDaysStates(t *testing.T) {
	h, acct := archiveHarness(t, true)
	// The 2nd loses an object; the 4th's digest is changed after writing.
	entries, err := os.ReadDir(filepath.Join(acct, "2026/03/02"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("objects of 2026-03-02: %v %v", entries, err)
	}
	if err := os.Remove(filepath.Join(acct, "2026/03/02", entries[0].Name())); err != nil {
		t.Fatal(err)
	}
	d4 := filepath.Join(acct, "_digests/2026/03/04.json")
	b, err := os.ReadFile(d4)
	if err != nil || !bytes.Contains(b, []byte(`"events": 0`)) {
		t.Fatalf("digest of the 4th: %v %s", err, b)
	}
	if err := os.WriteFile(d4, bytes.Replace(b, []byte(`"events": 0`), []byte(`"events": 7`), 1), 0o644); err != nil {
		t.Fatal(err)
	}

	v := daysOf(t, h.do("GET", daysPath(accountA, "from=2026-02-28&to=2026-03-07"), tokenA, nil))
	if v.From != "2026-02-28" || v.To != "2026-03-07" || v.StorageProfile != "archive" || !v.SignaturesChecked || len(v.KeyIDs) != 1 || len(v.Days) != 8 {
		t.Fatalf("answer: %+v", v)
	}
	if v.Days[0].Date != "2026-03-07" || v.Days[7].Date != "2026-02-28" {
		t.Fatalf("days are not newest first: %s .. %s", v.Days[0].Date, v.Days[7].Date)
	}
	days := statesOf(v)
	want := map[string]string{
		"2026-02-28": dayNotCovered, // before the chain's start
		"2026-03-01": dayVerified,
		"2026-03-02": dayProblem,
		"2026-03-03": dayQuiet,
		"2026-03-04": dayProblem,
		"2026-03-05": dayMissing, // ended more than archive.digest_due ago
		"2026-03-06": dayMissing,
		"2026-03-07": dayNotCovered, // today: not due
	}
	for date, state := range want {
		if days[date].State != state {
			t.Errorf("%s: state %s, want %s (%+v)", date, days[date].State, state, days[date])
		}
	}
	if d := days["2026-03-01"]; d.Events != 5 || d.Objects != 1 || d.Addenda != 0 || d.KeyID != v.KeyIDs[0] || len(d.Problems) != 0 {
		t.Errorf("the verified day: %+v", d)
	}
	kinds := func(d archiveDay) map[string]string {
		out := map[string]string{}
		for _, p := range d.Problems {
			out[p.Kind] = p.Message
		}
		return out
	}
	if k := kinds(days["2026-03-02"]); k[archive.ProblemMissing] == "" || days["2026-03-02"].Events != 3 {
		t.Errorf("the day that lost an object: %+v", days["2026-03-02"])
	}
	if k := kinds(days["2026-03-04"]); !strings.Contains(k[archive.ProblemDigest], "signature") {
		t.Errorf("the changed digest is not named as a digest problem with its signature: %+v", days["2026-03-04"])
	}
	if k := kinds(days["2026-03-05"]); k[archive.ProblemDigestMissing] == "" {
		t.Errorf("the missing digest: %+v", days["2026-03-05"])
	}

	// A range of only the good days: nothing else listed; the problems of
	// the other days are counted.
	v = daysOf(t, h.do("GET", daysPath(accountA, "from=2026-03-01&to=2026-03-01"), tokenA, nil))
	if len(v.Days) != 1 || v.Days[0].State != dayVerified || v.OtherProblems == 0 {
		t.Fatalf("one day: %+v", v)
	}
	// The default range: the last 14 days up to today.
	v = daysOf(t, h.do("GET", daysPath(accountA, ""), tokenA, nil))
	if v.From != "2026-02-22" || v.To != "2026-03-07" || len(v.Days) != 14 {
		t.Fatalf("default range: %s..%s, %d days", v.From, v.To, len(v.Days))
	}
	// An operator sees the same.
	if v := daysOf(t, h.do("GET", daysPath(accountA, "from=2026-03-01&to=2026-03-03"), tokenOperator, nil)); len(v.Days) != 3 {
		t.Fatalf("operator: %+v", v)
	}
}

// TestArchiveDaysFilteredProfile: the days of a filtered and redacted
// storage profile verify, and say what the policy did; a filtered day that
// lost an object is still a problem.
func TestArchiveDaysFilteredProfile(t *testing.T) {
	rules := []eventfilter.Rule{{Path: "actor.email", Action: eventfilter.Hash}}
	policy, err := eventfilter.NewPolicy(`event.outcome.result == "FAILURE"`, rules, []byte("k1"))
	if err != nil {
		t.Fatal(err)
	}
	h, acct := archiveHarnessWith(t, true, policy)
	// Offsets 0..4 on the 1st keep 0 and 3; 5..7 on the 2nd keep 6.
	v := daysOf(t, h.do("GET", daysPath(accountA, "from=2026-03-01&to=2026-03-03"), tokenA, nil))
	days := statesOf(v)
	for date, want := range map[string]struct {
		events, filtered int64
	}{"2026-03-01": {2, 3}, "2026-03-02": {1, 2}} {
		d := days[date]
		if d.State != dayVerified || d.Events != want.events || d.Policy == nil || d.Policy.Filtered != want.filtered || d.Policy.Partial ||
			len(d.Policy.Policies) != 1 {
			t.Fatalf("%s: %+v (policy %+v), want verified with %d events and %d left out", date, d, d.Policy, want.events, want.filtered)
		}
		p := d.Policy.Policies[0]
		if p.Version != policy.Version() || p.Filter != policy.Filter() || len(p.Redact) != 1 || p.Redact[0] != rules[0] || p.Filtered != want.filtered {
			t.Fatalf("%s: policy %+v, want the profile's", date, p)
		}
	}
	if d := days["2026-03-03"]; d.State != dayQuiet || d.Policy != nil {
		t.Fatalf("the quiet day: %+v", d)
	}

	entries, err := os.ReadDir(filepath.Join(acct, "2026/03/02"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("objects of 2026-03-02: %v %v", entries, err)
	}
	if err := os.Remove(filepath.Join(acct, "2026/03/02", entries[0].Name())); err != nil {
		t.Fatal(err)
	}
	v = daysOf(t, h.do("GET", daysPath(accountA, "from=2026-03-02&to=2026-03-02"), tokenA, nil))
	if d := v.Days[0]; d.State != dayProblem || d.Problems[0].Kind != archive.ProblemMissing || d.Policy == nil || d.Policy.Filtered != 2 {
		t.Fatalf("the filtered day that lost its object: %+v", d)
	}
}

func TestArchiveDaysWithoutPublicKey(t *testing.T) {
	h, _ := archiveHarness(t, false)
	v := daysOf(t, h.do("GET", daysPath(accountA, "from=2026-03-01&to=2026-03-04"), tokenA, nil))
	if v.SignaturesChecked || len(v.KeyIDs) != 0 || !strings.Contains(v.Note, "no public key configured") {
		t.Fatalf("answer without a key: %+v", v)
	}
	for _, d := range v.Days {
		if d.State != dayUnverified {
			t.Errorf("%s: %s, want unverified", d.Date, d.State)
		}
	}
}

func TestArchiveDaysRequests(t *testing.T) {
	h, _ := archiveHarness(t, true, func(c *Config) { c.API.TestsPerMinute = 2 })
	for _, c := range []struct{ query, field, says string }{
		{"from=yesterday", "from", "not a date"},
		{"to=2026-02-30", "to", "not a date"},
		{"from=2026-03-05&to=2026-03-01", "from", "after to"},
		{"from=2025-01-01&to=2026-03-01", "to", "at most 92"},
	} {
		r := h.do("GET", daysPath(accountA, c.query), tokenA, nil)
		mustStatus(t, r, http.StatusBadRequest)
		if msg := r.fields(t)[c.field]; !strings.Contains(msg, c.says) {
			t.Errorf("%s: field errors %v, want %s: ...%s", c.query, r.fields(t), c.field, c.says)
		}
	}
	// Another account's admin learns nothing of the account's archive.
	r := h.do("GET", daysPath(accountA, ""), tokenB, nil)
	mustStatus(t, r, http.StatusNotFound)
	if contains(r.body, "archive") && !contains(r.body, "account "+accountA) {
		t.Fatalf("the other admin's answer: %s", r.body)
	}
	mustStatus(t, h.do("GET", daysPath(accountA, ""), "", nil), http.StatusUnauthorized)
	// An account without an archive is told so.
	r = h.do("GET", daysPath(accountB, ""), tokenB, nil)
	mustStatus(t, r, http.StatusConflict)
	if !contains(r.body, `"no_archive"`) || !contains(r.body, "storage_profile") {
		t.Fatalf("no archive: %s", r.body)
	}
	// Verifications are bounded per account as tests are.
	mustStatus(t, h.do("GET", daysPath(accountA, ""), tokenA, nil), http.StatusOK)
	mustStatus(t, h.do("GET", daysPath(accountA, ""), tokenA, nil), http.StatusOK)
	r = h.do("GET", daysPath(accountA, ""), tokenA, nil)
	mustStatus(t, r, http.StatusTooManyRequests)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

// A profile of a real S3 API with a secret key: the answer, good or bad,
// never holds the secret.
func TestArchiveDaysS3NoSecret(t *testing.T) {
	fake := s3fake.New(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	h := newHarness(t, customEndpoints, func(c *Config) {
		c.Archive.PublicKeys = []string{e2eharness.PublicKeyFile(t, t.TempDir(), pub)}
	})
	s3s := fake.Settings(t)
	bucket := s3s.Bucket
	st, err := objstore.Open(context.Background(), objstore.Settings{Kind: objstore.KindS3, Prefix: "audit", S3: &s3s})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(24 * time.Hour)
	e2eharness.WriteArchive(t, st, archive.NewSigner(priv), accountA, map[time.Time]int{now.AddDate(0, 0, -2): 4}, now.AddDate(0, 0, -1))
	mustStatus(t, h.do("PUT", profilePath(accountA, "s3"), tokenA, s3Body(fake, bucket, "audit")), http.StatusCreated)
	mustStatus(t, h.do("PUT", "/v1/accounts/"+accountA+"/audit-logs", tokenA, map[string]any{"streaming": false, "connections": []string{},
		"storage_profile": "s3"}), http.StatusOK)
	ok := h.do("GET", daysPath(accountA, ""), tokenA, nil)
	good := ok.body
	days := statesOf(daysOf(t, ok))
	if d := days[now.AddDate(0, 0, -2).Format(time.DateOnly)]; d.State != dayVerified || d.Events != 4 {
		t.Fatalf("the day in S3: %+v", d)
	}
	// A bucket the store does not have: the store's error, without the
	// secret.
	mustStatus(t, h.do("PUT", profilePath(accountA, "s3"), tokenA, s3Body(fake, "no-such-bucket", "audit")), http.StatusOK)
	r := h.do("GET", daysPath(accountA, ""), tokenA, nil)
	mustStatus(t, r, http.StatusBadGateway)
	if !contains(r.body, "storage_error") || !contains(r.body, "not_found") {
		t.Fatalf("missing bucket: %s", r.body)
	}
	if contains(r.body, s3fake.Secret) || contains(good, s3fake.Secret) || strings.Contains(h.logs.String(), s3fake.Secret) {
		t.Fatalf("the secret in an answer or the log: %s", r.body)
	}
}

// A verification that does not finish in archive.timeout is answered 504,
// naming the setting.
func TestArchiveDaysTimeout(t *testing.T) {
	h, _ := archiveHarness(t, true, func(c *Config) { c.Archive.Timeout = time.Nanosecond })
	r := h.do("GET", daysPath(accountA, ""), tokenA, nil)
	mustStatus(t, r, http.StatusGatewayTimeout)
	if !contains(r.body, `"timeout"`) || !contains(r.body, "archive.timeout") {
		t.Fatalf("timeout: %s", r.body)
	}
}
