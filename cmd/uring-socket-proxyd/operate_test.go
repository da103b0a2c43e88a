package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward/proxytest"
)

// engines are the engines the binary can run here.
func engines(t *testing.T) []string {
	es := []string{"epoll"}
	if forward.CheckUring() == nil {
		es = append(es, "io_uring")
	} else {
		t.Logf("io_uring unusable here: only the epoll engine is tested")
	}
	return es
}

// TestStatusAndStatistics reads STATUS= from a test NOTIFY_SOCKET while
// connections come, are refused and go, and checks the SIGUSR1 report.
func TestStatusAndStatistics(t *testing.T) {
	for _, engine := range engines(t) {
		t.Run(engine, func(t *testing.T) { testStatus(t, engine) })
	}
}

func testStatus(t *testing.T, engine string) {
	b := opsServe(t, opsEcho)
	l, f := opsListen(t)
	n := proxytest.ListenNotify(t)
	p := opsStart(t, proxytest.Activated{Path: binPath, Args: []string{"--engine=" + engine, "-c", "1", b.addr()},
		Listeners: []*os.File{f}, Names: []string{"web"}, Env: []string{"NOTIFY_SOCKET=" + n.Path}})
	waitStatus := func(what string, want ...string) string {
		t.Helper()
		m, ok := n.Wait(10*time.Second, func(m string) bool {
			for _, w := range want {
				if !strings.Contains(m, w) {
					return false
				}
			}
			return strings.HasPrefix(m, "STATUS=")
		})
		if !ok {
			t.Fatalf("no STATUS= with %q (%s); got:\n%s", want, what, strings.Join(n.Messages(), "\n"))
		}
		return m
	}
	waitStatus("at start", "STATUS=0 open, 0 accepted, 0 refused, 0 failed connects; 0B up, 0B down; "+engine+" engine")

	held, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, _ = io.WriteString(held, "hello")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(held, buf); err != nil {
		t.Fatal(err)
	}
	// Over -c 1: refused.
	extra, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = extra.Read(buf)
	extra.Close()
	waitStatus("one open, one refused", "STATUS=1 open, 1 accepted, 1 refused, 0 failed connects; 5B up, 5B down;")
	held.Close()
	waitStatus("the connection closed", "STATUS=0 open, 1 accepted, 1 refused")

	// At most one STATUS= a second, and none when nothing changed.
	before := countStatus(n.Messages())
	for i := 0; i < 20; i++ {
		opsRoundTrip(t, l.Addr().String(), strconv.Itoa(i))
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // quiet: no more
	quiet := countStatus(n.Messages())
	time.Sleep(1500 * time.Millisecond)
	if sent, after := quiet-before, countStatus(n.Messages()); sent > 4 || sent < 1 || after != quiet {
		t.Errorf("%d STATUS= messages over ~3.5 s of changes, %d more when idle; want 1–4 and 0", sent, after-quiet)
	}

	_ = p.Cmd.Process.Signal(syscall.SIGUSR1)
	want := regexp.MustCompile(`Listener 127\.0\.0\.1:\d+ \(web\) → ` + regexp.QuoteMeta(b.addr()) + `: 0 open, 21 accepted\.`)
	opsWaitFor(t, 5*time.Second, "the SIGUSR1 report", func() bool {
		return strings.Contains(p.Stderr(), "Statistics: 0 open, 21 accepted, 1 refused, 0 failed connects") && want.MatchString(p.Stderr())
	})
}

func countStatus(msgs []string) int {
	n := 0
	for _, m := range msgs {
		if strings.HasPrefix(m, "STATUS=") {
			n++
		}
	}
	return n
}

// TestSocketOptions looks at the proxy's own sockets (duplicated into the
// test with pidfd_getfd): TCP_NODELAY on both legs by default, none with
// --nodelay=no, SO_KEEPALIVE on the backend leg with --keepalive only.
func TestSocketOptions(t *testing.T) {
	for _, engine := range engines(t) {
		for _, tc := range []struct {
			args               []string
			nodelay, keepalive int
		}{
			{nil, 1, 0},
			{[]string{"--nodelay=no", "--keepalive"}, 0, 1},
		} {
			t.Run(fmt.Sprintf("%s%v", engine, tc.args), func(t *testing.T) {
				b := opsServe(t, opsEcho)
				l, f := opsListen(t)
				// One client queued before the proxy starts (as the one
				// that starts a socket-activated proxy is), one after.
				early, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer early.Close()
				n := proxytest.ListenNotify(t)
				args := append([]string{"--engine=" + engine}, tc.args...)
				p := opsStart(t, proxytest.Activated{Path: binPath, Args: append(args, b.addr()),
					Listeners: []*os.File{f}, Env: []string{"NOTIFY_SOCKET=" + n.Path}})
				if _, ok := n.WaitFor(10*time.Second, "READY=1"); !ok {
					t.Fatal("no READY=1")
				}
				late, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer late.Close()
				for _, c := range []net.Conn{early, late} {
					_, _ = io.WriteString(c, "x")
					if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
						t.Fatal(err)
					}
				}
				backends := proxySockets(t, p.Pid(), b.addr())
				if len(backends) != 2 {
					t.Fatalf("found %d backend sockets in the proxy, want 2", len(backends))
				}
				for _, fd := range backends {
					if v, _ := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); v != tc.nodelay {
						t.Errorf("backend leg: TCP_NODELAY %d, want %d", v, tc.nodelay)
					}
					if v, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE); v != tc.keepalive {
						t.Errorf("backend leg: SO_KEEPALIVE %d, want %d", v, tc.keepalive)
					}
				}
				for _, c := range []net.Conn{early, late} {
					which := "client queued before the start"
					if c == late {
						which = "client"
					}
					fds := proxySockets(t, p.Pid(), c.LocalAddr().String())
					if len(fds) != 1 {
						t.Fatalf("found %d sockets for the %s in the proxy, want 1", len(fds), which)
					}
					if v, _ := unix.GetsockoptInt(fds[0], unix.IPPROTO_TCP, unix.TCP_NODELAY); v != tc.nodelay {
						t.Errorf("%s leg: TCP_NODELAY %d, want %d", which, v, tc.nodelay)
					}
					if v, _ := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_KEEPALIVE); v != 0 {
						t.Errorf("%s leg: SO_KEEPALIVE %d, want 0 (the option is for the backend leg)", which, v)
					}
				}
			})
		}
	}
}

