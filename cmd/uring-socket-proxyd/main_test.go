package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward/proxytest"
)

// reference is systemd-socket-proxyd v252, the behaviour we replace.
const reference = "/lib/systemd/systemd-socket-proxyd"

var binPath string

// TestMain builds the real binary once; the end-to-end tests start it with
// socket activation as systemd would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "uring-socket-proxyd-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binPath = filepath.Join(dir, "uring-socket-proxyd")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the binary: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func haveReference(t *testing.T) {
	if _, err := os.Stat(reference); err != nil {
		t.Skipf("%s is not installed: no comparison with v252", reference)
	}
}

// TestBehaviourEpoll runs the whole behaviour suite against the binary
// with --engine=epoll, started by socket activation.
func TestBehaviourEpoll(t *testing.T) {
	proxytest.Run(t, proxytest.Binary(binPath, "--engine=epoll"))
}

// TestBehaviourUring runs the whole behaviour suite against the binary
// with --engine=io_uring, where the kernel allows it.
func TestBehaviourUring(t *testing.T) {
	if err := forward.CheckUring(); err != nil {
		t.Skipf("io_uring unusable here: %v", err)
	}
	proxytest.Run(t, proxytest.Binary(binPath, "--engine=io_uring"))
}

// TestBehaviourBusyPoll runs the whole behaviour suite against both
// engines polling instead of sleeping (--busy-poll): a loop that polls
// must still see every event, timer and signal a sleeping one does.
func TestBehaviourBusyPoll(t *testing.T) {
	for _, engine := range engines(t) {
		t.Run(engine, func(t *testing.T) {
			proxytest.Run(t, proxytest.Binary(binPath, "--engine="+engine, "--busy-poll=2ms"))
		})
	}
}

// TestBehaviourReference runs the cases where v252 and we agree against
// v252 itself: it shows those cases describe the behaviour users rely on.
func TestBehaviourReference(t *testing.T) {
	haveReference(t)
	proxytest.RunCommon(t, proxytest.Reference(reference))
}

