package main

// Operational end-to-end tests: the real binary, started by socket
// activation, under the conditions an operator meets (file limits, the
// journal, log levels, everyday clients such as curl and socat), and where
// v252 is installed, what it does in the same place.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward/proxytest"
)

const prlimitPath = "/usr/bin/prlimit"

// ---- helpers ---------------------------------------------------------------

// opsListen opens a TCP listener on 127.0.0.1 and returns it with a
// descriptor to pass to a proxy.
func opsListen(t *testing.T) (*net.TCPListener, *os.File) {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return l, f
}

// opsBackend serves every connection on a new listener with handler until
// the test ends, and counts the connections it accepted.
type opsBackend struct {
	l        *net.TCPListener
	accepted atomic.Int32
	open     atomic.Int32
}

func opsServe(t *testing.T, handler func(net.Conn)) *opsBackend {
	t.Helper()
	l, _ := opsListen(t)
	b := &opsBackend{l: l}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			b.open.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer b.open.Add(-1)
				defer c.Close()
				handler(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return b
}

func (b *opsBackend) addr() string { return b.l.Addr().String() }

func opsEcho(c net.Conn) {
	_, _ = io.Copy(c, c)
	_ = c.(*net.TCPConn).CloseWrite()
}

// opsStart starts path with the listener files by socket activation.
func opsStart(t *testing.T, a proxytest.Activated) *proxytest.Process {
	t.Helper()
	p, err := proxytest.Start(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(a.Path), lastLines(p.Stderr(), 40))
		}
	})
	return p
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// opsRoundTrip dials addr, sends msg and expects it echoed.
func opsRoundTrip(t *testing.T, addr, msg string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo through %s: got %q, %v; want %q", addr, got, err, msg)
	}
}

func opsWaitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// nofile reads the soft and hard RLIMIT_NOFILE of pid from /proc.
func nofile(t *testing.T, pid int) (soft, hard string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
			if len(f) >= 2 {
				return f[0], f[1]
			}
		}
	}
	t.Fatalf("no \"Max open files\" in /proc/%d/limits:\n%s", pid, b)
	return "", ""
}

func needPrlimit(t *testing.T) {
	if _, err := os.Stat(prlimitPath); err != nil {
		t.Skipf("%s is not installed", prlimitPath)
	}
}

// ---- file descriptors ----------------------------------------------------------

// TestRaiseFileLimit starts the proxy with a low soft limit, as systemd's
// default of 1024 is: the proxy raises it to the hard limit.
func TestRaiseFileLimit(t *testing.T) {
	needPrlimit(t)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max <= 256 || lim.Max == unix.RLIM_INFINITY {
		t.Skipf("hard RLIMIT_NOFILE is %d: nothing to raise to", lim.Max)
	}
	hard := strconv.FormatUint(lim.Max, 10)
	b := opsServe(t, opsEcho)
	front, f := opsListen(t)
	p := opsStart(t, proxytest.Activated{Path: prlimitPath,
		Args: []string{"--nofile=256:" + hard, binPath, b.addr()}, Listeners: []*os.File{f}})
	opsRoundTrip(t, front.Addr().String(), "limits")
	// prlimit execs the proxy: same pid.
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid())); err != nil || exe != binPath {
		t.Fatalf("pid %d runs %q (%v), want %s", p.Pid(), exe, err, binPath)
	}
	soft, gotHard := nofile(t, p.Pid())
	if soft != hard || gotHard != hard {
		t.Errorf("RLIMIT_NOFILE of the proxy is %s:%s, want the soft limit raised to the hard %s", soft, gotHard, hard)
	}
}

// TestAcceptEMFILEDoesNotSpin runs the proxy out of file descriptors with
// clients waiting to be accepted. It must not spin on accept (v252 spins
// at 100% CPU and logs ~600 000 lines a second), must log the condition a
// few times only, must keep forwarding the connections it has, and must
// serve again once descriptors are free.
func TestAcceptEMFILEDoesNotSpin(t *testing.T) {
	needPrlimit(t)
	for _, engine := range []string{"epoll", "io_uring"} {
		t.Run("engine="+engine, func(t *testing.T) {
			if engine == "io_uring" {
				if err := forward.CheckUring(); err != nil {
					t.Skipf("io_uring unusable here: %v", err)
				}
			}
			testAcceptEMFILE(t, engine)
		})
	}
}

