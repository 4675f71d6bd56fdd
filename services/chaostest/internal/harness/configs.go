package harness

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Settings the chaos run gives every consumer: short timeouts so a killed
// replica's partitions move within seconds and parked events come back
// within the run, small in-flight caps so the duplicate bound is tight.
const (
	commitInterval   = 200 * time.Millisecond
	maxInflightBytes = 512 << 10
	sessionTimeout   = 6 * time.Second
	rebalanceTimeout = 10 * time.Second
	archiveWindow    = time.Minute
	archiveGrace     = 5 * time.Second
)

// tenant is one account and its destinations.
type tenant struct {
	account string
	// datadog is the account's Datadog connection and its API key; empty
	// when the account has no Datadog route.
	datadog, ddKey string
	// eventbridge is its EventBridge connection, writing to the bus of the
	// same name; empty when it has none.
	eventbridge string
	// otlp is its OTLP connection, sending as tenant otlpTenant
	// (X-Scope-OrgID) with the bearer token otlpToken; empty when it has
	// none. otlpJSON and otlpGzip are its encoding and compression.
	otlp, otlpTenant, otlpToken string
	otlpJSON, otlpGzip          bool
}

// tenants gives each of n accounts its own connections: three in four have
// Datadog, three in four EventBridge, three in four OTLP (not the same
// ones: each account has two or three), and every account is archived, so
// the checker sees accounts that must not reach a destination as well as
// those that must. OTLP connections take turns at JSON and protobuf, with
// and without gzip.
func tenants(n int) []tenant {
	out := make([]tenant, n)
	for i := range out {
		acc := fmt.Sprintf("acc-chaos-%02d", i)
		t := tenant{account: acc}
		if i%4 != 3 {
			t.datadog = "dd-" + acc
			t.ddKey = "ddkey" + randomHex(16)
		}
		if i%4 != 2 {
			t.eventbridge = "eb-" + acc
		}
		if i%4 != 1 {
			t.otlp = "otlp-" + acc
			t.otlpTenant = "tenant-" + acc
			t.otlpToken = "otlptoken" + randomHex(16)
			t.otlpJSON, t.otlpGzip = i%2 == 1, i%3 != 2
		}
		out[i] = t
	}
	return out
}

// awsKeyID and awsSecret sign the EventBridge calls; the secret must never
// appear in a log.
var (
	awsKeyID  = "AKIACHAOS" + strings.ToUpper(randomHex(6))
	awsSecret = "awssecret" + randomHex(16)
)

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// files are the configuration files of a run.
type files struct {
	destinations string
	ingest       string
	datadog      string
	eventbridge  string
	otlp         string
	archiver     string
	archiveDir   string
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o600)
}

