package forward

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAppendProxyHeader(t *testing.T) {
	v4 := func(a, b, c, d byte, port int) unix.Sockaddr {
		return &unix.SockaddrInet4{Addr: [4]byte{a, b, c, d}, Port: port}
	}
	v6 := func(s string, port int) unix.Sockaddr {
		ip, _ := parseIP(s)
		return &unix.SockaddrInet6{Addr: ip.As16(), Port: port}
	}
	unixSA := &unix.SockaddrUnix{Name: "/run/x.sock"}
	sig := "0d0a0d0a000d0a515549540a"
	for _, tc := range []struct {
		name          string
		v             ProxyVersion
		client, local unix.Sockaddr
		want          string // v1: text; v2: hex
	}{
		{"v1 TCP4", ProxyV1, v4(192, 0, 2, 1, 56324), v4(127, 0, 0, 1, 443), "PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\n"},
		{"v1 TCP6", ProxyV1, v6("2001:db8::1", 65535), v6("::1", 8080), "PROXY TCP6 2001:db8::1 ::1 65535 8080\r\n"},
		{"v1 v4-mapped", ProxyV1, v6("::ffff:10.0.0.7", 1000), v6("::ffff:10.0.0.1", 80), "PROXY TCP4 10.0.0.7 10.0.0.1 1000 80\r\n"},
		{"v1 Unix", ProxyV1, unixSA, unixSA, "PROXY UNKNOWN\r\n"},
		{"v1 unnamed Unix peer", ProxyV1, &unix.SockaddrUnix{}, unixSA, "PROXY UNKNOWN\r\n"},
		{"v1 nil", ProxyV1, nil, nil, "PROXY UNKNOWN\r\n"},
		{"v1 mixed families", ProxyV1, v4(1, 2, 3, 4, 1), v6("::1", 2), "PROXY UNKNOWN\r\n"},
		{"v2 TCP4", ProxyV2, v4(192, 0, 2, 1, 56324), v4(127, 0, 0, 1, 443),
			sig + "21" + "11" + "000c" + "c0000201" + "7f000001" + "dc04" + "01bb"},
		{"v2 TCP6", ProxyV2, v6("2001:db8::1", 1), v6("::1", 2),
			sig + "21" + "21" + "0024" + "20010db8000000000000000000000001" + "00000000000000000000000000000001" + "0001" + "0002"},
		{"v2 Unix is LOCAL", ProxyV2, unixSA, unixSA, sig + "20" + "00" + "0000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendProxyHeader(make([]byte, 0, MaxProxyHeader), tc.v, tc.client, tc.local)
			if tc.v == ProxyV2 {
				if h := hex.EncodeToString(got); h != tc.want {
					t.Errorf("got %s\nwant %s", h, tc.want)
				}
				return
			}
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestProxyHeaderLimits: the longest addresses fit MaxProxyHeader (the
// specification's 107 bytes for v1), and nothing allocates.
func TestProxyHeaderLimits(t *testing.T) {
	long := &unix.SockaddrInet6{Port: 65535}
	for i := range long.Addr {
		long.Addr[i] = 0xff
	}
	buf := make([]byte, 0, MaxProxyHeader)
	v1 := AppendProxyHeader(buf, ProxyV1, long, long)
	if len(v1) > 107 || !strings.HasSuffix(string(v1), "\r\n") {
		t.Errorf("longest v1 line is %d bytes (%q), want ≤ 107 ending in CRLF", len(v1), v1)
	}
	if v2 := AppendProxyHeader(buf, ProxyV2, long, long); len(v2) != 52 {
		t.Errorf("v2 for IPv6 is %d bytes, want 52", len(v2))
	}
	a := &unix.SockaddrInet4{Addr: [4]byte{10, 1, 2, 3}, Port: 1234}
	for _, v := range []ProxyVersion{ProxyV1, ProxyV2} {
		if n := testing.AllocsPerRun(100, func() { _ = AppendProxyHeader(buf[:0], v, a, a) }); n != 0 {
			t.Errorf("v%d: %v allocations per header, want 0", v, n)
		}
	}
}

func TestParseProxyVersion(t *testing.T) {
	for s, want := range map[string]ProxyVersion{"v1": ProxyV1, "v2": ProxyV2} {
		if got, err := ParseProxyVersion(s); err != nil || got != want {
			t.Errorf("ParseProxyVersion(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "v3", "1", "V1", "v1 "} {
		if _, err := ParseProxyVersion(s); err == nil || !strings.Contains(err.Error(), strconvQuote(s)) {
			t.Errorf("ParseProxyVersion(%q) = %v, want an error naming it", s, err)
		}
	}
}

func strconvQuote(s string) string { return `"` + s + `"` }

// FuzzAppendProxyHeader: any pair of addresses gives a header within
// MaxProxyHeader, v1 a single CRLF-terminated line, v2 the signature and
// a length that matches.
func FuzzAppendProxyHeader(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4}, []byte{5, 6, 7, 8}, uint16(1), uint16(2), false)
	f.Add(bytes.Repeat([]byte{0xff}, 16), make([]byte, 16), uint16(65535), uint16(0), true)
	f.Fuzz(func(t *testing.T, a, b []byte, pa, pb uint16, unixPeer bool) {
		mk := func(x []byte, port uint16) unix.Sockaddr {
			switch {
			case unixPeer:
				return &unix.SockaddrUnix{Name: string(x)}
			case len(x) >= 16:
				sa := &unix.SockaddrInet6{Port: int(port)}
				copy(sa.Addr[:], x)
				return sa
			case len(x) >= 4:
				sa := &unix.SockaddrInet4{Port: int(port)}
				copy(sa.Addr[:], x)
				return sa
			}
			return nil
		}
		c, l := mk(a, pa), mk(b, pb)
		v1 := AppendProxyHeader(nil, ProxyV1, c, l)
		if len(v1) > 107 || !bytes.HasSuffix(v1, []byte("\r\n")) || bytes.Count(v1, []byte("\n")) != 1 {
			t.Fatalf("bad v1 header %q", v1)
		}
		v2 := AppendProxyHeader(nil, ProxyV2, c, l)
		if len(v2) < 16 || len(v2) > MaxProxyHeader || !bytes.Equal(v2[:12], proxyV2Sig[:]) ||
			int(v2[14])<<8|int(v2[15]) != len(v2)-16 {
			t.Fatalf("bad v2 header %x", v2)
		}
	})
}