// proxySockets returns copies of process pid's sockets whose peer is
// peer.
func proxySockets(t *testing.T, pid int, peer string) []int {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		if !strings.HasPrefix(target, "socket:") {
			continue
		}
		n, _ := strconv.Atoi(e.Name())
		fd, err := unix.PidfdGetfd(pidfd, n, 0)
		if err != nil {
			t.Skipf("pidfd_getfd: %v (not allowed to look into the proxy here)", err)
		}
		if sa, err := unix.Getpeername(fd); err == nil && forward.FormatSockaddr(sa) == peer {
			fds = append(fds, fd)
			t.Cleanup(func() { unix.Close(fd) })
		} else {
			unix.Close(fd)
		}
	}
	return fds
}

// TestTargetNames checks the start-up errors of --target=NAME=TARGET:
// a name no socket has, and a socket without a target.
func TestTargetNames(t *testing.T) {
	b := opsServe(t, opsEcho)
	cases := []struct {
		names []string
		args  []string
		want  string
	}{
		{[]string{"web"}, []string{"--target=wbe=" + b.addr(), b.addr()},
			`No listening socket is named "wbe" (--target=wbe=` + b.addr() + `); the sockets passed in are named: web.`},
		{[]string{"web", "metrics"}, []string{"--target=web=" + b.addr()},
			`(named "metrics") has no target: give a default target or --target=metrics=TARGET.`},
		{[]string{"web"}, []string{"--target=web"}, "Failed to parse --target= argument: web (expected NAME=TARGET)"},
		{[]string{"web"}, []string{"--target=web=" + b.addr(), "--target=web=/x", b.addr()},
			`Failed to parse --target= argument: web=/x (a target for "web" was given already)`},
		{[]string{"web"}, []string{"--target=web=127.0.0.1:99999"}, "Invalid target for web:"},
	}
	for _, tc := range cases {
		files := make([]*os.File, len(tc.names))
		for i := range files {
			_, files[i] = opsListen(t)
		}
		p := opsStart(t, proxytest.Activated{Path: binPath, Args: tc.args, Listeners: files, Names: tc.names})
		code, err := p.Wait(10 * time.Second)
		if err != nil || code != 1 {
			t.Errorf("%v: exit %d, %v; want 1", tc.args, code, err)
		}
		if !strings.Contains(p.Stderr(), tc.want) {
			t.Errorf("%v: output %q does not say %q", tc.args, p.Stderr(), tc.want)
		}
	}
}

