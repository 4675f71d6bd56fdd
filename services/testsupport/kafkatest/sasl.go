package kafkatest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TLS makes a CA and a certificate for 127.0.0.1 signed by it, both valid
// for the test only. It returns the kfake option that serves TLS with the
// certificate and the CA's PEM file, for a client's tls.ca_file.
func TLS(t testing.TB) (opt kfake.Opt, caFile string) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatalf("test certificates: %v", err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kafkatest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	ca, err := x509.ParseCertificate(caDER)
	must(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	must(err)
	caFile = filepath.Join(t.TempDir(), "kafka-ca.pem")
	must(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	cert := tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
	return kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), caFile
}

// CountConnections is a kfake option that counts the connections the
// brokers accept into n.
func CountConnections(n *atomic.Int64) kfake.Opt {
	return kfake.ListenFn(func(network, addr string) (net.Listener, error) {
		l, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		return countingListener{l, n}, nil
	})
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// Auth is one SASL authentication as the broker saw it.
type Auth struct {
	Mechanism string
	// Payload is AWS_MSK_IAM's signed request, its keys as sent.
	Payload map[string]string
	// Token is OAUTHBEARER's bearer token and Extensions its extensions.
	Token      string
	Extensions map[string]string
	// OK is whether the broker accepted; Reason is why not.
	OK     bool
	Reason string
}

// SASLBroker makes the cluster's brokers speak one SASL mechanism the
// in-process broker does not (AWS_MSK_IAM, OAUTHBEARER): it intercepts
// SaslHandshake and SaslAuthenticate, has Check decide each
// authentication, and records it. A session accepted with a lifetime
// ends then, as on MSK (the credentials' expiry) or with an expiring
// token, so clients re-authenticate on their connections (KIP-368).
//
// The broker does not refuse requests on a connection that skipped
// authentication (kfake's own SASL gate knows only its mechanisms); tests
// check that clients authenticate by what Auths records.
type SASLBroker struct {
	mechanism string
	check     func(payload []byte) (a Auth, lifetime time.Duration)

	mu      sync.Mutex
	auths   []Auth
	changed chan struct{}
}

// NewSASLBroker intercepts the cluster's authentication for mechanism
// (as sent in the handshake, e.g. AWS_MSK_IAM); check decides each
// authentication from the client's bytes.
func NewSASLBroker(c *Cluster, mechanism string, check func(payload []byte) (a Auth, lifetime time.Duration)) *SASLBroker {
	b := &SASLBroker{mechanism: mechanism, check: check, changed: make(chan struct{})}
	c.ControlKey(int16(kmsg.SASLHandshake), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.SASLHandshakeRequest)
		resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = []string{mechanism}
		if req.Mechanism != mechanism {
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		}
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.SASLAuthenticateRequest)
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		a, lifetime := b.check(req.SASLAuthBytes)
		a.Mechanism = mechanism
		if a.OK {
			resp.SessionLifetimeMillis = lifetime.Milliseconds()
			if mechanism == "AWS_MSK_IAM" {
				// MSK answers with a JSON document; clients want it
				// non-empty.
				resp.SASLAuthBytes = []byte(`{"version":"2020_10_22","request-id":"` + strconv.Itoa(b.count()) + `"}`)
			}
		} else {
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "[" + strconv.Itoa(b.count()) + "]: Access denied: " + a.Reason
			resp.ErrorMessage = &msg
		}
		b.record(a)
		return resp, nil, true
	})
	return b
}

func (b *SASLBroker) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.auths)
}

func (b *SASLBroker) record(a Auth) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.auths = append(b.auths, a)
	close(b.changed)
	b.changed = make(chan struct{})
}

// Auths returns every authentication so far, in order.
func (b *SASLBroker) Auths() []Auth {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Auth(nil), b.auths...)
}

