package proxytest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
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
	// DrainTimeout is how long a stop lets open connections finish. 0
	// closes them at once, which keeps the suite's stops quick; the
	// proxy's own default (10s) is what DrainDefault asks for.
	DrainTimeout time.Duration
	IdleTimeout  time.Duration // 0: default (never)
	// Names are the listeners' FileDescriptorName= values, in order.
	Names []string
	// Targets maps a listener name to its target (--target=NAME=TARGET);
	// the target given to Start is the default, "" for none.
	Targets map[string]string
	// LogConnections asks for one log line per connection.
	LogConnections bool
	// ProxyProtocol is --proxy-protocol's value, "" for none.
	ProxyProtocol string
}

// DrainDefault asks for the proxy's default drain time.
const DrainDefault time.Duration = -1

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
	// Terminate asks the proxy to stop as SIGTERM does and returns at
	// once; a second call is a second SIGTERM.
	Terminate(t *testing.T)
	// Wait waits up to d for the proxy to exit and returns its status.
	Wait(t *testing.T, d time.Duration) int
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
	cancel     context.CancelFunc
	hurry      chan struct{}
	terminated int
	done       chan struct{}
	err        error
	log        *lockedBuilder
}

// DefaultDrainTimeout is the proxy's default --drain-timeout.
const DefaultDrainTimeout = 10 * time.Second

func (h inProcess) Start(t *testing.T, files []*os.File, target string, o Options) Proxy {
	t.Helper()
	var tg *forward.Target
	if target != "" {
		var err error
		if tg, err = forward.ParseTarget(target); err != nil {
			t.Fatalf("ParseTarget(%q): %v", target, err)
		}
	}
	var ls []forward.Listener
	for i, f := range files {
		l, err := forward.NewListener(f)
		if err != nil {
			t.Fatalf("NewListener: %v", err)
		}
		if i < len(o.Names) {
			l.Name = o.Names[i]
		}
		ls = append(ls, l)
	}
	var named []forward.NamedTarget
	for name, spec := range o.Targets {
		nt, err := forward.ParseTarget(spec)
		if err != nil {
			t.Fatalf("ParseTarget(%q): %v", spec, err)
		}
		named = append(named, forward.NamedTarget{Name: name, Target: nt})
	}
	if err := forward.AssignTargets(ls, tg, named); err != nil {
		t.Fatalf("AssignTargets: %v", err)
	}
	logBuf := &lockedBuilder{}
	s := &forward.Server{
		Listeners:      ls,
		Target:         tg,
		ConnectTimeout: 5 * time.Second,
		Threads:        2,
		Log:            forward.NewLogger(logBuf, forward.LevelDebug, false),
		IdleTimeout:    o.IdleTimeout,
		LogConnections: o.LogConnections,
		NoDelay:        true,
	}
	if o.ProxyProtocol != "" {
		v, err := forward.ParseProxyVersion(o.ProxyProtocol)
		if err != nil {
			t.Fatal(err)
		}
		s.ProxyProtocol = v
	}
	s.PrepareListeners()
	if o.ConnectTimeout != 0 {
		s.ConnectTimeout = o.ConnectTimeout
	}
	p := &inProcessProxy{done: make(chan struct{}), hurry: make(chan struct{}), log: logBuf}
	ro := forward.Options{ConnectionsMax: 256, ExitIdleTime: forward.Never, DrainTimeout: o.DrainTimeout, Hurry: p.hurry}
	if o.DrainTimeout == DrainDefault {
		ro.DrainTimeout = DefaultDrainTimeout
	}
	if o.ConnectionsMax != 0 {
		ro.ConnectionsMax = o.ConnectionsMax
	}
	if o.ExitIdleTime != 0 {
		ro.ExitIdleTime = o.ExitIdleTime
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
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
	select {
	case <-p.done:
	default:
		p.Terminate(t)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
			p.Terminate(t) // as the binary harness escalates to SIGKILL
		}
	}
	return p.Wait(t, 10*time.Second)
}

func (p *inProcessProxy) Terminate(t *testing.T) {
	p.terminated++
	switch p.terminated {
	case 1:
		p.cancel()
	case 2:
		close(p.hurry)
	}
}

func (p *inProcessProxy) Wait(t *testing.T, d time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("engine did not stop within %v", d)
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
func Binary(path string, args ...string) Harness { return binary{path: path, args: args} }

type binary struct {
	path      string
	args      []string
	reference bool // systemd-socket-proxyd itself: only its own options
}

// Reference runs systemd-socket-proxyd at path, given only the options it
// has: the suite's common cases need no others.
func Reference(path string) Harness { return binary{path: path, reference: true} }

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
	if o.DrainTimeout != DrainDefault && !h.reference {
		args = append(args, fmt.Sprintf("--drain-timeout=%dus", o.DrainTimeout.Microseconds()))
	}
	if o.IdleTimeout != 0 {
		args = append(args, fmt.Sprintf("--idle-timeout=%dus", o.IdleTimeout.Microseconds()))
	}
	if o.LogConnections {
		args = append(args, "--log-connections")
	}
	if o.ProxyProtocol != "" {
		args = append(args, "--proxy-protocol="+o.ProxyProtocol)
	}
	for name, spec := range o.Targets {
		args = append(args, "--target="+name+"="+spec)
	}
	if target != "" {
		args = append(args, target)
	}
	env := []string{"SYSTEMD_LOG_LEVEL=debug"}
	var notify *Notify
	if !h.reference { // v252 sends no READY=1
		notify = ListenNotify(t)
		env = append(env, "NOTIFY_SOCKET="+notify.Path)
	}
	p, err := Start(Activated{Path: h.path, Args: args, Listeners: files, Names: o.Names, Env: env})
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
	if notify != nil {
		// Like the in-process harness, return once the proxy serves, so
		// that what a test measures first is the proxy at rest.
		if _, ok := notify.WaitFor(10*time.Second, "READY=1"); !ok {
			t.Fatalf("no READY=1 from the proxy within 10s; output:\n%s", p.Stderr())
		}
	}
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

func (b *binaryProxy) Terminate(t *testing.T) {
	if err := b.p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
}

func (b *binaryProxy) Wait(t *testing.T, d time.Duration) int {
	code, err := b.p.Wait(d)
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