// result is what one run of a binary printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// runBinary runs path with args and no socket activation (or with the
// environment given), under a timeout.
func runBinary(t *testing.T, path string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s %q did not exit", path, args)
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

// normalize replaces the program name so our output and v252's compare.
func normalize(s, prog string) string {
	return strings.ReplaceAll(s, prog+":", "PROG:")
}

// TestCommandLine checks messages and exit codes of the command line, and
// where v252 is installed, that it answers the same.
func TestCommandLine(t *testing.T) {
	cases := []struct {
		args       []string
		wantCode   int
		wantStderr string // substring; "" means empty stderr
		wantStdout string // substring
		sameAsV252 bool
	}{
		{nil, 1, "Not enough parameters.", "", true},
		{[]string{"a", "b"}, 1, "Too many parameters.", "", true},
		{[]string{"-c", "0", "x"}, 1, "Connection limit is too low.", "", true},
		{[]string{"-c0", "x"}, 1, "Connection limit is too low.", "", true},
		{[]string{"--connections-max=abc", "x"}, 1, "Failed to parse --connections-max= argument: abc", "", true},
		{[]string{"-c", "-1", "x"}, 1, "Failed to parse --connections-max= argument: -1", "", true},
		{[]string{"-c", "-0", "x"}, 1, "Connection limit is too low.", "", true},
		{[]string{"--=5", "x"}, 1, "option '--=5' is ambiguous; possibilities: '--connections-max' '--exit-idle-time' '--help' '--version'\n", "", true},
		{[]string{"-c", "-0x0", "x"}, 1, "Connection limit is too low.", "", true},
		{[]string{"-c", "-+0", "x"}, 1, "Failed to parse --connections-max= argument: -+0", "", true},
		{[]string{"-c", "4294967296", "x"}, 1, "Failed to parse --connections-max= argument: 4294967296", "", true},
		{[]string{"--exit-idle-time=", "x"}, 1, "Failed to parse --exit-idle-time= argument: ", "", true},
		{[]string{"--exit-idle-time=-1", "x"}, 1, "Failed to parse --exit-idle-time= argument: -1", "", true},
		{[]string{"--exit-idle-time=abc", "x"}, 1, "Failed to parse --exit-idle-time= argument: abc", "", true},
		{[]string{"--exit-idle-time=1e3", "x"}, 1, "Failed to parse --exit-idle-time= argument: 1e3", "", true},
		{[]string{"--exit=3s", "x"}, 1, "Didn't get any sockets passed in.", "", true},
		{[]string{"--conn=5", "x"}, 1, "Didn't get any sockets passed in.", "", true},
		{[]string{"-c", "0x10", "x"}, 1, "Didn't get any sockets passed in.", "", true},
		{[]string{"x", "-c", "010"}, 1, "Didn't get any sockets passed in.", "", true},
		{[]string{"--", "-c"}, 1, "Didn't get any sockets passed in.", "", true},
		{[]string{"--help", "-c", "0", "x"}, 0, "", "Bidirectionally proxy local sockets", true},
		{[]string{"-c", "0", "--help", "x"}, 1, "Connection limit is too low.", "", true},
		{[]string{"-h"}, 0, "", "--connections-max=", true},
		{[]string{"--version"}, 0, "", "", false},
		{[]string{"--foo", "x"}, 1, "PROG: unrecognized option '--foo'", "", true},
		{[]string{"-x", "x"}, 1, "PROG: invalid option -- 'x'", "", true},
		{[]string{"x", "-c"}, 1, "PROG: option requires an argument -- 'c'", "", true},
		{[]string{"x", "--exit-idle-time"}, 1, "PROG: option '--exit-idle-time' requires an argument", "", true},
		{[]string{"--help=1", "x"}, 1, "PROG: option '--help' doesn't allow an argument", "", true},
		// Additions.
		{[]string{"--engine=warp", "x"}, 1, "Failed to parse --engine= argument: warp", "", false},
		{[]string{"--connect-timeout=soon", "x"}, 1, "Failed to parse --connect-timeout= argument: soon", "", false},
		{[]string{"--threads=0", "x"}, 1, "Failed to parse --threads= argument: 0", "", false},
		{[]string{"127.0.0.1:99999"}, 1, `invalid port "99999"`, "", false},
		{[]string{"/" + strings.Repeat("p", 120)}, 1, "longer than the 107 that fit in sun_path", "", false},
		{[]string{":80"}, 1, `target ":80" has no host`, "", false},
		{[]string{""}, 1, "Invalid target: target is empty", "", false},
		{[]string{"localhost:nosuchservice"}, 1, `unknown service name "nosuchservice"`, "", false},
	}
	_, refErr := os.Stat(reference)
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			got := runBinary(t, binPath, nil, c.args...)
			stderr := normalize(got.stderr, binPath)
			if got.code != c.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", got.code, c.wantCode, got.stderr)
			}
			if c.wantStderr == "" && stderr != "" && c.wantCode == 0 {
				t.Errorf("stderr %q, want nothing", stderr)
			}
			if !strings.Contains(stderr, c.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, c.wantStderr)
			}
			if !strings.Contains(got.stdout, c.wantStdout) {
				t.Errorf("stdout %q, want it to contain %q", got.stdout, c.wantStdout)
			}
			if c.wantCode == 0 && got.stdout == "" {
				t.Error("nothing printed on stdout")
			}
			if !c.sameAsV252 || refErr != nil {
				return
			}
			ref := runBinary(t, reference, nil, c.args...)
			refStderr := normalize(ref.stderr, reference)
			if ref.code != got.code || refStderr != stderr {
				t.Errorf("differs from v252:\n ours: %d %q\n v252: %d %q", got.code, stderr, ref.code, refStderr)
			}
		})
	}
}

// TestBadLogLevel: a SYSTEMD_LOG_LEVEL that is no level is reported and
// ignored, in v252's words, and the command line still has its say.
func TestBadLogLevel(t *testing.T) {
	for _, level := range []string{"bogus", "8", ""} {
		got := runBinary(t, binPath, []string{"SYSTEMD_LOG_LEVEL=" + level})
		want := fmt.Sprintf("Failed to parse log level '%s'. Ignoring.\nNot enough parameters.\n", level)
		if got.code != 1 || got.stderr != want {
			t.Errorf("SYSTEMD_LOG_LEVEL=%q: exit %d, stderr %q; want 1 and %q", level, got.code, got.stderr, want)
		}
		if _, err := os.Stat(reference); err != nil {
			continue
		}
		if ref := runBinary(t, reference, []string{"SYSTEMD_LOG_LEVEL=" + level}); ref.stderr != got.stderr {
			t.Errorf("SYSTEMD_LOG_LEVEL=%q: stderr %q, v252's %q", level, got.stderr, ref.stderr)
		}
	}
}

