package forward

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Back-off between connect rounds while the target refuses or is missing:
// short at first, so a backend that is just starting is reached quickly,
// and capped, so it is reached soon after it starts. Both engines use it.
const (
	BackoffMin = 10 * time.Millisecond
	BackoffMax = 250 * time.Millisecond
)

// NextBackoff doubles a back-off up to BackoffMax.
func NextBackoff(d time.Duration) time.Duration { return min(2*d, BackoffMax) }

// Retryable reports whether a failed connect is worth trying again before
// the connect deadline: the errors of a backend that is not (yet)
// accepting, or of a moment without descriptors.
func Retryable(err error) bool {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case unix.ECONNREFUSED, unix.ENOENT, unix.EAGAIN, unix.ECONNRESET, unix.ETIMEDOUT,
		unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EMFILE, unix.ENFILE:
		return true
	}
	return false
}

// ClientLeft says whether a client that reported an error or a hang-up
// while its backend was not yet connected has gone for good, so that the
// connect can be abandoned. An error (a reset) means it has. A hang-up
// means so only when the client left nothing to read: a Unix stream socket
// reports one as soon as its peer closes, with the peer's last bytes still
// waiting, and those must reach the backend (systemd-socket-proxyd
// delivers them). A TCP client's close is no hang-up, only the end of its
// stream, and never gets here.
func ClientLeft(fd int, failed, hungUp bool) bool {
	if failed {
		return true
	}
	if !hungUp {
		return false
	}
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err == nil && n == 0
}

// SockaddrFamily returns the address family of sa, for socket(2).
func SockaddrFamily(sa unix.Sockaddr) int {
	switch sa.(type) {
	case *unix.SockaddrInet4:
		return unix.AF_INET
	case *unix.SockaddrInet6:
		return unix.AF_INET6
	}
	return unix.AF_UNIX
}

// PeerName names the peer of a connected socket for log lines.
func PeerName(fd int) string {
	if fd < 0 {
		return "(closed)"
	}
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return "(unknown)"
	}
	return FormatSockaddr(sa)
}

// ErrnoText renders an error the way systemd's %m does ("Connection
// refused"); other errors keep their own text.
func ErrnoText(err error) string {
	if errno, ok := err.(unix.Errno); ok {
		return ErrnoString(errno)
	}
	return err.Error()
}

// ErrnoString is glibc's strerror text: Go's, which is the same in lower
// case, capitalised.
func ErrnoString(e unix.Errno) string {
	s := e.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// CloneSockaddrs copies addresses: x/sys writes into a Sockaddr when it is
// used, so event loops running at once must not share them.
func CloneSockaddrs(in []unix.Sockaddr) []unix.Sockaddr {
	if in == nil {
		return nil
	}
	out := make([]unix.Sockaddr, len(in))
	for i, sa := range in {
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			out[i] = &unix.SockaddrInet4{Port: a.Port, Addr: a.Addr}
		case *unix.SockaddrInet6:
			out[i] = &unix.SockaddrInet6{Port: a.Port, ZoneId: a.ZoneId, Addr: a.Addr}
		case *unix.SockaddrUnix:
			out[i] = &unix.SockaddrUnix{Name: a.Name}
		default:
			out[i] = sa
		}
	}
	return out
}

// ResetOnClose makes the coming close of a TCP socket send RST instead of
// FIN, so a reset travels through the proxy.
func ResetOnClose(fd int) {
	if fd >= 0 {
		_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
}

// AcceptPause is how long an engine stops accepting after running out of
// file descriptors or memory, or reaching ConnectionCapacity, unless a
// connection closes first: accepting again at once would fail again, and
// spin (v252 does, at 100 % CPU).
const AcceptPause = 100 * time.Millisecond

// Why an engine pauses accepting (AcceptPauseText).
const (
	PauseAccept  = "accept connection"     // an accept failed
	PauseBackend = "create backend socket" // a backend's socket(2) failed
	PauseFull    = ""                      // ConnectionCapacity reached
)

// AcceptPauseText is the log line of such a pause: which call failed
// (PauseAccept, PauseBackend) and its error, or PauseFull when the open
// connections reached ConnectionCapacity, which no system call reported.
func AcceptPauseText(failed string, err unix.Errno, open int64) string {
	if failed == PauseFull {
		return fmt.Sprintf("Open connections: %d, as many as the open-file limit leaves descriptors for; pausing accepts for %v or until a connection closes.", open, AcceptPause)
	}
	return fmt.Sprintf("Failed to %s: %s; pausing accepts for %v or until a connection closes.", failed, ErrnoString(err), AcceptPause)
}

// ConnectionCapacity returns how many connections of perConn descriptors
// each the open-file limit leaves room for, after the descriptors open now
// and reserve more. Engines stop accepting there, so that clients never
// hold the descriptors their backends (and pipes) need: past it, accepting
// more would only make every connection wait.
func ConnectionCapacity(perConn, reserve int) int64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return math.MaxInt64
	}
	open := 0
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		open = len(ents)
	}
	return max(1, (int64(lim.Cur)-int64(open)-int64(reserve))/int64(perConn))
}