// WaitFor waits until cond holds for the authentications so far, failing
// the test after timeout.
func (b *SASLBroker) WaitFor(t testing.TB, what string, timeout time.Duration, cond func([]Auth) bool) []Auth {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		auths, changed := append([]Auth(nil), b.auths...), b.changed
		b.mu.Unlock()
		if cond(auths) {
			return auths
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: not within %v; %d authentications: %+v", what, timeout, len(auths), summarize(auths))
		}
	}
}

// summarize shows the last few authentications.
func summarize(auths []Auth) []string {
	var out []string
	for _, a := range auths[max(0, len(auths)-5):] {
		out = append(out, fmt.Sprintf("ok=%v credential=%s token=%s reason=%q", a.OK, a.Payload["x-amz-credential"], a.Token, a.Reason))
	}
	return out
}

// AWSKey is an access key the MSK-IAM broker knows.
type AWSKey struct{ AccessKeyID, SecretAccessKey, SessionToken string }

// MSKIAM checks AWS_MSK_IAM authentications the way MSK does: the payload
// is a SigV4 presigned GET / of action kafka-cluster:Connect for the
// broker's host, which the broker signs again with the secret of the
// access key and compares.
type MSKIAM struct {
	Host   string // the broker's host as the client dials it
	Region string
	// Now is the broker's clock (default time.Now).
	Now func() time.Time
	// Lifetime of an accepted session (0: none).
	Lifetime time.Duration

	mu   sync.Mutex
	keys map[string]AWSKey
}

// AddKey makes the broker know k.
func (m *MSKIAM) AddKey(k AWSKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string]AWSKey{}
	}
	m.keys[k.AccessKeyID] = k
}

// Check decides one authentication; it is NewSASLBroker's check.
func (m *MSKIAM) Check(payload []byte) (Auth, time.Duration) {
	a := Auth{}
	if err := json.Unmarshal(payload, &a.Payload); err != nil {
		a.Reason = "payload is not a JSON object of strings"
		return a, 0
	}
	if err := m.verify(a.Payload); err != nil {
		a.Reason = err.Error()
		return a, 0
	}
	a.OK = true
	return a, m.Lifetime
}

// the query parameters signed, by their names in the payload.
var mskParams = map[string]string{
	"action": "Action", "x-amz-algorithm": "X-Amz-Algorithm", "x-amz-credential": "X-Amz-Credential",
	"x-amz-date": "X-Amz-Date", "x-amz-expires": "X-Amz-Expires", "x-amz-signedheaders": "X-Amz-SignedHeaders",
	"x-amz-security-token": "X-Amz-Security-Token",
}