// TestNewOptionErrors checks that a bad value of each new option is an
// error naming it, with exit status 1.
func TestNewOptionErrors(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"--drain-timeout=soon", "Failed to parse --drain-timeout= argument: soon"},
		{"--idle-timeout=-1", "Failed to parse --idle-timeout= argument: -1"},
		{"--nodelay=maybe", "Failed to parse --nodelay= argument: maybe (expected yes or no)"},
		{"--keepalive=yes", "option '--keepalive' doesn't allow an argument"},
		{"--busy-poll=soon", "Failed to parse --busy-poll= argument: soon"},
		{"--busy-poll=-5us", "Failed to parse --busy-poll= argument: -5us"},
	} {
		r := runBinary(t, binPath, nil, tc.arg, "127.0.0.1:1")
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", tc.arg, r.code, r.stderr, tc.want)
		}
	}
}

// TestBusyPoll: --busy-poll keeps an event loop on its CPU after events
// for its span (most of the CPU in the first 400 ms of a 600 ms span),
// gives the CPU back once the span since the last event is up (an idle
// second then costs about nothing), polls through an idle second without
// end with infinity, and a loop that never sleeps still sees its timers
// (--exit-idle-time) and signals. CPU is counted in ticks of 10 ms.
func TestBusyPoll(t *testing.T) {
	for _, engine := range engines(t) {
		t.Run(engine, func(t *testing.T) {
			b := opsServe(t, opsEcho)
			start := func(busyPoll string, extra ...string) *proxytest.Process {
				t.Helper()
				front, f := opsListen(t)
				args := append([]string{"--engine=" + engine, "--busy-poll=" + busyPoll}, extra...)
				p := opsStart(t, proxytest.Activated{Path: binPath, Args: append(args, b.addr()), Listeners: []*os.File{f}})
				for i := 0; i < 20; i++ {
					opsRoundTrip(t, front.Addr().String(), "poll me")
				}
				return p
			}
			ticksOver := func(p *proxytest.Process, d time.Duration) uint64 {
				t.Helper()
				before, err := proxytest.ReadUsage(p.Pid())
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(d)
				after, err := proxytest.ReadUsage(p.Pid())
				if err != nil {
					t.Fatal(err)
				}
				return after.CPUTicks - before.CPUTicks
			}

			p := start("600ms")
			if ticks := ticksOver(p, 400*time.Millisecond); ticks < 15 {
				t.Errorf("--busy-poll=600ms: %d ticks of CPU in the 400 ms after the last event, want it polling (≥ 15)", ticks)
			}
			time.Sleep(400 * time.Millisecond) // past the span
			if ticks := ticksOver(p, time.Second); ticks > 5 {
				t.Errorf("--busy-poll=600ms: %d ticks of CPU in an idle second after the span, want about none", ticks)
			}

			p = start("infinity", "--exit-idle-time=3s")
			time.Sleep(200 * time.Millisecond)
			if ticks := ticksOver(p, time.Second); ticks < 30 {
				t.Errorf("--busy-poll=infinity: %d ticks of CPU in an idle second, want it polling (≥ 30)", ticks)
			}
			if !strings.Contains(p.Stderr(), "Busy polling without end (--busy-poll)") {
				t.Errorf("no log line says the loop polls; stderr:\n%s", p.Stderr())
			}
			// The last connection closed ~1.2 s ago: --exit-idle-time fires
			// while the loop polls.
			if code, err := p.Wait(5 * time.Second); err != nil || code != 0 {
				t.Fatalf("polling without end with --exit-idle-time=3s: exit %d, %v; want 0 within seconds", code, err)
			}

			p = start("infinity")
			if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code, err := p.Wait(5 * time.Second); err != nil || code != 0 {
				t.Fatalf("polling without end, SIGTERM: exit %d, %v; want 0", code, err)
			}
		})
	}
}
