package devstack

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"
)

// Paths from this package's directory.
const (
	servicesDir    = "../../.."
	devConfigDir   = "../../config"
	seedAttributes = "../../../../proto/auditevent/testdata/seed-attributes.json"
)

// e2eServices are the services TestEndToEnd runs, with the address in their
// dev config that it replaces by a free one.
var e2eServices = map[string]string{
	"ingest":        "127.0.0.1:8080",
	DestinationsAPI: "127.0.0.1:8084",
	"archiver":      "127.0.0.1:8083",
}

// TestEndToEnd builds the real ingest, destinations API and archiver, runs
// them under devstack with their dev configs and the embedded broker, and
// goes through the quick start: the API answers with the dev token that
// devstack prints; a storage profile of kind local and the audit-log
// settings naming it are put through the API; the seed event posted to
// ingest is on the events topic and is archived both into the profile's
// directory (the account's API configuration) and into .data/archive (the
// destinations file's "*" route).
func TestEndToEnd(t *testing.T) {
	seed, err := os.ReadFile(seedAttributes)
	if err != nil {
		t.Fatalf("seed attributes: %v", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go tool on PATH to build the services")
	}

	bin, configs, data := t.TempDir(), t.TempDir(), t.TempDir()
	destDir := filepath.Join(configs, "destinations")
	// The dev configs as the dev stack has them, with free ports, the data
	// under this test's directory and the destinations files copied along;
	// only the archiver's late flush is shortened, so the seed event (of
	// 2024, a closed window) is written at once.
	addrs := map[string]string{}
	for name := range e2eServices {
		addrs[name] = freeAddr(t)
		build := exec.Command(goTool, "build", "-o", filepath.Join(bin, name), ".")
		build.Dir = filepath.Join(servicesDir, name)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	rewrite := func(from, to string) {
		t.Helper()
		cfg, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		pairs := []string{
			".data/", data + "/",
			"services/devstack/config/destinations/", destDir + "/",
			"late_flush_after: 30s", "late_flush_after: 1s",
		}
		for name, devAddr := range e2eServices {
			pairs = append(pairs, devAddr, addrs[name])
		}
		if err := os.WriteFile(to, []byte(strings.NewReplacer(pairs...).Replace(string(cfg))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name := range e2eServices {
		rewrite(filepath.Join(devConfigDir, name+".yaml"), filepath.Join(configs, name+".yaml"))
	}
	if err := os.Mkdir(destDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dests, err := filepath.Glob(filepath.Join(devConfigDir, "destinations", "*.yaml"))
	if err != nil || len(dests) == 0 {
		t.Fatalf("no destinations files in the dev config: %v", err)
	}
	for _, f := range dests {
		rewrite(f, filepath.Join(destDir, filepath.Base(f)))
	}

	var stdout, stderr lockedBuffer
	defer func() {
		if t.Failed() {
			t.Logf("dev stack stdout:\n%s\ndev stack stderr:\n%s", stdout.String(), stderr.String())
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan Info, 1)
	result := make(chan error, 1)
	go func() {
		result <- Run(ctx, Options{
			DataDir: data, BrokerAddr: "127.0.0.1:0", BinDir: bin, ConfigDir: configs,
			Stdout: &stdout, Stderr: &stderr, Log: zaptest.NewLogger(t), StopTimeout: 10 * time.Second,
			Ready: func(i Info) { ready <- i },
		})
	}()
	var info Info
	select {
	case info = <-ready:
	case err := <-result:
		t.Fatalf("dev stack: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("dev stack did not start")
	}
	if info.IngestURL != "http://"+addrs["ingest"] {
		t.Fatalf("ingest URL %q, want http://%s", info.IngestURL, addrs["ingest"])
	}
	apiURL := "http://" + addrs[DestinationsAPI]
	if info.DestinationsAPIURL != apiURL || info.DestinationsAPIToken != DevToken {
		t.Fatalf("destinations API %q with token %q, want %s with the dev token", info.DestinationsAPIURL, info.DestinationsAPIToken, apiURL)
	}
	// The keyring the configs name was made before the services started,
	// readable by its owner only, and the banner shows the API and token.
	keyring := filepath.Join(data, "destinations-keyring.yaml")
	if !slices.Equal(info.Keyrings, []string{keyring}) {
		t.Errorf("keyrings %q, want [%s]", info.Keyrings, keyring)
	}
	if st, err := os.Stat(keyring); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("keyring %s: %v, mode %v; want mode 0600", keyring, err, st)
	}
	for _, want := range []string{"destinations  " + apiURL, "dev token     " + DevToken, "Bearer " + DevToken, "console       " + apiURL + "/console/"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the banner does not show %q", want)
		}
	}

	httpc := &http.Client{Timeout: 5 * time.Second}
	ready200 := func(url string) func() bool {
		return func() bool {
			resp, err := httpc.Get(url)
			if err != nil {
				return false
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}
	}
	// Ready: ingest's topic bootstrapped; the API and the archiver have
	// read the destinations topic.
	for name, addr := range addrs {
		until(t, result, 60*time.Second, name+" ready", ready200("http://"+addr+"/readyz"))
	}

	// The console the banner names: the binary serves it, and the dev
	// token signs in.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Timeout: 5 * time.Second, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	signInPage, err := browser.Get(apiURL + "/console/sign-in")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(signInPage.Body)
	_ = signInPage.Body.Close()
	token := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if signInPage.StatusCode != http.StatusOK || token == nil || !strings.Contains(signInPage.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("GET /console/sign-in = %d, CSP %q:\n%s", signInPage.StatusCode, signInPage.Header.Get("Content-Security-Policy"), page)
	}
	signedIn, err := browser.PostForm(apiURL+"/console/sign-in", url.Values{"csrf": {string(token[1])}, "token": {info.DestinationsAPIToken}})
	if err != nil {
		t.Fatal(err)
	}
	_ = signedIn.Body.Close()
	if signedIn.StatusCode != http.StatusSeeOther || signedIn.Header.Get("Location") != "/console/" {
		t.Fatalf("signing in to the console with the dev token = %d %q", signedIn.StatusCode, signedIn.Header.Get("Location"))
	}

	// The quick start through the API, with the token devstack printed.
	api := func(method, path, body string, want int) map[string]any {
		t.Helper()
		req, err := http.NewRequest(method, apiURL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+info.DestinationsAPIToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, data)
		}
		var out map[string]any
		if len(data) > 0 {
			if err := json.Unmarshal(data, &out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, data)
			}
		}
		return out
	}
	account := SeedAccount
	profileDir := filepath.Join(data, "api-archive")
	api("PUT", "/v1/accounts/"+account+"/storage-profiles/local-dev",
		`{"type": "storage", "settings": {"kind": "local", "local": {"dir": "`+profileDir+`"}}}`, http.StatusCreated)
	api("PUT", "/v1/accounts/"+account+"/audit-logs",
		`{"streaming": false, "connections": [], "storage_profile": "local-dev"}`, http.StatusOK)
	if got := api("GET", "/v1/accounts/"+account+"/audit-logs", "", http.StatusOK); got["storage_profile"] != "local-dev" {
		t.Errorf("audit-logs read back %v, want storage_profile local-dev", got)
	}
	// Testing the profile writes a marker object where the archive goes.
	verdict := api("POST", "/v1/accounts/"+account+"/storage-profiles/local-dev/test", "", http.StatusOK)
	if verdict["result"] != "ok" {
		t.Errorf("test of the local profile: %v, want result ok", verdict)
	}
	if key, _ := verdict["marker_key"].(string); key == "" {
		t.Errorf("test verdict %v names no marker", verdict)
	} else if _, err := os.Stat(filepath.Join(profileDir, filepath.FromSlash(key))); err != nil {
		t.Errorf("the test's marker: %v", err)
	}
	// A secret is sealed with the dev keyring and never read back.
	const apiKey = "0123456789abcdef0123456789abcdef"
	conn := api("PUT", "/v1/accounts/"+account+"/connections/my-datadog",
		`{"type": "datadog", "settings": {"site": "datadoghq.com", "api_key": "`+apiKey+`"}}`, http.StatusCreated)
	if got := fmt.Sprint(dig(conn, "settings", "api_key")); got != "map[last4:cdef set:true]" {
		t.Errorf("api_key reads %s, want set with its last 4", got)
	}
	// Without the token: 401.
	resp, err := httpc.Get(apiURL + "/v1/accounts/" + account + "/audit-logs")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET audit-logs without a token = %d, want 401", resp.StatusCode)
	}
	// The archiver routes by the account's settings once it applied the
	// three records written (profile, settings, connection).
	until(t, result, 30*time.Second, "the archiver to apply the API's records", func() bool {
		return metricValue(httpc, "http://"+addrs["archiver"]+"/metrics", "auditstream_destinations_topic_records_applied_total") >= 3
	})

	resp, err = httpc.Post(info.IngestURL+"/v1/events", "application/json", bytes.NewReader(seed))
	if err != nil {
		t.Fatalf("POST /v1/events: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events = %d, want 202: %s", resp.StatusCode, body)
	}

	want, err := auditevent.DecodeJSON(seed, auditevent.DecodeOptions{})
	if err != nil {
		t.Fatalf("decode seed: %v", err)
	}
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(info.Brokers),
		kgo.ConsumeTopics("audit.events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	// The topic also holds the API's audit events of the three changes.
	var rec *kgo.Record
	var got *auditlogv1.AuditEvent
	actions := map[string]string{}
	for rec == nil {
		fetches := consumer.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatalf("no seed event on audit.events within 30s (API events seen: %v)", actions)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		for _, r := range fetches.Records() {
			ev, err := auditevent.DecodeRecord(r)
			if err != nil {
				t.Fatalf("decode record at %d/%d: %v", r.Partition, r.Offset, err)
			}
			if ev.GetRequest().GetId() == want.GetRequest().GetId() {
				if rec != nil {
					t.Errorf("the seed event is on audit.events twice")
				}
				rec, got = r, ev
			} else {
				actions[ev.GetRequest().GetAction()] = ev.GetActor().GetId()
			}
		}
	}
	for _, a := range []string{"create-audit-log-storage-profile", "update-audit-log-settings", "create-audit-log-connection"} {
		if actions[a] != "devstack-operator" {
			t.Errorf("audit event %s by %q, want one by the dev token devstack-operator (seen %v)", a, actions[a], actions)
		}
	}
	if string(rec.Key) != auditevent.AccountID(want) {
		t.Errorf("record key %q, want the account id %q", rec.Key, auditevent.AccountID(want))
	}
	if got.GetId() == "" {
		t.Error("ingest assigned no event id")
	}
	for _, c := range []struct{ field, got, want string }{
		{"account", auditevent.AccountID(got), auditevent.AccountID(want)},
		{"actor.id", got.GetActor().GetId(), want.GetActor().GetId()},
		{"actor.access-token.token", got.GetActor().GetAccessToken().GetToken(), want.GetActor().GetAccessToken().GetToken()},
		{"request.action", got.GetRequest().GetAction(), want.GetRequest().GetAction()},
		{"request.id", got.GetRequest().GetId(), want.GetRequest().GetId()},
		{"target.id", got.GetTarget().GetId(), want.GetTarget().GetId()},
		{"timestamp", got.GetTimestamp().AsTime().String(), want.GetTimestamp().AsTime().String()},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}

	// Archived into the storage profile set through the API and, by the
	// file's "*" route, into the dev stack's own archive.
	day := filepath.Join(account, want.GetTimestamp().AsTime().UTC().Format("2006/01/02"))
	for _, dir := range []string{filepath.Join(profileDir, day), filepath.Join(data, "archive", day)} {
		until(t, result, 60*time.Second, "the seed event archived in "+dir, func() bool {
			return archivedEvent(t, dir, got.GetId())
		})
	}

	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("dev stack shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev stack did not stop")
	}
	// Nothing the stack wrote (the broker's log, the archives, the
	// keyring's directory) holds the API key in plain text.
	if secret := findInFiles(t, data, apiKey); secret != "" {
		t.Errorf("the API key is in plain text in %s", secret)
	}
}

// until polls cond on a ticker until it holds; it fails the test at the
// timeout, or at once if the dev stack stopped.
func until(t *testing.T, stopped <-chan error, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case err := <-stopped:
			t.Fatalf("dev stack stopped while waiting for %s: %v", what, err)
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// metricValue is the value of an unlabelled metric on a /metrics page, or
// -1.
func metricValue(c *http.Client, url, name string) float64 {
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// archivedEvent reports whether a .json.gz object in dir holds the event
// with id.
func archivedEvent(t *testing.T, dir, id string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.json.gz"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if bytes.Contains(data, []byte(id)) {
			return true
		}
	}
	return false
}

// findInFiles returns a file under dir that holds s in plain text, or "".
func findInFiles(t *testing.T, dir, s string) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(s)) {
			found = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
