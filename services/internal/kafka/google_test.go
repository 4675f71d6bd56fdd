package kafka_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

const testServiceAccount = "auditstream@audit-project.iam.gserviceaccount.com"

// googleTokenEndpoint is Google's OAuth 2 token endpoint for one service
// account key: it checks the signed JWT assertion (RS256, the account as
// issuer, the cloud-platform scope) and issues access tokens.
type googleTokenEndpoint struct {
	*httptest.Server
	key    *rsa.PrivateKey
	mu     sync.Mutex
	issued []string
}

func newGoogleTokenEndpoint(t *testing.T) *googleTokenEndpoint {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e := &googleTokenEndpoint{key: key}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *googleTokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	var claims struct{ Iss, Scope string }
	body, err := base64.RawURLEncoding.DecodeString(parts[min(1, len(parts)-1)])
	sig, serr := base64.RawURLEncoding.DecodeString(parts[len(parts)-1])
	digest := sha256.Sum256([]byte(strings.Join(parts[:len(parts)-1], ".")))
	if len(parts) != 3 || err != nil || serr != nil || json.Unmarshal(body, &claims) != nil ||
		rsa.VerifyPKCS1v15(&e.key.PublicKey, crypto.SHA256, digest[:], sig) != nil ||
		claims.Iss != testServiceAccount || !strings.Contains(claims.Scope, "https://www.googleapis.com/auth/cloud-platform") {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant"}`)
		return
	}
	e.mu.Lock()
	tok := fmt.Sprintf("ya29.test-access-token-%d", len(e.issued)+1)
	e.issued = append(e.issued, tok)
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
}

// keyFile writes the service account's key file, pointing at the endpoint.
func (e *googleTokenEndpoint) keyFile(t *testing.T) string {
	der, err := x509.MarshalPKCS8PrivateKey(e.key)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "audit-project", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": testServiceAccount, "client_id": "1", "token_uri": e.URL + "/token",
	})
	f := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// googleKafkaToken checks a token as Managed Kafka reads it and returns
// the access token inside.
func googleKafkaToken(tok string) (access string, reason string) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", "not three dot-separated parts"
	}
	var dec [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return "", fmt.Sprintf("part %d is not base64url", i)
		}
		dec[i] = b
	}
	var header map[string]string
	var claims struct {
		Exp, Iat        int64
		Iss, Scope, Sub string
	}
	if json.Unmarshal(dec[0], &header) != nil || header["alg"] != "GOOG_OAUTH2_TOKEN" || header["typ"] != "JWT" {
		return "", fmt.Sprintf("header %s", dec[0])
	}
	now := time.Now().Unix()
	if json.Unmarshal(dec[1], &claims) != nil || claims.Iss != "Google" || claims.Scope != "kafka" || claims.Sub != testServiceAccount ||
		claims.Exp < now+3000 || claims.Iat > now+5 || claims.Iat < now-60 {
		return "", fmt.Sprintf("claims %s", dec[1])
	}
	return string(dec[2]), ""
}

func TestOAuthBearerGoogleTokenFromApplicationDefaultCredentials(t *testing.T) {
	endpoint := newGoogleTokenEndpoint(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", endpoint.keyFile(t))
	cluster := newSASLCluster(t)
	broker := kafkatest.NewSASLBroker(cluster.Cluster, "OAUTHBEARER", kafkatest.OAuthBearer{Valid: func(tok string) (time.Duration, string) {
		access, reason := googleKafkaToken(tok)
		if reason != "" {
			return 0, reason
		}
		endpoint.mu.Lock()
		defer endpoint.mu.Unlock()
		for _, issued := range endpoint.issued {
			if access == issued {
				return 1500 * time.Millisecond, ""
			}
		}
		return 0, "unknown access token"
	}}.Check)
	cfg := cluster.config(kafka.SASLConfig{Mechanism: "oauthbearer", OAuth: kafka.OAuthConfig{Google: true}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, cfg)
	if err := kafka.EnsureTopics(ctxT(t), cl, kafka.TopicSpec{Name: "gmk", Partitions: 1, ReplicationFactor: -1}); err != nil {
		t.Fatal(err)
	}
	stop := keepProducing(t, cl, "gmk")
	auths := broker.WaitFor(t, "re-authentication", 20*time.Second, func(a []kafkatest.Auth) bool {
		return reauthenticated(a, cluster.conns.Load())
	})
	stop()
	for _, a := range auths {
		if !a.OK {
			t.Fatalf("refused: %s", a.Reason)
		}
	}
	// The access token is kept while fresh, not fetched per session.
	if len(endpoint.issued) != 1 {
		t.Errorf("%d access tokens for %d authentications", len(endpoint.issued), len(auths))
	}
}
