package proxytest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
)

// Options are the proxy settings a behaviour test varies. Zero values mean
// the proxy's defaults.
type Options struct {
	ConnectionsMax uint32
	ExitIdleTime   time.Duration // 0: default (never)
	ConnectTimeout time.Duration // 0: default
}

// Harness starts one proxy for one test. The suite creates the listeners
// and the backends; the harness only starts the proxy on them.
type Harness interface {
	Start(t *testing.T, listeners []*os.File, target string, o Options) Proxy
}

// Proxy is a running proxy.
type Proxy interface {
	// Stop asks the proxy to stop as SIGTERM does, waits for it, and
	// returns its exit status (0 for an orderly stop).
	Stop(t *testing.T) int
	// Exited is closed when the proxy stopped by itself.
	Exited() <-chan struct{}
	// Pid is the proxy's process id, for /proc figures; for an in-process
	// engine it is the test process.
	Pid() int
	// Log returns what the proxy logged so far.
	Log() string
}

// InProcess runs engine inside the test process through forward.Run, so
// the race detector sees it.
func InProcess(engine forward.Engine) Harness { return inProcess{engine} }

type inProcess struct{ engine forward.Engine }

type inProcessProxy struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	log    *lockedBuilder
}

func (h inProcess) Start(t *testing.T, files []*os.File, target string, o Options) Proxy {
	t.Helper()
	tg, err := forward.ParseTarget(target)
	if err != nil {
		t.Fatalf("ParseTarget(%q): %v", target, err)
	}
	var ls []forward.Listener
	for _, f := range files {
		l, err := forward.NewListener(f)
		if err != nil {
			t.Fatalf("NewListener: %v", err)
		}
		ls = append(ls, l)
	}
	logBuf := &lockedBuilder{}
	s := &forward.Server{
		Listeners:      ls,
		Target:         tg,
		ConnectTimeout: 5 * time.Second,
		Threads:        2,
		Log:            forward.NewLogger(logBuf, forward.LevelDebug, false),
	}
	if o.ConnectTimeout != 0 {
		s.ConnectTimeout = o.ConnectTimeout
	}
	ro := forward.Options{ConnectionsMax: 256, ExitIdleTime: forward.Never}
	if o.ConnectionsMax != 0 {
		ro.ConnectionsMax = o.ConnectionsMax
	}
	if o.ExitIdleTime != 0 {
		ro.ExitIdleTime = o.ExitIdleTime
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcessProxy{cancel: cancel, done: make(chan struct{}), log: logBuf}
	ready := make(chan struct{})
	go func() {
		defer close(p.done)
		p.err = forward.Run(ctx, readyEngine{h.engine, ready}, s, ro)
	}()
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("engine stopped before it was ready: %v", p.err)
	}
	t.Cleanup(func() { p.Stop(t) })
	return p
}

func (p *inProcessProxy) Stop(t *testing.T) int {
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("engine did not stop within 10s")
	}
	if p.err != nil {
		t.Errorf("engine returned %v", p.err)
		return 1
	}
	return 0
}

func (p *inProcessProxy) Exited() <-chan struct{} { return p.done }
func (p *inProcessProxy) Pid() int                { return os.Getpid() }
func (p *inProcessProxy) Log() string             { return p.log.String() }

// readyEngine lets the harness wait until the engine serves.
type readyEngine struct {
	forward.Engine
	ready chan struct{}
}

func (e readyEngine) Serve(ctx context.Context, s *forward.Server, ready func()) error {
	return e.Engine.Serve(ctx, s, func() { ready(); close(e.ready) })
}

// Binary runs a proxy binary with real socket activation. args come before
// the suite's own options (e.g. "--engine=epoll").
func Binary(path string, args ...string) Harness { return binary{path, args} }

type binary struct {
	path string
	args []string
}

type binaryProxy struct{ p *Process }

func (h binary) Start(t *testing.T, files []*os.File, target string, o Options) Proxy {
	t.Helper()
	args := append([]string{}, h.args...)
	if o.ConnectionsMax != 0 {
		args = append(args, fmt.Sprintf("--connections-max=%d", o.ConnectionsMax))
	}
	if o.ExitIdleTime != 0 {
		args = append(args, fmt.Sprintf("--exit-idle-time=%dus", o.ExitIdleTime.Microseconds()))
	}
	if o.ConnectTimeout != 0 {
		args = append(args, fmt.Sprintf("--connect-timeout=%dus", o.ConnectTimeout.Microseconds()))
	}
	args = append(args, target)
	p, err := Start(Activated{Path: h.path, Args: args, Listeners: files, Env: []string{"SYSTEMD_LOG_LEVEL=debug"}})
	if err != nil {
		t.Fatal(err)
	}
	bp := &binaryProxy{p}
	t.Cleanup(func() {
		bp.p.Stop()
		if t.Failed() {
			t.Logf("proxy output:\n%s", bp.p.Stderr())
		}
	})
	return bp
}

func (b *binaryProxy) Stop(t *testing.T) int {
	b.p.Stop()
	code, err := b.p.Wait(time.Second)
	if err != nil {
		t.Errorf("proxy: %v", err)
	}
	return code
}

func (b *binaryProxy) Exited() <-chan struct{} { return b.p.Done() }
func (b *binaryProxy) Pid() int                { return b.p.Pid() }
func (b *binaryProxy) Log() string             { return b.p.Stderr() }

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
