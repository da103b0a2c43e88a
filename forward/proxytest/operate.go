package proxytest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The cases of running the proxy in production: the drain on stop,
// per-connection idle timeouts, targets per listener name, connection
// logs. None of them exists in v252.

// testDrainFinishesTransfer: a stop lets a transfer in flight finish, byte
// for byte; accepting stops at once, and a client that connects during the
// drain stays in the listener's queue for the next instance.
func testDrainFinishesTransfer(t *testing.T, h Harness) {
	bl, _ := listen(t, "tcp4", "127.0.0.1:0")
	var backendConns atomic.Int32
	serve(t, bl, func(c net.Conn) { backendConns.Add(1); echo(c) })
	addr, f := frontend(t)
	p := h.Start(t, []*os.File{f}, bl.Addr().String(), Options{DrainTimeout: time.Minute})

	const size = 16 << 20
	payload := randomBytes(size, 7)
	c := dial(t, addr)
	got := make(chan []byte, 1)
	var echoed atomic.Int64
	go func() {
		var buf bytes.Buffer
		chunk := make([]byte, 64<<10)
		for {
			n, err := c.Read(chunk)
			buf.Write(chunk[:n])
			echoed.Add(int64(n))
			if err != nil {
				break
			}
		}
		got <- buf.Bytes()
	}()
	// Send the first quarter, stop the proxy, then send the rest slowly
	// enough that the drain is surely under way while bytes still move.
	if _, err := c.Write(payload[:size/4]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first bytes echoed", func() bool { return echoed.Load() > 0 })
	p.Terminate(t)
	waitFor(t, 10*time.Second, "the drain to start", func() bool { return strings.Contains(p.Log(), "Stopping:") }, p.Log)

	// A client arriving now is not accepted: the backend never sees it.
	late := dial(t, addr)
	for off := size / 4; off < size; off += 1 << 20 {
		if _, err := c.Write(payload[off : off+1<<20]); err != nil {
			t.Fatalf("write during the drain: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	closeWrite(c)
	var all []byte
	select {
	case all = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("echo did not finish")
	}
	if !bytes.Equal(all, payload) {
		t.Fatalf("drained transfer: got %d bytes, want %d identical ones", len(all), size)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d after the drain, want 0", code)
	}
	if n := backendConns.Load(); n != 1 {
		t.Errorf("backend saw %d connections, want 1: the client that came during the drain was accepted", n)
	}
	// The late client is still queued: the next instance would get it.
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(2 * time.Second))
	queued, err := ln.Accept()
	if err != nil {
		t.Fatalf("the client that came during the drain is not in the listener's queue: %v", err)
	}
	defer queued.Close()
	if queued.RemoteAddr().String() != late.LocalAddr().String() {
		t.Errorf("queued client is %v, want %v", queued.RemoteAddr(), late.LocalAddr())
	}
}

// testDrainTimeout: connections still open when the drain time is over
// are closed, and the proxy exits 0.
func testDrainTimeout(t *testing.T, h Harness) {
	bl, _ := listen(t, "tcp4", "127.0.0.1:0")
	serve(t, bl, echo)
	addr, f := frontend(t)
	const drain = 300 * time.Millisecond
	p := h.Start(t, []*os.File{f}, bl.Addr().String(), Options{DrainTimeout: drain})
	c := dial(t, addr)
	roundTripOn(t, c, "x")
	start := time.Now()
	p.Terminate(t)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if el := time.Since(start); el < drain {
		t.Errorf("exited %v after SIGTERM, before the drain time of %v with a connection open", el, drain)
	}
	expectClosedWithoutData(t, c, 5*time.Second)
	if !strings.Contains(p.Log(), "Drain time is over: closing 1 connection(s).") {
		t.Errorf("log does not say the drain time ran out:\n%s", p.Log())
	}
}

// testSecondStopHurries: a second SIGTERM during the drain closes what is
// left at once.
func testSecondStopHurries(t *testing.T, h Harness) {
	bl, _ := listen(t, "tcp4", "127.0.0.1:0")
	serve(t, bl, echo)
	addr, f := frontend(t)
	p := h.Start(t, []*os.File{f}, bl.Addr().String(), Options{DrainTimeout: time.Hour})
	c := dial(t, addr)
	roundTripOn(t, c, "x")
	p.Terminate(t)
	waitFor(t, 10*time.Second, "the drain to start", func() bool { return strings.Contains(p.Log(), "Stopping:") }, p.Log)
	p.Terminate(t)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	expectClosedWithoutData(t, c, 5*time.Second)
}

// testDrainDefault: without --drain-timeout, a stop lets an open
// connection go on (the default is 10s, not v252's "at once").
func testDrainDefault(t *testing.T, h Harness) {
	bl, _ := listen(t, "tcp4", "127.0.0.1:0")
	serve(t, bl, echo)
	addr, f := frontend(t)
	p := h.Start(t, []*os.File{f}, bl.Addr().String(), Options{DrainTimeout: DrainDefault})
	c := dial(t, addr)
	roundTripOn(t, c, "before")
	p.Terminate(t)
	waitFor(t, 10*time.Second, "the drain to start", func() bool { return strings.Contains(p.Log(), "Stopping:") }, p.Log)
	if !strings.Contains(p.Log(), "for up to 10s") {
		t.Errorf("log does not name the default drain time:\n%s", p.Log())
	}
	roundTripOn(t, c, "during the drain")
	c.Close()
	if code := p.Wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// roundTripOn sends msg on c to an echo backend and checks the echo.
func roundTripOn(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: got %q, %v; want %q", buf, err, msg)
	}
}

// testIdleTimeout: a connection that moves nothing for --idle-timeout is
// closed; one that keeps moving bytes is not, however long it lasts.
func testIdleTimeout(t *testing.T, h Harness) {
	bl, _ := listen(t, "tcp4", "127.0.0.1:0")
	serve(t, bl, echo)
	addr, f := frontend(t)
	const idle = 400 * time.Millisecond
	p := h.Start(t, []*os.File{f}, bl.Addr().String(), Options{IdleTimeout: idle})

	quiet := dial(t, addr)
	roundTripOn(t, quiet, "q")
	lastByte := time.Now()
	busy := dial(t, addr)
	done := make(chan error, 1)
	go func() {
		// Traffic every idle/4 for 4 idle times.
		for i := 0; i < 16; i++ {
			msg := fmt.Sprintf("tick %d", i)
			if _, err := io.WriteString(busy, msg); err != nil {
				done <- err
				return
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(busy, buf); err != nil {
				done <- fmt.Errorf("tick %d: %w", i, err)
				return
			}
			time.Sleep(idle / 4)
		}
		done <- nil
	}()
	expectClosedWithoutData(t, quiet, 10*time.Second)
	if el := time.Since(lastByte); el < idle-50*time.Millisecond {
		t.Errorf("idle connection closed after %v, before the idle timeout of %v", el, idle)
	}
	if err := <-done; err != nil {
		t.Errorf("busy connection was cut: %v", err)
	}
	_ = p
}

// testNamedTargets: each listener's connections go to the target named
// after its FileDescriptorName=, the others to the default target.
func testNamedTargets(t *testing.T, h Harness) {
	backend := func(name string) string {
		l, _ := listen(t, "tcp4", "127.0.0.1:0")
		serve(t, l, func(c net.Conn) { _, _ = io.WriteString(c, name) })
		return l.Addr().String()
	}
	web, metrics, other := backend("web"), backend("metrics"), backend("default")
	addrs := make([]string, 3)
	files := make([]*os.File, 3)
	for i := range files {
		addrs[i], files[i] = frontend(t)
	}
	p := h.Start(t, files, other, Options{
		Names:   []string{"metrics", "unnamed", "web"},
		Targets: map[string]string{"web": web, "metrics": metrics},
	})
	want := []string{"metrics", "default", "web"}
	for i, addr := range addrs {
		c := dial(t, addr)
		got, err := io.ReadAll(c)
		if err != nil || string(got) != want[i] {
			t.Errorf("listener %d (%s): got %q, %v; want %q", i, addrs[i], got, err, want[i])
		}
	}
	_ = p
}

// testNamedTargetsOnly: with a --target for every listener, no default
// target is needed.
func testNamedTargetsOnly(t *testing.T, h Harness) {
	l, _ := listen(t, "tcp4", "127.0.0.1:0")
	serve(t, l, func(c net.Conn) { _, _ = io.WriteString(c, "only") })
	addr, f := frontend(t)
	h.Start(t, []*os.File{f}, "", Options{Names: []string{"svc"}, Targets: map[string]string{"svc": l.Addr().String()}})
	got, err := io.ReadAll(dial(t, addr))
	if err != nil || string(got) != "only" {
		t.Errorf("got %q, %v; want %q", got, err, "only")
	}
}

// connLine is the --log-connections line of a connection that ended
// normally.
var connLine = regexp.MustCompile(`Connection from (\S+) to (\S+): (\S+) up, (\S+) down, \S+, closed\.`)

// testLogConnections: one line per connection with client, target, bytes
// each way and how it ended.
func testLogConnections(t *testing.T, h Harness) {
	bl, _ := listen(t, "tcp4", "127.0.0.1:0")
	serve(t, bl, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		_, _ = io.WriteString(c, "0123456789")
		closeWrite(c)
	})
	addr, f := frontend(t)
	p := h.Start(t, []*os.File{f}, bl.Addr().String(), Options{LogConnections: true})
	c := dial(t, addr)
	_, _ = io.WriteString(c, "hello")
	closeWrite(c)
	if got, err := io.ReadAll(c); err != nil || string(got) != "0123456789" {
		t.Fatalf("got %q, %v", got, err)
	}
	var m []string
	waitFor(t, 5*time.Second, "the connection's log line", func() bool {
		m = connLine.FindStringSubmatch(p.Log())
		return m != nil
	}, p.Log)
	want := []string{c.LocalAddr().String(), bl.Addr().String(), "5B", "10B"}
	for i, w := range want {
		if m[i+1] != w {
			t.Errorf("log line %q: field %d is %q, want %q", m[0], i+1, m[i+1], w)
		}
	}
}

// testProxyProtocol: with --proxy-protocol the backend gets a header
// naming the client and the address it connected to before any of the
// client's bytes, which follow intact; Unix clients are UNKNOWN (v1) or
// LOCAL (v2). The header is decoded here independently of the encoder.
func testProxyProtocol(t *testing.T, h Harness) {
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			headers := make(chan string, 4)
			bl, _ := listen(t, "tcp4", "127.0.0.1:0")
			serve(t, bl, func(c net.Conn) {
				hdr, err := readProxyHeader(c, version)
				if err != nil {
					headers <- "error: " + err.Error()
					return
				}
				headers <- hdr
				echo(c)
			})
			tcpAddr, tcpFile := frontend(t)
			sock := filepath.Join(t.TempDir(), "front.sock")
			ul, unixFile := listen(t, "unix", sock)
			h.Start(t, []*os.File{tcpFile, unixFile}, bl.Addr().String(), Options{ProxyProtocol: version})

			c := dial(t, tcpAddr)
			roundTripOn(t, c, "after the header")
			want := "TCP4 " + strings.ReplaceAll(c.LocalAddr().String(), ":", " ") + " " + strings.ReplaceAll(tcpAddr, ":", " ")
			if got := <-headers; got != want {
				t.Errorf("TCP client: backend got header %q, want %q", got, want)
			}
			u := dial(t, ul.Addr().String())
			roundTripOn(t, u, "after the header")
			want = map[string]string{"v1": "UNKNOWN", "v2": "LOCAL"}[version]
			if got := <-headers; got != want {
				t.Errorf("Unix client: backend got header %q, want %q", got, want)
			}
		})
	}
}

