package forward

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/ring"
)

// TestUringBuffersProvided: every buffer the worker provides, at start and
// each time the pool grows, is one the kernel can fill. As many recvs as
// buffers provided, none given back, each get a buffer of their own that
// holds their bytes, and one more finds the group empty. Unlike the state
// tests, this one submits: the kernel, not the test, picks the buffers.
func TestUringBuffersProvided(t *testing.T) {
	// The ring is SINGLE_ISSUER: only the thread that made it may submit.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	if !w.growBufs() || !w.growBufs() {
		t.Fatalf("the pool did not grow twice from %d buffers", uringBufStart)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	const ud = 1 << 40 // no operation of the worker's packs to this
	recv := func(msg []byte) ring.CQE {
		t.Helper()
		if _, err := unix.Write(fds[1], msg); err != nil {
			t.Fatal(err)
		}
		s := w.r.GetSQE()
		s.PrepRecvSelect(fds[0], uringBufGroup, 0)
		s.SetUserData(ud)
		for {
			if _, err := w.r.SubmitAndWait(1); err != nil {
				t.Fatal(err)
			}
			n := w.r.PeekBatch(w.cqes)
			for _, c := range w.cqes[:n] {
				if c.UserData() == ud {
					cqe := *c
					w.r.Advance(n)
					return cqe
				}
			}
			w.r.Advance(n)
		}
	}
	held := make(map[uint16]bool)
	for i := range w.bufsLent {
		msg := fmt.Appendf(nil, "recv %06d", i)
		c := recv(msg)
		bid, ok := c.BufferID()
		switch {
		case c.Res() != int32(len(msg)) || !ok:
			t.Fatalf("recv %d of %d provided: %d bytes, buffer %d (%v); want %d bytes in a buffer", i, w.bufsLent, c.Res(), bid, ok, len(msg))
		case int(bid) >= w.bufsLent || held[bid]:
			t.Fatalf("recv %d got buffer %d: outside the %d provided, or already held", i, bid, w.bufsLent)
		case !bytes.Equal(w.buf(bid)[:len(msg)], msg):
			t.Fatalf("recv %d: buffer %d holds %q, want %q", i, bid, w.buf(bid)[:len(msg)], msg)
		}
		held[bid] = true
	}
	if c := recv([]byte("one more")); c.Res() != -int32(unix.ENOBUFS) {
		t.Fatalf("a recv with all %d buffers held: %d, want -ENOBUFS", w.bufsLent, c.Res())
	}
}
