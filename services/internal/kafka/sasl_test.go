package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

const testRegion = "eu-west-1"

var (
	key1 = kafkatest.AWSKey{AccessKeyID: "AKIAKAFKATEST000001", SecretAccessKey: "key1-secret/Ab+Cd=Ef0123456789abcdefghij", SessionToken: "key1-session/token+with=odd/chars"}
	key2 = kafkatest.AWSKey{AccessKeyID: "AKIAKAFKATEST000002", SecretAccessKey: "key2-secret/Zy+Xw=Vu9876543210zyxwvutsr", SessionToken: "key2-session-token"}
)

// saslCluster is a TLS broker on 127.0.0.1 with a CA made for the test,
// counting the connections it accepts.
type saslCluster struct {
	*kafkatest.Cluster
	caFile string
	conns  atomic.Int64
}

func newSASLCluster(t *testing.T) *saslCluster {
	t.Helper()
	c := &saslCluster{}
	tlsOpt, caFile := kafkatest.TLS(t)
	c.caFile = caFile
	c.Cluster = kafkatest.New(t, tlsOpt, kafkatest.CountConnections(&c.conns))
	return c
}

func (c *saslCluster) config(sasl kafka.SASLConfig) kafka.Config {
	cfg := testConfig(c.Brokers())
	cfg.TLS = kafka.TLSConfig{Enabled: true, CAFile: c.caFile}
	cfg.SASL = sasl
	return cfg
}

// writeKey writes k's parts to files and returns credentials reading them.
func writeKey(t *testing.T, dir string, k kafkatest.AWSKey) kafka.MSKIAMConfig {
	t.Helper()
	var c kafka.MSKIAMConfig
	for name, v := range map[string]string{"id": k.AccessKeyID, "secret": k.SecretAccessKey, "token": k.SessionToken} {
		if err := os.WriteFile(filepath.Join(dir, name+".tmp"), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, name+".tmp"), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	c.Credentials.AccessKeyID = config.SecretFile(filepath.Join(dir, "id"))
	c.Credentials.SecretAccessKey = config.SecretFile(filepath.Join(dir, "secret"))
	c.Credentials.SessionToken = config.SecretFile(filepath.Join(dir, "token"))
	return c
}

// observed is a logger keeping every entry, at every level, for checks.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

func noSecrets(t *testing.T, where string, texts []string, secrets ...string) {
	t.Helper()
	for _, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%s holds a secret: %s", where, text)
			}
		}
	}
}

func logTexts(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Message+" "+fmt.Sprint(e.ContextMap()))
	}
	return out
}

func produce(t *testing.T, cl *kgo.Client, topic string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
}

// A broker address that names no region (a VPC endpoint's private DNS)
// signs for sasl.aws.region.
func TestMSKIAMSignsForTheConfiguredRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	const region = "eu-south-2"
	cluster := newSASLCluster(t)
	msk := &kafkatest.MSKIAM{Host: "127.0.0.1", Region: region}
	msk.AddKey(key1)
	broker := kafkatest.NewSASLBroker(cluster.Cluster, "AWS_MSK_IAM", msk.Check)
	sasl := kafka.SASLConfig{Mechanism: "aws_msk_iam", AWS: writeKey(t, t.TempDir(), key1)}
	cfg := cluster.config(sasl)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "sasl.aws.region") {
		t.Fatalf("no region anywhere: %v", err)
	}
	sasl.AWS.Region = region
	cfg = cluster.config(sasl)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log, _ := observed()
	cl, err := kafka.NewClient(cfg, log, nil, kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctxT(t), cl, kafka.TopicSpec{Name: "msk-region", Partitions: 1, ReplicationFactor: -1}); err != nil {
		t.Fatal(err)
	}
	auths := broker.Auths()
	if len(auths) == 0 {
		t.Fatal("the client never authenticated")
	}
	for _, a := range auths {
		if !a.OK || !strings.HasSuffix(a.Payload["x-amz-credential"], "/"+region+"/kafka-cluster/aws4_request") {
			t.Fatalf("authentication %v (%s), credential scope %q", a.OK, a.Reason, a.Payload["x-amz-credential"])
		}
	}
}

