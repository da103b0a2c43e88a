package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestParseTarget covers every form of "Targets" in behaviour.md.
func TestParseTarget(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatalf("no loopback interface: %v", err)
	}
	cases := []struct {
		spec   string
		host   string // "" for Unix targets
		port   int
		unix   bool
		static unix.Sockaddr // nil: a host name, resolved per connection
	}{
		{"/run/app.sock", "", 0, true, &unix.SockaddrUnix{Name: "/run/app.sock"}},
		{"@app", "", 0, true, &unix.SockaddrUnix{Name: "@app"}},
		{"127.0.0.1:8080", "127.0.0.1", 8080, false, &unix.SockaddrInet4{Port: 8080, Addr: [4]byte{127, 0, 0, 1}}},
		{"127.0.0.1", "127.0.0.1", 80, false, &unix.SockaddrInet4{Port: 80, Addr: [4]byte{127, 0, 0, 1}}},
		{"10.1.2.3:65535", "10.1.2.3", 65535, false, &unix.SockaddrInet4{Port: 65535, Addr: [4]byte{10, 1, 2, 3}}},
		{"127.0.0.1:1", "127.0.0.1", 1, false, &unix.SockaddrInet4{Port: 1, Addr: [4]byte{127, 0, 0, 1}}},
		{"127.0.0.1:0080", "127.0.0.1", 80, false, &unix.SockaddrInet4{Port: 80, Addr: [4]byte{127, 0, 0, 1}}},
		// Split at the last ':', as v252 does.
		{"::1:8080", "::1", 8080, false, &unix.SockaddrInet6{Port: 8080, Addr: netip.IPv6Loopback().As16()}},
		{"[::1]:8080", "::1", 8080, false, &unix.SockaddrInet6{Port: 8080, Addr: netip.IPv6Loopback().As16()}},
		{"[::1]", "::1", 80, false, &unix.SockaddrInet6{Port: 80, Addr: netip.IPv6Loopback().As16()}},
		{"fe80::1%lo:22", "fe80::1%lo", 22, false, &unix.SockaddrInet6{Port: 22, Addr: netip.MustParseAddr("fe80::1").As16(), ZoneId: uint32(lo.Index)}},
		// An IPv4-mapped address is connected to as IPv4.
		{"[::ffff:127.0.0.1]:81", "::ffff:127.0.0.1", 81, false, &unix.SockaddrInet4{Port: 81, Addr: [4]byte{127, 0, 0, 1}}},
		// Host names and service names.
		{"localhost:http", "localhost", 80, false, nil},
		{"localhost:https", "localhost", 443, false, nil},
		{"localhost", "localhost", 80, false, nil},
		{"backend.example.com:8080", "backend.example.com", 8080, false, nil},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			tg, err := ParseTarget(c.spec)
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", c.spec, err)
			}
			if tg.Spec != c.spec || tg.String() != c.spec {
				t.Errorf("Spec %q, String %q; want %q", tg.Spec, tg.String(), c.spec)
			}
			if tg.IsUnix() != c.unix {
				t.Errorf("IsUnix() = %v, want %v", tg.IsUnix(), c.unix)
			}
			if tg.host != c.host || tg.port != c.port {
				t.Errorf("host %q port %d, want %q %d", tg.host, tg.port, c.host, c.port)
			}
			st := tg.Static()
			if c.static == nil {
				if st != nil {
					t.Errorf("Static() = %v, want nil for a host name", st)
				}
				return
			}
			if len(st) != 1 {
				t.Fatalf("Static() = %v, want one address", st)
			}
			if !sockaddrEqual(st[0], c.static) {
				t.Errorf("Static()[0] = %#v, want %#v", st[0], c.static)
			}
			// Resolve never asks anyone for a static target.
			got, err := tg.Resolve(context.Background())
			if err != nil || len(got) != 1 || !sockaddrEqual(got[0], c.static) {
				t.Errorf("Resolve() = %v, %v; want the static address", got, err)
			}
		})
	}
}

