package e2eharness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/auditstream/auditstream/services/internal/bearer"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/secretbox"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

// Installation is what a test runs the API against: an in-process broker
// and a key ring of its own.
type Installation struct {
	Cluster *kafkatest.Cluster
	Keyring string
}

// NewInstallation starts a broker for the test and writes a key ring
// (key k1) into its temporary directory.
func NewInstallation(t testing.TB) Installation {
	t.Helper()
	c := kafkatest.New(t)
	keyring := filepath.Join(t.TempDir(), "keyring.yaml")
	if err := secretbox.GenerateKeyring(keyring, "k1"); err != nil {
		t.Fatal(err)
	}
	return Installation{Cluster: c, Keyring: keyring}
}

// UseCluster points k at c, with two partitions for the events and the
// destinations topics, so that tests see more than one partition.
func UseCluster(k *kafka.Config, c *kafkatest.Cluster) {
	k.Brokers = c.Brokers()
	k.Topics.Events.Partitions = 2
	k.Topics.Destinations.Partitions = 2
}

// Token is a bearer token as the API's auth section lists it: by its
// SHA-256, for the accounts given ("*" for an operator).
func Token(name, token string, accounts ...string) bearer.Token {
	s := sha256.Sum256([]byte(token))
	return bearer.Token{Name: name, SHA256: hex.EncodeToString(s[:]), Accounts: accounts}
}

// Service is the destinations API's service as a test runs it; an
// interface, so that the api package's own tests can use this package.
type Service interface {
	Start(ctx context.Context, log *zap.Logger) (wait func())
	WaitReady(ctx context.Context) error
	Close()
}

// Serve builds a service with a debug logger writing JSON into logs,
// starts it, serves the handler build returns on a test server and
// returns the server's URL once the service has read the destinations
// topic. Everything stops when the test ends.
func Serve(t testing.TB, logs *Log, build func(ctx context.Context, log *zap.Logger) (Service, http.Handler, error)) string {
	t.Helper()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zap.DebugLevel))
	ctx, cancel := context.WithCancel(context.Background())
	svc, handler, err := build(ctx, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	wait := svc.Start(ctx, log)
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wait()
		svc.Close()
	})
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	if err := svc.WaitReady(rctx); err != nil {
		t.Fatalf("the API did not read the destinations topic: %v", err)
	}
	return srv.URL
}