func TestMSKIAMSignsWithTheConfiguredCredentials(t *testing.T) {
	t.Setenv("AWS_REGION", testRegion)
	cluster := newSASLCluster(t)
	msk := &kafkatest.MSKIAM{Host: "127.0.0.1", Region: testRegion}
	msk.AddKey(key1)
	broker := kafkatest.NewSASLBroker(cluster.Cluster, "AWS_MSK_IAM", msk.Check)

	cfg := cluster.config(kafka.SASLConfig{Mechanism: "aws_msk_iam", AWS: writeKey(t, t.TempDir(), key1)})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log, logs := observed()
	cl, err := kafka.NewClient(cfg, log, nil, kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctxT(t), cl, kafka.TopicSpec{Name: "msk", Partitions: 1, ReplicationFactor: -1}); err != nil {
		t.Fatal(err)
	}
	if err := produce(t, cl, "msk"); err != nil {
		t.Fatalf("produce: %v", err)
	}
	auths := broker.Auths()
	if len(auths) == 0 {
		t.Fatal("the client never authenticated")
	}
	for _, a := range auths {
		if !a.OK {
			t.Fatalf("refused: %s", a.Reason)
		}
		p := a.Payload
		if !strings.HasPrefix(p["x-amz-credential"], key1.AccessKeyID+"/") || !strings.HasSuffix(p["x-amz-credential"], "/"+testRegion+"/kafka-cluster/aws4_request") {
			t.Errorf("x-amz-credential %q", p["x-amz-credential"])
		}
		if p["x-amz-security-token"] != key1.SessionToken {
			t.Errorf("x-amz-security-token %q", p["x-amz-security-token"])
		}
		if p["user-agent"] != "auditstream/dev/kafka-test" || p["x-amz-expires"] != "900" {
			t.Errorf("user-agent %q, x-amz-expires %q", p["user-agent"], p["x-amz-expires"])
		}
	}
	noSecrets(t, "log", logTexts(logs), key1.SecretAccessKey, key1.SessionToken)
}

func TestMSKIAMRefusalsAreReported(t *testing.T) {
	t.Setenv("AWS_REGION", testRegion)
	wrongSecret := key1
	wrongSecret.SecretAccessKey = "not-the-secret-the-client-has"
	cases := []struct {
		name   string
		broker func(*kafkatest.MSKIAM)
		reason string
	}{
		{"expired signature", func(m *kafkatest.MSKIAM) {
			m.AddKey(key1)
			m.Now = func() time.Time { return time.Now().Add(20 * time.Minute) }
		}, "signature expired"},
		{"wrong signature", func(m *kafkatest.MSKIAM) { m.AddKey(wrongSecret) }, "the signature does not match for " + key1.AccessKeyID},
		{"unknown key", func(m *kafkatest.MSKIAM) { m.AddKey(key2) }, "the access key " + key1.AccessKeyID + " is unknown"},
		{"other region", func(m *kafkatest.MSKIAM) { m.AddKey(key1); m.Region = "us-east-1" }, "signed for region eu-west-1, the cluster is in us-east-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cluster := newSASLCluster(t)
			msk := &kafkatest.MSKIAM{Host: "127.0.0.1", Region: testRegion}
			tc.broker(msk)
			broker := kafkatest.NewSASLBroker(cluster.Cluster, "AWS_MSK_IAM", msk.Check)
			log, logs := observed()
			cl, err := kafka.NewClient(cluster.config(kafka.SASLConfig{Mechanism: "aws_msk_iam", AWS: writeKey(t, t.TempDir(), key1)}), log, nil, kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			err = cl.Ping(ctxT(t))
			if err == nil {
				t.Fatal("ping succeeded")
			}
			if !errors.Is(err, kerr.SaslAuthenticationFailed) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %q, want SASL_AUTHENTICATION_FAILED with %q", err, tc.reason)
			}
			if auths := broker.Auths(); len(auths) == 0 || auths[0].OK {
				t.Fatalf("authentications %+v", auths)
			}
			noSecrets(t, "error", []string{err.Error()}, key1.SecretAccessKey, key1.SessionToken)
			noSecrets(t, "log", logTexts(logs), key1.SecretAccessKey, key1.SessionToken)
		})
	}
}

// keepProducing produces to topic until stop, one record at a time, so
// that the client's connections stay busy across session expiries.
func keepProducing(t *testing.T, cl *kgo.Client, topic string) (stop func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			if cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr() == nil {
				n.Add(1)
			}
		}
	})
	return func() int {
		cancel()
		wg.Wait()
		return int(n.Load())
	}
}

// reauthenticated reports whether some connection authenticated more than
// once: more successful authentications than connections accepted.
func reauthenticated(auths []kafkatest.Auth, conns int64) bool {
	ok := 0
	for _, a := range auths {
		if a.OK {
			ok++
		}
	}
	return int64(ok) > conns
}

