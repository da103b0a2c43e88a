package proxytest

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Notify is a NOTIFY_SOCKET for a proxy under test: it records every
// sd_notify message the proxy sends, as the service manager would get it.
type Notify struct {
	// Path is the value for NOTIFY_SOCKET.
	Path string

	mu   sync.Mutex
	msgs []string
	more chan struct{} // closed and replaced on every message
}

// ListenNotify opens a notification socket that lives until the test ends.
func ListenNotify(t *testing.T) *Notify {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n := &Notify{Path: path, more: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := c.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			close(n.more)
			n.more = make(chan struct{})
			n.mu.Unlock()
		}
	}()
	return n
}

// Messages returns every message received so far.
func (n *Notify) Messages() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// Wait waits up to d for a message, from the first one on, for which ok
// holds, and returns it; "" and false if none came.
func (n *Notify) Wait(d time.Duration, ok func(string) bool) (string, bool) {
	deadline := time.After(d)
	seen := 0
	for {
		n.mu.Lock()
		msgs, more := n.msgs[seen:], n.more
		seen = len(n.msgs)
		n.mu.Unlock()
		for _, m := range msgs {
			if ok(m) {
				return m, true
			}
		}
		select {
		case <-more:
		case <-deadline:
			return "", false
		}
	}
}

// WaitFor waits up to d for a message containing want.
func (n *Notify) WaitFor(d time.Duration, want string) (string, bool) {
	return n.Wait(d, func(m string) bool { return strings.Contains(m, want) })
}
