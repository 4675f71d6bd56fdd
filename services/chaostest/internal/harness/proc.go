package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// replica is one process of a service: the real binary with its config,
// its HTTP port picked free at each start, its output appended to one log
// file across restarts.
type replica struct {
	service string
	index   int
	bin     string
	config  string
	env     []string
	logPath string
	// onExit is told of an exit the harness did not cause.
	onExit func(r *replica, err error)

	mu       sync.Mutex
	cmd      *exec.Cmd
	addr     string
	done     chan struct{}
	stopping bool
	starts   int
	kills    int
}

func (r *replica) name() string { return r.service + "-" + strconv.Itoa(r.index) }

// start runs the binary; it returns once the process exists.
func (r *replica) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", r.logPath, err)
	}
	cmd := exec.Command(r.bin, "--config", r.config)
	cmd.Env = append(append(os.Environ(), r.env...), "AUDITSTREAM_HTTP_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, and killed with the harness, so no replica
	// outlives a run that was interrupted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s (%s): %w", r.name(), r.bin, err)
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.addr, r.done, r.stopping = cmd, addr, done, false
	r.starts++
	r.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		r.mu.Lock()
		expected := r.stopping
		r.mu.Unlock()
		close(done)
		if !expected && r.onExit != nil {
			r.onExit(r, err)
		}
	}()
	return nil
}

// stopRequested says whether the harness stopped or killed the process
// since it last started it.
func (r *replica) stopRequested() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}

// running says whether the process is up.
func (r *replica) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (r *replica) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.stopping = true
	r.kills++
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop asks the process to shut down (SIGTERM) and kills it after timeout.
func (r *replica) stop(timeout time.Duration) error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.stopping = true
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", r.name(), timeout)
	}
}

// waitReady polls /readyz until it answers 200, the process exits, or ctx
// ends.
func (r *replica) waitReady(ctx context.Context) error {
	r.mu.Lock()
	addr, done := r.addr, r.done
	r.mu.Unlock()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready; see %s", r.name(), r.logPath)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; see %s", r.name(), ctx.Err(), r.logPath)
		case <-tick.C:
		}
	}
}

// get returns the body of a GET of path on the replica's HTTP port.
func (r *replica) get(ctx context.Context, path string) ([]byte, error) {
	r.mu.Lock()
	addr := r.addr
	r.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func newReplica(service string, index int, binDir, config, logDir string, env []string) *replica {
	return &replica{
		service: service, index: index, bin: filepath.Join(binDir, service), config: config, env: env,
		logPath: filepath.Join(logDir, service+"-"+strconv.Itoa(index)+".log"),
	}
}