func TestMSKIAMRenewsCredentialsOnALongLivedConnection(t *testing.T) {
	t.Setenv("AWS_REGION", testRegion)
	cluster := newSASLCluster(t)
	// Sessions last as long as MSK grants for short-lived credentials;
	// the client must sign in again on the same connection before then.
	msk := &kafkatest.MSKIAM{Host: "127.0.0.1", Region: testRegion, Lifetime: 1500 * time.Millisecond}
	msk.AddKey(key1)
	msk.AddKey(key2)
	broker := kafkatest.NewSASLBroker(cluster.Cluster, "AWS_MSK_IAM", msk.Check)
	dir := t.TempDir()
	cl := newClient(t, cluster.config(kafka.SASLConfig{Mechanism: "aws_msk_iam", AWS: writeKey(t, dir, key1)}))
	if err := kafka.EnsureTopics(ctxT(t), cl, kafka.TopicSpec{Name: "renew", Partitions: 1, ReplicationFactor: -1}); err != nil {
		t.Fatal(err)
	}
	stop := keepProducing(t, cl, "renew")
	broker.WaitFor(t, "re-authentication on a connection", 20*time.Second, func(a []kafkatest.Auth) bool {
		return reauthenticated(a, cluster.conns.Load())
	})
	// The key files are rotated; the next authentication signs with the
	// new key (read again within 10 seconds).
	writeKey(t, dir, key2)
	connsBefore := cluster.conns.Load()
	broker.WaitFor(t, "an authentication with the rotated key", 30*time.Second, func(auths []kafkatest.Auth) bool {
		for _, a := range auths {
			if a.OK && strings.HasPrefix(a.Payload["x-amz-credential"], key2.AccessKeyID+"/") {
				return true
			}
		}
		return false
	})
	produced := stop()
	for _, a := range broker.Auths() {
		if !a.OK {
			t.Errorf("refused: %s", a.Reason)
		}
	}
	if conns := cluster.conns.Load(); conns != connsBefore {
		t.Errorf("the client opened %d new connections to renew its credentials; want it to re-authenticate those it has", conns-connsBefore)
	}
	t.Logf("%d records, %d authentications over %d connections", produced, len(broker.Auths()), cluster.conns.Load())
}

// tokens is a set of OAUTHBEARER tokens the broker accepts.
type tokens struct {
	mu       sync.Mutex
	valid    map[string]bool
	lifetime time.Duration
}

func (v *tokens) add(tok string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.valid == nil {
		v.valid = map[string]bool{}
	}
	v.valid[tok] = true
}

func (v *tokens) check(tok string) (time.Duration, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.valid[tok] {
		return 0, "invalid or expired token"
	}
	return v.lifetime, ""
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func TestOAuthBearerTokenFileIsReadAtEachAuthentication(t *testing.T) {
	cluster := newSASLCluster(t)
	valid := &tokens{lifetime: 1500 * time.Millisecond}
	valid.add("token-one")
	valid.add("token-two")
	broker := kafkatest.NewSASLBroker(cluster.Cluster, "OAUTHBEARER", kafkatest.OAuthBearer{Valid: valid.check}.Check)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "token-one\n")
	cfg := cluster.config(kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{
		Token: config.SecretFile(tokenFile), Extensions: map[string]string{"logicalCluster": "lkc-test"},
	}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, cfg)
	if err := kafka.EnsureTopics(ctxT(t), cl, kafka.TopicSpec{Name: "oauth", Partitions: 1, ReplicationFactor: -1}); err != nil {
		t.Fatal(err)
	}
	if err := produce(t, cl, "oauth"); err != nil {
		t.Fatal(err)
	}
	first := broker.Auths()[0]
	if !first.OK || first.Token != "token-one" || first.Extensions["logicalCluster"] != "lkc-test" {
		t.Fatalf("first authentication %+v", first)
	}
	stop := keepProducing(t, cl, "oauth")
	defer stop()
	// The agent rewrites the file; the next authentication (a
	// re-authentication, as sessions end with their token) sends the new
	// token.
	writeFile(t, tokenFile, "token-two\n")
	connsBefore := cluster.conns.Load()
	broker.WaitFor(t, "an authentication with the new token", 20*time.Second, func(auths []kafkatest.Auth) bool {
		for _, a := range auths {
			if a.OK && a.Token == "token-two" {
				return true
			}
		}
		return false
	})
	stop()
	if conns := cluster.conns.Load(); conns != connsBefore {
		t.Errorf("%d new connections; want the new token sent by re-authentication", conns-connsBefore)
	}

	// A token the broker refuses is reported with the broker's reason.
	writeFile(t, tokenFile, "token-revoked\n")
	bad, err := kafka.NewClient(cfg, zap.NewNop(), nil, kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(ctxT(t)); !errors.Is(err, kerr.SaslAuthenticationFailed) || !strings.Contains(err.Error(), "invalid or expired token") {
		t.Fatalf("ping with a refused token: %v", err)
	}
}

// tokenEndpoint is an OAuth 2 token endpoint for the client-credentials
// grant of one client, issuing numbered tokens that expire after ttl.
type tokenEndpoint struct {
	*httptest.Server
	clientID, secret string
	ttl              time.Duration
	valid            *tokens

	mu     sync.Mutex
	issued int
	scopes []string
}

func newTokenEndpoint(t *testing.T, clientID, secret string, ttl time.Duration, valid *tokens) *tokenEndpoint {
	e := &tokenEndpoint{clientID: clientID, secret: secret, ttl: ttl, valid: valid}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *tokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	if id != e.clientID || secret != e.secret {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"client authentication failed"}`)
		return
	}
	e.mu.Lock()
	e.issued++
	tok := fmt.Sprintf("cc-token-%d", e.issued)
	e.scopes = append(e.scopes, r.PostForm.Get("scope"))
	e.mu.Unlock()
	e.valid.add(tok)
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":%d}`, tok, int(e.ttl.Seconds()))
}

