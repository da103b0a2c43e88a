// Package proxytest starts proxies the way systemd does and holds the
// engine-neutral behaviour suite that every engine of uring-socket-proxyd
// must pass.
//
// It is test support: it is imported by tests and benchmarks, never by the
// proxy itself. It knows nothing about how an engine works; it only speaks
// to a proxy through sockets, the command line, signals and /proc.
package proxytest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// activationShim makes the shell put its own pid into LISTEN_PID and then
// exec the proxy, which keeps that pid: sd_listen_fds() (and v252) insist
// that LISTEN_PID names the process reading it, and a parent cannot know
// the child's pid before it starts. Only /bin/sh is needed, so tests do not
// depend on systemd-socket-activate being installed.
const activationShim = `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`

// Process is a proxy started with socket activation.
type Process struct {
	Cmd    *exec.Cmd
	stderr syncBuffer
	done   chan struct{}
	err    error
}

// Activated describes how to start a socket-activated process.
type Activated struct {
	// Path of the binary, and its arguments (without argv[0]).
	Path string
	Args []string
	// Listeners are passed as fds 3, 4, …; LISTEN_FDS is set to their count.
	Listeners []*os.File
	// Names, if set, becomes LISTEN_FDNAMES (joined with ':').
	Names []string
	// Env is added to a minimal environment (PATH and HOME of the caller).
	Env []string
	// RawListenFDS, when non-empty, replaces the LISTEN_FDS value (for
	// tests of malformed activation).
	RawListenFDS string
	// NoListenPID leaves LISTEN_PID unset.
	NoListenPID bool
}

// Start starts a.Path with the listeners inherited as systemd would pass
// them. The caller must call Stop or Wait.
func Start(a Activated) (*Process, error) {
	var cmd *exec.Cmd
	if a.NoListenPID {
		cmd = exec.Command(a.Path, a.Args...)
	} else {
		cmd = exec.Command("/bin/sh", append([]string{"-c", activationShim, a.Path}, a.Args...)...)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	n := strconv.Itoa(len(a.Listeners))
	if a.RawListenFDS != "" {
		n = a.RawListenFDS
	}
	env = append(env, "LISTEN_FDS="+n)
	if len(a.Names) > 0 {
		env = append(env, "LISTEN_FDNAMES="+strings.Join(a.Names, ":"))
	}
	cmd.Env = append(env, a.Env...)
	cmd.ExtraFiles = a.Listeners
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &p.stderr
	cmd.Stdout = &p.stderr
	// A child the process leaves behind (an nginx worker after its master
	// was killed) would hold the output pipe open and keep Wait, and so
	// Stop, waiting for ever.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", a.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the proxy's process id (the shim execs, so it is the proxy's own).
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Stderr returns what the process has written so far to stdout and stderr.
func (p *Process) Stderr() string { return p.stderr.String() }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits up to d for the process to exit and returns its exit code,
// or an error if it did not exit in time or died from a signal.
func (p *Process) Wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(d):
		return -1, fmt.Errorf("process %d still running after %v", p.Pid(), d)
	}
	if p.err == nil {
		return 0, nil
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, fmt.Errorf("process died from signal %v", ws.Signal())
		}
		return ee.ExitCode(), nil
	}
	return -1, p.err
}

// Stop sends SIGTERM, then SIGKILL if the process has not exited within
// two seconds, and waits for it.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec and
// readers in the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
