package ring

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRawSockaddrSet(t *testing.T) {
	long := string(make([]byte, 108))
	for _, c := range []struct {
		sa      unix.Sockaddr
		wantLen uint32
		prefix  []byte // expected leading bytes (family in little-endian order)
	}{
		{&unix.SockaddrInet4{Port: 0x1234, Addr: [4]byte{127, 0, 0, 1}}, 16,
			[]byte{2, 0, 0x12, 0x34, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}},
		{&unix.SockaddrInet6{Port: 80, Addr: [16]byte{15: 1}, ZoneId: 3}, 28,
			[]byte{10, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0}},
		{&unix.SockaddrUnix{Name: "/run/x.sock"}, 2 + 11 + 1, append([]byte{1, 0}, "/run/x.sock\x00"...)},
		{&unix.SockaddrUnix{Name: "@abstract"}, 2 + 9, append([]byte{1, 0, 0}, "abstract"...)},
		{&unix.SockaddrUnix{Name: "@" + long[1:]}, 2 + 108, []byte{1, 0, 0}},
		{&unix.SockaddrUnix{Name: ""}, 2, []byte{1, 0, 0}},
	} {
		var raw RawSockaddr
		raw.Addr[50] = 0xff // Set must clear what was there
		if err := raw.Set(c.sa); err != nil {
			t.Errorf("Set(%+v): %v", c.sa, err)
			continue
		}
		if raw.Len != c.wantLen {
			t.Errorf("Set(%+v): Len %d, want %d", c.sa, raw.Len, c.wantLen)
		}
		prefix := c.prefix
		if bigEndian {
			prefix = append([]byte{prefix[1], prefix[0]}, prefix[2:]...)
		}
		if got := raw.Addr[:len(prefix)]; !reflect.DeepEqual(got, prefix) {
			t.Errorf("Set(%+v): bytes %v, want %v", c.sa, got, prefix)
		}
		if raw.Addr[50] != 0 && raw.Len < 50 {
			t.Errorf("Set(%+v) left old bytes behind", c.sa)
		}
		back, err := raw.Sockaddr()
		if err != nil {
			t.Errorf("Sockaddr() of %+v: %v", c.sa, err)
		} else if !reflect.DeepEqual(back, c.sa) && !bigEndian {
			t.Errorf("round trip of %+v gave %+v", c.sa, back)
		}
	}

	var raw RawSockaddr
	for _, bad := range []unix.Sockaddr{
		&unix.SockaddrUnix{Name: long},       // no room for the NUL
		&unix.SockaddrUnix{Name: long + "x"}, // too long
		&unix.SockaddrNetlink{},
		&unix.SockaddrInet4{Port: 70000},
		&unix.SockaddrInet6{Port: -1},
	} {
		if err := raw.Set(bad); err == nil {
			t.Errorf("Set(%T) succeeded", bad)
		}
	}
	if _, err := (&RawSockaddr{Len: 1}).Sockaddr(); err == nil {
		t.Error("Sockaddr() of a 1-byte address succeeded")
	}
	if _, err := (&RawSockaddr{Len: 8, Addr: [128]byte{2}}).Sockaddr(); err == nil && !bigEndian {
		t.Error("Sockaddr() of a short AF_INET address succeeded")
	}
}

// TestConnectFamilies connects through the ring to listeners of each address
// family, so the kernel itself checks Set's encoding, and checks the peer
// address accept reports.
func TestConnectFamilies(t *testing.T) {
	r := newRing(t, 8, nil)
	requireOps(t, r, OpAccept, OpConnect)
	dir := t.TempDir()
	abstract := fmt.Sprintf("@ring-test-%d", os.Getpid())
	for _, c := range []struct {
		name   string
		domain int
		addr   unix.Sockaddr
		client unix.Sockaddr // to bind the client to, so it has a name to report
	}{
		{"inet4", unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, nil},
		{"inet6", unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}, nil},
		{"unix", unix.AF_UNIX, &unix.SockaddrUnix{Name: filepath.Join(dir, "s")}, &unix.SockaddrUnix{Name: filepath.Join(dir, "c")}},
		{"abstract", unix.AF_UNIX, &unix.SockaddrUnix{Name: abstract}, &unix.SockaddrUnix{Name: abstract + "-client"}},
		{"unnamed", unix.AF_UNIX, &unix.SockaddrUnix{Name: abstract + "-2"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := unix.Socket(c.domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Skipf("no %s sockets: %v", c.name, err)
			}
			closeFds(t, ln)
			if err := unix.Bind(ln, c.addr); err != nil {
				t.Skipf("cannot bind %+v: %v", c.addr, err)
			}
			if err := unix.Listen(ln, 8); err != nil {
				t.Fatal(err)
			}
			lnAddr, err := unix.Getsockname(ln)
			if err != nil {
				t.Fatal(err)
			}
			client, err := unix.Socket(c.domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			closeFds(t, client)
			if c.client != nil {
				if err := unix.Bind(client, c.client); err != nil {
					t.Fatal(err)
				}
			}
			dst, peer := new(RawSockaddr), new(RawSockaddr)
			if err := dst.Set(lnAddr); err != nil {
				t.Fatal(err)
			}
			s := getSQE(t, r)
			s.PrepConnect(client, dst)
			s.SetUserData(1)
			s = getSQE(t, r)
			s.PrepAccept(ln, peer, unix.SOCK_CLOEXEC)
			s.SetUserData(2)
			cqes := byUserData(t, reap(t, r, 2))
			wantRes(t, cqes[1], 0)
			if cqes[2].Res() < 0 {
				t.Fatalf("accept: %v", cqes[2].Err())
			}
			closeFds(t, int(cqes[2].Res()))
			got, err := peer.Sockaddr()
			if err != nil {
				t.Fatal(err)
			}
			want, err := unix.Getsockname(client)
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "unnamed" {
				want = &unix.SockaddrUnix{} // x/sys/unix reports "@"
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("accept reported peer %+v, client is %+v", got, want)
			}
		})
	}
}
