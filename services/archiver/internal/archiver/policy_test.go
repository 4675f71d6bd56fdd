package archiver

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// manifests reads every manifest in st.
func manifests(t *testing.T, st objstore.Store) []*archive.Manifest {
	t.Helper()
	var out []*archive.Manifest
	for info, err := range st.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(info.Key, "/_manifests/") {
			continue
		}
		rc, _, err := st.Open(context.Background(), info.Key)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		m, err := archive.OpenManifest(body, nil)
		if err != nil {
			t.Fatalf("%s: %v", info.Key, err)
		}
		out = append(out, m)
	}
	return out
}

// allBytes is every object of st, unpacked, and every manifest, as text.
func allBytes(t *testing.T, st objstore.Store) string {
	t.Helper()
	var b strings.Builder
	for _, evs := range archived(t, st) {
		for _, ev := range evs {
			fmt.Fprintf(&b, "%v\n", ev)
		}
	}
	for _, m := range manifests(t, st) {
		fmt.Fprintf(&b, "%+v\n", *m)
	}
	return b.String()
}

// A storage profile with a filter and redaction archives only the events
// its filter keeps, in the form its redaction gives them, and its
// manifests say so; a profile without them, beside it, archives every
// event whole. Both verify.
func TestStorageProfilePolicyFiltersRedactsAndIsRecorded(t *testing.T) {
	e := newEnv(t)
	full, partial := localBackend().newBucket(t), localBackend().newBucket(t)
	const filter = `event.target.context.account.id != "acc-01"`
	yaml := "connections:\n  full:\n    type: storage\n    settings:\n" + full.settings +
		"  partial:\n    type: storage\n    filter: '" + filter + "'\n    redact:\n      - {path: actor.email, action: hash}\n      - {path: request.ip_address, action: drop}\n    redaction_key: archive-key\n    settings:\n" + partial.settings +
		"routes:\n  - account: \"*\"\n    connections: [full, partial]\n"
	if err := os.WriteFile(e.destFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	evs := makeEvents(3, 1, 4) // acc-00..acc-02, 4 events each
	e.publish(evs)
	clk := newClock(day0.Add(12 * time.Hour))
	e.start(e.config("archiver"), clk)
	e.waitFiled(len(evs))
	clk.Set(day0.Add(25 * time.Hour))

	waitArchived(t, full.st, len(evs), 30*time.Second)
	got := waitArchived(t, partial.st, len(evs)-4, 30*time.Second)
	forwardingtest.WaitFor(t, "a manifest per account", 30*time.Second, func() bool { return len(manifests(t, partial.st)) >= 3 })
	for key, list := range got {
		for _, ev := range list {
			if strings.HasPrefix(key, "acc-01/") || ev.Target.Context.Account.Id == "acc-01" {
				t.Errorf("%s holds %s of acc-01, which the filter leaves out", key, ev.Id)
			}
			if ev.Actor.Email == "" || ev.Actor.Email == "someone@example.com" || len(ev.Actor.Email) != 64 || ev.Request.IpAddress != "" {
				t.Errorf("%s: %s not redacted: email %q ip %q", key, ev.Id, ev.Actor.Email, ev.Request.IpAddress)
			}
		}
	}
	for _, raw := range []string{"someone@example.com", "10.0.0.1"} {
		if s := allBytes(t, partial.st); strings.Contains(s, raw) {
			t.Errorf("the filtered archive holds the raw %q", raw)
		}
		if s := allBytes(t, full.st); !strings.Contains(s, raw) {
			t.Errorf("the complete archive lacks %q", raw)
		}
	}
	filtered := map[string]int64{}
	for _, m := range manifests(t, partial.st) {
		if m.Policy == nil || m.Policy.Filter != filter || len(m.Policy.Redact) != 2 || m.Policy.Version == "" {
			t.Fatalf("manifest of %s does not record the policy: %+v", m.Account, m.Policy)
		}
		filtered[m.Account] += m.Policy.Filtered
	}
	if filtered["acc-01"] != 4 || filtered["acc-00"] != 0 || filtered["acc-02"] != 0 {
		t.Errorf("filtered per account %v, want 4 of acc-01 only", filtered)
	}
	for _, m := range manifests(t, full.st) {
		if m.Policy != nil {
			t.Errorf("manifest of the complete archive records a policy: %+v", m.Policy)
		}
	}
	for name, st := range map[string]objstore.Store{"full": full.st, "partial": partial.st} {
		rep := verifyEventually(t, st, archive.VerifyOptions{PublicKey: e.pub}, (*archive.Report).OK)
		if !rep.OK() {
			t.Errorf("%s does not verify: %+v", name, rep)
		}
	}
}