// TestParseTargetRejects checks that a target that can never work is
// refused at start, with a message naming the problem.
func TestParseTargetRejects(t *testing.T) {
	cases := []struct {
		spec, want string
	}{
		{"", "empty"},
		{"127.0.0.1:0", `invalid port "0"`},
		{"127.0.0.1:65536", `invalid port "65536"`},
		{"127.0.0.1:99999999999999999999", "invalid port"},
		{"127.0.0.1:", "port is empty"},
		{"localhost:abc-unknown-service", `unknown service name "abc-unknown-service"`},
		{"localhost:-1", "unknown service name"},
		{":80", "has no host"},
		{":", "has no host"},
		{"[]:80", "has no host"},
		{"[::1", "without ']'"},
		{"[::1]8080", "not :PORT"},
		{"[::1]:", "port is empty"},
		{"[::1]:0", "invalid port"},
		// "::1" splits into host ":" and port 1, as in v252: not a host.
		{"::1", "neither an IP address nor a host name"},
		{"a b:80", "neither an IP address nor a host name"},
		{"a/b:80", "neither an IP address nor a host name"},
		{"host%eth0:80", "neither an IP address nor a host name"},
		{"fe80::1%no-such-if0:80", "neither an IP address nor a host name"},
		{"1:2:3:80", "neither an IP address nor a host name"},
		{"@", "empty"},
		// sun_path is 108 bytes: a path needs its NUL; an abstract name
		// could use all 108, but x/sys builds at most 107.
		{"/" + strings.Repeat("p", 107), "longer than the 107"},
		{"@" + strings.Repeat("a", 108), "longer than the 107"},
	}
	for _, c := range cases {
		name := c.spec
		if len(name) > 40 {
			name = name[:20] + "…"
		}
		t.Run(name, func(t *testing.T) {
			tg, err := ParseTarget(c.spec)
			if err == nil {
				t.Fatalf("ParseTarget(%q) = %+v, want an error", c.spec, tg)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParseTarget(%q): %q, want it to contain %q", c.spec, err, c.want)
			}
		})
	}
}

// TestUnixPathLimits binds real sockets at the longest accepted lengths:
// what ParseTarget accepts, the kernel accepts, and one byte more it does not.
func TestUnixPathLimits(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "s")
	if len(base) > 100 {
		t.Skipf("temporary directory %s is too long for this test", dir)
	}
	path107 := base + strings.Repeat("p", 107-len(base))
	tg, err := ParseTarget(path107)
	if err != nil {
		t.Fatalf("ParseTarget(107-byte path): %v", err)
	}
	bindUnix(t, tg.Static()[0])
	l, err := net.Listen("unix", path107)
	if err == nil {
		l.Close()
		t.Fatal("second bind to the same 107-byte path succeeded")
	}
	if _, err := os.Stat(path107); err != nil {
		t.Errorf("the 107-byte path was not created: %v", err)
	}

	path108 := path107 + "p"
	if _, err := ParseTarget(path108); err == nil {
		t.Error("ParseTarget accepted a 108-byte path")
	}
	fd := unixSocket(t)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path108}); err == nil {
		t.Error("the kernel took a 108-byte path: the limit in ParseTarget is too strict")
	}

	// An abstract name of 108 bytes ('@' included) would fill sun_path and
	// the kernel takes it, but x/sys cannot build such an address and v252
	// refuses it too: it is refused at start, and 107 bytes work.
	abs108 := "@" + strings.Repeat("a", 91) + randomName(t)
	if _, err := ParseTarget(abs108); err == nil || !strings.Contains(err.Error(), "abstract socket name") || !strings.Contains(err.Error(), "longer than the 107") {
		t.Errorf("ParseTarget(108-byte abstract name) = %v, want it refused naming the limit", err)
	}
	abs107 := abs108[:107]
	tg, err = ParseTarget(abs107)
	if err != nil {
		t.Fatalf("ParseTarget(107-byte abstract name): %v", err)
	}
	lfd := unixSocket(t)
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: abs107}); err != nil {
		t.Fatalf("bind 107-byte abstract name: %v", err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		t.Fatal(err)
	}
	if got := boundNameLen(t, lfd); got != 107 {
		t.Errorf("abstract name of 107 bytes bound with %d bytes of sun_path", got)
	}
	if err := unix.Connect(unixSocket(t), tg.Static()[0]); err != nil {
		t.Errorf("connecting to the 107-byte abstract name %s…: %v", abs107[:20], err)
	}
}

