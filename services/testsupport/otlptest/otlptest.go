// Package otlptest runs the OpenTelemetry Collector's own OTLP receiver
// (otlpreceiver, HTTP only) in the test process, on 127.0.0.1, with a
// consumer that records every ExportLogsServiceRequest it accepted and the
// request's headers. It is the real peer of the OTLP sink's tests; only
// tests import it, so no service binary links the Collector.
package otlptest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

// Export is one request the receiver passed to its consumer.
type Export struct {
	Logs plog.Logs
	// Header holds the request's headers (client metadata), by lower-case
	// name.
	Header map[string][]string
}

// Receiver is a running OTLP receiver.
type Receiver struct {
	// URL is the receiver's base URL (http://127.0.0.1:port); logs go to
	// URL + "/v1/logs".
	URL string

	mu      sync.Mutex
	exports []Export
	changed chan struct{}
}

// Start runs an OTLP/HTTP receiver until the end of the test.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{changed: make(chan struct{})}
	logs, err := consumer.NewLogs(r.consume)
	if err != nil {
		t.Fatal(err)
	}
	f := otlpreceiver.NewFactory()
	var lastErr error
	// The receiver binds the address it is configured with and does not
	// say which port :0 gave it, so a free port below the ephemeral range
	// is picked and the start retried should another listener take it.
	for range 20 {
		addr, err := freeAddr()
		if err != nil {
			lastErr = err
			continue
		}
		cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
		cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
		http := cfg.Protocols.HTTP.GetOrInsertDefault()
		http.ServerConfig.NetAddr.Endpoint = addr
		http.ServerConfig.IncludeMetadata = true
		rcv, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, logs)
		if err != nil {
			t.Fatal(err)
		}
		if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(func() { shutdown(t, rcv) })
		r.URL = "http://" + addr
		return r
	}
	t.Fatalf("otlp receiver did not start: %v", lastErr)
	return nil
}

func shutdown(t testing.TB, rcv receiver.Logs) {
	if err := rcv.Shutdown(context.Background()); err != nil {
		t.Errorf("otlp receiver shutdown: %v", err)
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func (r *Receiver) consume(ctx context.Context, ld plog.Logs) error {
	info := client.FromContext(ctx)
	h := map[string][]string{}
	for k := range info.Metadata.Keys() {
		h[k] = info.Metadata.Get(k)
	}
	// The receiver's buffers are reused once consume returns.
	cp := plog.NewLogs()
	ld.CopyTo(cp)
	r.mu.Lock()
	r.exports = append(r.exports, Export{Logs: cp, Header: h})
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return nil
}

// Exports are the requests received so far.
func (r *Receiver) Exports() []Export {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Export(nil), r.exports...)
}

// Changed is closed when the next request is received.
func (r *Receiver) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}
