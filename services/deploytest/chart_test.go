package deploytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	chartDir = "charts/auditstream"
	// kubeVersion is what helm renders for (a helm built with go install
	// does not know the version of a real cluster).
	kubeVersion = "1.31.0"
	release     = "as"
	namespace   = "audit"
)

// helmBinary is helm from .tools/bin, installed by `make tools`.
func helmBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(repoRoot(t), ".tools", "bin", "helm")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("helm is not installed at %s: run `make tools` (the chart tests render the chart with it)", path)
	}
	return path
}

// helmTemplate renders the chart with the values files and extra YAML
// documents (written to temp files, applied last).
func helmTemplate(t *testing.T, files []string, extra ...string) ([]byte, error) {
	t.Helper()
	args := []string{"template", release, filepath.Join(repoRoot(t), chartDir), "--namespace", namespace, "--kube-version", kubeVersion}
	for _, f := range files {
		args = append(args, "-f", filepath.Join(repoRoot(t), f))
	}
	for i, doc := range extra {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("extra-%d.yaml", i))
		writeFile(t, path, []byte(doc))
		args = append(args, "-f", path)
	}
	cmd := exec.Command(helmBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return append(stdout.Bytes(), stderr.Bytes()...), fmt.Errorf("helm template: %v\n%s", err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// manifest is one rendered object.
type manifest map[string]any

func (m manifest) kind() string { return str(m["kind"]) }
func (m manifest) name() string { return str(dig(m, "metadata", "name")) }

// dig walks maps by key and lists by index.
func dig(v any, path ...any) any {
	for _, p := range path {
		if m, ok := v.(manifest); ok { // yaml.v3 decodes nested maps as the outer map's type
			v = map[string]any(m)
		}
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	if m, ok := v.(manifest); ok {
		v = map[string]any(m)
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func parseManifests(t *testing.T, out []byte) []manifest {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(out))
	var all []manifest
	for {
		var m manifest
		err := dec.Decode(&m)
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("rendered manifests do not parse: %v", err)
		}
		if m != nil {
			all = append(all, m)
		}
	}
	return all
}

type rendered struct {
	all   []manifest
	byKey map[string]manifest // kind/name
}

func render(t *testing.T, files []string, extra ...string) rendered {
	t.Helper()
	out, err := helmTemplate(t, files, extra...)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{all: parseManifests(t, out), byKey: map[string]manifest{}}
	for _, m := range r.all {
		key := m.kind() + "/" + m.name()
		if _, dup := r.byKey[key]; dup {
			t.Errorf("%s rendered twice", key)
		}
		r.byKey[key] = m
	}
	return r
}

func (r rendered) get(kind, name string) manifest { return r.byKey[kind+"/"+name] }

func (r rendered) ofKind(kind string) []manifest {
	var out []manifest
	for _, m := range r.all {
		if m.kind() == kind {
			out = append(out, m)
		}
	}
	return out
}

func ciValuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci/*-values.yaml: %v", err)
	}
	var rel []string
	for _, f := range files {
		r, _ := filepath.Rel(repoRoot(t), f)
		rel = append(rel, r)
	}
	return rel
}

func TestChartCIValuesShapes(t *testing.T) {
	var names []string
	for _, f := range ciValuesFiles(t) {
		names = append(names, strings.TrimSuffix(filepath.Base(f), "-values.yaml"))
	}
	for _, want := range []string{"minimal", "all-sinks", "keda", "external-secrets", "tls-sasl-kafka", "msk-iam", "oauthbearer", "oauthbearer-token", "gcp-managed-kafka"} {
		if !slices.Contains(names, want) {
			t.Errorf("no ci/%s-values.yaml (have %q)", want, names)
		}
	}
}

// TestChartLint runs helm lint --strict with each ci values file.
func TestChartLint(t *testing.T) {
	for _, f := range ciValuesFiles(t) {
		out, err := exec.Command(helmBinary(t), "lint", "--strict", "--kube-version", kubeVersion,
			filepath.Join(repoRoot(t), chartDir), "-f", filepath.Join(repoRoot(t), f)).CombinedOutput()
		if err != nil {
			t.Errorf("helm lint -f %s: %v\n%s", f, err, out)
		}
	}
}

// TestChartCIValues renders every ci values file and checks what the chart
// promises of every object.
func TestChartCIValues(t *testing.T) {
	for _, f := range ciValuesFiles(t) {
		t.Run(strings.TrimSuffix(filepath.Base(f), "-values.yaml"), func(t *testing.T) {
			r := render(t, []string{f})
			values := chartValues(t, f)
			if len(r.ofKind("Deployment")) == 0 {
				t.Fatal("no Deployment rendered")
			}
			for _, m := range r.all {
				if m.kind() == "Secret" {
					t.Errorf("the chart renders Secret %s: secrets come only from existing Secrets", m.name())
				}
			}
			for _, c := range components {
				if enabled, _ := dig(values, c.ValuesKey, "enabled").(bool); !enabled {
					if r.get("Deployment", componentName(c)) != nil {
						t.Errorf("%s is disabled but rendered", c.Binary)
					}
					continue
				}
				t.Run(c.Binary, func(t *testing.T) { checkComponent(t, r, values, c) })
			}
		})
	}
}

func componentName(c component) string { return release + "-auditstream-" + c.Binary }

// chartValues is the chart's values.yaml with a values file merged over it.
func chartValues(t *testing.T, file string) map[string]any {
	t.Helper()
	var base, over map[string]any
	if err := yaml.Unmarshal(readRepoFile(t, chartDir+"/values.yaml"), &base); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(readRepoFile(t, file), &over); err != nil {
		t.Fatal(err)
	}
	return mergeMaps(base, over)
}

func mergeMaps(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func checkComponent(t *testing.T, r rendered, values map[string]any, c component) {
	name := componentName(c)
	d := r.get("Deployment", name)
	if d == nil {
		t.Fatalf("no Deployment %s", name)
	}
	pod := dig(d, "spec", "template", "spec")
	containers := list(dig(pod, "containers"))
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	ctr := containers[0]

	// Image and command.
	if img := str(dig(ctr, "image")); !strings.Contains(img, "/"+c.Binary+":") {
		t.Errorf("image %q is not the %s image", img, c.Binary)
	}
	if args := list(dig(ctr, "args")); len(args) != 2 || str(args[0]) != "--config" || str(args[1]) != "/etc/auditstream/config/config.yaml" {
		t.Errorf("args %v", args)
	}
	if port := dig(ctr, "ports", 0); str(dig(port, "name")) != "http" || str(dig(port, "containerPort")) != strconv.Itoa(c.Port) {
		t.Errorf("port %v, want http %d", port, c.Port)
	}

	// Probes on /healthz and /readyz.
	for probe, path := range map[string]string{"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := str(dig(ctr, probe, "httpGet", "path")); got != path || str(dig(ctr, probe, "httpGet", "port")) != "http" {
			t.Errorf("%s on %q, want %s on port http", probe, got, path)
		}
	}

	// Security contexts.
	psc := dig(pod, "securityContext")
	if dig(psc, "runAsNonRoot") != true || str(dig(psc, "seccompProfile", "type")) != "RuntimeDefault" {
		t.Errorf("pod securityContext %v: want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	csc := dig(ctr, "securityContext")
	if dig(csc, "runAsNonRoot") != true || dig(csc, "readOnlyRootFilesystem") != true || dig(csc, "allowPrivilegeEscalation") != false ||
		!slices.Equal(list(dig(csc, "capabilities", "drop")), []any{"ALL"}) || str(dig(csc, "seccompProfile", "type")) != "RuntimeDefault" {
		t.Errorf("container securityContext %v: want non-root, read-only root, no escalation, drop ALL, seccomp RuntimeDefault", csc)
	}
	if dig(pod, "enableServiceLinks") != false {
		t.Error("enableServiceLinks is not false")
	}
	if dig(pod, "automountServiceAccountToken") != false {
		t.Error("automountServiceAccountToken is not false")
	}

	// GOMEMLIMIT from the memory limit.
	env := map[string]any{}
	for _, e := range list(dig(ctr, "env")) {
		env[str(dig(e, "name"))] = e
	}
	limit := str(dig(ctr, "resources", "limits", "memory"))
	if limit == "" {
		limit = str(dig(ctr, "resources", "requests", "memory"))
	}
	checkGoMemLimit(t, str(dig(env["GOMEMLIMIT"], "value")), quantityBytes(t, limit))

	// The config: a ConfigMap mounted at /etc/auditstream/config, its hash
	// on the pod so a change rolls the pods, valid for the service.
	cm := r.get("ConfigMap", name)
	if cm == nil {
		t.Fatalf("no ConfigMap %s", name)
	}
	cfg := str(dig(cm, "data", "config.yaml"))
	if got, want := str(dig(d, "spec", "template", "metadata", "annotations", "checksum/config")), sha256Hex(cfg); got != want {
		t.Errorf("checksum/config %s, want the config's sha256 %s", got, want)
	}
	mounts := volumeMounts(t, pod, ctr)
	if m, ok := mounts["/etc/auditstream/config"]; !ok || str(dig(m.volume, "configMap", "name")) != name {
		t.Errorf("the config ConfigMap is not mounted at /etc/auditstream/config")
	}
	if bad := inlineSecrets(t, []byte(cfg)); len(bad) > 0 {
		t.Errorf("config.yaml holds secret values at %q", bad)
	}
	for _, ref := range secretFiles(t, []byte(cfg)) {
		requireSecretFile(t, mounts, ref)
	}

	// Consumers read the shared destinations file; every secret file a
	// connection of their type references is mounted from a Secret.
	sc := serviceConfig{Binary: c.Binary, Config: []byte(cfg), Env: map[string]string{}}
	for k, e := range env {
		switch {
		case dig(e, "value") != nil:
			sc.Env[k] = str(dig(e, "value"))
		case dig(e, "valueFrom", "secretKeyRef", "name") != nil:
			sc.Env[k] = "value-of-" + k
		}
	}
	var cfgDoc map[string]any
	if err := yaml.Unmarshal([]byte(cfg), &cfgDoc); err != nil {
		t.Fatal(err)
	}
	if c.Consumer {
		destFile := str(dig(cfgDoc, "destinations", "file"))
		m, ok := mounts[filepath.Dir(destFile)]
		if !ok || dig(m.volume, "configMap") == nil {
			t.Fatalf("destinations file %s is not on a mounted ConfigMap", destFile)
		}
		destCM := r.get("ConfigMap", str(dig(m.volume, "configMap", "name")))
		existing := str(dig(values, "destinations", "existingConfigMap"))
		switch {
		case existing != "":
			if str(dig(m.volume, "configMap", "name")) != existing {
				t.Errorf("destinations ConfigMap %v, want the existing %s", dig(m.volume, "configMap", "name"), existing)
			}
			sc.Destinations = []byte("connections: {}\nroutes: []\n")
		case destCM == nil:
			t.Fatalf("destinations ConfigMap %v is not rendered", dig(m.volume, "configMap", "name"))
		default:
			sc.Destinations = []byte(str(dig(destCM, "data", filepath.Base(destFile))))
			checkDestinationSecrets(t, sc.Destinations, c, mounts)
		}
		// The group the config consumes in is the one its scaler watches.
		group := str(dig(cfgDoc, "delivery", "group"))
		if c.Binary == "archiver" {
			group = str(dig(cfgDoc, "archive", "group"))
		}
		if want := str(dig(values, c.ValuesKey, "consumerGroup")); group != want || group == "" {
			t.Errorf("config group %q, values consumerGroup %q", group, want)
		}
		if c.Binary == "archiver" {
			if m, ok := mounts[str(dig(cfgDoc, "archive", "spool_dir"))]; !ok || dig(m.volume, "emptyDir", "sizeLimit") == nil || dig(m.mount, "readOnly") == true {
				t.Errorf("the spool %v is not a writable, sized emptyDir", dig(cfgDoc, "archive", "spool_dir"))
			}
		}
		checkScaling(t, r, values, c, d, group)
	} else {
		checkScaling(t, r, values, c, d, "")
	}
	if c.Binary == "destinations-api" {
		// The API refuses the names the installation's destinations file
		// defines: it reads the same file the consumers do.
		destFile := str(dig(cfgDoc, "api", "destinations_file"))
		if m, ok := mounts[filepath.Dir(destFile)]; !ok || dig(m.volume, "configMap", "name") == nil {
			t.Errorf("api.destinations_file %q is not on a mounted ConfigMap", destFile)
		}
		tokens := list(dig(cfgDoc, "auth", "tokens"))
		if len(tokens) == 0 || fmt.Sprint(tokens) != fmt.Sprint(dig(values, c.ValuesKey, "auth", "tokens")) {
			t.Errorf("auth.tokens %v, want the values' %v", tokens, dig(values, c.ValuesKey, "auth", "tokens"))
		}
		sc.Destinations = []byte("connections: {}\nroutes: []\n")
		// The archiver's public keys verify the archive days: each file of
		// archive.public_keys is a key of the values' ConfigMap, mounted.
		keysCM := str(dig(values, c.ValuesKey, "archivePublicKeys", "existingConfigMap"))
		files := list(dig(cfgDoc, "archive", "public_keys"))
		if want := list(dig(values, c.ValuesKey, "archivePublicKeys", "keys")); keysCM != "" && len(files) != len(want) {
			t.Errorf("archive.public_keys %v, want one file per key of %s %v", files, keysCM, want)
		}
		for _, f := range files {
			m, ok := mounts[filepath.Dir(str(f))]
			items := map[string]string{}
			for _, it := range list(dig(m.volume, "configMap", "items")) {
				items[str(dig(it, "path"))] = str(dig(it, "key"))
			}
			if !ok || str(dig(m.volume, "configMap", "name")) != keysCM || items[filepath.Base(str(f))] != filepath.Base(str(f)) ||
				dig(m.mount, "readOnly") != true {
				t.Errorf("archive.public_keys file %v is not a key of ConfigMap %q mounted read-only", f, keysCM)
			}
		}
	}
	if c.Keyring {
		checkEncryption(t, values, c, cfgDoc, mounts)
	}
	sc.check(t)

	// Service, PodDisruptionBudget, ServiceAccount.
	svc := r.get("Service", name)
	wantPort := "http-metrics"
	if c.API {
		wantPort = "http"
	}
	if svc == nil || str(dig(svc, "spec", "ports", 0, "name")) != wantPort || str(dig(svc, "spec", "ports", 0, "targetPort")) != "http" {
		t.Errorf("Service %s: want port %s to the container's http port", name, wantPort)
	}
	selector := dig(d, "spec", "selector", "matchLabels")
	if svc != nil && fmt.Sprint(dig(svc, "spec", "selector")) != fmt.Sprint(selector) {
		t.Errorf("Service selector %v, Deployment selector %v", dig(svc, "spec", "selector"), selector)
	}
	if pdb := r.get("PodDisruptionBudget", name); pdb == nil || fmt.Sprint(dig(pdb, "spec", "selector", "matchLabels")) != fmt.Sprint(selector) {
		t.Errorf("no PodDisruptionBudget selecting the pods")
	}
	saName := str(dig(pod, "serviceAccountName"))
	sa := r.get("ServiceAccount", saName)
	if sa == nil {
		t.Errorf("ServiceAccount %s is not rendered", saName)
	}
	// A service's own AWS role, else the MSK IAM role every service takes.
	awsRole := str(dig(values, c.ValuesKey, "workloadIdentity", "aws", "roleArn"))
	if awsRole == "" && str(dig(values, "kafka", "sasl", "mechanism")) == "aws_msk_iam" {
		awsRole = str(dig(values, "kafka", "sasl", "aws", "serviceAccountRoleArn"))
	}
	wi := map[string]string{
		"eks.amazonaws.com/role-arn":        awsRole,
		"iam.gke.io/gcp-service-account":    str(dig(values, c.ValuesKey, "workloadIdentity", "gcp", "serviceAccount")),
		"azure.workload.identity/client-id": str(dig(values, c.ValuesKey, "workloadIdentity", "azure", "clientId")),
	}
	for ann, want := range wi {
		if got := str(dig(sa, "metadata", "annotations", ann)); got != want {
			t.Errorf("ServiceAccount annotation %s %q, want %q", ann, got, want)
		}
	}
	azureLabel := str(dig(d, "spec", "template", "metadata", "labels", "azure.workload.identity/use"))
	if (wi["azure.workload.identity/client-id"] != "") != (azureLabel == "true") {
		t.Errorf("pod label azure.workload.identity/use %q with client id %q", azureLabel, wi["azure.workload.identity/client-id"])
	}
	if on, _ := dig(values, "serviceMonitor", "enabled").(bool); on {
		sm := r.get("ServiceMonitor", name)
		if sm == nil || str(dig(sm, "spec", "endpoints", 0, "port")) != wantPort || str(dig(sm, "spec", "endpoints", 0, "path")) != "/metrics" {
			t.Errorf("ServiceMonitor %s: want /metrics on port %s", name, wantPort)
		}
	}
	if on, _ := dig(values, "networkPolicy", "enabled").(bool); on {
		if np := r.get("NetworkPolicy", name); np == nil || fmt.Sprint(dig(np, "spec", "podSelector", "matchLabels")) != fmt.Sprint(selector) {
			t.Errorf("no NetworkPolicy selecting the pods")
		}
	}
}

// checkScaling: who owns the replica count, and that consumers never get
// more replicas than partitions (the ci files do not allow it).
func checkScaling(t *testing.T, r rendered, values map[string]any, c component, d manifest, group string) {
	t.Helper()
	name := componentName(c)
	partitions, _ := dig(values, "kafka", "topic", "partitions").(int)
	topic := str(dig(values, "kafka", "topic", "name"))
	keda, _ := dig(values, "keda", "enabled").(bool)
	if own, ok := dig(values, c.ValuesKey, "autoscaling", "keda").(bool); ok && !own {
		keda = false
	}
	hpaOn, _ := dig(values, c.ValuesKey, "autoscaling", "enabled").(bool)
	so, hpa := r.get("ScaledObject", name), r.get("HorizontalPodAutoscaler", name)
	spec, _ := dig(d, "spec").(map[string]any)
	_, hasReplicas := spec["replicas"]
	max := 0
	switch {
	case c.Consumer && keda:
		if so == nil {
			t.Fatalf("keda.enabled but no ScaledObject %s", name)
		}
		if hpa != nil || hasReplicas {
			t.Error("a KEDA-scaled Deployment also has an HPA or fixed replicas")
		}
		if str(dig(so, "spec", "scaleTargetRef", "name")) != name {
			t.Errorf("ScaledObject targets %v", dig(so, "spec", "scaleTargetRef"))
		}
		trig := dig(so, "spec", "triggers", 0)
		md := dig(trig, "metadata")
		if str(dig(trig, "type")) != "kafka" || str(dig(md, "consumerGroup")) != group || str(dig(md, "topic")) != topic {
			t.Errorf("ScaledObject trigger %v: want kafka on group %s, topic %s", trig, group, topic)
		}
		if str(dig(md, "lagThreshold")) == "" || str(dig(md, "bootstrapServers")) == "" {
			t.Errorf("ScaledObject trigger %v lacks lagThreshold or bootstrapServers", md)
		}
		if ref := str(dig(trig, "authenticationRef", "name")); ref != "" && r.get("TriggerAuthentication", ref) == nil {
			t.Errorf("TriggerAuthentication %s is not rendered", ref)
		}
		if mech := str(dig(values, "kafka", "sasl", "mechanism")); mech != "" && str(dig(trig, "authenticationRef", "name")) == "" {
			t.Error("SASL is on but the scaler has no authenticationRef")
		}
		max, _ = dig(so, "spec", "maxReplicaCount").(int)
	case hpaOn:
		if hpa == nil || str(dig(hpa, "spec", "scaleTargetRef", "name")) != name || hasReplicas {
			t.Errorf("autoscaling.enabled: want an HPA on %s and no fixed replicas", name)
		}
		if so != nil {
			t.Error("a ScaledObject without keda.enabled")
		}
		if str(dig(hpa, "spec", "metrics", 0, "resource", "name")) != "cpu" {
			t.Errorf("HPA metrics %v, want cpu", dig(hpa, "spec", "metrics"))
		}
		max, _ = dig(hpa, "spec", "maxReplicas").(int)
	default:
		if so != nil || hpa != nil || !hasReplicas {
			t.Error("no autoscaling: want fixed replicas and no HPA or ScaledObject")
		}
		max, _ = dig(d, "spec", "replicas").(int)
	}
	if c.Consumer && max > partitions {
		t.Errorf("%d replicas at most for %d partitions", max, partitions)
	}
}

// checkEncryption: the API seals with, and every consumer opens with, the
// key-encryption key the values name: the keyring from its Secret, mounted
// read-only, or the KMS key; consumers follow the destinations topic.
func checkEncryption(t *testing.T, values map[string]any, c component, cfgDoc map[string]any, mounts map[string]mounted) {
	t.Helper()
	enc := dig(cfgDoc, "encryption")
	if c.Consumer {
		enc = dig(cfgDoc, "destinations", "encryption")
		if want, _ := dig(values, "destinations", "topic").(bool); dig(cfgDoc, "destinations", "topic") != want {
			t.Errorf("destinations.topic %v, values say %v", dig(cfgDoc, "destinations", "topic"), want)
		}
	}
	secret := str(dig(values, "encryption", "keyring", "existingSecret"))
	keyID := str(dig(values, "encryption", "kms", "keyId"))
	switch {
	case secret != "":
		file := str(dig(enc, "keyring_file"))
		if file == "" || dig(enc, "kms") != nil {
			t.Fatalf("encryption %v, want keyring_file only", enc)
		}
		requireSecretFile(t, mounts, file)
		if m := mounts[filepath.Dir(file)]; str(dig(m.volume, "secret", "secretName")) != secret {
			t.Errorf("keyring %s is mounted from Secret %v, want %s", file, dig(m.volume, "secret", "secretName"), secret)
		}
	case keyID != "":
		if str(dig(enc, "kms", "key_id")) != keyID || dig(enc, "keyring_file") != nil {
			t.Errorf("encryption %v, want kms.key_id %s only", enc, keyID)
		}
	default:
		if m, _ := enc.(map[string]any); len(m) != 0 {
			t.Errorf("encryption %v with no key-encryption key in the values", enc)
		}
	}
}

type mounted struct {
	mount, volume any
}

func volumeMounts(t *testing.T, pod, ctr any) map[string]mounted {
	t.Helper()
	vols := map[string]any{}
	for _, v := range list(dig(pod, "volumes")) {
		vols[str(dig(v, "name"))] = v
	}
	out := map[string]mounted{}
	for _, m := range list(dig(ctr, "volumeMounts")) {
		v, ok := vols[str(dig(m, "name"))]
		if !ok {
			t.Errorf("volumeMount %v has no volume", dig(m, "name"))
		}
		out[str(dig(m, "mountPath"))] = mounted{m, v}
	}
	return out
}

// requireSecretFile: a {file: ...} reference points into a read-only mount
// of an existing Secret, at a key the volume projects.
func requireSecretFile(t *testing.T, mounts map[string]mounted, ref string) {
	t.Helper()
	dir, key := filepath.Dir(ref), filepath.Base(ref)
	m, ok := mounts[dir]
	if ok && dig(m.mount, "readOnly") == true {
		// a projected ServiceAccount token (OAUTHBEARER), renewed by the kubelet
		if src := dig(m.volume, "projected", "sources", 0, "serviceAccountToken"); src != nil {
			if str(dig(src, "path")) != key || str(dig(src, "audience")) == "" {
				t.Errorf("%s: the projected token is %v", ref, src)
			}
			return
		}
	}
	if !ok || dig(m.volume, "secret", "secretName") == nil || dig(m.mount, "readOnly") != true {
		t.Errorf("%s is not in a read-only Secret mount", ref)
		return
	}
	if items := list(dig(m.volume, "secret", "items")); items != nil {
		if !slices.ContainsFunc(items, func(it any) bool { return str(dig(it, "path")) == key }) {
			t.Errorf("%s: the Secret volume does not project %s", ref, key)
		}
	}
}

// checkDestinationSecrets: the secret files of the connections this
// consumer delivers to are mounted in it.
func checkDestinationSecrets(t *testing.T, doc []byte, c component, mounts map[string]mounted) {
	t.Helper()
	if bad := inlineSecrets(t, doc); len(bad) > 0 {
		t.Errorf("the destinations file holds secret values at %q", bad)
	}
	var dest struct {
		Connections map[string]yaml.Node `yaml:"connections"`
	}
	if err := yaml.Unmarshal(doc, &dest); err != nil {
		t.Fatal(err)
	}
	typ := map[string]string{"datadog-forwarder": "datadog", "eventbridge-forwarder": "eventbridge", "otlp-forwarder": "otlp", "archiver": "storage"}[c.Binary]
	for name, n := range dest.Connections {
		var conn struct {
			Type string `yaml:"type"`
		}
		if err := n.Decode(&conn); err != nil {
			t.Fatal(err)
		}
		if conn.Type != typ {
			continue
		}
		out, err := yaml.Marshal(&n)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range secretFiles(t, out) {
			t.Run(name, func(t *testing.T) { requireSecretFile(t, mounts, ref) })
		}
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// quantityBytes reads the memory quantities the chart's values use.
func quantityBytes(t *testing.T, q string) int64 {
	t.Helper()
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"", 1}} {
		if num, ok := strings.CutSuffix(q, u.suffix); ok {
			if n, err := strconv.ParseInt(num, 10, 64); err == nil {
				return n * u.mult
			}
		}
	}
	t.Fatalf("memory quantity %q", q)
	return 0
}

// minimal is the least an install needs, for the tests that change one
// thing at a time.
const minimal = chartDir + "/ci/minimal-values.yaml"

// TestChartSecretsNeverRendered: a secret value put anywhere values could
// carry one is refused, and the refusal does not print it.
func TestChartSecretsNeverRendered(t *testing.T) {
	const sentinel = "SENTINEL-s3cr3t-value-7f3a9c"
	cases := map[string]string{
		"datadog api key in destinations": `
destinations:
  connections:
    dd: {type: datadog, settings: {site: datadoghq.com, api_key: ` + sentinel + `}}
  routes: [{account: "*", connections: [dd]}]`,
		"aws key in a nested credentials block": `
destinations:
  connections:
    s3: {type: storage, settings: {kind: s3, s3: {region: eu-west-1, bucket: b, credentials: {access_key_id: AKIA, secret_access_key: ` + sentinel + `}}}}`,
		"gcs credentials json": `
destinations:
  connections:
    g: {type: storage, settings: {kind: gcs, gcs: {bucket: b, credentials: '{"private_key": "` + sentinel + `"}'}}}`,
		"azure account key": `
destinations:
  connections:
    a: {type: storage, settings: {kind: azure, azure: {account_url: "https://x.blob.core.windows.net", container: c, shared_key: {account_name: x, account_key: ` + sentinel + `}}}}`,
		"otlp token in values": `
destinations:
  connections:
    a: {type: otlp, settings: {endpoint: "https://otlp.example.com", auth: {token: ` + sentinel + `}}}`,
		"kafka password through structuredConfig": `
datadogForwarder:
  structuredConfig: {kafka: {sasl: {mechanism: plain, username: u, password: ` + sentinel + `}}}`,
		"signing key through structuredConfig": `
archiver:
  structuredConfig: {archive: {signing_key: ` + sentinel + `}}`,
		"password in extraEnv": `
ingest:
  extraEnv: [{name: AUDITSTREAM_KAFKA_SASL_PASSWORD, value: ` + sentinel + `}]`,
		"api key in extraEnv": `
eventbridgeForwarder:
  extraEnv: [{name: DD_API_KEY, value: ` + sentinel + `}]`,
		"oauth token through structuredConfig": `
ingest:
  structuredConfig: {kafka: {sasl: {mechanism: oauthbearer, oauth: {token: ` + sentinel + `}}}}`,
		"oauth client secret through structuredConfig": `
ingest:
  structuredConfig: {kafka: {sasl: {mechanism: oauthbearer, oauth: {token_url: "https://idp/t", client_id: c, client_secret: ` + sentinel + `}}}}`,
		"kafka password in values": `
kafka:
  sasl: {mechanism: plain, username: u, password: ` + sentinel + `}`,
		"signing key in the archive section": `
archiver:
  config: {signing_key: ` + sentinel + `}`,
		"token in place of its hash": `
ingest:
  config: {auth: {tokens: [{name: x, sha256: ` + sentinel + `}]}}`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(t, []string{minimal}, doc)
			if err == nil {
				t.Fatalf("rendered with a secret value in values")
			}
			if bytes.Contains(out, []byte(sentinel)) || strings.Contains(err.Error(), sentinel) {
				t.Errorf("the output shows the secret value:\n%s", out)
			}
		})
	}
	// Rendered with every secret-bearing feature on (references only),
	// nothing carries a secret value and no Secret object is made.
	r := render(t, []string{chartDir + "/ci/all-sinks-values.yaml"}, `
kafka:
  tls: {enabled: true, ca: {existingSecret: ca}, clientCert: {existingSecret: cert}}
  sasl: {mechanism: scram-sha-512, existingSecret: kafka-creds, usernameKey: username}
keda: {enabled: true}
topicsJob: {enabled: true}`)
	for _, m := range r.all {
		if m.kind() == "Secret" {
			t.Errorf("Secret %s rendered", m.name())
		}
		if m.kind() == "ConfigMap" {
			for key, data := range dig(m, "data").(map[string]any) {
				if bad := inlineSecrets(t, []byte(str(data))); len(bad) > 0 {
					t.Errorf("ConfigMap %s %s holds secret values at %q", m.name(), key, bad)
				}
			}
		}
	}
}

// TestChartReplicasCap: consumers never get more replicas than partitions
// unless it is asked for.
func TestChartReplicasCap(t *testing.T) {
	refuse := map[string]string{
		"fixed replicas":    "datadogForwarder: {replicas: 13}",
		"HPA maxReplicas":   "archiver: {autoscaling: {enabled: true, maxReplicas: 13}}",
		"KEDA maxReplicas":  "keda: {enabled: true}\neventbridgeForwarder: {autoscaling: {maxReplicas: 13}}",
		"OTLP KEDA max":     "keda: {enabled: true}\notlpForwarder: {autoscaling: {maxReplicas: 13}}",
		"fewer partitions":  "kafka: {topic: {partitions: 1}}",
		"min above max":     "keda: {enabled: true}\narchiver: {autoscaling: {minReplicas: 5, maxReplicas: 4}}",
		"KEDA default caps": "keda: {enabled: true}\nkafka: {topic: {partitions: 6}}",
	}
	for name, doc := range refuse {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(t, []string{minimal}, doc)
			if err == nil {
				t.Fatal("rendered")
			}
			if !bytes.Contains(out, []byte("partitions")) && !bytes.Contains(out, []byte("minReplicas")) {
				t.Errorf("the error does not explain: %s", out)
			}
		})
	}
	for name, doc := range map[string]string{
		"at the partition count": "datadogForwarder: {replicas: 12}",
		"explicitly allowed":     "datadogForwarder: {replicas: 13, allowReplicasAbovePartitions: true}",
		"more partitions":        "kafka: {topic: {partitions: 24}}\ndatadogForwarder: {replicas: 24}",
		"ingest is no consumer":  "ingest: {replicas: 40}",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := helmTemplate(t, []string{minimal}, doc); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestChartSchema: unknown keys and wrong types are refused by
// values.schema.json before anything renders.
func TestChartSchema(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown top-level key":    "ingset: {replicas: 2}",
		"unknown component key":    "ingest: {replica: 2}",
		"unknown nested key":       "kafka: {sasl: {mechansim: plain}}",
		"unknown config key":       "archiver: {config: {windw: 1h}}",
		"wrong type":               "ingest: {replicas: two}",
		"string for a list":        "kafka: {brokers: k1:9092}",
		"broker without port":      "kafka: {brokers: [k1]}",
		"unknown SASL mechanism":   "kafka: {sasl: {mechanism: gssapi}}",
		"MSK role not an ARN":      "kafka: {sasl: {mechanism: aws_msk_iam, aws: {serviceAccountRoleArn: auditstream-msk}}}",
		"token URL over http":      "kafka: {sasl: {mechanism: oauthbearer, oauth: {tokenUrl: http://idp.example.com/token}}}",
		"unknown oauth key":        "kafka: {sasl: {oauth: {tokenFile: /t}}}",
		"bad duration":             "kafka: {topic: {retention: 7d}}",
		"negative partitions":      "kafka: {topic: {partitions: 0}}",
		"secret mount without dir": "archiver: {secretMounts: [{name: x, secretName: y}]}",
	} {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(t, []string{minimal}, doc)
			if err == nil {
				t.Fatal("rendered")
			}
			if !bytes.Contains(out, []byte("auditstream:")) || !(bytes.Contains(out, []byte("at '/")) || bytes.Contains(out, []byte("values don't meet"))) {
				t.Errorf("not refused by the schema: %s", out)
			}
		})
	}
}

// apiTokens turns the destinations API on with one operator token.
const apiTokens = `
destinationsApi: {enabled: true, auth: {tokens: [{name: op, sha256: 8996d6b84696ec750d902aca93b8f137ae42bb694c731cb98aa37f8f8172fed1, accounts: ["*"]}]}}`

// TestChartRequired: what the chart cannot guess is asked for clearly.
func TestChartRequired(t *testing.T) {
	for name, tc := range map[string]struct {
		files []string
		doc   string
		want  string
	}{
		"no brokers":                       {nil, "ingest: {config: {auth: {disabled: true}}}", "kafka.brokers is required"},
		"no ingest token":                  {nil, "kafka: {brokers: [k:9092]}", "ingest.config.auth.tokens"},
		"SASL without its Secret":          {[]string{minimal}, "kafka: {sasl: {mechanism: plain, username: u}}", "kafka.sasl.existingSecret is required"},
		"SASL without a username":          {[]string{minimal}, "kafka: {sasl: {mechanism: plain, existingSecret: s}}", "kafka.sasl.username or kafka.sasl.usernameKey"},
		"TLS files without TLS":            {[]string{minimal}, "kafka: {tls: {ca: {existingSecret: ca}}}", "kafka.tls.enabled must be true"},
		"decimal memory":                   {[]string{minimal}, "ingest: {resources: {limits: {memory: 1.5Gi}}}", "GOMEMLIMIT is derived"},
		"external secrets store":           {[]string{minimal}, "externalSecrets: {enabled: true}", "externalSecrets.secretStoreRef.name"},
		"API without a key-encryption key": {[]string{minimal}, apiTokens, "encryption.keyring.existingSecret or encryption.kms.keyId is required"},
		"keyring and KMS": {[]string{minimal}, apiTokens + `
encryption: {keyring: {existingSecret: kr}, kms: {keyId: alias/x, region: eu-west-1}}`, "set only one of keyring.existingSecret and kms.keyId"},
		"API without tokens": {[]string{minimal}, "destinationsApi: {enabled: true}\nencryption: {keyring: {existingSecret: kr}}", "destinationsApi.auth.tokens: at least one token"},
		"API token without accounts": {[]string{minimal}, `
destinationsApi: {enabled: true, auth: {tokens: [{name: a, sha256: ` + strings.Repeat("ab", 32) + `, accounts: []}]}}
encryption: {keyring: {existingSecret: kr}}`, "accounts"},
		"API token in clear": {[]string{minimal}, `
destinationsApi: {enabled: true, auth: {tokens: [{name: a, sha256: my-token, accounts: ["*"]}]}}
encryption: {keyring: {existingSecret: kr}}`, "destinationsApi.auth.tokens[0].sha256 is not 64 hex characters"},
		"MSK IAM without TLS":                    {[]string{minimal}, "kafka: {sasl: {mechanism: aws_msk_iam}}", "kafka.tls.enabled must be true with kafka.sasl.mechanism aws_msk_iam"},
		"OAUTHBEARER without TLS":                {[]string{minimal}, "kafka: {sasl: {mechanism: oauthbearer, oauth: {tokenAudience: k}}}", "kafka.tls.enabled must be true with kafka.sasl.mechanism oauthbearer"},
		"OAUTHBEARER without a source":           {[]string{minimal}, "kafka: {tls: {enabled: true}, sasl: {mechanism: oauthbearer}}", "kafka.sasl.oauth: set exactly one of"},
		"OAUTHBEARER with two sources":           {[]string{minimal}, "kafka: {tls: {enabled: true}, sasl: {mechanism: oauthbearer, existingSecret: s, oauth: {tokenKey: t, tokenAudience: k}}}", "kafka.sasl.oauth: set exactly one of"},
		"client credentials without a client id": {[]string{minimal}, "kafka: {tls: {enabled: true}, sasl: {mechanism: oauthbearer, existingSecret: s, oauth: {tokenUrl: 'https://idp/t'}}}", "kafka.sasl.oauth.clientId is required"},
		"client credentials without the Secret":  {[]string{minimal}, "kafka: {tls: {enabled: true}, sasl: {mechanism: oauthbearer, oauth: {tokenUrl: 'https://idp/t', clientId: c}}}", "kafka.sasl.existingSecret is required with kafka.sasl.oauth.tokenUrl"},
		"external id without a role":             {[]string{minimal}, "kafka: {tls: {enabled: true}, sasl: {mechanism: aws_msk_iam, existingSecret: s, aws: {externalIdKey: e}}}", "needs kafka.sasl.aws.roleArn"},
		"MSK IAM with the topics job":            {[]string{chartDir + "/ci/msk-iam-values.yaml"}, "topicsJob: {enabled: true}", "cannot sign in with aws_msk_iam"},
		"OAUTHBEARER with KEDA":                  {[]string{chartDir + "/ci/oauthbearer-values.yaml"}, "keda: {enabled: true}", "KEDA's kafka scaler for plain and scram-* only"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(t, tc.files, tc.doc)
			if err == nil {
				t.Fatal("rendered")
			}
			if !bytes.Contains(out, []byte(tc.want)) {
				t.Errorf("the error does not say %q: %s", tc.want, out)
			}
		})
	}
}

// TestChartGoMemLimit: GOMEMLIMIT follows the memory limit, else the
// request, at goMemLimitPercent.
func TestChartGoMemLimit(t *testing.T) {
	r := render(t, []string{minimal}, `
goMemLimitPercent: 80
ingest: {resources: {requests: {memory: 1000Mi}, limits: {memory: 2Gi}}}
archiver: {resources: {requests: {memory: 500Mi}, limits: null}}`)
	for binary, want := range map[string]string{"ingest": "1638MiB", "archiver": "400MiB", "datadog-forwarder": "409MiB"} {
		d := r.get("Deployment", release+"-auditstream-"+binary)
		var got string
		for _, e := range list(dig(d, "spec", "template", "spec", "containers", 0, "env")) {
			if str(dig(e, "name")) == "GOMEMLIMIT" {
				got = str(dig(e, "value"))
			}
		}
		if got != want {
			t.Errorf("%s: GOMEMLIMIT %q, want %q", binary, got, want)
		}
	}
}

// TestChartTopicsJob: the hook Job creates every topic the services use,
// with their retention.
func TestChartTopicsJob(t *testing.T) {
	r := render(t, []string{minimal}, "topicsJob: {enabled: true}")
	job := r.get("Job", release+"-auditstream-topics")
	if job == nil {
		t.Fatal("no topics Job")
	}
	if hook := str(dig(job, "metadata", "annotations", "helm.sh/hook")); hook != "pre-install,pre-upgrade" {
		t.Errorf("hook %q", hook)
	}
	script := str(dig(job, "spec", "template", "spec", "containers", 0, "args", 0))
	for _, topic := range serviceTopics() {
		want := fmt.Sprintf("create %s %d -1 %d", topic.Name, topic.Partitions, topic.Retention.Milliseconds())
		if topic.Compacted {
			want = fmt.Sprintf("compact %s %d -1", topic.Name, topic.Partitions)
		}
		if !strings.Contains(script, want) {
			t.Errorf("the Job does not %q:\n%s", want, script)
		}
	}
	if !regexp.MustCompile(`(?s)compact\(\) \{[^}]*--config cleanup\.policy=compact`).MatchString(script) {
		t.Errorf("the Job's compact function does not set cleanup.policy=compact:\n%s", script)
	}
	if missing, ok := statusTopicCreated(script); !ok {
		t.Errorf("the Job does not create the status topic as the services would (%q missing):\n%s", missing, script)
	}
	if dig(job, "spec", "template", "spec", "containers", 0, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("the Job's container has a writable root filesystem")
	}
}

// TestChartValuesDocumented: the chart README names every top-level value.
func TestChartValuesDocumented(t *testing.T) {
	var values map[string]any
	if err := yaml.Unmarshal(readRepoFile(t, chartDir+"/values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	readme := string(readRepoFile(t, chartDir+"/README.md"))
	for k := range values {
		if !strings.Contains(readme, "`"+k) {
			t.Errorf("README.md does not mention %s", k)
		}
	}
}
