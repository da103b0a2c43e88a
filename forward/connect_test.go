package forward_test

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
)

// TestClientLeft: a Unix client that closed has left for good only when it
// left nothing to read; an error always means it has gone.
func TestClientLeft(t *testing.T) {
	pair := func() (int, int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fds[0]) })
		return fds[0], fds[1]
	}
	hungUp := func(fd int) bool {
		pfd := []unix.PollFd{{Fd: int32(fd)}}
		n, err := unix.Poll(pfd, 0)
		return err == nil && n == 1 && pfd[0].Revents&unix.POLLHUP != 0
	}

	proxy, client := pair()
	if _, err := unix.Write(client, []byte("last words")); err != nil {
		t.Fatal(err)
	}
	unix.Close(client)
	if !hungUp(proxy) {
		t.Fatal("a Unix socket whose peer closed reports no hang-up; the case under test does not arise")
	}
	if forward.ClientLeft(proxy, false, true) {
		t.Fatal("a client that hung up with bytes still to read was given up")
	}
	if !forward.ClientLeft(proxy, true, true) {
		t.Fatal("a client with an error was kept")
	}
	buf := make([]byte, 32)
	if n, _ := unix.Read(proxy, buf); string(buf[:n]) != "last words" {
		t.Fatalf("the check consumed the client's bytes: read %q", buf[:n])
	}
	if !forward.ClientLeft(proxy, false, true) {
		t.Fatal("a client that hung up with nothing left to read was kept")
	}

	idle, peer := pair()
	defer unix.Close(peer)
	if forward.ClientLeft(idle, false, false) {
		t.Fatal("a client with neither an error nor a hang-up was given up")
	}
}

// TestAcceptPauseText: a pause at the descriptor reserve does not claim
// that an accept failed; a real failure is worded as v252 words it.
func TestAcceptPauseText(t *testing.T) {
	if got := forward.AcceptPauseText(forward.PauseFull, 0, 20); !strings.HasPrefix(got, "Open connections: 20, as many as the open-file limit leaves descriptors for; pausing accepts") {
		t.Errorf("pause at capacity: %q", got)
	}
	if got := forward.AcceptPauseText(forward.PauseAccept, unix.EMFILE, 20); !strings.HasPrefix(got, "Failed to accept connection: Too many open files; pausing accepts") {
		t.Errorf("pause after EMFILE: %q", got)
	}
	if got := forward.AcceptPauseText(forward.PauseBackend, unix.ENFILE, 20); !strings.HasPrefix(got, "Failed to create backend socket: Too many open files in system; pausing accepts") {
		t.Errorf("pause after a backend socket's ENFILE: %q", got)
	}
}