// TestAbstractAddress checks the abstract address that a target makes: its
// length is the name's length, with no NUL padding, so it reaches a socket
// bound by anyone else (systemd, Go, socat) under the same name.
func TestAbstractAddress(t *testing.T) {
	name := "@uring-socket-proxyd-test-" + randomName(t)
	tg, err := ParseTarget(name)
	if err != nil {
		t.Fatal(err)
	}
	fd := bindUnix(t, tg.Static()[0])
	if got := boundNameLen(t, fd); got != len(name) {
		t.Errorf("bound %d bytes of sun_path, want %d (the name, leading NUL included, no padding)", got, len(name))
	}
	proc, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Skipf("no /proc/net/unix: %v", err)
	}
	// /proc/net/unix shows NULs in abstract names as '@': padding would
	// show as trailing '@'s.
	var found bool
	for _, line := range strings.Split(string(proc), "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && strings.HasPrefix(f[7], name) {
			found = true
			if f[7] != name {
				t.Errorf("/proc/net/unix shows %q, want %q", f[7], name)
			}
		}
	}
	if !found {
		t.Errorf("%s not in /proc/net/unix", name)
	}
	unix.Close(fd)

	// The other way round: a listener bound by Go is reached with the
	// target's address.
	l, err := net.Listen("unix", name)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfd := unixSocket(t)
	if err := unix.Connect(cfd, tg.Static()[0]); err != nil {
		t.Fatalf("connect to %s bound by Go: %v", name, err)
	}
}

// TestResolveEveryAddress resolves host names through a DNS server of the
// test's own: every address is returned, in the resolver's order, and each
// connection sees the answer of the moment.
func TestResolveEveryAddress(t *testing.T) {
	dns := startFakeDNS(t)
	dns.set([]netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("::1")})
	tg, err := ParseTarget("multi.example:8080")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Static() != nil {
		t.Fatal("a host name has static addresses")
	}
	tg.resolver = dns.resolver()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want, err := tg.resolver.LookupNetIP(ctx, "ip", "multi.example")
	if err != nil {
		t.Fatalf("the test's resolver: %v", err)
	}
	got, err := tg.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || len(want) != 3 {
		t.Fatalf("Resolve() = %v (resolver: %v), want all three addresses", got, want)
	}
	for i, ip := range want {
		if !sockaddrEqual(got[i], sockaddrOf(ip, 8080)) {
			t.Errorf("address %d: %s, want %s port 8080 (resolver order %v)", i, FormatSockaddr(got[i]), ip, want)
		}
	}
	// Not cached: a DNS change is seen by the next connection.
	dns.set([]netip.Addr{netip.MustParseAddr("127.0.0.9")})
	got, err = tg.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || FormatSockaddr(got[0]) != "127.0.0.9:8080" {
		t.Errorf("after the DNS change Resolve() = %v, want [127.0.0.9:8080]", got)
	}
	// No answer: an error in v252's words for a missing name, naming the
	// host. (For a name without addresses v252 says "No address associated
	// with hostname"; Go's resolver does not tell the two apart.)
	dns.set(nil)
	got, err = tg.Resolve(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "Failed to resolve host: Name or service not known; ") || !strings.Contains(err.Error(), "multi.example") {
		t.Errorf("Resolve() with no address = %v, %v; want a \"Failed to resolve host\" error", got, err)
	}
}

