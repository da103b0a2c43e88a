package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Target is where every accepted connection is forwarded. It is parsed once
// at start; host names are resolved again for each connection so DNS changes
// are seen.
type Target struct {
	// Spec is the target as given on the command line.
	Spec string
	// unix is the socket path of a Unix target ("@name" for abstract).
	unix string
	// host and port of an Internet target; host is "" for Unix targets.
	host string
	port int
	// static holds the addresses of a Unix target or an IP literal, which
	// never need resolving.
	static []unix.Sockaddr
	// resolver resolves host names; nil means net.DefaultResolver.
	resolver *net.Resolver
}

// maxUnixPath is the usable length of sockaddr_un.sun_path: 108 bytes with a
// terminating NUL for paths; abstract names use all 108 bytes but their
// leading NUL (our '@') counts too.
const maxUnixPath = 108

// ParseTarget parses HOST:PORT, /unix/path or @abstract as systemd-socket-proxyd
// does, and rejects at once a target that can never work (a bad port, an
// over-long Unix path, an empty host) instead of failing every connection.
//
// Like v252, the address is split at the last ':' and a missing port means
// 80; `[::1]:8080` is also accepted, and the port may be a service name.
func ParseTarget(spec string) (*Target, error) {
	t := &Target{Spec: spec}
	switch {
	case spec == "":
		return nil, errors.New("target is empty")
	case spec[0] == '/' || spec[0] == '@':
		// A path needs its NUL in sun_path. An abstract name could fill all
		// 108 bytes, but golang.org/x/sys/unix builds addresses of at most
		// 107, and v252 refuses 108 too ("doesn't fit in an AF_UNIX
		// address"): refused here rather than failing every connection.
		if limit := maxUnixPath - 1; len(spec) > limit {
			what := "Unix socket path"
			if spec[0] == '@' {
				what = "abstract socket name"
			}
			return nil, fmt.Errorf("%s %q is %d bytes long, longer than the %d that fit in sun_path", what, spec, len(spec), limit)
		}
		if spec == "@" {
			return nil, fmt.Errorf("abstract socket name %q is empty", spec)
		}
		t.unix = spec
		t.static = []unix.Sockaddr{&unix.SockaddrUnix{Name: spec}}
		return t, nil
	}

	host, service := spec, "80"
	if strings.HasPrefix(spec, "[") {
		end := strings.IndexByte(spec, ']')
		if end < 0 {
			return nil, fmt.Errorf("target %q has '[' without ']'", spec)
		}
		host = spec[1:end]
		rest := spec[end+1:]
		switch {
		case rest == "":
		case rest[0] == ':':
			service = rest[1:]
		default:
			return nil, fmt.Errorf("target %q has text after ']' that is not :PORT", spec)
		}
	} else if i := strings.LastIndexByte(spec, ':'); i >= 0 {
		host, service = spec[:i], spec[i+1:]
	}
	if host == "" {
		return nil, fmt.Errorf("target %q has no host", spec)
	}
	port, err := parsePort(service)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", spec, err)
	}
	t.host, t.port = host, port
	if ip, ok := parseInetAton(host); ok {
		t.static = []unix.Sockaddr{sockaddrOf(ip, port)}
		return t, nil
	}
	if ip, err := parseIP(host); err == nil {
		t.static = []unix.Sockaddr{sockaddrOf(ip, port)}
		return t, nil
	}
	if strings.ContainsAny(host, ":/ \t[]%") {
		return nil, fmt.Errorf("target %q: host %q is neither an IP address nor a host name", spec, host)
	}
	return t, nil
}

// parsePort accepts a decimal port 1–65535 or a service name from the
// services database, as getaddrinfo does.
func parsePort(service string) (int, error) {
	if service == "" {
		return 0, errors.New("port is empty")
	}
	if service[0] >= '0' && service[0] <= '9' {
		n, err := strconv.ParseUint(service, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("invalid port %q (must be 1-65535)", service)
		}
		return int(n), nil
	}
	n, err := net.LookupPort("tcp", service)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("unknown service name %q", service)
	}
	return n, nil
}

