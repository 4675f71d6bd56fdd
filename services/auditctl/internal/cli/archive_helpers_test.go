package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
)

// archiverGroup is the consumer group of the archiver the archive tests
// run.
const archiverGroup = "archiver-test"

// buildArchiver builds the archiver binary the archive tests run.
func buildArchiver(t *testing.T) string {
	t.Helper()
	return forwardingtest.BuildBinary(t, "../../../archiver")
}

// writeSigningKey writes a new archive signing key into dir as name.pem
// and its public key as name.pub.pem.
func writeSigningKey(t *testing.T, dir, name string) (private, public string, pub ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	private = filepath.Join(dir, name+".pem")
	if err := os.WriteFile(private, archive.MarshalSigningKey(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	public = filepath.Join(dir, name+".pub.pem")
	if err := os.WriteFile(public, archive.MarshalPublicKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	return private, public, pub
}

// archiverConfig writes an archiver config file for k's topic and
// destFile, signing with signingKey, with short intervals so that a run
// is quick; extra are more lines of its archive section. auditctl reads
// the same file.
func archiverConfig(t *testing.T, k *testKafka, destFile, signingKey string, extra ...string) string {
	t.Helper()
	var more strings.Builder
	for _, l := range extra {
		more.WriteString("  " + l + "\n")
	}
	return writeFile(t, "archiver.yaml", fmt.Sprintf(`log: {level: warn, format: json}
http: {addr: %q}
kafka:
  brokers: [%s]
  topics:
    events: {name: audit.events, partitions: 3}
    dead_letter: {name: audit.events.dlq, partitions: 1}
destinations: {file: %q, poll_interval: 100ms}
archive:
  group: %s
  window: 3h
  grace: 1m
  late_flush_after: 1s
  spool_dir: %q
  commit_interval: 50ms
  digest_interval: 100ms
  signing_key: {file: %q}
%s`, forwardingtest.FreeAddr(t), k.addr, destFile, archiverGroup, t.TempDir(), signingKey, more.String()))
}

// storageDestinations writes a destinations file that routes every
// account to the storage connection bucket (directory dir), with a
// disabled storage connection old-bucket (directory old) and a Datadog
// connection dd-x beside it.
func storageDestinations(t *testing.T, dir, old string) string {
	t.Helper()
	return writeFile(t, "destinations.yaml", fmt.Sprintf(`connections:
  bucket:
    type: storage
    settings:
      kind: local
      local: {dir: %q}
  old-bucket:
    type: storage
    enabled: false
    settings:
      kind: local
      local: {dir: %q}
  dd-x:
    type: datadog
    settings:
      api_key: x
routes:
  - account: "*"
    connections: [bucket]
`, dir, old))
}

// runArchiverOnce runs the archiver binary with cfgFile until it has
// committed every record of the topic and written the digests named
// (keys under dir), then stops it.
func runArchiverOnce(t *testing.T, k *testKafka, bin, cfgFile, dir string, digests ...string) {
	t.Helper()
	cmd := forwardingtest.StartProcess(t, nil, &forwardingtest.TestWriter{T: t, Prefix: "archiver"}, bin, "--config", cfgFile)
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	adm := kadm.NewClient(k.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	forwardingtest.WaitFor(t, "the archiver to commit every record", 90*time.Second, func() bool {
		committed, err := adm.FetchOffsets(ctx, archiverGroup)
		if err != nil {
			return false
		}
		done := true
		ends.Each(func(e kadm.ListedOffset) {
			c, ok := committed.Lookup(topic, e.Partition)
			// a partition without records has nothing to commit
			done = done && (e.Offset == 0 || ok && c.At == e.Offset)
		})
		return done
	})
	forwardingtest.WaitFor(t, fmt.Sprintf("the archiver to write the digests %v", digests), 90*time.Second, func() bool {
		for _, key := range digests {
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key))); err != nil {
				return false
			}
		}
		return true
	})
}

// listFiles returns the keys of every file under dir.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