// readProxyHeader reads a PROXY header and returns it as
// "TCP4 src dst sport dport" (addresses in order, ports in order, as v1
// puts them), "UNKNOWN" or "LOCAL".
func readProxyHeader(c net.Conn, version string) (string, error) {
	if version == "v1" {
		var line []byte
		b := make([]byte, 1)
		for !bytes.HasSuffix(line, []byte("\r\n")) {
			if _, err := io.ReadFull(c, b); err != nil {
				return "", err
			}
			line = append(line, b[0])
			if len(line) > 107 {
				return "", fmt.Errorf("v1 line longer than 107 bytes: %q", line)
			}
		}
		f := strings.Fields(string(line))
		if len(f) < 2 || f[0] != "PROXY" {
			return "", fmt.Errorf("not a v1 header: %q", line)
		}
		if f[1] == "UNKNOWN" {
			return "UNKNOWN", nil
		}
		if len(f) != 6 {
			return "", fmt.Errorf("bad v1 header: %q", line)
		}
		return fmt.Sprintf("%s %s %s %s %s", f[1], f[2], f[4], f[3], f[5]), nil
	}
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return "", err
	}
	if !bytes.Equal(hdr[:12], []byte("\r\n\r\n\x00\r\nQUIT\n")) {
		return "", fmt.Errorf("no v2 signature: %x", hdr)
	}
	body := make([]byte, int(hdr[14])<<8|int(hdr[15]))
	if _, err := io.ReadFull(c, body); err != nil {
		return "", err
	}
	switch {
	case hdr[12] == 0x20:
		return "LOCAL", nil
	case hdr[12] == 0x21 && hdr[13] == 0x11 && len(body) == 12:
		ip := func(b []byte) string { return net.IP(b).String() }
		port := func(b []byte) int { return int(b[0])<<8 | int(b[1]) }
		return fmt.Sprintf("TCP4 %s %d %s %d", ip(body[0:4]), port(body[8:10]), ip(body[4:8]), port(body[10:12])), nil
	}
	return "", fmt.Errorf("unexpected v2 header %x %x", hdr, body)
}
