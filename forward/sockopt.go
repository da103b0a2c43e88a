package forward

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// PrepareListeners sets TCP_NODELAY on the TCP listeners when the server
// wants it: accepted sockets inherit it from their listener, as with
// systemd's NoDelay=, so the client leg costs no system call per
// connection. Only clients already in the accept queue (above all the one
// whose arrival started the proxy) were cloned from the listener before
// it had the option: their number is read from the queue, and that many
// first accepts get it set explicitly (clientNoDelay). With NoDelay off
// the listeners are left as the service manager made them.
func (s *Server) PrepareListeners() {
	s.noDelayDebt = make([]atomic.Int64, len(s.Listeners))
	if !s.NoDelay {
		return
	}
	for i, l := range s.Listeners {
		if !isTCP(l.FD) {
			continue
		}
		if err := unix.SetsockoptInt(l.FD, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			s.Log.Warnf("Failed to set TCP_NODELAY on listener %s, continuing: %v", l.Address(), err)
			continue
		}
		// For a listening socket the kernel reports its accept queue's
		// length as tcpi_unacked. Unknown: assume a full backlog.
		queued := int64(1 << 16)
		if ti, err := unix.GetsockoptTCPInfo(l.FD, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			queued = int64(ti.Unacked)
		}
		s.noDelayDebt[i].Store(queued)
	}
}

// clientNoDelay sets TCP_NODELAY on a client socket accepted on listener
// ln if it was queued before the listener had the option; one atomic load
// for every other client.
func (s *Server) clientNoDelay(ln, fd int) {
	if ln >= len(s.noDelayDebt) {
		return
	}
	d := &s.noDelayDebt[ln]
	if d.Load() > 0 && d.Add(-1) >= 0 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
}

// PrepareBackend sets the options the server wants on a new backend
// socket of the given family, before it connects: TCP_NODELAY and
// SO_KEEPALIVE apply to TCP only. A failure is not fatal to the
// connection (the option is an optimisation), so it is logged at debug
// level and ignored.
func (s *Server) PrepareBackend(fd, family int) {
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return
	}
	if s.NoDelay {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			s.Log.Debugf("Failed to set TCP_NODELAY: %v", err)
		}
	}
	if s.KeepAlive {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1); err != nil {
			s.Log.Debugf("Failed to set SO_KEEPALIVE: %v", err)
		}
	}
}

// isTCP reports whether fd is an IPv4 or IPv6 socket.
func isTCP(fd int) bool {
	d, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	return err == nil && (d == unix.AF_INET || d == unix.AF_INET6)
}
