package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// DefaultStopTimeout is how long children get to stop after SIGTERM before
// they are killed.
const DefaultStopTimeout = 10 * time.Second

// Supervisor runs services as child processes and stops them together.
type Supervisor struct {
	// Stdout and Stderr receive the children's output, each line prefixed
	// with the service name. Nil discards it.
	Stdout, Stderr io.Writer
	// Env is the environment of every child (os.Environ form). When a key
	// appears twice the last value wins.
	Env []string
	// Log reports starts, stops and deaths. Nil logs nothing.
	Log *zap.Logger
	// StopTimeout bounds the wait after SIGTERM; then SIGKILL. Zero means
	// DefaultStopTimeout.
	StopTimeout time.Duration
}

type child struct {
	svc    Service
	cmd    *exec.Cmd
	out    []*prefixWriter
	done   chan struct{} // closed when the process has exited and its output is written
	status string        // how it exited, set before done is closed
}

// Run starts every service, calls started (when not nil) once all are
// running, and waits. When ctx is done it stops the children and returns
// nil. When a child exits on its own it stops the others and returns an
// error naming it: in the dev stack every service is meant to run until
// told to stop.
func (s *Supervisor) Run(ctx context.Context, svcs []Service, started func()) error {
	log := s.Log
	if log == nil {
		log = zap.NewNop()
	}
	stdout, stderr := s.Stdout, s.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if _, ok := stdout.(*syncWriter); !ok {
		stdout = &syncWriter{out: stdout}
	}
	if _, ok := stderr.(*syncWriter); !ok {
		stderr = &syncWriter{out: stderr}
	}
	width := 0
	for _, svc := range svcs {
		width = max(width, len(svc.Name))
	}

	exited := make(chan *child, len(svcs))
	var children []*child
	for _, svc := range svcs {
		c, err := s.start(svc, width, stdout, stderr)
		if err != nil {
			s.stop(log, children)
			return fmt.Errorf("start %s: %w", svc.Name, err)
		}
		log.Info("started service", zap.String("service", svc.Name), zap.Int("pid", c.cmd.Process.Pid), zap.Strings("args", svc.Args))
		children = append(children, c)
		go func() {
			err := c.cmd.Wait()
			for _, w := range c.out {
				_ = w.Flush()
			}
			c.status = exitStatus(c.cmd, err)
			close(c.done)
			exited <- c
		}()
	}
	if started != nil {
		started()
	}

	select {
	case <-ctx.Done():
		log.Info("stopping services")
		s.stop(log, children)
		return nil
	case c := <-exited:
		log.Error("service exited unexpectedly; stopping the others", zap.String("service", c.svc.Name), zap.String("status", c.status))
		s.stop(log, children)
		return fmt.Errorf("service %s exited unexpectedly (%s)", c.svc.Name, c.status)
	}
}

func (s *Supervisor) start(svc Service, width int, stdout, stderr io.Writer) (*child, error) {
	prefix := svc.Name + strings.Repeat(" ", width-len(svc.Name)) + " | "
	cmd := exec.Command(svc.Path, svc.Args...)
	cmd.Env = s.Env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	out, errOut := newPrefixWriter(stdout, prefix), newPrefixWriter(stderr, prefix)
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.SysProcAttr = childSysProcAttr()
	// A grandchild that keeps the output pipes open must not hold up Wait.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{svc: svc, cmd: cmd, out: []*prefixWriter{out, errOut}, done: make(chan struct{})}, nil
}

// stop sends SIGTERM to every child still running, waits up to StopTimeout
// for them all, then kills the rest.
func (s *Supervisor) stop(log *zap.Logger, children []*child) {
	timeout := s.StopTimeout
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	for _, c := range children {
		select {
		case <-c.done:
		default:
			signalGroup(c.cmd, syscall.SIGTERM)
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	expired := false
	for _, c := range children {
		if !expired {
			select {
			case <-c.done:
			case <-deadline.C:
				expired = true
			}
		}
		if expired {
			select {
			case <-c.done:
			default:
				log.Warn("service did not stop in time; killing it", zap.String("service", c.svc.Name), zap.Duration("timeout", timeout))
				signalGroup(c.cmd, syscall.SIGKILL)
				<-c.done
			}
		}
		log.Info("service stopped", zap.String("service", c.svc.Name), zap.String("status", c.status))
	}
}

// signalGroup signals the child's process group (the child and anything it
// started), falling back to the child alone.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	pid := cmd.Process.Pid
	if err := syscall.Kill(-pid, sig); err != nil {
		_ = cmd.Process.Signal(sig)
	}
}

func exitStatus(cmd *exec.Cmd, err error) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exited"
}