func (e *tokenEndpoint) calls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.issued
}

func TestOAuthBearerClientCredentialsRenewsBeforeExpiry(t *testing.T) {
	const secret = "client-secret-Kq93/x+y="
	cluster := newSASLCluster(t)
	valid := &tokens{lifetime: 1500 * time.Millisecond}
	broker := kafkatest.NewSASLBroker(cluster.Cluster, "OAUTHBEARER", kafkatest.OAuthBearer{Valid: valid.check}.Check)
	// Tokens last two seconds past the client's refresh margin: each is
	// used for a few sessions, then replaced before it expires.
	endpoint := newTokenEndpoint(t, "auditstream-ingest", secret, kafka.OAuthRefreshEarly+2*time.Second, valid)
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	writeFile(t, secretFile, secret+"\n")
	cfg := cluster.config(kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{
		TokenURL: endpoint.URL + "/oauth2/v2.0/token", ClientID: "auditstream-ingest", ClientSecret: config.SecretFile(secretFile),
		Scopes: []string{"https://ns.servicebus.windows.net/.default"},
	}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log, logs := observed()
	cl, err := kafka.NewClient(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctxT(t), cl, kafka.TopicSpec{Name: "cc", Partitions: 1, ReplicationFactor: -1}); err != nil {
		t.Fatal(err)
	}
	stop := keepProducing(t, cl, "cc")
	auths := broker.WaitFor(t, "an authentication with a renewed token", 20*time.Second, func(auths []kafkatest.Auth) bool {
		for _, a := range auths {
			if a.OK && a.Token == "cc-token-2" {
				return true
			}
		}
		return false
	})
	stop()
	withFirst := 0
	for _, a := range auths {
		if !a.OK {
			t.Errorf("refused: %s", a.Reason)
		}
		if a.Token == "cc-token-1" {
			withFirst++
		}
	}
	// The token is kept while fresh, not fetched for every session.
	if withFirst < 2 || endpoint.calls() >= len(auths) {
		t.Errorf("%d authentications, %d with the first token, %d token requests", len(auths), withFirst, endpoint.calls())
	}
	if endpoint.scopes[0] != "https://ns.servicebus.windows.net/.default" {
		t.Errorf("scope %q", endpoint.scopes[0])
	}
	noSecrets(t, "log", logTexts(logs), secret)

	// A wrong client secret: the failure names the endpoint and client,
	// never the secret.
	writeFile(t, secretFile, "wrong-secret-Zr55\n")
	bad, err := kafka.NewClient(cfg, zap.NewNop(), nil, kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	err = bad.Ping(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "client auditstream-ingest") {
		t.Fatalf("ping with a wrong client secret: %v", err)
	}
	noSecrets(t, "error", []string{err.Error()}, secret, "wrong-secret-Zr55")
}