// TestPOSIXLYCorrect: with POSIXLY_CORRECT set, options after the target
// are operands, as for v252 (glibc's getopt_long).
func TestPOSIXLYCorrect(t *testing.T) {
	env := []string{"POSIXLY_CORRECT=1"}
	got := runBinary(t, binPath, env, "x", "-c", "0")
	if got.code != 1 || got.stderr != "Too many parameters.\n" {
		t.Errorf("exit %d, stderr %q; want 1 and \"Too many parameters.\"", got.code, got.stderr)
	}
	if _, err := os.Stat(reference); err == nil {
		if ref := runBinary(t, reference, env, "x", "-c", "0"); ref.stderr != got.stderr || ref.code != got.code {
			t.Errorf("ours: %d %q, v252: %d %q", got.code, got.stderr, ref.code, ref.stderr)
		}
	}
}

// TestActivationErrors checks the socket-activation checks and their
// messages against v252's.
func TestActivationErrors(t *testing.T) {
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	listening, _ := tcp.(*net.TCPListener).File()
	udp, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer udp.Close()
	udpFile, _ := udp.(*net.UDPConn).File()
	conn, _ := net.Dial("tcp4", tcp.Addr().String())
	defer conn.Close()
	connected, _ := conn.(*net.TCPConn).File()
	devnull, _ := os.Open(os.DevNull)

	cases := []struct {
		name string
		a    proxytest.Activated
		want string
	}{
		{"no LISTEN_PID", proxytest.Activated{Listeners: []*os.File{listening}, NoListenPID: true}, "Didn't get any sockets passed in."},
		{"LISTEN_FDS=0", proxytest.Activated{RawListenFDS: "0"}, "Failed to receive sockets from parent."},
		{"LISTEN_FDS=abc", proxytest.Activated{Listeners: []*os.File{listening}, RawListenFDS: "abc"}, "Failed to receive sockets from parent."},
		{"not a socket", proxytest.Activated{Listeners: []*os.File{devnull}}, "Passed in socket is not a stream socket."},
		{"datagram socket", proxytest.Activated{Listeners: []*os.File{udpFile}}, "Passed in socket is not a stream socket."},
		{"not listening", proxytest.Activated{Listeners: []*os.File{connected}}, "Passed in socket is not a stream socket."},
		{"second of two bad", proxytest.Activated{Listeners: []*os.File{listening, udpFile}}, "Passed in socket is not a stream socket."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{binPath, reference} {
				if path == reference {
					if _, err := os.Stat(reference); err != nil {
						continue
					}
				}
				a := c.a
				a.Path, a.Args = path, []string{"127.0.0.1:1"}
				p, err := proxytest.Start(a)
				if err != nil {
					t.Fatal(err)
				}
				code, err := p.Wait(10 * time.Second)
				if err != nil {
					p.Stop()
					t.Fatalf("%s: %v", path, err)
				}
				if code != 1 || !strings.Contains(p.Stderr(), c.want) {
					t.Errorf("%s: exit %d, output %q; want 1 and %q", filepath.Base(path), code, p.Stderr(), c.want)
				}
			}
		})
	}
}

// TestReadyStoppingWatchdog reads the notifications from a NOTIFY_SOCKET
// of the test's own.
func TestReadyStoppingWatchdog(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify")
	ns, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := ns.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	l, _ := net.Listen("tcp4", "127.0.0.1:0")
	defer l.Close()
	f, _ := l.(*net.TCPListener).File()
	p, err := proxytest.Start(proxytest.Activated{Path: binPath, Args: []string{"127.0.0.1:1"},
		Listeners: []*os.File{f}, Env: []string{"NOTIFY_SOCKET=" + sockPath, "WATCHDOG_USEC=200000"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %s from the proxy; output:\n%s", want, p.Stderr())
			}
		}
	}
	expect("READY=1")
	expect("WATCHDOG=1")
	expect("WATCHDOG=1") // repeated, at half the interval
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	if code, err := p.Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v after SIGTERM; want 0", code, err)
	}
}

// TestAutoEngine checks what auto (the default) runs here and that the log
// says it: io_uring where the kernel allows it, epoll with the reason
// otherwise.
func TestAutoEngine(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, _ := l.(*net.TCPListener).File()
	defer f.Close()
	p, err := proxytest.Start(proxytest.Activated{Path: binPath, Args: []string{"127.0.0.1:1"}, Listeners: []*os.File{f}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	want := "Using the io_uring engine (io_uring usable)"
	if err := forward.CheckUring(); err != nil {
		want = "Using the epoll engine (io_uring unusable: "
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Stderr(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log %q does not say %q", p.Stderr(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
