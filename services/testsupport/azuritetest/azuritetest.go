// Package azuritetest starts Azurite, Microsoft's Azure Storage emulator,
// for a test: its blob service alone, in memory, on a free loopback port.
//
// Azurite is an npm package that `make tools` installs into
// .tools/azurite; AUDITSTREAM_AZURITE may name another azurite-blob. A test
// that needs it and cannot find it fails: Azure's tests are never skipped
// in silence.
package azuritetest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Azurite's well-known development account, published in its
// documentation; it opens nothing but an emulator.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// EnvBinary names an azurite-blob to use instead of the one in .tools.
const EnvBinary = "AUDITSTREAM_AZURITE"

// toolPath is where `make tools` installs azurite-blob, from the
// repository's root.
var toolPath = filepath.Join(".tools", "azurite", "node_modules", ".bin", "azurite-blob")

// startTimeout bounds one start, from exec to the first answer.
const startTimeout = 30 * time.Second

// Azurite is a running blob service.
type Azurite struct {
	// URL is the account's blob endpoint:
	// http://127.0.0.1:<port>/devstoreaccount1.
	URL string
	// Addr is the host and port it listens on.
	Addr string
}

// Binary finds azurite-blob: $AUDITSTREAM_AZURITE, or
// .tools/azurite/node_modules/.bin/azurite-blob in the working directory or
// the nearest of its parents that has one.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, toolPath)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("azurite-blob not found in %s of this directory or any parent: run make tools (or set %s)", toolPath, EnvBinary)
		}
		dir = parent
	}
}

// Start starts Azurite for t and stops it when t ends. It fails t when
// Azurite is not installed or does not start.
func Start(t testing.TB) *Azurite {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	// The port is picked free and then given to Azurite, so another
	// process can take it in between: a start that fails is tried again
	// on a new port.
	var errs []error
	for range 5 {
		a, err := start(t, bin)
		if err == nil {
			return a
		}
		errs = append(errs, err)
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("azurite did not start: %v", errors.Join(errs...))
	return nil
}

// errPortTaken is a start that failed because the port was taken.
var errPortTaken = errors.New("port taken")

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer is Azurite's output, written by the process and read by the
// test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // enough to tell why it failed
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t testing.TB, bin string) (*Azurite, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--silent")
	cmd.Dir = t.TempDir() // for anything it writes despite keeping data in memory
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so stopping it reaches node's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}

	a := &Azurite{URL: "http://" + addr + "/" + AccountName, Addr: addr}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		// Any HTTP answer (an authentication error is one) means it serves.
		resp, err := client.Get(a.URL + "?comp=list")
		if err == nil {
			resp.Body.Close()
			t.Cleanup(stop)
			return a, nil
		}
		select {
		case err := <-exited:
			if strings.Contains(out.String(), "EADDRINUSE") {
				return nil, fmt.Errorf("azurite on port %d: %w: %s", port, errPortTaken, out.String())
			}
			return nil, fmt.Errorf("azurite on port %d exited (%v): %s", port, err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("azurite on port %d did not answer within %v: %s", port, startTimeout, out.String())
		}
	}
}
