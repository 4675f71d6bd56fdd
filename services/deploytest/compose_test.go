package deploytest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/auditstream/auditstream/services/internal/secretbox"
)

// loadCompose loads docker-compose.yml as `docker compose` does, with env as
// the only environment (so defaults in the file apply).
func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnv(env), cli.WithDiscardEnvFile)
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return project
}

func composeService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return s
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	if p.Name != "auditstream" {
		t.Errorf("project name %q", p.Name)
	}
	want := []string{"archiver", "azurite", "datadog-forwarder", "destinations-api", "eventbridge-forwarder", "gcs", "ingest", "kafka", "kafka-init", "otlp-forwarder", "s3", "stores-init"}
	got := p.ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("services %q, want %q", got, want)
	}
	// Every image is pinned to a version: no implicit or floating latest.
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:[A-Za-z0-9._-]+$`)
	for _, s := range p.Services {
		if !pinned.MatchString(s.Image) || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: image %q is not pinned to a tag", s.Name, s.Image)
		}
	}
}

func TestComposeKafka(t *testing.T) {
	p := loadCompose(t)
	k := composeService(t, p, "kafka")
	if !regexp.MustCompile(`^apache/kafka:\d+\.\d+\.\d+$`).MatchString(k.Image) {
		t.Errorf("kafka image %q: want the official apache/kafka at a pinned version", k.Image)
	}
	env := func(name string) string {
		if v := k.Environment[name]; v != nil {
			return *v
		}
		return ""
	}
	if !strings.Contains(env("KAFKA_PROCESS_ROLES"), "controller") || env("KAFKA_CONTROLLER_QUORUM_VOTERS") == "" || env("CLUSTER_ID") == "" {
		t.Errorf("kafka is not a KRaft node: process roles %q, voters %q", env("KAFKA_PROCESS_ROLES"), env("KAFKA_CONTROLLER_QUORUM_VOTERS"))
	}
	if !strings.Contains(env("KAFKA_ADVERTISED_LISTENERS"), "PLAINTEXT://kafka:9092") {
		t.Errorf("kafka advertises %q, the services dial kafka:9092", env("KAFKA_ADVERTISED_LISTENERS"))
	}
	if env("KAFKA_AUTO_CREATE_TOPICS_ENABLE") != "false" {
		t.Error("kafka auto-creates topics: a typo in a topic name would go unnoticed")
	}
	requireHealthcheck(t, k)

	init := composeService(t, p, "kafka-init")
	if init.Image != k.Image {
		t.Errorf("kafka-init image %q, want the broker's %q", init.Image, k.Image)
	}
	requireDependsOn(t, init, "kafka", types.ServiceConditionHealthy)
	script := strings.Join(init.Command, "\n")
	if !strings.Contains(script, "kafka-topics.sh") || !strings.Contains(script, "--if-not-exists") {
		t.Errorf("kafka-init does not create topics idempotently with kafka-topics.sh:\n%s", script)
	}
	// Each topic the services use is created with the retention their
	// bootstrap would give it (and the events topic with the configured
	// partitions, default 12).
	created := map[string][2]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*create (\S+) (\S+) (\d+)\s*$`).FindAllStringSubmatch(script, -1) {
		created[m[1]] = [2]string{m[2], m[3]}
	}
	// Compacted topics: compact NAME PARTITIONS, a function creating them
	// with cleanup.policy=compact.
	compacted := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*compact (\S+) (\d+)\s*$`).FindAllStringSubmatch(script, -1) {
		compacted[m[1]] = m[2]
	}
	if len(compacted) > 0 && !regexp.MustCompile(`(?s)compact\(\) \{[^}]*--config cleanup\.policy=compact`).MatchString(script) {
		t.Errorf("kafka-init's compact function does not set cleanup.policy=compact:\n%s", script)
	}
	for _, topic := range serviceTopics() {
		if topic.Compacted {
			if p, ok := compacted[topic.Name]; !ok || p != strconv.Itoa(int(topic.Partitions)) {
				t.Errorf("kafka-init does not create %s compacted with %d partitions (compacted: %v)", topic.Name, topic.Partitions, compacted)
			}
			continue
		}
		c, ok := created[topic.Name]
		if !ok {
			t.Errorf("kafka-init does not create %s (created: %v)", topic.Name, created)
			continue
		}
		if want := strconv.FormatInt(topic.Retention.Milliseconds(), 10); c[1] != want {
			t.Errorf("%s: retention.ms %s, the services use %s", topic.Name, c[1], want)
		}
		partitions := c[0]
		if partitions == `"$PARTITIONS"` {
			partitions = *init.Environment["PARTITIONS"]
		}
		if partitions != strconv.Itoa(int(topic.Partitions)) {
			t.Errorf("%s: %s partitions, the services' default is %d", topic.Name, partitions, topic.Partitions)
		}
	}
	if missing, ok := statusTopicCreated(script); !ok {
		t.Errorf("kafka-init does not create the status topic as the services would (%q missing):\n%s", missing, script)
	}
	if len(created)+len(compacted) != len(serviceTopics()) {
		t.Errorf("kafka-init creates %d topics, the services use %d", len(created)+len(compacted), len(serviceTopics()))
	}
	p = loadCompose(t, "AUDITSTREAM_PARTITIONS=24")
	if got := *composeService(t, p, "kafka-init").Environment["PARTITIONS"]; got != "24" {
		t.Errorf("AUDITSTREAM_PARTITIONS=24 gives %s partitions", got)
	}
}

func TestComposeStores(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"s3", "gcs", "azurite"} {
		requireHealthcheck(t, composeService(t, p, name))
	}
	if img := composeService(t, p, "gcs").Image; !strings.HasPrefix(img, "fsouza/fake-gcs-server:") {
		t.Errorf("gcs image %q", img)
	}
	if img := composeService(t, p, "azurite").Image; !strings.HasPrefix(img, "mcr.microsoft.com/azure-storage/azurite:") {
		t.Errorf("azurite image %q", img)
	}
	init := composeService(t, p, "stores-init")
	for _, store := range []string{"s3", "gcs", "azurite"} {
		requireDependsOn(t, init, store, types.ServiceConditionHealthy)
	}
	// stores-init runs in the image the service images build in.
	dockerfile := string(readRepoFile(t, "Dockerfile"))
	if !strings.Contains(dockerfile, "ARG GO_IMAGE="+init.Image+"\n") {
		t.Errorf("stores-init image %q is not the Dockerfile's GO_IMAGE", init.Image)
	}
	requireMount(t, init, "/init/init-stores.sh", "./deploy/compose/init-stores.sh", true)
	requireMount(t, init, "/keys", "archive-signing-key", false)
	requireMount(t, init, "/public-keys", "archive-public-key", false)
	requireMount(t, init, "/keyring", "destinations-keyring", false)
}

// TestComposeKeyring runs the part of init-stores.sh that generates the
// destinations keyring and opens the result as the services do: a valid
// keyring, readable by its owner only, kept on the next run.
func TestComposeKeyring(t *testing.T) {
	script := string(readRepoFile(t, "deploy/compose/init-stores.sh"))
	i := strings.Index(script, "\n# Destinations keyring:")
	if i < 0 {
		t.Fatal("init-stores.sh has no destinations keyring section")
	}
	dir := t.TempDir()
	run := func() string {
		t.Helper()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script[i:])
		cmd.Env = append(os.Environ(), "KEYRING_DIR="+dir, fmt.Sprintf("SERVICE_UID=%d", os.Getuid()))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("keyring section: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run(); !strings.Contains(out, "generated") {
		t.Errorf("first run: %q", out)
	}
	path := filepath.Join(dir, "keyring.yaml")
	first := readFile(t, path)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("keyring mode %v (%v), want 0400", st.Mode(), err)
	}
	ring, err := secretbox.OpenKeyring(path, nil)
	if err != nil {
		t.Fatalf("the generated keyring does not open: %v", err)
	}
	if ring.CurrentKeyID() == "" {
		t.Error("no primary key")
	}
	if out := run(); !strings.Contains(out, "kept") || readFile(t, path) != first {
		t.Errorf("second run replaced the keyring: %q", out)
	}
}

// TestComposeArchivePublicKey runs the signing key's part of
// init-stores.sh: the public key it writes for the destinations API is the
// signing key's, as the archive package reads both.
func TestComposeArchivePublicKey(t *testing.T) {
	script := string(readRepoFile(t, "deploy/compose/init-stores.sh"))
	i, j := strings.Index(script, "\n# Archive signing key"), strings.Index(script, "\n# Destinations keyring:")
	if i < 0 || j < i {
		t.Fatal("init-stores.sh has no archive signing key section before the keyring's")
	}
	keys, pubs := t.TempDir(), t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script[i:j])
	cmd.Env = append(os.Environ(), "KEY_DIR="+keys, "PUB_DIR="+pubs, fmt.Sprintf("SERVICE_UID=%d", os.Getuid()))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("signing key section: %v\n%s", err, out)
	}
	privBlock, _ := pem.Decode([]byte(readFile(t, filepath.Join(keys, "ed25519.pem"))))
	pubText := readFile(t, filepath.Join(pubs, "ed25519.pub.pem"))
	pubBlock, _ := pem.Decode([]byte(pubText))
	if privBlock == nil || pubBlock == nil || pubBlock.Type != "PUBLIC KEY" {
		t.Fatalf("not PEM, or not a public key:\n%s", pubText)
	}
	priv, err := x509.ParsePKCS8PrivateKey(privBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(pubBlock.Bytes)
	if k, ok := priv.(ed25519.PrivateKey); err != nil || !ok || !k.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("the public key file is not the signing key's Ed25519 public key: %v\n%s", err, pubText)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestComposeAuditstreamServices(t *testing.T) {
	p := loadCompose(t)
	for _, c := range components {
		t.Run(c.Binary, func(t *testing.T) {
			s := composeService(t, p, c.Binary)
			if s.Build == nil || s.Build.Context != repoRoot(t) || s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("build %+v: want the repository's Dockerfile", s.Build)
			} else if arg := s.Build.Args["SERVICE"]; arg == nil || *arg != c.Binary {
				t.Errorf("build arg SERVICE %v, want %s", arg, c.Binary)
			}
			if s.Image != "auditstream/"+c.Binary+":dev" {
				t.Errorf("image %q", s.Image)
			}
			// Hardening.
			if !s.ReadOnly {
				t.Error("root filesystem is writable (read_only: true)")
			}
			if s.User != "65532:65532" {
				t.Errorf("user %q, want the non-root 65532:65532", s.User)
			}
			if !slices.Equal(s.CapDrop, []string{"ALL"}) {
				t.Errorf("cap_drop %q, want [ALL]", s.CapDrop)
			}
			if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("security_opt %q lacks no-new-privileges", s.SecurityOpt)
			}
			// Port, on loopback.
			if len(s.Ports) != 1 || s.Ports[0].Target != uint32(c.Port) || s.Ports[0].Published != strconv.Itoa(c.Port) || s.Ports[0].HostIP != "127.0.0.1" {
				t.Errorf("ports %+v, want 127.0.0.1:%d:%d", s.Ports, c.Port, c.Port)
			}
			// Health check through the image's probe binary.
			requireHealthcheck(t, s)
			if want := []string{"CMD", "/healthcheck", fmt.Sprintf("http://127.0.0.1:%d/readyz", c.Port)}; !slices.Equal(s.HealthCheck.Test, want) {
				t.Errorf("healthcheck %q, want %q", s.HealthCheck.Test, want)
			}
			// Start order.
			requireDependsOn(t, s, "kafka", types.ServiceConditionHealthy)
			requireDependsOn(t, s, "kafka-init", types.ServiceConditionCompletedSuccessfully)
			if c.Binary == "archiver" || c.Keyring {
				requireDependsOn(t, s, "stores-init", types.ServiceConditionCompletedSuccessfully)
			}
			// Environment.
			env := literalEnv(t, s)
			if env["AUDITSTREAM_KAFKA_BROKERS"] != "kafka:9092" {
				t.Errorf("AUDITSTREAM_KAFKA_BROKERS %q, want kafka:9092", env["AUDITSTREAM_KAFKA_BROKERS"])
			}
			checkGoMemLimit(t, env["GOMEMLIMIT"], int64(s.MemLimit))
			// Config and destinations, mounted read-only.
			if !slices.Equal(s.Command, []string{"--config", "/etc/auditstream/config.yaml"}) {
				t.Errorf("command %q", s.Command)
			}
			cfgFile := "./deploy/compose/" + c.Binary + ".yaml"
			requireMount(t, s, "/etc/auditstream/config.yaml", cfgFile, true)
			sc := serviceConfig{Binary: c.Binary, Config: readRepoFile(t, cfgFile), Env: env}
			if c.Consumer || c.Binary == "destinations-api" {
				requireMount(t, s, "/etc/auditstream/destinations", "./deploy/compose/destinations", true)
				sc.Destinations = readRepoFile(t, "deploy/compose/destinations/destinations.yaml")
			}
			// The API seals with the keyring stores-init generates, and
			// every consumer opens with the same one.
			if c.Keyring {
				requireMount(t, s, "/etc/auditstream/keyring", "destinations-keyring", true)
				var cfg struct {
					Encryption struct {
						KeyringFile string `yaml:"keyring_file"`
					} `yaml:"encryption"`
					Destinations struct {
						Topic      *bool `yaml:"topic"`
						Encryption struct {
							KeyringFile string `yaml:"keyring_file"`
						} `yaml:"encryption"`
					} `yaml:"destinations"`
				}
				if err := yaml.Unmarshal(sc.Config, &cfg); err != nil {
					t.Fatal(err)
				}
				got := cfg.Destinations.Encryption.KeyringFile
				if c.Binary == "destinations-api" {
					got = cfg.Encryption.KeyringFile
				}
				if got != "/etc/auditstream/keyring/keyring.yaml" {
					t.Errorf("keyring_file %q, want the mounted /etc/auditstream/keyring/keyring.yaml", got)
				}
				if cfg.Destinations.Topic != nil && !*cfg.Destinations.Topic {
					t.Error("destinations.topic is off: the consumer would not see the API's connections")
				}
			}
			if c.Binary == "destinations-api" {
				// The archive days are verified with the archiver's public
				// key, from a volume of its own: the API never sees the
				// signing key.
				requireMount(t, s, "/etc/auditstream/archive-public-key", "archive-public-key", true)
				if bytes.Contains(sc.Config, []byte("archive-signing-key")) {
					t.Error("the destinations API's config names the archive's signing key")
				}
				if !bytes.Contains(sc.Config, []byte("/etc/auditstream/archive-public-key/ed25519.pub.pem")) {
					t.Error("the destinations API's archive.public_keys is not the mounted public key")
				}
				for _, m := range s.Volumes {
					if m.Source == "archive-signing-key" {
						t.Error("the destinations API mounts the archive's signing key")
					}
				}
			}
			if c.Binary == "archiver" {
				requireMount(t, s, "/etc/auditstream/archive-signing-key", "archive-signing-key", true)
				requireMount(t, s, "/var/lib/auditstream/spool", "archiver-spool", false)
			}
			if bad := inlineSecrets(t, sc.Config); len(bad) > 0 {
				t.Errorf("%s holds secret values at %q: use {file: ...}", cfgFile, bad)
			}
			sc.check(t)
		})
	}
	// An existing Kafka instead of the bundled one.
	p = loadCompose(t, "AUDITSTREAM_KAFKA_BROKERS=k1:9092,k2:9092")
	if got := literalEnv(t, composeService(t, p, "ingest"))["AUDITSTREAM_KAFKA_BROKERS"]; got != "k1:9092,k2:9092" {
		t.Errorf("AUDITSTREAM_KAFKA_BROKERS is not passed through: %q", got)
	}
}

func TestComposeDestinations(t *testing.T) {
	p := loadCompose(t)
	doc := readRepoFile(t, "deploy/compose/destinations/destinations.yaml")
	if bad := inlineSecrets(t, doc); len(bad) > 0 {
		t.Errorf("destinations.yaml holds secret values at %q", bad)
	}
	// Every secret file it references is a compose secret given to the
	// archiver, and every compose secret's file exists.
	archiver := composeService(t, p, "archiver")
	refs := secretFiles(t, doc)
	if len(refs) == 0 {
		t.Error("destinations.yaml references no secret files")
	}
	for _, ref := range refs {
		name, ok := strings.CutPrefix(ref, "/run/secrets/")
		if !ok || !slices.ContainsFunc(archiver.Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == name }) {
			t.Errorf("destinations.yaml reads %s, which is not a compose secret the archiver is given", ref)
		}
	}
	for name, s := range p.Secrets {
		if _, err := os.Stat(s.File); err != nil {
			t.Errorf("secret %s: %v", name, err)
		}
	}
}

func requireHealthcheck(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	h := s.HealthCheck
	if h == nil || h.Disable || len(h.Test) < 2 || h.Interval == nil || h.Retries == nil {
		t.Errorf("%s: no health check with a test, interval and retries", s.Name)
	}
}

func requireDependsOn(t *testing.T, s types.ServiceConfig, on, condition string) {
	t.Helper()
	d, ok := s.DependsOn[on]
	if !ok || d.Condition != condition {
		t.Errorf("%s: depends_on %s %+v, want condition %s", s.Name, on, d, condition)
	}
}

// requireMount checks a mount at target from source (a path relative to the
// repository, or a named volume).
func requireMount(t *testing.T, s types.ServiceConfig, target, source string, readOnly bool) {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target != target {
			continue
		}
		want := source
		if strings.HasPrefix(source, "./") {
			want = filepath.Join(repoRoot(t), source)
			if _, err := os.Stat(want); err != nil {
				t.Errorf("%s: mount source %s: %v", s.Name, source, err)
			}
		}
		if v.Source != want {
			t.Errorf("%s: %s is mounted from %s, want %s", s.Name, target, v.Source, want)
		}
		if v.ReadOnly != readOnly {
			t.Errorf("%s: %s read_only %v, want %v", s.Name, target, v.ReadOnly, readOnly)
		}
		return
	}
	t.Errorf("%s: nothing mounted at %s", s.Name, target)
}

func literalEnv(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	env := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			t.Errorf("%s: environment %s has no value", s.Name, k)
			continue
		}
		env[k] = *v
	}
	return env
}

// checkGoMemLimit: GOMEMLIMIT is set, below the memory limit, and leaves
// the runtime at least 80% of it.
func checkGoMemLimit(t *testing.T, value string, limit int64) {
	t.Helper()
	n, err := parseGoMemLimit(value)
	if err != nil {
		t.Errorf("GOMEMLIMIT %q: %v", value, err)
		return
	}
	if limit <= 0 {
		t.Errorf("GOMEMLIMIT %s without a memory limit", value)
		return
	}
	if n >= limit || n < limit*8/10 {
		t.Errorf("GOMEMLIMIT %s (%d bytes) for a memory limit of %d bytes: want 80-99%% of it", value, n, limit)
	}
}

// parseGoMemLimit reads the runtime's GOMEMLIMIT syntax: bytes with an
// optional B, KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("not a GOMEMLIMIT size")
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("not a GOMEMLIMIT size")
}

// TestComposeQuickStartDocs: what docs/deploy.md's quick start tells the
// reader to type works with what docker-compose.yml and its configs hold.
func TestComposeQuickStartDocs(t *testing.T) {
	doc := string(readRepoFile(t, "docs/deploy.md"))
	p := loadCompose(t)

	// The token in the curl is the one whose hash ingest accepts.
	m := regexp.MustCompile(`Authorization: Bearer ([A-Za-z0-9._-]+)`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/deploy.md has no bearer token in its quick start")
	}
	if cfg := string(readRepoFile(t, "deploy/compose/ingest.yaml")); !strings.Contains(cfg, "sha256: "+sha256Hex(m[1])) {
		t.Errorf("deploy/compose/ingest.yaml does not accept the documented token %q", m[1])
	}
	// The token of its destinations API calls is the one the API accepts.
	api := regexp.MustCompile(`(?s)127\.0\.0\.1:8084.*?Authorization: Bearer ([A-Za-z0-9._-]+)`).FindStringSubmatch(doc)
	if api == nil {
		t.Fatal("docs/deploy.md has no destinations API call with a bearer token")
	}
	if cfg := string(readRepoFile(t, "deploy/compose/destinations-api.yaml")); !strings.Contains(cfg, "sha256: "+sha256Hex(api[1])) {
		t.Errorf("deploy/compose/destinations-api.yaml does not accept the documented token %q", api[1])
	}
	// The event file it posts exists.
	for _, f := range regexp.MustCompile(`--data @(\S+)`).FindAllStringSubmatch(doc, -1) {
		if _, err := os.Stat(filepath.Join(repoRoot(t), f[1])); err != nil {
			t.Errorf("the documented event file: %v", err)
		}
	}
	// Ports it names are published on loopback by the right service.
	published := map[string]string{}
	for _, s := range p.Services {
		for _, port := range s.Ports {
			published[port.HostIP+":"+port.Published] = s.Name
		}
	}
	for addr, service := range map[string]string{
		"127.0.0.1:8080": "ingest", "127.0.0.1:8081": "datadog-forwarder", "127.0.0.1:9094": "kafka", "127.0.0.1:9001": "s3",
		"127.0.0.1:8084": "destinations-api",
	} {
		if !strings.Contains(doc, addr) && !strings.Contains(doc, strings.TrimPrefix(addr, "127.0.0.1")) {
			t.Errorf("docs/deploy.md does not name %s", addr)
		}
		if published[addr] != service {
			t.Errorf("%s is published by %q, the docs say %s", addr, published[addr], service)
		}
	}
	if v := composeService(t, p, "kafka").Environment["KAFKA_ADVERTISED_LISTENERS"]; v == nil || !strings.Contains(*v, "HOST://127.0.0.1:9094") {
		t.Error("kafka does not advertise 127.0.0.1:9094 to this machine's clients")
	}
	// The archiver routes every account to the three stand-ins.
	dest := string(readRepoFile(t, "deploy/compose/destinations/destinations.yaml"))
	for _, conn := range []string{"archive-s3", "archive-gcs", "archive-azure"} {
		if !strings.Contains(dest, conn+":") {
			t.Errorf("the destinations file has no %s connection", conn)
		}
	}
}