// parseInetAton parses an IPv4 address in every form v252's getaddrinfo
// takes for one (glibc's inet_aton): one to four parts separated by dots,
// each decimal, octal after a leading 0, or hexadecimal after 0x, the last
// part filling the bytes that remain. So "127.1", "2130706433" and
// "0x7f000001" are 127.0.0.1, and "010.0.0.1" is 8.0.0.1, not 10.0.0.1.
// netip and Go's resolver know only the dotted quad without leading zeros,
// and would look the others up as host names, which fails.
func parseInetAton(s string) (netip.Addr, bool) {
	var bytes [4]byte
	parts := 0
	for {
		// Each part as strtoul(…, 0) reads it, starting with a digit.
		if s == "" || s[0] < '0' || s[0] > '9' {
			return netip.Addr{}, false
		}
		base, i := uint64(10), 0
		if s[0] == '0' {
			base, i = 8, 1
			if len(s) > 2 && (s[1] == 'x' || s[1] == 'X') && hexDigit(s[2]) >= 0 {
				base, i = 16, 2
			}
		}
		var val uint64
		for ; i < len(s); i++ {
			d := hexDigit(s[i])
			if d < 0 || uint64(d) >= base {
				break
			}
			if val = val*base + uint64(d); val > 0xffffffff {
				return netip.Addr{}, false
			}
		}
		s = s[i:]
		if s == "" {
			// The last part fills the bytes that remain.
			if val > 0xffffffff>>(8*parts) {
				return netip.Addr{}, false
			}
			for b := 3; b >= parts; b-- {
				bytes[b] = byte(val)
				val >>= 8
			}
			return netip.AddrFrom4(bytes), true
		}
		if s[0] != '.' || parts == 3 || val > 0xff {
			return netip.Addr{}, false
		}
		bytes[parts] = byte(val)
		parts++
		s = s[1:]
	}
}

// hexDigit is the value of hexadecimal digit c, or -1.
func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// parseIP parses an IP literal, with an optional IPv6 zone.
func parseIP(host string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return ip, err
	}
	if ip.Zone() != "" {
		if _, err := net.InterfaceByName(ip.Zone()); err != nil {
			if _, nerr := strconv.Atoi(ip.Zone()); nerr != nil {
				return ip, fmt.Errorf("unknown interface %q", ip.Zone())
			}
		}
	}
	return ip, nil
}

func sockaddrOf(ip netip.Addr, port int) unix.Sockaddr {
	if ip.Is4() || ip.Is4In6() {
		return &unix.SockaddrInet4{Port: port, Addr: ip.Unmap().As4()}
	}
	sa := &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
	if z := ip.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else if n, err := strconv.Atoi(z); err == nil {
			sa.ZoneId = uint32(n)
		}
	}
	return sa
}

// Static returns the target's addresses when they never need resolving (a
// Unix socket or an IP literal), and nil for a host name.
func (t *Target) Static() []unix.Sockaddr { return t.static }

// IsUnix reports whether the target is a Unix socket (path or abstract).
func (t *Target) IsUnix() bool { return t.unix != "" }

// Resolve returns the addresses to try, in order, for one connection. For a
// host name it asks the resolver every time, so DNS changes are seen; every
// address returned is to be tried before the connection is given up.
func (t *Target) Resolve(ctx context.Context) ([]unix.Sockaddr, error) {
	if t.static != nil {
		return t.static, nil
	}
	r := t.resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", t.host)
	if err != nil {
		return nil, fmt.Errorf("Failed to resolve host: %s; %w", resolveErrorText(err), err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("Failed to resolve host: No address associated with hostname; %s has none", t.host)
	}
	out := make([]unix.Sockaddr, len(ips))
	for i, ip := range ips {
		out[i] = sockaddrOf(ip, t.port)
	}
	return out, nil
}

// resolveErrorText words a failed lookup as v252 does, with the text
// getaddrinfo gives its error (gai_strerror), so that a log search for
// v252's message still finds ours; Go's own error follows it.
func resolveErrorText(err error) string {
	if dns := (*net.DNSError)(nil); errors.As(err, &dns) && dns.IsNotFound {
		return "Name or service not known" // EAI_NONAME
	}
	return "Temporary failure in name resolution" // EAI_AGAIN: no answer (yet)
}

// String returns the target as given.
func (t *Target) String() string { return t.Spec }

// FormatSockaddr renders a socket address for log lines.
func FormatSockaddr(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		// x/sys reports an unbound peer (an address of the family alone)
		// as "@", which would read as an abstract name.
		if a.Name == "" || a.Name == "@" {
			return "unix:(unnamed)"
		}
		return "unix:" + a.Name
	}
	return "?"
}
