package forward

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
)

// Listener is one inherited listening socket.
type Listener struct {
	// File keeps the descriptor open for the life of the process; engines
	// use FD directly.
	File *os.File
	// FD is the raw descriptor, non-blocking and close-on-exec.
	FD int
	// Name is its FileDescriptorName= (LISTEN_FDNAMES); "unknown" without
	// one, as sd_listen_fds_with_names(3) names it.
	Name string
	// Target is where its connections go; nil means the server's Target.
	Target *Target
}

// Address is the address the listener is bound to, for messages.
func (l Listener) Address() string {
	sa, err := unix.Getsockname(l.FD)
	if err != nil {
		return fmt.Sprintf("fd %d", l.FD)
	}
	return FormatSockaddr(sa)
}

func (l Listener) targetOr(def *Target) *Target {
	if l.Target != nil {
		return l.Target
	}
	return def
}

// ListenerBroken reports whether err from accept means the listening
// socket will never accept again: it was shut down, or is not a listening
// socket any more. An engine stops accepting on it instead of failing the
// same way for ever (v252 aborts).
func ListenerBroken(err unix.Errno) bool {
	return err == unix.EINVAL || err == unix.EBADF || err == unix.ENOTSOCK
}

// ListenerBroke logs that listener i accepts no more, once however many
// event loops find out.
func (s *Server) ListenerBroke(i int, err unix.Errno) {
	if _, seen := s.brokenListeners.LoadOrStore(i, true); seen {
		return
	}
	l := s.Listeners[i]
	s.Log.Errorf("Listening socket %s (%s) accepts no more connections: %s; serving the other sockets and the open connections.",
		l.Address(), l.Name, ErrnoString(err))
}

// NamedTarget is one --target=NAME=TARGET.
type NamedTarget struct {
	Name   string
	Target *Target
}

// AssignTargets gives each listener its target: the one named after its
// FileDescriptorName=, otherwise def. A name that no listener has is an
// error naming it (a typo must not silently send traffic elsewhere), and
// so is a listener left without a target.
func AssignTargets(ls []Listener, def *Target, named []NamedTarget) error {
	for _, nt := range named {
		found := false
		for i := range ls {
			if ls[i].Name == nt.Name {
				ls[i].Target, found = nt.Target, true
			}
		}
		if !found {
			names := make([]string, len(ls))
			for i, l := range ls {
				names[i] = l.Name
			}
			return fmt.Errorf("No listening socket is named %q (--target=%s=%s); the sockets passed in are named: %s.",
				nt.Name, nt.Name, nt.Target, strings.Join(names, ", "))
		}
	}
	for i := range ls {
		if ls[i].Target == nil {
			if def == nil {
				return fmt.Errorf("Listening socket %s (named %q) has no target: give a default target or --target=%s=TARGET.",
					ls[i].Address(), ls[i].Name, ls[i].Name)
			}
			ls[i].Target = def
		}
	}
	return nil
}

// The errors of socket activation, worded as systemd-socket-proxyd v252
// words them so that scripts and people see the messages they know.
var (
	ErrNoSockets      = errors.New("Didn't get any sockets passed in.")
	ErrReceiveSockets = errors.New("Failed to receive sockets from parent.")
	ErrNotStream      = errors.New("Passed in socket is not a stream socket.")
)

// InheritListeners takes the listening sockets passed by the service
// manager (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), checks that each is a
// listening SOCK_STREAM socket of any family, makes them non-blocking and
// close-on-exec, and unsets the variables so children do not see them.
//
// It reports the conditions v252 reports, with its messages: no variables
// or a LISTEN_PID that is not ours (ErrNoSockets), malformed variables
// (ErrReceiveSockets), a descriptor that is not a listening stream socket
// (ErrNotStream).
func InheritListeners() ([]Listener, error) {
	n, err := listenFDCount()
	if err != nil {
		unsetActivationEnv()
		return nil, err
	}
	if n == 0 {
		unsetActivationEnv()
		return nil, ErrNoSockets
	}
	var names []string
	if v := os.Getenv("LISTEN_FDNAMES"); v != "" {
		names = strings.Split(v, ":")
	}
	files := activation.Files(true)
	if len(files) != n {
		return nil, ErrReceiveSockets
	}
	ls := make([]Listener, 0, n)
	for i, f := range files {
		l, err := NewListener(f)
		if err != nil {
			return nil, err
		}
		// systemd's name for a socket without one. v252 ignores names,
		// so a list of the wrong length is taken as far as it goes
		// rather than refused as sd_listen_fds_with_names does.
		if i >= len(names) || names[i] == "" {
			l.Name = "unknown"
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// NewListener checks that f is a listening stream socket and prepares it
// for an engine: non-blocking, close-on-exec. Its name is f.Name().
func NewListener(f *os.File) (Listener, error) {
	fd := listenerFD(f)
	if err := checkListener(fd); err != nil {
		return Listener{}, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return Listener{}, fmt.Errorf("Failed to mark file descriptor non-blocking: %w", err)
	}
	unix.CloseOnExec(fd)
	return Listener{File: f, FD: fd, Name: f.Name()}, nil
}

// listenFDCount mirrors sd_listen_fds(): 0 when activation is not for us,
// an error when the variables are malformed.
func listenFDCount() (int, error) {
	pidStr, ok := os.LookupEnv("LISTEN_PID")
	if !ok {
		return 0, nil
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, ErrReceiveSockets
	}
	if pid != os.Getpid() {
		return 0, nil
	}
	fdsStr, ok := os.LookupEnv("LISTEN_FDS")
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(fdsStr)
	if err != nil || n <= 0 {
		// v252 reports LISTEN_FDS=0 as malformed too.
		return 0, ErrReceiveSockets
	}
	for fd := 3; fd < 3+n; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return 0, ErrReceiveSockets
		}
	}
	return n, nil
}

func unsetActivationEnv() {
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
}

// listenerFD returns f's descriptor without os.File.Fd, which would switch
// it to blocking mode.
func listenerFD(f *os.File) int {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(u uintptr) { fd = int(u) })
	}
	return fd
}

// checkListener accepts a listening SOCK_STREAM socket, as sd_is_socket(fd,
// AF_UNSPEC, SOCK_STREAM, 1) does.
func checkListener(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("Failed to determine socket type: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return ErrNotStream
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("Failed to determine socket type: %w", err)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fmt.Errorf("Failed to determine socket type: %w", err)
	}
	if typ != unix.SOCK_STREAM || acc == 0 {
		return ErrNotStream
	}
	return nil
}
