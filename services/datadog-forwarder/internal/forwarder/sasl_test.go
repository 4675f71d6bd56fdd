package forwarder

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
)

// A managed-Kafka pipeline: the ingest binary writes and the forwarder
// delivers through a TLS broker that accepts only the given SASL
// mechanism; kafkaYAML and cfg are how ingest and the forwarder sign in.
func runManagedKafkaPipeline(t *testing.T, cluster *kafkatest.Cluster, configure func(*kafka.Config), ingestKafkaYAML string) {
	t.Helper()
	cfg := DefaultConfig()
	configure(&cfg.Kafka)
	f := &intakeFake{Server: ddfake.New("dd-managed"), t: t}
	t.Cleanup(f.Close)
	p := &pipeline{Pipeline: &sinkconformance.Pipeline{Pipeline: forwardingtest.NewPipelineOn(t, cluster, cfg), Spec: Spec, Fake: f}, intake: f.Server}
	if err := p.Cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p.WriteRoutes(map[string][]string{"*": {"dd-managed"}})
	p.StartForwarder()
	addr := forwardingtest.StartIngestWith(t, "../../../ingest", p.Cfg.Kafka.Brokers, ingestKafkaYAML)

	var ids []string
	for i := range 20 {
		ids = append(ids, forwardingtest.PostEvent(t, addr, auditevent.EncodeJSON(forwardingtest.TestEvent("acc-managed", i))))
	}
	forwardingtest.WaitFor(t, "delivery of every event", 30*time.Second, func() bool { return p.intake.Count("dd-managed") >= len(ids) })
	got, _ := p.Received("dd-managed")
	seen := forwardingtest.Counts(got)
	for _, id := range ids {
		if seen[id] < 1 {
			t.Errorf("event %s not delivered", id)
		}
	}
}

func TestIngestToDatadogThroughMSKIAM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ingest binary")
	}
	const region = "eu-west-1"
	t.Setenv("AWS_REGION", region) // the broker's host, 127.0.0.1, names none
	tlsOpt, caFile := kafkatest.TLS(t)
	cluster := kafkatest.New(t, tlsOpt)
	msk := &kafkatest.MSKIAM{Host: "127.0.0.1", Region: region, Lifetime: time.Minute}
	key := kafkatest.AWSKey{AccessKeyID: "AKIAE2ETEST00000001", SecretAccessKey: "e2e-secret/0123+abcd=efgh"}
	msk.AddKey(key)
	broker := kafkatest.NewSASLBroker(cluster, "AWS_MSK_IAM", msk.Check)

	dir := t.TempDir()
	for name, v := range map[string]string{"id": key.AccessKeyID, "secret": key.SecretAccessKey} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runManagedKafkaPipeline(t, cluster, func(k *kafka.Config) {
		k.TLS = kafka.TLSConfig{Enabled: true, CAFile: caFile}
		k.SASL.Mechanism = "aws_msk_iam"
		k.SASL.AWS.Credentials.AccessKeyID = config.SecretFile(filepath.Join(dir, "id"))
		k.SASL.AWS.Credentials.SecretAccessKey = config.SecretFile(filepath.Join(dir, "secret"))
	}, fmt.Sprintf(`  tls: {enabled: true, ca_file: %s}
  sasl:
    mechanism: aws_msk_iam
    aws:
      credentials:
        access_key_id: {file: %s}
        secret_access_key: {file: %s}
`, caFile, filepath.Join(dir, "id"), filepath.Join(dir, "secret")))

	// both services signed in, each with its own user agent
	agents := map[string]bool{}
	for _, a := range broker.Auths() {
		if !a.OK {
			t.Errorf("refused: %s", a.Reason)
		}
		agents[a.Payload["user-agent"]] = true
	}
	for _, ua := range []string{"auditstream/dev/auditstream-ingest", "auditstream/dev/auditstream-" + Spec.Binary} {
		if !agents[ua] {
			t.Errorf("no authentication from %s; saw %v", ua, agents)
		}
	}
}

func TestIngestToDatadogThroughOAuthBearer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ingest binary")
	}
	tlsOpt, caFile := kafkatest.TLS(t)
	cluster := kafkatest.New(t, tlsOpt)
	// each service has its own token, as workload identities do
	tokens := map[string]string{"ingest": "ingest-token-Aa11", "forwarder": "forwarder-token-Bb22"}
	broker := kafkatest.NewSASLBroker(cluster, "OAUTHBEARER", kafkatest.OAuthBearer{Valid: func(tok string) (time.Duration, string) {
		for _, v := range tokens {
			if tok == v {
				return time.Minute, ""
			}
		}
		return 0, "invalid token"
	}}.Check)
	dir := t.TempDir()
	for name, tok := range tokens {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runManagedKafkaPipeline(t, cluster, func(k *kafka.Config) {
		k.TLS = kafka.TLSConfig{Enabled: true, CAFile: caFile}
		k.SASL.Mechanism = "oauthbearer"
		k.SASL.OAuth.Token = config.SecretFile(filepath.Join(dir, "forwarder"))
	}, fmt.Sprintf("  tls: {enabled: true, ca_file: %s}\n  sasl:\n    mechanism: oauthbearer\n    oauth:\n      token: {file: %s}\n", caFile, filepath.Join(dir, "ingest")))

	sent := map[string]bool{}
	for _, a := range broker.Auths() {
		if !a.OK {
			t.Errorf("refused: %s", a.Reason)
		}
		sent[a.Token] = true
	}
	for name, tok := range tokens {
		if !sent[tok] {
			t.Errorf("the %s never authenticated with its token; saw %d tokens", name, len(sent))
		}
	}
}