func testAcceptEMFILE(t *testing.T, engine string) {
	b := opsServe(t, opsEcho)
	front, f := opsListen(t)
	addr := front.Addr().String()
	p := opsStart(t, proxytest.Activated{Path: prlimitPath,
		Args: []string{"--nofile=40:40", binPath, "--engine=" + engine, "--connect-timeout=30s", b.addr()}, Listeners: []*os.File{f}})

	const clients = 60
	conns := make([]net.Conn, 0, clients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < clients; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// The engines stop at the connections the limit leaves descriptors
	// for, before any accept fails, and say so.
	const pausing = "as many as the open-file limit leaves descriptors for; pausing accepts"
	opsWaitFor(t, 5*time.Second, "the proxy to run out of descriptors", func() bool {
		return strings.Contains(p.Stderr(), pausing)
	})
	// The pause may be logged before the connects it leaves room for
	// have reached the backend.
	opsWaitFor(t, 5*time.Second, "a connection to reach the backend", func() bool {
		return b.accepted.Load() > 0
	})
	time.Sleep(100 * time.Millisecond)
	reached := b.accepted.Load()
	t.Logf("%d of %d clients reached the backend before the proxy ran out of descriptors", reached, clients)
	if reached == 0 {
		t.Fatal("no connection reached the backend")
	}
	// No client has sent anything yet: the proxy has no reason to close
	// any connection it made.
	if dropped := reached - b.open.Load(); dropped > 0 {
		t.Errorf("%d of the %d connections that reached the backend were closed by the proxy before any data moved", dropped, reached)
	}

	before, err := proxytest.ReadUsage(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(time.Second)
	after, err := proxytest.ReadUsage(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	ticks := after.CPUTicks - before.CPUTicks
	t.Logf("out of descriptors (%d open): %d CPU ticks in %v", after.FDs, ticks, time.Since(start).Round(time.Millisecond))
	if ticks >= 30 {
		t.Errorf("the proxy used %d CPU ticks (of 100) in one second while out of descriptors: it spins", ticks)
	}
	if n := strings.Count(p.Stderr(), pausing); n > 10 {
		t.Errorf("%q logged %d times in about a second, want a few", pausing, n)
	}

	// The connections admitted before go on forwarding, in both
	// directions, although no descriptor is free.
	type answer struct {
		ok  bool
		err error
	}
	answers := make([]answer, clients)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("message %02d", i)
			_ = c.SetDeadline(time.Now().Add(time.Second))
			if _, err := io.WriteString(c, msg); err != nil {
				answers[i].err = err
				return
			}
			got := make([]byte, len(msg))
			_, err := io.ReadFull(c, got)
			answers[i] = answer{ok: err == nil && string(got) == msg, err: err}
		}()
	}
	wg.Wait()
	var echoed, closed, reset, other int
	for _, a := range answers {
		var ne net.Error
		switch {
		case a.ok:
			echoed++
		case errors.Is(a.err, io.EOF) || errors.Is(a.err, io.ErrUnexpectedEOF):
			closed++
		case errors.Is(a.err, syscall.ECONNRESET) || errors.Is(a.err, syscall.EPIPE):
			reset++
		case errors.As(a.err, &ne) && ne.Timeout():
			// Still waiting to be accepted: fine.
		default:
			other++
			t.Logf("client error: %v", a.err)
		}
	}
	t.Logf("while out of descriptors: %d echoed, %d closed, %d reset, %d other errors, %d still waiting",
		echoed, closed, reset, other, clients-echoed-closed-reset-other)
	if echoed < int(reached) || closed+reset+other > 0 {
		t.Errorf("%d connections had reached the backend, but %d echoed a message (%d were closed, %d reset, %d failed otherwise): "+
			"connections lose data when the proxy is out of descriptors", reached, echoed, closed, reset, other)
	}
	if strings.Contains(p.Stderr(), "Failed to allocate pipe buffer") {
		t.Errorf("the proxy failed open connections for want of a pipe")
	}

	// Once the clients go, descriptors are free and the proxy serves again.
	for _, c := range conns {
		c.Close()
	}
	conns = conns[:0]
	opsWaitFor(t, 5*time.Second, "the backend connections to close", func() bool { return b.open.Load() == 0 })
	opsRoundTrip(t, addr, "after the storm")
	select {
	case <-p.Done():
		t.Fatal("the proxy exited")
	default:
	}
}

// ---- logging -------------------------------------------------------------------

// TestLogLevels checks SYSTEMD_LOG_LEVEL: per-connection events are debug,
// the start-up line is info, failures are errors.
func TestLogLevels(t *testing.T) {
	b := opsServe(t, opsEcho)
	const newConn = "New connection from 127.0.0.1:"
	const started = "Using the "
	t.Run("debug", func(t *testing.T) {
		front, f := opsListen(t)
		p := opsStart(t, proxytest.Activated{Path: binPath, Args: []string{b.addr()},
			Listeners: []*os.File{f}, Env: []string{"SYSTEMD_LOG_LEVEL=debug"}})
		opsRoundTrip(t, front.Addr().String(), "debug")
		opsWaitFor(t, 2*time.Second, "the new connection in the log", func() bool {
			return strings.Contains(p.Stderr(), newConn)
		})
	})
	t.Run("default", func(t *testing.T) {
		front, f := opsListen(t)
		p := opsStart(t, proxytest.Activated{Path: binPath, Args: []string{b.addr()}, Listeners: []*os.File{f}})
		opsRoundTrip(t, front.Addr().String(), "info")
		p.Stop()
		if log := p.Stderr(); strings.Contains(log, newConn) || !strings.Contains(log, started) {
			t.Errorf("at the default level (info) the log is\n%s\nwant the start-up line and no connection events", log)
		}
	})
	t.Run("err", func(t *testing.T) {
		front, f := opsListen(t)
		target := deadAddr(t)
		p := opsStart(t, proxytest.Activated{Path: binPath, Args: []string{"--connect-timeout=0", target},
			Listeners: []*os.File{f}, Env: []string{"SYSTEMD_LOG_LEVEL=3"}})
		c, err := net.Dial("tcp", front.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		want := "Failed to connect to remote host: Connection refused"
		opsWaitFor(t, 5*time.Second, "the connect failure in the log", func() bool {
			return strings.Contains(p.Stderr(), want)
		})
		log := p.Stderr()
		if strings.Contains(log, started) || strings.Contains(log, "<3>") {
			t.Errorf("at level err the log is\n%s\nwant only the error, without a prefix (stderr is no journal)", log)
		}
		if !strings.Contains(log, target) {
			t.Errorf("the error does not name the target %s:\n%s", target, log)
		}
	})
}

// lineBuffer collects what a process writes to a pipe.
type lineBuffer struct {
	mu   sync.Mutex
	b    strings.Builder
	done chan struct{}
}

func (l *lineBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWithStderrPipe starts binPath by socket activation with its stderr
// on a pipe of the test's own, and returns the command, what it logs, and
// the pipe's "DEV:INODE" as JOURNAL_STREAM would name it. env is called
// with that name to make the environment.
func startWithStderrPipe(t *testing.T, args []string, listener *os.File, env func(devIno string) []string) (*exec.Cmd, *lineBuffer) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(w.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	devIno := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	// As proxytest does: the shell puts its pid in LISTEN_PID and execs.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, binPath}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LISTEN_FDS=1"}, env(devIno)...)
	cmd.ExtraFiles = []*os.File{listener}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	lb := &lineBuffer{done: make(chan struct{})}
	go func() {
		defer close(lb.done)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lb.mu.Lock()
			lb.b.WriteString(sc.Text() + "\n")
			lb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
		<-lb.done
	})
	return cmd, lb
}

// TestJournalStream checks the "<N>" priority prefixes when stderr is the
// journal stream that JOURNAL_STREAM names, and their absence when the
// variable names another stream (inherited from a parent, say).
func TestJournalStream(t *testing.T) {
	for _, match := range []bool{true, false} {
		t.Run(fmt.Sprintf("match=%v", match), func(t *testing.T) {
			front, f := opsListen(t)
			target := deadAddr(t)
			_, log := startWithStderrPipe(t, []string{"--connect-timeout=0", target}, f, func(devIno string) []string {
				if !match {
					dev, ino, _ := strings.Cut(devIno, ":")
					n, _ := strconv.ParseUint(ino, 10, 64)
					devIno = fmt.Sprintf("%s:%d", dev, n+1)
				}
				return []string{"JOURNAL_STREAM=" + devIno}
			})
			c, err := net.Dial("tcp", front.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const failure = "Failed to connect to remote host: Connection refused"
			opsWaitFor(t, 5*time.Second, "the connect failure in the log", func() bool {
				return strings.Contains(log.String(), failure)
			})
			for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
				var want string
				switch {
				case !match:
					want = ""
				case strings.Contains(line, failure):
					want = "<3>"
				case strings.Contains(line, "Using the "):
					want = "<6>"
				default:
					want = "<"
				}
				if want == "" {
					if strings.HasPrefix(line, "<") {
						t.Errorf("line %q has a priority prefix although stderr is not the journal stream", line)
					}
				} else if !strings.HasPrefix(line, want) {
					t.Errorf("line %q does not start with %q", line, want)
				}
			}
			t.Logf("log:\n%s", log.String())
		})
	}
}

// ---- as a new user would ---------------------------------------------------------

// TestCurlThroughProxy fetches a page and posts a body with the real curl.
func TestCurlThroughProxy(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hello":
			fmt.Fprint(w, "hello through the proxy\n")
		case "/count":
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d bytes\n", n)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	front, f := opsListen(t)
	opsStart(t, proxytest.Activated{Path: binPath, Args: []string{strings.TrimPrefix(srv.URL, "http://")}, Listeners: []*os.File{f}})
	base := "http://" + front.Addr().String()

	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--max-time", "8"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if got := run(base + "/hello"); got != "hello through the proxy\n" {
		t.Errorf("GET /hello: %q", got)
	}
	body := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(body, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := run("--data-binary", "@"+body, base+"/count"); got != fmt.Sprintf("%d bytes\n", 3<<20) {
		t.Errorf("POST of 3 MiB: %q", got)
	}
	// Several requests on one kept-alive connection.
	if got := run(base+"/hello", base+"/hello"); got != strings.Repeat("hello through the proxy\n", 2) {
		t.Errorf("two requests on one connection: %q", got)
	}
}

// TestSocatHalfClose is the half-close case as a user meets it:
// `printf x | socat - TCP:proxy` against a backend that answers after
// reading to the end. We pass the half-close on and the answer arrives;
// v252 closes both sockets and socat prints nothing.
func TestSocatHalfClose(t *testing.T) {
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("socat is not installed")
	}
	b := opsServe(t, func(c net.Conn) {
		data, err := io.ReadAll(c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "read %d bytes: %s", len(data), data)
	})
	socat := func(t *testing.T, path string) string {
		t.Helper()
		front, f := opsListen(t)
		opsStart(t, proxytest.Activated{Path: path, Args: []string{b.addr()}, Listeners: []*os.File{f}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "printf 'x' | socat - TCP:"+front.Addr().String())
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if ctx.Err() != nil {
			t.Fatalf("socat through %s did not finish", filepath.Base(path))
		}
		if err != nil {
			t.Logf("socat through %s: %v %s", filepath.Base(path), err, stderr.String())
		}
		return string(out)
	}
	const want = "read 1 bytes: x"
	if got := socat(t, binPath); got != want {
		t.Errorf("printf x | socat - TCP:proxy printed %q, want %q", got, want)
	}
	if _, err := os.Stat(reference); err != nil {
		return
	}
	got := socat(t, reference)
	t.Logf("through v252: %q (ours: the backend's answer)", got)
	if got != "" {
		t.Errorf("v252 printed %q; behaviour.md says it gives an empty answer here: update the documented difference", got)
	}
}

// ---- lifetime and limits ----------------------------------------------------------

// TestExitIdleTimeServesPendingClients: with socket activation the client
// that made systemd start the proxy is already waiting in the accept queue.
// --exit-idle-time=0 must serve it, not exit before accepting it.
func TestExitIdleTimeServesPendingClients(t *testing.T) {
	b := opsServe(t, opsEcho)
	front, f := opsListen(t)
	var clients []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", front.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := fmt.Fprintf(c, "early %d", i); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	p := opsStart(t, proxytest.Activated{Path: binPath, Args: []string{"--exit-idle-time=0", b.addr()}, Listeners: []*os.File{f}})
	for i, c := range clients {
		want := fmt.Sprintf("early %d", i)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
			t.Fatalf("client %d waiting before the proxy started: got %q, %v; want %q", i, got, err, want)
		}
	}
	select {
	case <-p.Done():
		t.Fatal("the proxy exited with connections open")
	case <-time.After(100 * time.Millisecond):
	}
	for _, c := range clients {
		c.Close()
	}
	code, err := p.Wait(5 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("after the last connection closed: exit %d, %v; want 0", code, err)
	}
}

// TestConnectionLimitExact opens connections one after another with -c 1:
// exactly one reaches the backend. v252 lets N+1 in; that is logged, not
// failed.
func TestConnectionLimitExact(t *testing.T) {
	count := func(t *testing.T, path string) int32 {
		t.Helper()
		b := opsServe(t, func(c net.Conn) {
			_, _ = c.Write([]byte("hi"))
			_, _ = io.Copy(io.Discard, c)
		})
		front, f := opsListen(t)
		p := opsStart(t, proxytest.Activated{Path: path, Args: []string{"-c", "1", b.addr()}, Listeners: []*os.File{f}})
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := 0; i < 4; i++ {
			c, err := net.Dial("tcp", front.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			_, _ = c.Write([]byte("x"))
			if i == 0 {
				opsWaitFor(t, 5*time.Second, "the first connection at the backend", func() bool { return b.accepted.Load() == 1 })
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		n := b.accepted.Load()
		if !strings.Contains(p.Stderr(), "Hit connection limit, refusing connection.") {
			t.Errorf("%s logged no refusal:\n%s", filepath.Base(path), p.Stderr())
		}
		return n
	}
	if n := count(t, binPath); n != 1 {
		t.Errorf("%d connections reached the backend with --connections-max=1, want 1", n)
	}
	if _, err := os.Stat(reference); err == nil {
		t.Logf("v252 with -c 1: %d of 4 connections reached the backend", count(t, reference))
	}
}

// TestUnnamedSocketIsUnknown: a socket passed without a name is called
// "unknown", as sd_listen_fds_with_names(3) calls it, so
// --target=unknown=… gives it a target: with no LISTEN_FDNAMES at all, and
// with an empty entry or one missing from a list shorter than the sockets
// (which libsystemd refuses, and v252, ignoring names, takes).
func TestUnnamedSocketIsUnknown(t *testing.T) {
	named := opsServe(t, func(c net.Conn) { _, _ = io.WriteString(c, "named") })
	unknown := opsServe(t, func(c net.Conn) { _, _ = io.WriteString(c, "unknown") })
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{nil, []string{"unknown"}},
		{[]string{"web", ""}, []string{"named", "unknown", "unknown"}},
	} {
		var files []*os.File
		var addrs []string
		for range tc.want {
			l, f := opsListen(t)
			files, addrs = append(files, f), append(addrs, l.Addr().String())
		}
		args := []string{"--target=unknown=" + unknown.addr()}
		if len(tc.names) > 0 {
			args = append(args, "--target=web="+named.addr())
		}
		opsStart(t, proxytest.Activated{Path: binPath, Names: tc.names, Listeners: files, Args: args})
		for i, addr := range addrs {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			got, err := io.ReadAll(c)
			c.Close()
			if err != nil || string(got) != tc.want[i] {
				t.Errorf("LISTEN_FDNAMES %q, socket %d: got %q, %v; want %q", strings.Join(tc.names, ":"), i, got, err, tc.want[i])
			}
		}
	}
}