func (m *MSKIAM) verify(p map[string]string) error {
	for _, k := range []string{"version", "host", "user-agent", "action", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires", "x-amz-signedheaders", "x-amz-signature"} {
		if p[k] == "" {
			return fmt.Errorf("%s is missing", k)
		}
	}
	switch {
	case p["version"] != "2020_10_22":
		return fmt.Errorf("version %q is not 2020_10_22", p["version"])
	case p["action"] != "kafka-cluster:Connect":
		return fmt.Errorf("action %q is not kafka-cluster:Connect", p["action"])
	case p["x-amz-algorithm"] != "AWS4-HMAC-SHA256":
		return fmt.Errorf("algorithm %q", p["x-amz-algorithm"])
	case p["x-amz-signedheaders"] != "host":
		return fmt.Errorf("signed headers %q are not host", p["x-amz-signedheaders"])
	case p["host"] != m.Host:
		return fmt.Errorf("host %q is not this broker's %q", p["host"], m.Host)
	}
	cred := strings.Split(p["x-amz-credential"], "/")
	if len(cred) != 5 || cred[3] != "kafka-cluster" || cred[4] != "aws4_request" {
		return fmt.Errorf("credential scope %q is not <key>/<date>/<region>/kafka-cluster/aws4_request", p["x-amz-credential"])
	}
	keyID, date, region := cred[0], cred[1], cred[2]
	if region != m.Region {
		return fmt.Errorf("signed for region %s, the cluster is in %s", region, m.Region)
	}
	at, err := time.Parse("20060102T150405Z", p["x-amz-date"])
	if err != nil || !strings.HasPrefix(p["x-amz-date"], date) {
		return fmt.Errorf("x-amz-date %q does not match the scope's date %s", p["x-amz-date"], date)
	}
	expires, err := strconv.Atoi(p["x-amz-expires"])
	if err != nil || expires < 1 || expires > 900 {
		return fmt.Errorf("x-amz-expires %q is not 1 to 900 seconds", p["x-amz-expires"])
	}
	now := time.Now()
	if m.Now != nil {
		now = m.Now()
	}
	if now.After(at.Add(time.Duration(expires) * time.Second)) {
		return fmt.Errorf("signature expired: signed at %s for %ds, now %s", at.Format(time.RFC3339), expires, now.UTC().Format(time.RFC3339))
	}
	if at.After(now.Add(5 * time.Minute)) {
		return fmt.Errorf("signature not yet valid: signed at %s", at.Format(time.RFC3339))
	}
	m.mu.Lock()
	key, ok := m.keys[keyID]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("the access key %s is unknown", keyID)
	}
	if key.SessionToken != p["x-amz-security-token"] {
		return fmt.Errorf("the security token does not belong to %s", keyID)
	}
	// The canonical request of a presigned GET /: the query parameters as
	// signed (their canonical names, sorted, SigV4-encoded), the host
	// header, and the hash of an empty body.
	var names []string
	for lower, name := range mskParams {
		if _, ok := p[lower]; ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var query []string
	for _, name := range names {
		query = append(query, sigv4Escape(name)+"="+sigv4Escape(p[strings.ToLower(name)]))
	}
	empty := sha256.Sum256(nil)
	canonical := "GET\n/\n" + strings.Join(query, "&") + "\nhost:" + p["host"] + "\n\nhost\n" + hex.EncodeToString(empty[:])
	canonHash := sha256.Sum256([]byte(canonical))
	scope := strings.Join(cred[1:], "/")
	toSign := "AWS4-HMAC-SHA256\n" + p["x-amz-date"] + "\n" + scope + "\n" + hex.EncodeToString(canonHash[:])
	k := hmacSHA256([]byte("AWS4"+key.SecretAccessKey), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, "kafka-cluster")
	k = hmacSHA256(k, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(p["x-amz-signature"])) {
		return fmt.Errorf("the signature does not match for %s", keyID)
	}
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// sigv4Escape percent-encodes everything but A-Z a-z 0-9 - _ . ~, as
// SigV4's canonical query string wants.
func sigv4Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// OAuthBearer checks OAUTHBEARER authentications (RFC 7628's client
// initial response) with Valid, which returns how long the token's
// session lasts or why it is refused.
type OAuthBearer struct {
	Valid func(token string) (lifetime time.Duration, reason string)
}

// Check decides one authentication; it is NewSASLBroker's check.
func (o OAuthBearer) Check(payload []byte) (Auth, time.Duration) {
	a := Auth{}
	// n,[a=<authzid>],\x01auth=Bearer <token>\x01[key=value\x01]*\x01
	gs2, rest, ok := bytes.Cut(payload, []byte{1})
	if !ok || !bytes.HasPrefix(gs2, []byte("n,")) || !bytes.HasSuffix(rest, []byte{1, 1}) {
		a.Reason = "not an OAUTHBEARER client initial response"
		return a, 0
	}
	for kv := range strings.SplitSeq(string(rest[:len(rest)-2]), "\x01") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "auth" {
			tok, ok := strings.CutPrefix(v, "Bearer ")
			if !ok {
				a.Reason = "auth is not a Bearer token"
				return a, 0
			}
			a.Token = tok
			continue
		}
		if a.Extensions == nil {
			a.Extensions = map[string]string{}
		}
		a.Extensions[k] = v
	}
	if a.Token == "" {
		a.Reason = "no token"
		return a, 0
	}
	lifetime, reason := o.Valid(a.Token)
	if reason != "" {
		a.Reason = reason
		return a, 0
	}
	a.OK = true
	return a, lifetime
}
