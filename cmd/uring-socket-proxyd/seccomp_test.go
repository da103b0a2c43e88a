//go:build linux

package main

// End-to-end tests of engine selection where a seccomp filter refuses
// io_uring, as container runtimes do: the real binary, started by socket
// activation through the seccompexec helper (sh shim → seccompexec → exec
// of the proxy, one pid throughout).

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward/proxytest"
)

// buildSeccompExec builds internal/seccompexec into a temporary directory.
func buildSeccompExec(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seccompexec")
	out, err := exec.Command("go", "build", "-o", path, "./internal/seccompexec").CombinedOutput()
	if err != nil {
		t.Fatalf("building seccompexec: %v\n%s", err, out)
	}
	// The filter must be allowed here (a seccomp-less kernel or a sandbox
	// that forbids filters would make every case below meaningless).
	if out, err := exec.Command(path, "ENOSYS", "/bin/true").CombinedOutput(); err != nil {
		t.Skipf("cannot install a seccomp filter here: %v\n%s", err, out)
	}
	return path
}

// TestSeccompEngineSelection refuses io_uring_setup with ENOSYS, then
// EPERM, and checks that auto (explicit or by default) runs epoll, says
// why in one line and forwards, and that --engine=io_uring exits 1 with
// the reason.
func TestSeccompEngineSelection(t *testing.T) {
	helper := buildSeccompExec(t)
	cases := []struct {
		errno string
		why   []string // in the log line, and in the error of --engine=io_uring
	}{
		{"ENOSYS", []string{"io_uring unusable: the kernel has no io_uring (ENOSYS)"}},
		// The sysctl is not the cause in the test environment (or, where
		// it is, the case tests the sysctl's reason instead; both say
		// "not permitted").
		{"EPERM", []string{"io_uring unusable: io_uring_setup: operation not permitted ("}},
	}
	if readUringAccess().disabled == 0 {
		cases[1].why = append(cases[1].why, "(blocked by a seccomp filter or security policy)")
	}
	for _, c := range cases {
		t.Run(c.errno, func(t *testing.T) {
			for _, args := range [][]string{{"--engine=auto"}, nil} {
				name := "default"
				if args != nil {
					name = args[0]
				}
				t.Run(name, func(t *testing.T) {
					seccompForward(t, helper, c.errno, args, c.why)
				})
			}
			t.Run("--engine=io_uring", func(t *testing.T) {
				seccompRefuse(t, helper, c.errno, c.why)
			})
		})
	}
}

// seccompForward starts the proxy under the filter with args, waits for
// its engine line, and checks it and an echo round trip with a half-close.
func seccompForward(t *testing.T, helper, errno string, args []string, why []string) {
	backend := seccompEchoServer(t)
	front, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	f, err := front.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	argv := append([]string{errno, binPath}, args...)
	p, err := proxytest.Start(proxytest.Activated{Path: helper, Args: append(argv, backend), Listeners: []*os.File{f}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Stderr(), "Using the ") {
		select {
		case <-p.Done():
			t.Fatalf("the proxy exited before serving:\n%s", p.Stderr())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no engine line after 5s:\n%s", p.Stderr())
		}
	}

	var lines []string
	for _, l := range strings.Split(p.Stderr(), "\n") {
		if strings.Contains(l, "io_uring") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "Using the epoll engine (io_uring unusable: ") {
		t.Fatalf("want one line choosing epoll for io_uring being unusable; log:\n%s", p.Stderr())
	}
	for _, w := range why {
		if !strings.Contains(lines[0], w) {
			t.Errorf("engine line %q does not contain %q", lines[0], w)
		}
	}

	// A request, a half-close, the echoed reply, and the backend's EOF.
	c, err := net.DialTimeout("tcp4", front.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := bytes.Repeat([]byte("seccomp "), 20000) // 160 kB, more than a socket buffer
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v (after %d bytes)", err, len(got))
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes came back as %d different bytes", len(msg), len(got))
	}
}

// seccompRefuse checks that --engine=io_uring under the filter exits 1
// with the reason, before it serves.
func seccompRefuse(t *testing.T, helper, errno string, why []string) {
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := proxytest.Start(proxytest.Activated{Path: helper,
		Args: []string{errno, binPath, "--engine=io_uring", "127.0.0.1:1"}, Listeners: []*os.File{f}})
	if err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait(10 * time.Second)
	if err != nil {
		p.Stop()
		t.Fatal(err)
	}
	out := p.Stderr()
	if code != 1 || !strings.Contains(out, "Cannot use --engine=io_uring: ") {
		t.Fatalf("exit %d, output %q; want 1 and \"Cannot use --engine=io_uring: …\"", code, out)
	}
	for _, w := range why {
		if !strings.Contains(out, w) {
			t.Errorf("output %q does not contain %q", out, w)
		}
	}
}

// seccompEchoServer serves an echo on 127.0.0.1 that answers EOF with EOF
// and returns its address.
func seccompEchoServer(t *testing.T) string {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.CloseWrite()
			}()
		}
	}()
	return l.Addr().String()
}
