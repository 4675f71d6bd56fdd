package devstack

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"
)

// Paths from this package's directory.
const (
	ingestDir      = "../../../ingest"
	devConfigDir   = "../../config"
	seedAttributes = "../../../../proto/auditevent/testdata/seed-attributes.json"
)

// TestEndToEnd builds the real ingest service, runs it under devstack with
// the embedded broker, posts the seed event and reads it back from Kafka.
func TestEndToEnd(t *testing.T) {
	if _, err := os.Stat(filepath.Join(ingestDir, "main.go")); err != nil {
		t.Skip("ingest binary not built yet")
	}
	seed, err := os.ReadFile(seedAttributes)
	if err != nil {
		t.Skipf("seed attributes not in the repo yet: %v", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to build ingest")
	}

	bin, configs := t.TempDir(), t.TempDir()
	build := exec.Command(goTool, "build", "-o", filepath.Join(bin, "ingest"), ".")
	build.Dir = ingestDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ingest: %v\n%s", err, out)
	}
	// Only ingest runs here, with the dev config the dev stack uses.
	cfg, err := os.ReadFile(filepath.Join(devConfigDir, "ingest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configs, "ingest.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)

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
			DataDir: t.TempDir(), BrokerAddr: "127.0.0.1:0", BinDir: bin, ConfigDir: configs,
			Env:    []string{"AUDITSTREAM_HTTP_ADDR=" + httpAddr},
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
	if info.IngestURL != "http://"+httpAddr {
		t.Fatalf("ingest URL %q, want http://%s", info.IngestURL, httpAddr)
	}

	// Wait for ingest to be ready (its topic bootstrapped, Kafka reachable).
	httpc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-result:
			t.Fatalf("dev stack stopped before ingest was ready: %v", err)
		default:
		}
		resp, err := httpc.Get(info.IngestURL + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest not ready after 60s (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	resp, err := httpc.Post(info.IngestURL+"/v1/events", "application/json", bytes.NewReader(seed))
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
	var rec *kgo.Record
	for rec == nil {
		fetches := consumer.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatal("no record on audit.events within 30s")
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		if recs := fetches.Records(); len(recs) > 0 {
			if len(recs) > 1 {
				t.Errorf("%d records on audit.events, want 1", len(recs))
			}
			rec = recs[0]
		}
	}
	got, err := auditevent.DecodeRecord(rec)
	if err != nil {
		t.Fatalf("decode record at %d/%d: %v", rec.Partition, rec.Offset, err)
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

	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("dev stack shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev stack did not stop")
	}
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
