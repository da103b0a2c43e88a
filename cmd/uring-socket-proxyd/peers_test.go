package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward/proxytest"
)

// TestProxyProtocolPeers sends the PROXY headers to the real parsers users
// put behind the proxy, HAProxy (bind … accept-proxy) and nginx (listen …
// proxy_protocol), and checks that each logs the client's own address and
// port; Unix-socket clients (UNKNOWN, LOCAL) must still be served.
func TestProxyProtocolPeers(t *testing.T) {
	peers := []struct {
		name  string
		start func(t *testing.T) (addr string, logged func() string)
	}{
		{"haproxy", startHAProxy},
		{"nginx", startNginx},
	}
	for _, peer := range peers {
		t.Run(peer.name, func(t *testing.T) {
			addr, logged := peer.start(t)
			for _, engine := range engines(t) {
				for _, version := range []string{"v1", "v2"} {
					t.Run(engine+"/"+version, func(t *testing.T) {
						tl, tcpFile := opsListen(t)
						tcpAddr := tl.Addr().String()
						sock := filepath.Join(t.TempDir(), "front.sock")
						ul, err := net.Listen("unix", sock)
						if err != nil {
							t.Fatal(err)
						}
						defer ul.Close()
						unixFile, _ := ul.(*net.UnixListener).File()
						defer unixFile.Close()
						opsStart(t, proxytest.Activated{Path: binPath,
							Args:      []string{"--engine=" + engine, "--proxy-protocol=" + version, addr},
							Listeners: []*os.File{tcpFile, unixFile}})

						client := httpGet(t, "tcp", tcpAddr)
						opsWaitFor(t, 10*time.Second, peer.name+" to log client "+client, func() bool {
							return strings.Contains(logged(), "client="+client+"\n")
						})
						httpGet(t, "unix", sock)
					})
				}
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", peer.name, logged())
			}
		})
	}
}

// httpGet asks for / through addr and wants 200 "ok"; it returns the
// client's address.
func httpGet(t *testing.T, network, addr string) string {
	t.Helper()
	var c net.Conn
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err = net.DialTimeout(network, addr, 5*time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: test\r\n\r\n")
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("%s client: status %q, %v", network, status, err)
	}
	return c.LocalAddr().String()
}

// startPeer runs name with args until the test ends and waits until addr
// accepts connections.
func startPeer(t *testing.T, path, addr string, out *syncLog, args ...string) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that its workers go with it; and no
	// waiting for a pipe a stray child still holds.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	opsWaitFor(t, 10*time.Second, filepath.Base(path)+" to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func lookPeer(t *testing.T, name string) string {
	for _, p := range []string{name, "/usr/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skipf("%s is not installed (.ci/deps installs it as root): the PROXY headers are not checked against it", name)
	return ""
}

func startHAProxy(t *testing.T) (string, func() string) {
	path := lookPeer(t, "haproxy")
	addr := deadAddr(t)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	conf := `global
    log stdout format raw local0
defaults
    mode http
    log global
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend fe
    bind ` + addr + ` accept-proxy
    log-format "client=%ci:%cp"
    http-request return status 200 content-type text/plain string ok
`
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &syncLog{}
	startPeer(t, path, addr, out, "-db", "-f", cfg)
	return addr, out.String
}

func startNginx(t *testing.T) (string, func() string) {
	path := lookPeer(t, "nginx")
	addr := deadAddr(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	access := filepath.Join(dir, "access.log")
	conf := `pid ` + dir + `/nginx.pid;
error_log ` + dir + `/error.log;
worker_processes 1;
events {}
http {
    log_format pp 'client=$proxy_protocol_addr:$proxy_protocol_port';
    access_log ` + access + ` pp;
    client_body_temp_path ` + dir + `;
    proxy_temp_path ` + dir + `;
    fastcgi_temp_path ` + dir + `;
    uwsgi_temp_path ` + dir + `;
    scgi_temp_path ` + dir + `;
    server {
        listen ` + addr + ` proxy_protocol;
        location / { return 200 "ok"; }
    }
}
`
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &syncLog{}
	startPeer(t, path, addr, out, "-p", dir, "-c", cfg, "-g", "daemon off;")
	return addr, func() string {
		b, _ := os.ReadFile(access)
		return string(b) + out.String()
	}
}

// syncLog collects a peer's output for the test to read while it runs.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
