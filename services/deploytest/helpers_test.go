package deploytest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/sink/eventbridge"
	"github.com/auditstream/auditstream/services/internal/sink/otlp"
	"go.yaml.in/yaml/v3"
)

// component is one auditstream service as the deployment artefacts know it.
type component struct {
	Binary    string // services/<Binary>, the image's SERVICE
	ValuesKey string // the chart's values block
	Port      int    // default HTTP port (health, readiness, metrics)
	Consumer  bool   // reads audit.events in a consumer group
	Group     string // its consumer group
	// Forwarder is the forwarding.Spec name ("datadog") for forwarders.
	Forwarder string
	// API serves an API to clients on its port (not only health and
	// metrics): its Service port is named http.
	API bool
	// Keyring: it seals or opens the destinations' secrets, so it mounts
	// the destinations keyring.
	Keyring bool
}

var components = []component{
	{Binary: "ingest", ValuesKey: "ingest", Port: 8080, API: true},
	{Binary: "datadog-forwarder", ValuesKey: "datadogForwarder", Port: 8081, Consumer: true, Group: "auditstream-datadog", Forwarder: "datadog", Keyring: true},
	{Binary: "eventbridge-forwarder", ValuesKey: "eventbridgeForwarder", Port: 8082, Consumer: true, Group: "auditstream-eventbridge", Forwarder: "eventbridge", Keyring: true},
	{Binary: "otlp-forwarder", ValuesKey: "otlpForwarder", Port: 8085, Consumer: true, Group: "auditstream-otlp", Forwarder: "otlp", Keyring: true},
	{Binary: "archiver", ValuesKey: "archiver", Port: 8083, Consumer: true, Group: "auditstream-archiver", Keyring: true},
	{Binary: "destinations-api", ValuesKey: "destinationsApi", Port: 8084, API: true, Keyring: true},
}

func componentByBinary(t *testing.T, binary string) component {
	t.Helper()
	for _, c := range components {
		if c.Binary == binary {
			return c
		}
	}
	t.Fatalf("no component %q", binary)
	return component{}
}

// topicSpec is a topic the services use, with the settings their bootstrap
// would create it with.
type topicSpec struct {
	Name       string
	Partitions int32
	Retention  time.Duration
	// Compacted topics (cleanup.policy=compact) have no retention.
	Compacted bool
}

// serviceTopics are the topics the services use, from the services' own
// defaults: events, dead letters, each forwarder's retry topic and the
// compacted destinations topic.
func serviceTopics() []topicSpec {
	k := kafka.Default("x").Topics
	out := []topicSpec{
		{k.Events.Name, k.Events.Partitions, k.Events.Retention, false},
		{k.DeadLetter.Name, k.DeadLetter.Partitions, k.DeadLetter.Retention, false},
	}
	for _, c := range components {
		if c.Forwarder != "" {
			r := delivery.DefaultConfig(c.Forwarder).RetryTopic
			out = append(out, topicSpec{r.Name, r.Partitions, r.Retention, false})
		}
	}
	out = append(out, topicSpec{k.Destinations.Name, k.Destinations.Partitions, 0, k.Destinations.Compacted})
	return out
}

// statusTopicCreated reports whether script creates the status topic as the
// services' bootstrap would: its partitions, compact,delete and retention.
func statusTopicCreated(script string) (string, bool) {
	st := kafka.Default("x").Topics.Status
	want := []string{
		fmt.Sprintf("--topic %s --partitions %d", st.Name, st.Partitions),
		"--config cleanup.policy=compact,delete",
		fmt.Sprintf("retention.ms=%d", st.Retention.Milliseconds()),
	}
	for _, w := range want {
		if !strings.Contains(script, w) {
			return w, false
		}
	}
	return "", true
}

func TestComponentsMatchTheServices(t *testing.T) {
	for _, c := range components {
		if c.Forwarder != "" {
			if got := delivery.DefaultConfig(c.Forwarder).Group; got != c.Group {
				t.Errorf("%s: the service's default group is %q, the deployment expects %q", c.Binary, got, c.Group)
			}
		}
		if _, err := os.Stat(filepath.Join(repoRoot(t), "services", c.Binary, "main.go")); err != nil {
			t.Errorf("%s: %v", c.Binary, err)
		}
	}
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// repoRoot is the repository root (where go.work is).
func repoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := filepath.Abs("../..")
		if err != nil {
			rootErr = err
			return
		}
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err != nil {
			rootErr = fmt.Errorf("repository root not found from the test directory: %w", err)
			return
		}
		rootDir = dir
	})
	if rootErr != nil {
		t.Fatal(rootErr)
	}
	return rootDir
}