// TestResolveLocalhost resolves localhost with the default resolver, as the
// proxy does: the answer is every address the system gives, with the port.
func TestResolveLocalhost(t *testing.T) {
	tg, err := ParseTarget("localhost:http")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want, err := net.DefaultResolver.LookupNetIP(ctx, "ip", "localhost")
	if err != nil {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	got, err := tg.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Resolve() = %v, want every address of %v", fmtAll(got), want)
	}
	for i, ip := range want {
		if !sockaddrEqual(got[i], sockaddrOf(ip, 80)) {
			t.Errorf("address %d: %s, want %s port 80", i, FormatSockaddr(got[i]), ip)
		}
		if !ip.IsLoopback() {
			t.Errorf("localhost resolved to %s", ip)
		}
	}
}

func TestResolveFailure(t *testing.T) {
	tg, err := ParseTarget("no-such-host.invalid:80")
	if err != nil {
		t.Fatal(err)
	}
	tg.resolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in this test")
	}}
	got, err := tg.Resolve(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "Failed to resolve host: Temporary failure in name resolution; ") ||
		!strings.Contains(err.Error(), "no-such-host.invalid") {
		t.Fatalf("Resolve() = %v, %v; want v252's \"Failed to resolve host: Temporary failure…\", then the host", got, err)
	}
}

func TestFormatSockaddr(t *testing.T) {
	cases := []struct {
		sa   unix.Sockaddr
		want string
	}{
		{&unix.SockaddrInet4{Port: 8080, Addr: [4]byte{127, 0, 0, 1}}, "127.0.0.1:8080"},
		{&unix.SockaddrInet4{Port: 0, Addr: [4]byte{10, 0, 0, 1}}, "10.0.0.1:0"},
		{&unix.SockaddrInet6{Port: 443, Addr: netip.IPv6Loopback().As16()}, "[::1]:443"},
		{&unix.SockaddrInet6{Port: 80, Addr: netip.MustParseAddr("2001:db8::5").As16()}, "[2001:db8::5]:80"},
		{&unix.SockaddrInet6{Port: 80, Addr: netip.MustParseAddr("::ffff:192.0.2.1").As16()}, "[::ffff:192.0.2.1]:80"},
		{&unix.SockaddrUnix{Name: "/run/app.sock"}, "unix:/run/app.sock"},
		{&unix.SockaddrUnix{Name: "@app"}, "unix:@app"},
		{&unix.SockaddrUnix{}, "unix:(unnamed)"},
		{&unix.SockaddrNetlink{}, "?"},
		{nil, "?"},
	}
	for _, c := range cases {
		if got := FormatSockaddr(c.sa); got != c.want {
			t.Errorf("FormatSockaddr(%#v) = %q, want %q", c.sa, got, c.want)
		}
	}
}

// TestPeerNameOfRealSockets names the peers of real connections, as the
// engines do in log lines ("New connection from …", "client …").
func TestPeerNameOfRealSockets(t *testing.T) {
	peer := func(t *testing.T, network, addr string) (string, string) {
		t.Helper()
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Skipf("listen %s %s: %v", network, addr, err)
		}
		defer l.Close()
		c, err := net.Dial(network, l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		raw, err := s.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var name string
		_ = raw.Control(func(fd uintptr) { name = PeerName(int(fd)) })
		return name, c.LocalAddr().String()
	}
	t.Run("tcp4", func(t *testing.T) {
		got, want := peer(t, "tcp4", "127.0.0.1:0")
		if got != want {
			t.Errorf("peer %q, want %q", got, want)
		}
	})
	t.Run("tcp6", func(t *testing.T) {
		got, want := peer(t, "tcp6", "[::1]:0")
		if got != want {
			t.Errorf("peer %q, want %q", got, want)
		}
	})
	t.Run("unix-unnamed-client", func(t *testing.T) {
		// A Unix client rarely binds: its peer address is unnamed
		// (getpeername returns the family alone). x/sys turns that into
		// Name "@", which must not be shown as an abstract address.
		got, _ := peer(t, "unix", filepath.Join(t.TempDir(), "l.sock"))
		if got != "unix:(unnamed)" {
			t.Errorf("peer of an unnamed Unix client is %q, want %q", got, "unix:(unnamed)")
		}
	})
	t.Run("closed-and-not-a-socket", func(t *testing.T) {
		if got := PeerName(-1); got != "(closed)" {
			t.Errorf("PeerName(-1) = %q", got)
		}
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if got := PeerName(int(f.Fd())); got != "(unknown)" {
			t.Errorf("PeerName(/dev/null) = %q", got)
		}
	})
}

