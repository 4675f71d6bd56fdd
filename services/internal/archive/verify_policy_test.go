package archive_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/objstore/local"
)

// TestVerifyReportsFilteredDays: a storage profile's filter leaves events
// out on purpose; verification says so per day (filter, rules, events left
// out) without calling it a problem, and a missing object of such a day is
// still one.
func TestVerifyReportsFilteredDays(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	policy, err := eventfilter.NewPolicy(`event.outcome.result != "SUCCESS"`,
		[]eventfilter.Rule{{Path: "actor.email", Action: eventfilter.Hash}, {Path: "request.ip_address", Action: eventfilter.Mask, Keep: 3}}, []byte("k1"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := archive.NewWriter(archive.NewSigner(priv))
	offset := int64(0)
	// acc-f is filtered on both days, acc-w is whole; 10 events each, 3
	// of them failures.
	for d := range 2 {
		at := day.Add(time.Duration(d) * 24 * time.Hour)
		for _, acct := range []string{"acc-f", "acc-w"} {
			sp, err := archive.NewSpool(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			first := offset
			for i := range 10 {
				id := fmt.Sprintf("%s-%d-%d", acct, d, i)
				result := "SUCCESS"
				if i%3 == 0 && i > 0 {
					result = "FAILURE"
				}
				ev := &auditlogv1.AuditEvent{Id: id, Service: "audit-log", Timestamp: timestamppb.New(at),
					Actor:   &auditlogv1.Actor{Id: "u1", Type: "user", Email: "jane@example.com"},
					Request: &auditlogv1.Request{IpAddress: "69.206.111.123", Action: "discard-run"},
					Outcome: &auditlogv1.Outcome{Result: result}}
				if err := sp.Add(acct, id, offset, at, auditevent.AppendJSON(nil, ev)); err != nil {
					t.Fatal(err)
				}
				offset++
			}
			batches, err := sp.Partition()
			if err != nil {
				t.Fatal(err)
			}
			target := archive.Target{Name: "t", Store: st}
			if acct == "acc-f" {
				target.Policy = policy
			}
			var buf bytes.Buffer
			stats, err := sp.BuildWith(batches[0], &buf, archive.PolicyLine(target.Policy))
			if err != nil {
				t.Fatal(err)
			}
			g := archive.Group{Window: archive.WindowOf(at, 24*time.Hour), Partition: 0, First: first, Last: offset - 1}
			if _, err := w.Put(context.Background(), target, acct, g, false, archive.Object{Body: bytes.NewReader(buf.Bytes()), Stats: stats}); err != nil {
				t.Fatal(err)
			}
			sp.Close()
		}
	}

	rep, err := archive.Verify(context.Background(), st, archive.VerifyOptions{PublicKey: pub})
	if err != nil || !rep.OK() {
		t.Fatalf("a filtered archive does not verify: %v %v", rep.Problems, err)
	}
	if rep.Records != 2*3+2*10 {
		t.Fatalf("%d records checked, want 26 (3 kept of 10 on each filtered day)", rep.Records)
	}
	if len(rep.Policies) != 2 {
		t.Fatalf("policies %+v, want the two days of acc-f", rep.Policies)
	}
	for i, dp := range rep.Policies {
		want := day.Add(time.Duration(i) * 24 * time.Hour).Format(time.DateOnly)
		if dp.Account != "acc-f" || dp.Day != want || dp.Filtered != 7 || dp.Manifests != 1 || dp.Whole != 0 || len(dp.Policies) != 1 {
			t.Fatalf("day policy %+v, want acc-f %s with 7 events left out by one policy", dp, want)
		}
		p := dp.Policies[0]
		if p.Version != policy.Version() || p.Filter != policy.Filter() || len(p.Redact) != 2 || p.Redact[1] != (eventfilter.Rule{Path: "request.ip_address", Action: eventfilter.Mask, Keep: 3}) || p.Filtered != 7 {
			t.Fatalf("policy %+v, want the profile's", p)
		}
	}

	// One day only, with acc-f's object of it gone: the day is still
	// reported as filtered, and the missing object as a problem.
	entries, err := os.ReadDir(filepath.Join(dir, "acc-f/2024/02/17"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("acc-f's objects of 2024-02-17: %v %v", entries, err)
	}
	if err := os.Remove(filepath.Join(dir, "acc-f/2024/02/17", entries[0].Name())); err != nil {
		t.Fatal(err)
	}
	next := day.Add(24 * time.Hour)
	rep, err = archive.Verify(context.Background(), st, archive.VerifyOptions{PublicKey: pub, From: next, To: next})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != archive.ProblemMissing {
		t.Fatalf("problems %v, want the missing object", rep.Problems)
	}
	if len(rep.Policies) != 1 || rep.Policies[0].Day != "2024-02-17" || rep.Policies[0].Filtered != 7 {
		t.Fatalf("policies %+v, want 2024-02-17 only", rep.Policies)
	}
}