// writeConfigs writes the services' configs, the one destinations file
// every consumer reads, and the secrets it references.
func writeConfigs(dir, brokerAddr, ddURL, ebURL, otlpURL string, ts []tenant) (files, error) {
	f := files{
		destinations: filepath.Join(dir, "config", "destinations.yaml"),
		ingest:       filepath.Join(dir, "config", "ingest.yaml"),
		datadog:      filepath.Join(dir, "config", "datadog-forwarder.yaml"),
		eventbridge:  filepath.Join(dir, "config", "eventbridge-forwarder.yaml"),
		otlp:         filepath.Join(dir, "config", "otlp-forwarder.yaml"),
		archiver:     filepath.Join(dir, "config", "archiver.yaml"),
		archiveDir:   filepath.Join(dir, "archive"),
	}
	secrets := filepath.Join(dir, "secrets")
	var d strings.Builder
	d.WriteString("connections:\n")
	for _, t := range ts {
		if t.datadog != "" {
			keyFile := filepath.Join(secrets, t.datadog+".key")
			if err := writeFile(keyFile, t.ddKey+"\n"); err != nil {
				return f, err
			}
			fmt.Fprintf(&d, "  %s:\n    type: datadog\n    settings:\n      base_url: %s\n      api_key: {file: %s}\n      tag_prefix: scalr\n      timeout: 2s\n",
				t.datadog, ddURL, keyFile)
		}
		if t.eventbridge != "" {
			fmt.Fprintf(&d, "  %s:\n    type: eventbridge\n    settings:\n      region: eu-west-1\n      event_bus: %s\n      endpoint: %s\n      prefix: scalr\n      timeout: 2s\n      credentials:\n        access_key_id: {file: %s}\n        secret_access_key: {file: %s}\n",
				t.eventbridge, t.eventbridge, ebURL, filepath.Join(secrets, "aws-key-id"), filepath.Join(secrets, "aws-secret"))
		}
		if t.otlp != "" {
			tokenFile := filepath.Join(secrets, t.otlp+".token")
			if err := writeFile(tokenFile, t.otlpToken+"\n"); err != nil {
				return f, err
			}
			encoding, compression := "protobuf", "none"
			if t.otlpJSON {
				encoding = "json"
			}
			if t.otlpGzip {
				compression = "gzip"
			}
			fmt.Fprintf(&d, "  %s:\n    type: otlp\n    settings:\n      endpoint: %s\n      allow_http: true\n      tenant_id: %s\n      auth:\n        token: {file: %s}\n      encoding: %s\n      compression: %s\n      timeout: 2s\n",
				t.otlp, otlpURL, t.otlpTenant, tokenFile, encoding, compression)
		}
	}
	fmt.Fprintf(&d, "  archive:\n    type: storage\n    settings:\n      kind: local\n      local: {dir: %s}\n", f.archiveDir)
	d.WriteString("routes:\n")
	for _, t := range ts {
		var conns []string
		for _, c := range []string{t.datadog, t.eventbridge, t.otlp} {
			if c != "" {
				conns = append(conns, c)
			}
		}
		if len(conns) > 0 {
			fmt.Fprintf(&d, "  - account: %s\n    connections: [%s]\n", t.account, strings.Join(conns, ", "))
		}
	}
	d.WriteString("  - account: \"*\"\n    connections: [archive]\n")
	if err := writeFile(f.destinations, d.String()); err != nil {
		return f, err
	}
	if err := writeFile(filepath.Join(secrets, "aws-key-id"), awsKeyID+"\n"); err != nil {
		return f, err
	}
	if err := writeFile(filepath.Join(secrets, "aws-secret"), awsSecret+"\n"); err != nil {
		return f, err
	}
	signingKey := filepath.Join(secrets, "archive-signing-key.pem")
	if err := writeSigningKey(signingKey); err != nil {
		return f, err
	}

	common := fmt.Sprintf("log: {level: info, format: json}\nhttp: {addr: \"127.0.0.1:0\", shutdown_timeout: 10s}\nkafka:\n  brokers: [%s]\n", brokerAddr)
	if err := writeFile(f.ingest, common+"ingest:\n  produce_timeout: 5s\n  auth: {disabled: true}\n"); err != nil {
		return f, err
	}
	delivery := fmt.Sprintf(`delivery:
  batch: {count: 200, bytes: 1MB, period: 100ms, idle: 20ms}
  backoff: {initial: 50ms, max: 1s, multiplier: 2, jitter: 0.2}
  retry_budget: 4s
  park_delay: 2s
  unhealthy_probe: 2s
  max_inflight_bytes: %d
  max_connection_bytes: %d
  backlog_max_wait: 3s
  commit_interval: %s
  revoke_timeout: 5s
  send_timeout: 5s
  session_timeout: %s
  rebalance_timeout: %s
destinations: {file: %s, poll_interval: 1s}
`, maxInflightBytes, maxInflightBytes/2, commitInterval, sessionTimeout, rebalanceTimeout, f.destinations)
	if err := writeFile(f.datadog, common+delivery); err != nil {
		return f, err
	}
	if err := writeFile(f.eventbridge, common+delivery); err != nil {
		return f, err
	}
	if err := writeFile(f.otlp, common+delivery); err != nil {
		return f, err
	}
	archiver := fmt.Sprintf(`archive:
  window: %s
  grace: %s
  late_flush_after: 10s
  commit_interval: 500ms
  session_timeout: %s
  rebalance_timeout: %s
  storage_retry_for: 1m
  signing_key: {file: %s}
destinations: {file: %s, poll_interval: 1s}
`, archiveWindow, archiveGrace, sessionTimeout, rebalanceTimeout, signingKey, f.destinations)
	// spool_dir comes from each replica's environment.
	return f, writeFile(f.archiver, common+archiver)
}

func writeSigningKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	return writeFile(path, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
}
