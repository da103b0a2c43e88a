package ring

import (
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"
)

// Set stores s in sa in the kernel's form. It handles *unix.SockaddrInet4,
// *unix.SockaddrInet6 and *unix.SockaddrUnix; a Unix name starting with '@'
// is abstract (the '@' becomes a NUL and the length excludes a trailing
// NUL), like the net package and x/sys/unix do.
func (sa *RawSockaddr) Set(s unix.Sockaddr) error {
	*sa = RawSockaddr{}
	b := sa.Addr[:]
	switch s := s.(type) {
	case *unix.SockaddrInet4:
		if s.Port < 0 || s.Port > 0xffff {
			return os.NewSyscallError("sockaddr", unix.EINVAL)
		}
		// struct sockaddr_in: family, port (big-endian), address.
		binary.NativeEndian.PutUint16(b[0:], unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], uint16(s.Port))
		copy(b[4:8], s.Addr[:])
		sa.Len = unix.SizeofSockaddrInet4
	case *unix.SockaddrInet6:
		if s.Port < 0 || s.Port > 0xffff {
			return os.NewSyscallError("sockaddr", unix.EINVAL)
		}
		// struct sockaddr_in6: family, port, flow info, address, scope ID.
		binary.NativeEndian.PutUint16(b[0:], unix.AF_INET6)
		binary.BigEndian.PutUint16(b[2:], uint16(s.Port))
		copy(b[8:24], s.Addr[:])
		binary.NativeEndian.PutUint32(b[24:], s.ZoneId)
		sa.Len = unix.SizeofSockaddrInet6
	case *unix.SockaddrUnix:
		// struct sockaddr_un: family, then a path of up to 108 bytes.
		name := s.Name
		const pathMax = len(unix.RawSockaddrUnix{}.Path)
		abstract := len(name) > 0 && name[0] == '@'
		if len(name) > pathMax || len(name) == pathMax && !abstract {
			return os.NewSyscallError("sockaddr", unix.EINVAL)
		}
		binary.NativeEndian.PutUint16(b[0:], unix.AF_UNIX)
		copy(b[2:], name)
		sa.Len = 2
		switch {
		case abstract:
			b[2] = 0
			sa.Len += uint32(len(name))
		case len(name) > 0:
			sa.Len += uint32(len(name)) + 1 // and the terminating NUL
		}
	default:
		return os.NewSyscallError("sockaddr", unix.EAFNOSUPPORT)
	}
	return nil
}

// Sockaddr decodes sa, e.g. the peer address PrepAccept filled in.
// Abstract Unix names come back with a leading '@'.
func (sa *RawSockaddr) Sockaddr() (unix.Sockaddr, error) {
	n := min(int(sa.Len), len(sa.Addr))
	if n < 2 {
		return nil, os.NewSyscallError("sockaddr", unix.EINVAL)
	}
	b := sa.Addr[:n]
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			break
		}
		s := &unix.SockaddrInet4{Port: int(binary.BigEndian.Uint16(b[2:]))}
		copy(s.Addr[:], b[4:8])
		return s, nil
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			break
		}
		s := &unix.SockaddrInet6{Port: int(binary.BigEndian.Uint16(b[2:])), ZoneId: binary.NativeEndian.Uint32(b[24:])}
		copy(s.Addr[:], b[8:24])
		return s, nil
	case unix.AF_UNIX:
		path := b[2:]
		if len(path) > 0 && path[0] == 0 {
			return &unix.SockaddrUnix{Name: "@" + string(path[1:])}, nil
		}
		for i, c := range path {
			if c == 0 {
				path = path[:i]
				break
			}
		}
		return &unix.SockaddrUnix{Name: string(path)}, nil
	default:
		return nil, os.NewSyscallError("sockaddr", unix.EAFNOSUPPORT)
	}
	return nil, os.NewSyscallError("sockaddr", unix.EINVAL)
}
