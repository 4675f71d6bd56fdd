package kafka_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func testConfig(brokers []string) kafka.Config {
	c := kafka.Default("kafka-test")
	c.Brokers = brokers
	c.DialTimeout = time.Second
	c.RequestTimeout = 3 * time.Second
	return c
}

func newClient(t *testing.T, c kafka.Config, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kafka.NewClient(c, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)), nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEnsureTopics(t *testing.T) {
	cluster := kafkatest.New(t)
	cl := newClient(t, testConfig(cluster.Brokers()))
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)

	// a topic that exists already, with settings of its own
	oneSec := "1000"
	if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"retention.ms": &oneSec}, "existing"); err != nil {
		t.Fatal(err)
	}
	specs := []kafka.TopicSpec{
		{Name: "with-retention", Partitions: 4, ReplicationFactor: -1, Retention: 2 * time.Hour},
		{Name: "broker-retention", Partitions: 2, ReplicationFactor: 1},
		{Name: "existing", Partitions: 6, ReplicationFactor: -1, Retention: time.Hour},
		{Name: "compacted", Partitions: 1, ReplicationFactor: -1, Compacted: true},
		{Name: "compacted-expiring", Partitions: 1, ReplicationFactor: -1, Retention: time.Hour, Compacted: true},
	}
	for range 2 { // a second run finds everything in place
		if err := kafka.EnsureTopics(ctx, cl, specs...); err != nil {
			t.Fatal(err)
		}
	}

	details, err := adm.ListTopics(ctx, "with-retention", "broker-retention", "existing")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"with-retention": 4, "broker-retention": 2, "existing": 1} {
		d, ok := details[name]
		if !ok || d.Err != nil {
			t.Fatalf("topic %s: %v", name, d.Err)
		}
		if got := len(d.Partitions); got != want {
			t.Errorf("topic %s has %d partitions, want %d", name, got, want)
		}
	}
	configs, err := adm.DescribeTopicConfigs(ctx, "with-retention", "broker-retention", "existing")
	if err != nil {
		t.Fatal(err)
	}
	retention := map[string]kadm.Config{}
	for _, rc := range configs {
		if rc.Err != nil {
			t.Fatalf("%s: %v", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" {
				retention[rc.Name] = c
			}
		}
	}
	if c := retention["with-retention"]; c.MaybeValue() != "7200000" {
		t.Errorf("with-retention retention.ms %q", c.MaybeValue())
	}
	if c := retention["existing"]; c.MaybeValue() != "1000" {
		t.Errorf("an existing topic's retention.ms changed to %q", c.MaybeValue())
	}
	if c := retention["broker-retention"]; c.Source == 1 /* DYNAMIC_TOPIC_CONFIG */ {
		t.Errorf("retention set on a topic that asked for the broker default: %q", c.MaybeValue())
	}

	// compacted topics; with a retention, old keys expire as well
	configs, err = adm.DescribeTopicConfigs(ctx, "compacted", "compacted-expiring")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, rc := range configs {
		if rc.Err != nil {
			t.Fatalf("%s: %v", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" || c.Key == "retention.ms" {
				got[rc.Name+" "+c.Key] = c.MaybeValue()
			}
		}
	}
	if got["compacted cleanup.policy"] != "compact" || got["compacted-expiring cleanup.policy"] != "compact,delete" ||
		got["compacted-expiring retention.ms"] != "3600000" {
		t.Errorf("compacted topics' configs: %v", got)
	}
}

func TestEnsureTopicsReportsEveryFailure(t *testing.T) {
	cluster := kafkatest.New(t)
	cl := newClient(t, testConfig(cluster.Brokers()))
	err := kafka.EnsureTopics(ctxT(t), cl,
		kafka.TopicSpec{Name: "needs-three-brokers", Partitions: 1, ReplicationFactor: 3},
		kafka.TopicSpec{Name: "fine", Partitions: 1, ReplicationFactor: -1},
		kafka.TopicSpec{Name: "also-three", Partitions: 2, ReplicationFactor: 3},
	)
	if err == nil {
		t.Fatal("no error for a replication factor over the broker count")
	}
	for _, want := range []string{"create topic needs-three-brokers (partitions 1, replication 3)", "create topic also-three"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "fine") {
		t.Errorf("the good topic is reported: %v", err)
	}
	d, err := kadm.NewClient(cl).ListTopics(ctxT(t), "fine")
	if err != nil || d["fine"].Err != nil {
		t.Errorf("the good topic was not created: %v %v", err, d["fine"].Err)
	}
}

func TestEnsureTopicsBrokerDown(t *testing.T) {
	cluster := kafkatest.New(t)
	c := testConfig(cluster.Brokers())
	cl := newClient(t, c)
	cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cl, c.Topics.Events); err == nil {
		t.Fatal("no error with the broker down")
	}
}