// ---- helpers ---------------------------------------------------------------

func sockaddrEqual(a, b unix.Sockaddr) bool {
	switch a := a.(type) {
	case *unix.SockaddrInet4:
		b, ok := b.(*unix.SockaddrInet4)
		return ok && a.Port == b.Port && a.Addr == b.Addr
	case *unix.SockaddrInet6:
		b, ok := b.(*unix.SockaddrInet6)
		return ok && a.Port == b.Port && a.Addr == b.Addr && a.ZoneId == b.ZoneId
	case *unix.SockaddrUnix:
		b, ok := b.(*unix.SockaddrUnix)
		return ok && a.Name == b.Name
	}
	return false
}

func fmtAll(sas []unix.Sockaddr) []string {
	var out []string
	for _, sa := range sas {
		out = append(out, FormatSockaddr(sa))
	}
	return out
}

func randomName(t *testing.T) string {
	var b [8]byte
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 16)
	for _, c := range b {
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(out)
}

func unixSocket(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// bindUnix binds a new socket to sa and returns it.
func bindUnix(t *testing.T, sa unix.Sockaddr) int {
	t.Helper()
	fd := unixSocket(t)
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind %s: %v", FormatSockaddr(sa), err)
	}
	return fd
}

// boundNameLen returns how many bytes of sun_path the socket is bound with,
// from the address length getsockname reports (x/sys drops it).
func boundNameLen(t *testing.T, fd int) int {
	t.Helper()
	var raw unix.RawSockaddrUnix
	n := uint32(unsafe.Sizeof(raw))
	_, _, e := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&raw)), uintptr(unsafe.Pointer(&n)))
	if e != 0 {
		t.Fatalf("getsockname: %v", e)
	}
	return int(n) - int(unsafe.Offsetof(raw.Path))
}

// fakeDNS answers A and AAAA queries for any name with the addresses set.
type fakeDNS struct {
	pc    net.PacketConn
	mu    sync.Mutex
	addrs []netip.Addr
}

func startFakeDNS(t *testing.T) *fakeDNS {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{pc: pc}
	t.Cleanup(func() { pc.Close() })
	go d.serve()
	return d
}

func (d *fakeDNS) set(addrs []netip.Addr) {
	d.mu.Lock()
	d.addrs = slices.Clone(addrs)
	d.mu.Unlock()
}

// resolver is a pure-Go resolver that sends every query to d.
func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp4", d.pc.LocalAddr().String())
	}}
}