func readRepoFile(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testVersion is the version the test binaries are linked with.
const testVersion = "v0.0.0-deploytest"

// Service binaries are built once per test process, only when a test needs
// one (the Datadog forwarder never: it shares forwarding.Config, checked in
// process, and its module is expensive to build).
var (
	binMu   sync.Mutex
	binDir  string
	binErrs = map[string]error{}
)

func serviceBinary(t *testing.T, name string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "deploytest-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	path := filepath.Join(binDir, name)
	if err, done := binErrs[name]; done {
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	cmd := exec.Command("go", "build", "-ldflags", "-X "+versionVar+"="+testVersion, "-o", path, "./services/"+name)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("go build ./services/%s: %v\n%s", name, err, out)
	}
	binErrs[name] = err
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// serviceConfig is a service's config file as deployed, with what it needs
// around it.
type serviceConfig struct {
	Binary string
	// Config is the YAML config file.
	Config []byte
	// Env is the container's environment (literal values only).
	Env map[string]string
	// Destinations is the destinations file the config names, for
	// consumers.
	Destinations []byte
}

// check validates the config the way the service does at start: defaults,
// file, environment, Validate, plus the destinations file for consumers.
// Paths inside the container are replaced through environment overrides
// (destinations file, signing key) so the check runs on this machine.
func (sc serviceConfig) check(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, sc.Config)
	env := []string{}
	for k, v := range sc.Env {
		env = append(env, k+"="+v)
	}
	c := componentByBinary(t, sc.Binary)
	if c.Consumer {
		if sc.Destinations == nil {
			t.Fatalf("%s: no destinations file", sc.Binary)
		}
		destPath := filepath.Join(dir, "destinations.yaml")
		writeFile(t, destPath, sc.Destinations)
		env = append(env, "AUDITSTREAM_DESTINATIONS_FILE="+destPath)
	}
	sort.Strings(env)

	if c.Forwarder != "" {
		cfg := forwarding.DefaultConfig(forwarding.Spec{Name: c.Forwarder, Binary: c.Binary, DefaultAddr: fmt.Sprintf("127.0.0.1:%d", c.Port)})
		if err := config.Load(cfgPath, env, &cfg); err != nil {
			t.Errorf("%s config: %v", sc.Binary, err)
			return
		}
		if cfg.Delivery.Group != c.Group {
			t.Errorf("%s: delivery.group %q, want %q", sc.Binary, cfg.Delivery.Group, c.Group)
		}
		table, err := destinations.Load(cfg.Destinations.File)
		if err != nil {
			t.Errorf("%s destinations: %v", sc.Binary, err)
			return
		}
		// The EventBridge connections' settings are checked as the
		// forwarder checks them (the Datadog settings' package brings the
		// Datadog client, too heavy to build here; its forwarder's tests
		// cover them).
		if c.Forwarder == "eventbridge" {
			check := destinations.CheckType(destinations.TypeEventBridge, func(conn *destinations.Connection) error {
				_, err := destinations.DecodeSettings[eventbridge.Config](conn)
				return err
			})
			if err := check(table); err != nil {
				t.Errorf("%s destinations: %v", sc.Binary, err)
			}
		}
		if c.Forwarder == "otlp" {
			check := destinations.CheckType(destinations.TypeOTLP, func(conn *destinations.Connection) error {
				_, err := destinations.DecodeSettings[otlp.Config](conn)
				return err
			})
			if err := check(table); err != nil {
				t.Errorf("%s destinations: %v", sc.Binary, err)
			}
		}
		return
	}

	if c.Binary == "archiver" && bytes.Contains(sc.Config, []byte("signing_key:")) {
		env = append(env, "AUDITSTREAM_ARCHIVE_SIGNING_KEY="+testSigningKey(t))
	}
	cmd := exec.Command(serviceBinary(t, sc.Binary), "--check-config", "--config", cfgPath)
	cmd.Env = append(env, "PATH="+os.Getenv("PATH"), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s --check-config: %v\n%s", sc.Binary, err, out)
	}
}

func testSigningKey(t *testing.T) string {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// secretKeys are the config and destinations keys whose values are
// config.Secret: they must be {file: ...} or {env: ...} references in
// anything deployed, never a value.
var secretKeys = map[string]bool{
	"password": true, "api_key": true, "signing_key": true,
	"access_key_id": true, "secret_access_key": true, "session_token": true, "external_id": true,
	"account_key": true, "sas_token": true, "credentials": true, "token": true, "client_secret": true,
}

// inlineSecrets returns the paths of secret keys in a YAML document whose
// value is not a {file|env: ...} reference. "credentials" holds either a
// secret (GCS) or a block of secrets (S3, EventBridge): a block is walked.
func inlineSecrets(t *testing.T, doc []byte) []string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		t.Fatalf("parse YAML: %v", err)
	}
	var bad []string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key, val := n.Content[i].Value, n.Content[i+1]
				p := strings.TrimPrefix(path+"."+key, ".")
				if secretKeys[key] && !isSecretRef(val) && !(key == "credentials" && val.Kind == yaml.MappingNode) {
					if !(val.Kind == yaml.ScalarNode && (val.Tag == "!!null" || val.Value == "")) {
						bad = append(bad, p)
					}
					continue
				}
				walk(val, p)
			}
		}
	}
	walk(&root, "")
	return bad
}

// secretFiles returns the paths of the {file: ...} secret references in a
// YAML document.
func secretFiles(t *testing.T, doc []byte) []string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		t.Fatalf("parse YAML: %v", err)
	}
	var files []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if isSecretRef(n) && n.Content[0].Value == "file" {
			files = append(files, n.Content[1].Value)
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	return files
}

func isSecretRef(n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return false
	}
	k, v := n.Content[0].Value, n.Content[1]
	return (k == "file" || k == "env") && v.Kind == yaml.ScalarNode && v.Value != ""
}

func TestInlineSecrets(t *testing.T) {
	doc := []byte(`
kafka: {sasl: {password: hunter2}}
archive: {signing_key: {file: /k}}
connections:
  a: {settings: {api_key: {env: DD}, credentials: {access_key_id: AKIA, secret_access_key: {file: /s}}}}
  b: {settings: {gcs: {credentials: "{json}"}}}
`)
	got := inlineSecrets(t, doc)
	want := []string{"kafka.sasl.password", "connections.a.settings.credentials.access_key_id", "connections.b.settings.gcs.credentials"}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("inline secrets %q, want %q", got, want)
	}
}
