package e2eharness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/objstore"
)

// WriteArchive writes an account's archive into st in process, with the
// archive package's writer and digester as the archiver uses them: for
// each day of events one object of that many events (and its signed
// manifest), then the day digests from the first day of events through
// through, the first one starting the account's chain.
func WriteArchive(t testing.TB, st objstore.Store, signer *archive.Signer, account string, events map[time.Time]int, through time.Time) {
	t.Helper()
	WriteFilteredArchive(t, st, signer, account, events, through, nil)
}

// WriteFilteredArchive is WriteArchive for a storage profile with policy
// (nil for none): the events are whole ones, every third a FAILURE, the
// others SUCCESS, and the objects hold what the policy leaves of them, as
// the archiver writes them.
func WriteFilteredArchive(t testing.TB, st objstore.Store, signer *archive.Signer, account string, events map[time.Time]int, through time.Time, policy *eventfilter.Policy) {
	t.Helper()
	ctx := context.Background()
	tg := archive.Target{Name: "archive", Store: st, Policy: policy}
	w := archive.NewWriter(signer)
	days := slices.SortedFunc(maps.Keys(events), time.Time.Compare)
	offset := int64(0)
	for _, day := range days {
		sp, err := archive.NewSpool(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		first := offset
		for range events[day] {
			id := fmt.Sprintf("%s-%d", account, offset)
			line := []byte(`{"id":"` + id + `"}`)
			if policy != nil {
				result := "SUCCESS"
				if offset%3 == 0 {
					result = "FAILURE"
				}
				line = auditevent.AppendJSON(nil, &auditlogv1.AuditEvent{Id: id, Service: "audit-log", Timestamp: timestamppb.New(day.Add(time.Hour)),
					Actor:   &auditlogv1.Actor{Id: "u1", Type: "user", Email: "jane@example.com"},
					Outcome: &auditlogv1.Outcome{Result: result}})
			}
			if err := sp.Add(account, id, offset, day.Add(time.Hour), line); err != nil {
				t.Fatal(err)
			}
			offset++
		}
		batches, err := sp.Partition()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		stats, err := sp.BuildWith(batches[0], &buf, archive.PolicyLine(policy))
		if err != nil {
			t.Fatal(err)
		}
		g := archive.Group{Window: archive.WindowOf(day, 24*time.Hour), Partition: 0, First: first, Last: offset - 1}
		if _, err := w.Put(ctx, tg, account, g, false, archive.Object{Body: bytes.NewReader(buf.Bytes()), Stats: stats}); err != nil {
			t.Fatal(err)
		}
		_ = sp.Close()
	}
	dg := archive.NewDigester(signer)
	for _, d := range []time.Time{days[0], through} {
		if _, err := dg.Digest(ctx, tg, account, d); err != nil {
			t.Fatalf("digest %s through %s: %v", account, d.Format(time.DateOnly), err)
		}
	}
}

// PublicKeyFile writes pub as a PEM file in dir and returns its name.
func PublicKeyFile(t testing.TB, dir string, pub ed25519.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "archive-signing.pub.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
