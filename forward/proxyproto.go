package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// ProxyVersion is the PROXY protocol version sent to the backend
// (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt); 0 sends
// none.
type ProxyVersion uint8

// The versions --proxy-protocol= takes.
const (
	ProxyNone ProxyVersion = 0
	ProxyV1   ProxyVersion = 1 // text, as current systemd-socket-proxyd sends it
	ProxyV2   ProxyVersion = 2 // binary
)

// MaxProxyHeader is the largest header AppendProxyHeader writes: a v1
// line is at most 107 bytes, a v2 header for IPv6 52.
const MaxProxyHeader = 108

// ParseProxyVersion parses --proxy-protocol's argument: v1 or v2.
func ParseProxyVersion(s string) (ProxyVersion, error) {
	switch s {
	case "v1":
		return ProxyV1, nil
	case "v2":
		return ProxyV2, nil
	}
	return ProxyNone, fmt.Errorf("unknown PROXY protocol version %q (expected v1 or v2)", s)
}

// proxyV2Sig starts every v2 header.
var proxyV2Sig = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// AppendProxyHeader appends the header of version v for a connection from
// client (the accepted socket's peer) to local (the address the client
// connected to) to dst. Clients that are not TCP over IPv4 or IPv6 (Unix
// sockets) are "PROXY UNKNOWN" in v1 and LOCAL in v2, as the
// specification says. A pair of IPv4-mapped IPv6 addresses (a dual-stack
// listener) is sent as IPv4, which is what the client used. Nothing
// allocates when dst has room for MaxProxyHeader bytes.
func AppendProxyHeader(dst []byte, v ProxyVersion, client, local unix.Sockaddr) []byte {
	src, sport, sok := inetAddr(client)
	dstAddr, dport, dok := inetAddr(local)
	ok := sok && dok
	if ok && src.Is4In6() && dstAddr.Is4In6() {
		src, dstAddr = src.Unmap(), dstAddr.Unmap()
	}
	if ok && src.Is4() != dstAddr.Is4() {
		ok = false // mixed families cannot be said in either version
	}
	switch v {
	case ProxyV1:
		if !ok {
			return append(dst, "PROXY UNKNOWN\r\n"...)
		}
		dst = append(dst, "PROXY TCP4 "...)
		if !src.Is4() {
			dst[len(dst)-2] = '6'
		}
		dst = src.AppendTo(dst)
		dst = append(dst, ' ')
		dst = dstAddr.AppendTo(dst)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(sport), 10)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(dport), 10)
		return append(dst, "\r\n"...)
	case ProxyV2:
		dst = append(dst, proxyV2Sig[:]...)
		if !ok {
			return append(dst, 0x20, 0x00, 0, 0) // LOCAL, UNSPEC, no addresses
		}
		if src.Is4() {
			dst = append(dst, 0x21, 0x11, 0, 12) // PROXY, TCP over IPv4
			s4, d4 := src.As4(), dstAddr.As4()
			dst = append(dst, s4[:]...)
			dst = append(dst, d4[:]...)
		} else {
			dst = append(dst, 0x21, 0x21, 0, 36) // PROXY, TCP over IPv6
			s16, d16 := src.As16(), dstAddr.As16()
			dst = append(dst, s16[:]...)
			dst = append(dst, d16[:]...)
		}
		dst = binary.BigEndian.AppendUint16(dst, sport)
		return binary.BigEndian.AppendUint16(dst, dport)
	}
	return dst
}

// inetAddr returns sa's IP address and port if it is IPv4 or IPv6.
func inetAddr(sa unix.Sockaddr) (netip.Addr, uint16, bool) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr), uint16(sa.Port), true
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr), uint16(sa.Port), true
	}
	return netip.Addr{}, 0, false
}

// ProxyHeaderFor appends the header of version v for the accepted client
// socket clientFD. Reading the two addresses costs two small allocations
// in x/sys: the price of the option, paid only when it is on.
func ProxyHeaderFor(dst []byte, v ProxyVersion, clientFD int) ([]byte, error) {
	peer, err := unix.Getpeername(clientFD)
	if err != nil {
		return dst, err
	}
	local, err := unix.Getsockname(clientFD)
	if err != nil {
		return dst, err
	}
	return AppendProxyHeader(dst, v, peer, local), nil
}

// errShortHeader is a header the socket would not take whole.
var errShortHeader = errors.New("the PROXY header did not fit in the socket's send buffer")

// WriteProxyHeader sends hdr on a backend socket that has just connected,
// without blocking: the header must go whole and first, and on a new
// socket its ≤ 108 bytes always fit; if they do not, that is an error,
// never a wait in the event loop.
func WriteProxyHeader(fd int, hdr []byte) error {
	n, err := unix.SendmsgN(fd, hdr, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	if err != nil {
		return err
	}
	if n != len(hdr) {
		return errShortHeader
	}
	return nil
}

// SendProxyHeader sends the server's PROXY header for the client socket
// accepted on listener ln to its just-connected backend, building it in
// buf (MaxProxyHeader bytes of scratch). A failure is logged here, and the
// engine closes the connection: a backend that expects a header would take
// the client's bytes for one.
func (s *Server) SendProxyHeader(buf []byte, client, backend, ln int) error {
	hdr, err := ProxyHeaderFor(buf[:0], s.ProxyProtocol, client)
	if err == nil {
		err = WriteProxyHeader(backend, hdr)
	}
	if err != nil {
		s.Log.Warnf("Failed to send the PROXY protocol header to %s: %v (client %s)",
			s.TargetOf(ln), ErrnoText(err), PeerName(client))
	}
	return err
}