// A service started while Kafka is away waits for it: the topics are
// created once the broker comes up, instead of the start failing.
func TestBootstrapTopicsWaitsForKafka(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c := testConfig([]string{ln.Addr().String()})
	cl := newClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- kafka.BootstrapTopics(ctx, cl, zaptest.NewLogger(t), c.Topics.Events) }()

	// Fail at least one attempt before the broker is there.
	select {
	case err := <-done:
		t.Fatalf("BootstrapTopics returned with no broker to talk to: %v", err)
	case <-time.After(3 * time.Second):
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	if err := <-done; err != nil {
		t.Fatalf("BootstrapTopics after the broker came up: %v", err)
	}
	d, err := kadm.NewClient(cl).ListTopics(ctxT(t), c.Topics.Events.Name)
	if err != nil || d[c.Topics.Events.Name].Err != nil {
		t.Fatalf("the topic was not created: %v %v", err, d[c.Topics.Events.Name].Err)
	}
}

// An answer Kafka gives for good is not waited out, and an ended context
// ends the wait.
func TestBootstrapTopicsGivesUp(t *testing.T) {
	cluster := kafkatest.New(t)
	cl := newClient(t, testConfig(cluster.Brokers()))
	start := time.Now()
	err := kafka.BootstrapTopics(ctxT(t), cl, zap.NewNop(), kafka.TopicSpec{Name: "needs-three-brokers", Partitions: 1, ReplicationFactor: 3})
	if err == nil || !strings.Contains(err.Error(), "needs-three-brokers") {
		t.Fatalf("error %v, want the topic that cannot be created", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a permanent error took %s: it was retried", d)
	}

	cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := kafka.BootstrapTopics(ctx, cl, zap.NewNop(), kafka.TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: -1}); err == nil {
		t.Fatal("no error once the context ended with the broker down")
	}
	if ctx.Err() == nil {
		t.Fatal("BootstrapTopics gave up before its context ended, with the broker only down")
	}
}

func TestSASL(t *testing.T) {
	const (
		plainPW   = "plain-pw-Zx81"
		scram256  = "scram256-pw-Qm27"
		scram512  = "scram512-pw-Lp93"
		wrongPass = "wrong-pw-Vv00"
	)
	cluster := kafkatest.New(t,
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plain-user", plainPW),
		kfake.Superuser("SCRAM-SHA-256", "scram-user", scram256),
		kfake.Superuser("SCRAM-SHA-512", "scram512-user", scram512),
	)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(scram256+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KAFKATEST_SCRAM512_PW", scram512)

	cases := []struct {
		name      string
		mechanism string
		user      string
		password  config.Secret
		ok        bool
	}{
		{"plain", "plain", "plain-user", config.SecretLiteral(plainPW), true},
		{"scram-sha-256", "scram-sha-256", "scram-user", config.SecretLiteral(scram256), true},
		{"scram-sha-256 from a file", "SCRAM-SHA-256", "scram-user", config.SecretFile(pwFile), true},
		{"scram-sha-512 from env", "scram-sha-512", "scram512-user", config.SecretEnv("KAFKATEST_SCRAM512_PW"), true},
		{"plain, wrong password", "plain", "plain-user", config.SecretLiteral(wrongPass), false},
		{"scram-sha-256, wrong password", "scram-sha-256", "scram-user", config.SecretLiteral(wrongPass), false},
		{"scram-sha-256, wrong user", "scram-sha-256", "nobody", config.SecretLiteral(scram256), false},
		{"scram-sha-512 password on sha-256", "scram-sha-256", "scram-user", config.SecretLiteral(scram512), false},
		{"no sasl at all", "", "", config.Secret{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(cluster.Brokers())
			c.SASL = kafka.SASLConfig{Mechanism: tc.mechanism, Username: tc.user, Password: tc.password}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			cl := newClient(t, c, kgo.RequestRetries(0))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := cl.Ping(ctx)
			if tc.ok {
				if err != nil {
					t.Fatalf("ping: %v", err)
				}
				topic := "sasl-" + strings.ReplaceAll(tc.name, " ", "-")
				if err := kafka.EnsureTopics(ctx, cl, kafka.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: -1}); err != nil {
					t.Fatalf("create topic: %v", err)
				}
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
					t.Fatalf("produce: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ping succeeded")
			}
			// a failure says nothing of any password
			errs := []string{err.Error()}
			if tc.mechanism != "" {
				pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer pcancel()
				perr := cl.ProduceSync(pctx, &kgo.Record{Topic: "x", Value: []byte("v")}).FirstErr()
				if perr == nil {
					t.Fatal("produce succeeded")
				}
				errs = append(errs, perr.Error())
			}
			t.Logf("errors: %q", errs)
			for _, e := range errs {
				for _, pw := range []string{plainPW, scram256, scram512, wrongPass} {
					if strings.Contains(e, pw) {
						t.Errorf("error holds a password: %s", e)
					}
				}
			}
		})
	}
}

func TestClientMetrics(t *testing.T) {
	cluster := kafkatest.New(t)
	reg := prometheus.NewRegistry()
	c := testConfig(cluster.Brokers())
	cl, err := kafka.NewClient(c, zap.NewNop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "auditstream_kafka_") {
			n++
		}
	}
	if n == 0 {
		t.Error("no auditstream_kafka_* metrics registered")
	}
}