func (d *fakeDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := d.answer(buf[:n]); resp != nil {
			_, _ = d.pc.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query: the header, the question copied,
// and one answer per address of the asked type, named by a pointer to the
// question's name.
func (d *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	i++ // the root label
	if i+4 > len(q) {
		return nil
	}
	question := q[12 : i+4]
	qtype := binary.BigEndian.Uint16(q[i:])
	d.mu.Lock()
	var rdatas [][]byte
	for _, a := range d.addrs {
		switch {
		case qtype == 1 && a.Is4():
			b := a.As4()
			rdatas = append(rdatas, b[:])
		case qtype == 28 && a.Is6():
			b := a.As16()
			rdatas = append(rdatas, b[:])
		}
	}
	d.mu.Unlock()
	r := make([]byte, 12, 512)
	copy(r, q[:2])                            // ID
	binary.BigEndian.PutUint16(r[2:], 0x8580) // QR, AA, RD, RA, NOERROR
	binary.BigEndian.PutUint16(r[4:], 1)      // QDCOUNT
	binary.BigEndian.PutUint16(r[6:], uint16(len(rdatas)))
	r = append(r, question...)
	for _, rd := range rdatas {
		r = binary.BigEndian.AppendUint16(r, 0xc00c) // name: pointer to the question's
		r = binary.BigEndian.AppendUint16(r, qtype)
		r = binary.BigEndian.AppendUint16(r, 1) // IN
		r = binary.BigEndian.AppendUint32(r, 0) // TTL 0: nothing to cache
		r = binary.BigEndian.AppendUint16(r, uint16(len(rd)))
		r = append(r, rd...)
	}
	return r
}

// inetAtonCases are host parts of a target that getaddrinfo (glibc's
// inet_aton) reads as an IPv4 address, or not ("").
var inetAtonCases = []struct{ host, want string }{
	{"127.0.0.1", "127.0.0.1"},
	{"127.1", "127.0.0.1"},
	{"127.0.1", "127.0.0.1"},
	{"2130706433", "127.0.0.1"},
	{"0x7f000001", "127.0.0.1"},
	{"0X7F000001", "127.0.0.1"},
	{"0x7f.1", "127.0.0.1"},
	{"0", "0.0.0.0"},
	{"010.0.0.1", "8.0.0.1"},
	{"0377.0xff.255.0", "255.255.255.0"},
	{"1.0xffffff", "1.255.255.255"},
	{"1.2.0xffff", "1.2.255.255"},
	{"4294967295", "255.255.255.255"},
	{"08", ""}, {"09.1", ""}, {"0x", ""}, {"0x.1", ""}, {"0xg", ""}, {"00x1", ""},
	{"1.2.3.4.5", ""}, {"999.1", ""}, {"256.0.0.1", ""}, {"1.2.3.256", ""},
	{"1.0x1000000", ""}, {"1.2.0x10000", ""}, {"4294967296", ""}, {"99999999999999999999", ""},
	{"127.0.0.1.", ""}, {".1", ""}, {"1..2", ""}, {" 127.1", ""}, {"127.1 ", ""}, {"127.1x", ""},
	{"+1", ""}, {"-1", ""}, {"", ""}, {"localhost", ""}, {"::1", ""},
}

// TestParseInetAton: every numeric form of an IPv4 address that v252
// connects to is connected to, as the same address.
func TestParseInetAton(t *testing.T) {
	for _, c := range inetAtonCases {
		ip, ok := parseInetAton(c.host)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != c.want {
			t.Errorf("parseInetAton(%q) = %q, want %q", c.host, got, c.want)
		}
	}
	tg, err := ParseTarget("127.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if st := tg.Static(); len(st) != 1 || FormatSockaddr(st[0]) != "127.0.0.1:8080" {
		t.Fatalf("ParseTarget(127.1:8080) connects to %v, want 127.0.0.1:8080", st)
	}
}

// TestParseInetAtonAgreesWithLibc checks the cases against the C
// library's getaddrinfo, through getent(1): what it reads as an address,
// we read as the same address; what it does not, neither do we.
func TestParseInetAtonAgreesWithLibc(t *testing.T) {
	getent, err := exec.LookPath("getent")
	if err != nil {
		t.Skip("no getent")
	}
	for _, c := range inetAtonCases {
		if c.host == "" || c.host == "localhost" || c.host == "::1" {
			continue // not numeric IPv4 at all
		}
		out, _ := exec.Command(getent, "ahostsv4", c.host).Output()
		libc := ""
		if f := strings.Fields(string(out)); len(f) >= 3 && f[2] == c.host {
			libc = f[0]
		}
		if libc != c.want {
			t.Errorf("getaddrinfo(%q) gives %q, the table says %q", c.host, libc, c.want)
		}
	}
}
