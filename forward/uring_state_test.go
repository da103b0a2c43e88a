package forward

import (
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/ring"
)

// The connection state machine of the io_uring engine, fed synthetic
// completions: the order of events is the test's, not the kernel's. The
// ring is real but only collects SQEs; nothing is submitted after setup.

func newStateWorker(t *testing.T, target string, connectTimeout time.Duration) *uworker {
	t.Helper()
	if err := CheckUring(); err != nil {
		t.Skipf("io_uring unusable here: %v", err)
	}
	tg, err := ParseTarget(target)
	if err != nil {
		t.Fatal(err)
	}
	// One real listener that no client connects to: connections are fed
	// to the worker as if accepted on it.
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(lfd) })
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		t.Fatal(err)
	}
	s := &Server{Target: tg, ConnectTimeout: connectTimeout, Log: NewLogger(io.Discard, LevelDebug, false),
		Listeners: []Listener{{FD: lfd, Name: "state"}}}
	s.Tracker = NewTracker(16, Never, nil, nil)
	w := &uworker{s: s, wakefd: -1}
	if err := w.setup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range w.conns {
			for _, fd := range []int{c.client, c.backend} {
				if fd >= 0 {
					unix.Close(fd)
				}
			}
		}
		w.stopping.Store(true)
		w.teardown()
	})
	return w
}

// newStateConn admits a connection whose client is one end of a socket
// pair; the other end is returned.
func newStateConn(t *testing.T, w *uworker) (*uconn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	if !w.s.Tracker.TryOpen() {
		t.Fatal("tracker full")
	}
	w.startConn(fds[0], 0)
	return w.conns[len(w.conns)-1], fds[1]
}

// openStateConn admits a connection and completes its connect: it is
// open, with a recv armed each way.
func openStateConn(t *testing.T, w *uworker) *uconn {
	t.Helper()
	c, _ := newStateConn(t, w)
	connect(w, c)
	return c
}

func (w *uworker) feed(c *uconn, op uint8, res int32, flags uint32) {
	w.dispatch(ring.NewCQE(w.ud(op, c), res, flags))
}

// connect completes c's connect and its linked timeout, and the end of
// the watch on the client that the connect phase keeps.
func connect(w *uworker, c *uconn) {
	watching := c.watching
	w.feed(c, opConnect, 0, 0)
	w.feed(c, opLinkTimeout, -int32(unix.ECANCELED), 0)
	if watching {
		w.feed(c, opClientWatch, -int32(unix.ECANCELED), 0)
		w.feed(c, opCancel, 0, 0)
	}
}

func TestUringStateConnect(t *testing.T) {
	cases := []struct {
		name      string
		results   []int32 // connect results, in order
		wantState uint8
		wantErr   error
	}{
		{"connected", []int32{0}, ustateOpen, nil},
		{"refused then retried", []int32{-int32(unix.ECONNREFUSED)}, ustateBackoff, unix.ECONNREFUSED},
		{"timed out then retried", []int32{-int32(unix.ECANCELED)}, ustateBackoff, unix.ETIMEDOUT},
		{"not retryable", []int32{-int32(unix.EACCES)}, ustateFree, unix.EACCES},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
			c, _ := newStateConn(t, w)
			if c.state != ustateConnecting || c.inflight != 2 || c.watching {
				t.Fatalf("after accept: state %d, %d in flight, watching %v; want connecting with connect and linked timeout", c.state, c.inflight, c.watching)
			}
			for _, res := range tc.results {
				w.feed(c, opConnect, res, 0)
				w.feed(c, opLinkTimeout, -int32(unix.ECANCELED), 0)
			}
			// A connection given up cancels what it still has in the
			// kernel, and is freed when the cancels complete.
			for c.closing && c.state != ustateFree && c.inflight > 0 {
				w.feed(c, opCancel, 0, 0)
			}
			if c.state != tc.wantState {
				t.Fatalf("state %d, want %d", c.state, tc.wantState)
			}
			if tc.wantErr != nil && c.state != ustateFree && c.lastErr != tc.wantErr {
				t.Errorf("last error %v, want %v", c.lastErr, tc.wantErr)
			}
			switch tc.wantState {
			case ustateOpen:
				if c.inflight != 2 {
					t.Errorf("%d in flight when open, want a recv each way", c.inflight)
				}
			case ustateBackoff:
				if !c.watching {
					t.Error("backing off without watching the client")
				}
				// The back-off ends: a new connect round.
				w.feed(c, opBackoff, -int32(unix.ETIME), 0)
				if c.state != ustateConnecting {
					t.Errorf("after the back-off: state %d, want connecting again", c.state)
				}
			case ustateFree:
				if w.s.Tracker.Open() != 0 {
					t.Errorf("%d connections open after a failed connect", w.s.Tracker.Open())
				}
			}
		})
	}
}

func TestUringStateForwarding(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c := openStateConn(t, w)

	// 5 bytes in buffer 3, sent in two parts.
	w.feed(c, opRecv, 5, ring.BufferFlags(3))
	if d := c.dirs[0]; !d.hasBuf || d.bid != 3 || d.n != 5 {
		t.Fatalf("after recv: %+v", d)
	}
	w.feed(c, opSend, 2, 0)
	if d := c.dirs[0]; !d.hasBuf || d.off != 2 {
		t.Fatalf("after a short send: %+v, want the rest being sent", d)
	}
	w.feed(c, opSend, 3, 0)
	if d := c.dirs[0]; d.hasBuf {
		t.Fatalf("after the whole send: %+v, want the buffer given back", d)
	}
	if c.inflight != 2 {
		t.Fatalf("%d in flight, want the recv re-armed", c.inflight)
	}

	// The client half-closes: the backend's write side is shut, the
	// other direction still flows.
	w.feed(c, opRecv, 0, 0)
	if d := c.dirs[0]; !d.eof || !d.shut {
		t.Fatalf("after EOF: %+v, want a shutdown of the sink", d)
	}
	if c.state != ustateOpen || !c.dirs[0].shut || c.inflight != 1 {
		t.Fatalf("after the half-close: state %d, %+v, %d in flight; want open, a recv", c.state, c.dirs[0], c.inflight)
	}
	w.feed(c, opRecv+1, 7, ring.BufferFlags(9))
	w.feed(c, opSend+1, 7, 0)
	// The backend ends too: the connection is released once both are shut.
	w.feed(c, opRecv+1, 0, 0)
	if c.state != ustateFree || w.s.Tracker.Open() != 0 {
		t.Fatalf("after both half-closes: state %d, %d open", c.state, w.s.Tracker.Open())
	}
}

// TestUringStateEndWatch: a reset of a peer that has half-closed is passed
// on to the other peer without waiting for that one to send, once the
// connection has stayed half-open for watchDelay; a hang-up without an
// error is not, nor an event of a connection since ended. A connection
// that ends within the delay is never watched.
func TestUringStateEndWatch(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	// Four connections whose clients half-close; each client's peer
	// then closes its socket, the first two with bytes unread, which on
	// a Unix socket is a reset.
	var cs [4]*uconn
	for i := range cs {
		c, peer := newStateConn(t, w)
		connect(w, c)
		if i < 2 {
			if _, err := unix.Write(c.client, []byte("unread")); err != nil {
				t.Fatal(err)
			}
		}
		w.feed(c, opRecv, 0, 0)
		unix.Close(peer)
		cs[i] = c
	}
	ended := 0
	for _, r := range w.watchQueue {
		if r.d >= 0 {
			ended++
		}
	}
	if !w.watchArmed || ended != len(cs) {
		t.Fatalf("after the half-closes: timer armed %v, %d waiting; want the timer and %d", w.watchArmed, ended, len(cs))
	}
	// The last ends within the delay, and its slot has a new connection
	// by the time the delay is over; the second ends after it.
	w.feed(cs[3], opRecv+1, 0, 0)
	next := openStateConn(t, w)
	if next != cs[3] {
		t.Fatal("the slot was not reused")
	}
	w.dispatch(ring.NewCQE(ring.PackUserData(opWatchLater, 0, 0), -int32(unix.ETIME), 0))
	if err := unix.EpollCtl(w.endfd, unix.EPOLL_CTL_DEL, next.client, nil); err != unix.ENOENT {
		t.Fatalf("the new connection in the slot of one that ended within the delay is watched (epoll_ctl DEL: %v)", err)
	}
	cs[1].closing = true
	w.dispatch(ring.NewCQE(ring.PackUserData(opEndWatch, 0, 0), unix.POLLIN, ring.CQEFMore))
	if c := cs[0]; !c.closing || c.end != EndClientFailed || c.endErr != unix.ECONNRESET {
		t.Fatalf("after the client's reset: closing %v, end %v (%v); want the connection aborted", c.closing, c.end, c.endErr)
	}
	if c := cs[1]; c.end != EndClosed {
		t.Fatalf("an ended connection's event was acted on: end %v", c.end)
	}
	if c := cs[2]; c.closing {
		t.Fatalf("a hang-up without an error ended the connection: end %v (%v)", c.end, c.endErr)
	}
	// The multishot poll on the set ends: armed again, unless it failed.
	before := w.r.SQPending()
	w.dispatch(ring.NewCQE(ring.PackUserData(opEndWatch, 0, 0), -int32(unix.ECANCELED), 0))
	if w.r.SQPending() != before+1 {
		t.Fatalf("the watch's poll ended and was not armed again (%d SQEs queued, were %d)", w.r.SQPending(), before)
	}
	w.dispatch(ring.NewCQE(ring.PackUserData(opEndWatch, 0, 0), -int32(unix.EINVAL), 0))
	if w.r.SQPending() != before+1 {
		t.Fatalf("the watch's poll failed and was armed again: it would fail in a loop")
	}
}

// TestUringStateWatchConnecting: a client whose backend connect is still
// in flight after watchDelay is watched, and let go if it resets; one
// whose connect completed by then is not watched.
func TestUringStateWatchConnecting(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	slow, _ := newStateConn(t, w)
	fast, _ := newStateConn(t, w)
	connect(w, fast)
	if slow.state != ustateConnecting || slow.watching {
		t.Fatalf("a connect just submitted: state %d, watching %v; want connecting, not yet watched", slow.state, slow.watching)
	}
	inflight := slow.inflight
	w.dispatch(ring.NewCQE(ring.PackUserData(opWatchLater, 0, 0), -int32(unix.ETIME), 0))
	if !slow.watching || slow.inflight != inflight+1 {
		t.Fatalf("a connect in flight after the delay: watching %v, %d in flight (were %d); want the client watched", slow.watching, slow.inflight, inflight)
	}
	if fast.watching {
		t.Fatal("a connection connected before the delay was watched")
	}
	w.feed(slow, opClientWatch, unix.POLLERR|unix.POLLHUP, 0)
	if !slow.closing || slow.end != EndClientGone {
		t.Fatalf("after the client's reset: closing %v, end %v; want it let go", slow.closing, slow.end)
	}
}

// TestUringStateClientEndsWhileConnecting: a client that half-closes while
// its backend connect is in flight is kept (its end of stream waits for
// the backend) and watched on in the worker's epoll set, so a reset after
// the half-close still lets it go; one whose backend connects leaves the
// set.
func TestUringStateClientEndsWhileConnecting(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	resets, peer := newStateConn(t, w)
	connects, _ := newStateConn(t, w)
	w.dispatch(ring.NewCQE(ring.PackUserData(opWatchLater, 0, 0), -int32(unix.ETIME), 0))
	for _, c := range []*uconn{resets, connects} {
		w.feed(c, opClientWatch, unix.POLLRDHUP, 0) // half-closed
		if c.closing || c.watching || !c.clientEnded {
			t.Fatalf("after a half-close while connecting: closing %v, watching %v, in the epoll set %v; want kept, in the set", c.closing, c.watching, c.clientEnded)
		}
	}
	connect(w, connects)
	if err := unix.EpollCtl(w.endfd, unix.EPOLL_CTL_DEL, connects.client, nil); err != unix.ENOENT || connects.clientEnded {
		t.Fatalf("a client whose backend connected is still in the epoll set (epoll_ctl DEL: %v)", err)
	}
	// A reset: the client's peer closes with bytes unread.
	if _, err := unix.Write(resets.client, []byte("unread")); err != nil {
		t.Fatal(err)
	}
	unix.Close(peer)
	w.dispatch(ring.NewCQE(ring.PackUserData(opEndWatch, 0, 0), unix.POLLIN, ring.CQEFMore))
	if !resets.closing || resets.end != EndClientGone {
		t.Fatalf("after a reset following the half-close: closing %v, end %v; want it let go", resets.closing, resets.end)
	}
}

// TestUringStatePipelined: the next recv is armed with the send, bytes
// that arrive while a send is in flight wait in a second buffer, and no
// third is taken; order and half-close wait for the sends.
func TestUringStatePipelined(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c := openStateConn(t, w)
	base := c.inflight // the two recvs

	w.feed(c, opRecv, 10, ring.BufferFlags(4))
	if d := c.dirs[0]; !d.hasBuf || d.bid != 4 || !d.recvOn || c.inflight != base+1 {
		t.Fatalf("after a recv: %+v, %d in flight; want a send and the next recv in flight", d, c.inflight)
	}
	w.feed(c, opRecv, 20, ring.BufferFlags(5))
	if d := c.dirs[0]; !d.hasNext || d.nextBid != 5 || d.nextN != 20 || d.recvOn || d.bid != 4 {
		t.Fatalf("after a recv during the send: %+v; want it held next, and no recv for a third buffer", d)
	}
	w.feed(c, opSend, 4, 0) // short: the rest of buffer 4 first
	if d := c.dirs[0]; d.bid != 4 || d.off != 4 || !d.hasNext {
		t.Fatalf("after a short send: %+v", d)
	}
	w.feed(c, opSend, 6, 0)
	if d := c.dirs[0]; d.bid != 5 || d.n != 20 || d.off != 0 || d.hasNext || !d.recvOn {
		t.Fatalf("after buffer 4 was sent: %+v; want buffer 5 being sent and a recv armed", d)
	}
	// The source ends while buffer 5 is being sent: the sink is shut
	// only after it.
	w.feed(c, opRecv, 0, 0)
	if d := c.dirs[0]; !d.eof || d.shut {
		t.Fatalf("EOF during a send: %+v; want the shutdown to wait", d)
	}
	w.feed(c, opSend, 20, 0)
	if d := c.dirs[0]; d.hasBuf || !d.shut {
		t.Fatalf("after the last send: %+v; want the sink shut", d)
	}
	if c.sentUp != 30 {
		t.Fatalf("%d bytes counted, want 30", c.sentUp)
	}

	// No buffer for a recv while a send is in flight, and none left to
	// provide: the splice path waits for that send, so that no byte
	// overtakes another.
	w.feed(c, opRecv+1, 7, ring.BufferFlags(6))
	w.bufsLent, w.bufsOut = uringBufMax, uringBufMax
	w.feed(c, opRecv+1, -int32(unix.ENOBUFS), 0)
	if d := c.dirs[1]; d.splice || !d.bulk || d.recvOn {
		t.Fatalf("ENOBUFS during a send: %+v; want the switch to wait", d)
	}
	w.feed(c, opSend+1, 7, 0)
	if d := c.dirs[1]; !d.splice || d.hasBuf {
		t.Fatalf("after the send: %+v; want the splice path", d)
	}
}

func TestUringStateResetAndLateCompletions(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c, peer := newStateConn(t, w)
	connect(w, c)
	gen := c.gen

	// The backend resets while the client's recv is pending: the
	// connection closes once the cancelled recv has completed too.
	w.feed(c, opRecv+1, -int32(unix.ECONNRESET), 0)
	if !c.closing || c.state == ustateFree {
		t.Fatalf("after a reset: closing %v, state %d; want closing with requests in flight", c.closing, c.state)
	}
	for c.inflight > 0 && c.state != ustateFree {
		op := opCancel
		if c.inflight == 1 {
			op = opRecv // the client's recv, cancelled
		}
		w.feed(c, op, -int32(unix.ECANCELED), 0)
	}
	if c.state != ustateFree {
		t.Fatalf("state %d after every request completed, want free", c.state)
	}
	_ = peer

	// The slot is reused; a completion for its previous life is ignored.
	c2, _ := newStateConn(t, w)
	if c2 != c || c2.gen == gen {
		t.Fatalf("slot not reused with a new generation: %p %p gen %d→%d", c, c2, gen, c2.gen)
	}
	before := c2.inflight
	w.dispatch(ring.NewCQE(ring.PackUserData(opConnect, gen, c.slot), 0, 0))
	if c2.state != ustateConnecting || c2.inflight != before {
		t.Fatalf("a late completion of the previous life changed the new one: state %d, %d in flight", c2.state, c2.inflight)
	}
}

func TestUringStateNoBuffers(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c := openStateConn(t, w)
	// Every buffer is held (by sends to clients that do not read, say):
	// the direction moves to the splice path, which needs none, and
	// waits for its source there.
	w.bufsLent, w.bufsOut = uringBufMax, uringBufMax // none left to provide either
	w.feed(c, opRecv, -int32(unix.ENOBUFS), 0)
	if d := c.dirs[0]; len(w.starved) != 0 || !d.splice || !d.bufferless || !d.pollIn || c.inflight != 2 {
		t.Fatalf("after -ENOBUFS: %d starved, %+v, %d in flight; want the splice path polling", len(w.starved), d, c.inflight)
	}
	// Drained while buffers are still scarce: it stays there.
	w.bufsOut = uringBufMax / 2
	w.feed(c, opPollIn, unix.POLLIN, 0)
	if d := c.dirs[0]; !d.splice || !d.pollIn || d.recvOn || d.hasPipe {
		t.Fatalf("drained with half the buffers held: %+v; want the splice path polling", d)
	}
	// Drained once most buffers are back: the copy path again, which
	// costs a message the least.
	w.bufsOut = uringBufMax/2 - 1
	w.feed(c, opPollIn, unix.POLLIN, 0)
	if d := c.dirs[0]; d.splice || d.bufferless || d.pollIn || !d.recvOn || d.hasPipe || c.inflight != 2 {
		t.Fatalf("drained with buffers free: %+v, %d in flight; want the copy path with a recv armed", d, c.inflight)
	}
}

// TestUringStateBuffersGrow: the worker provides more buffers only when a
// recv of a direction that has forwarded bytes finds none left (buffers are
// used in ring order, so each one provided is touched), up to uringBufMax;
// that recv simply receives again. A connection's first recv finding none
// (a burst of new connections) takes the splice path instead.
func TestUringStateBuffersGrow(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	if w.bufsLent != uringBufStart {
		t.Fatalf("%d buffers provided at start, want %d", w.bufsLent, uringBufStart)
	}
	c := openStateConn(t, w)
	w.bufsOut = uringBufStart - 1
	w.feed(c, opRecv, 64, ring.BufferFlags(1)) // every buffer held now
	if w.bufsLent != uringBufStart {
		t.Fatalf("%d provided after a recv took the last buffer, want still %d", w.bufsLent, uringBufStart)
	}
	w.feed(c, opSend, 64, 0)
	w.bufsOut = w.bufsLent
	w.feed(c, opRecv, -int32(unix.ENOBUFS), 0)
	if d := c.dirs[0]; w.bufsLent != uringBufStart+uringBufGrow || d.splice || !d.recvOn {
		t.Fatalf("after -ENOBUFS with room to grow: %d provided, %+v; want %d and a recv armed", w.bufsLent, d, uringBufStart+uringBufGrow)
	}
	// Another -ENOBUFS of the same batch (the ring was empty when both
	// recvs ran): the buffers just provided serve it; no more growth.
	w.feed(c, opRecv, -int32(unix.ENOBUFS), 0)
	if d := c.dirs[0]; w.bufsLent != uringBufStart+uringBufGrow || d.splice || !d.recvOn {
		t.Fatalf("a second -ENOBUFS after growing: %d provided, %+v; want still %d and a recv armed", w.bufsLent, d, uringBufStart+uringBufGrow)
	}
	fresh := openStateConn(t, w)
	lent := w.bufsLent
	w.bufsOut = lent
	w.feed(fresh, opRecv, -int32(unix.ENOBUFS), 0)
	if d := fresh.dirs[0]; w.bufsLent != lent || !d.splice || !d.bufferless {
		t.Fatalf("a new connection's first recv found no buffer: %d provided (was %d), %+v; want no more provided, the splice path", w.bufsLent, lent, d)
	}
	for w.growBufs() {
	}
	if w.bufsLent != uringBufMax {
		t.Fatalf("grew to %d buffers, want at most and at last %d", w.bufsLent, uringBufMax)
	}
}

// TestUringStateStarvedIdle: starved directions are all retried when one
// buffer comes back, not one per buffer: a retried recv that finds no data
// gives its buffer back, so no further buffer would come back to retry
// the others.
func TestUringStateStarvedIdle(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c1 := openStateConn(t, w)
	c2 := openStateConn(t, w)
	// As after recvs that found no buffer where no pipe could be had
	// either (out of descriptors).
	for _, c := range []*uconn{c1, c2} {
		c.inflight -= 2
		c.dirs[0].recvOn, c.dirs[1].recvOn = false, false
		w.starved = append(w.starved, dirRef{c, c.gen, 0}, dirRef{c, c.gen, 1})
	}
	if len(w.starved) != 4 {
		t.Fatalf("%d starved directions, want 4", len(w.starved))
	}
	w.recycle(0)
	w.retryStarved()
	if len(w.starved) != 0 || c1.inflight != 2 || c2.inflight != 2 {
		t.Fatalf("after one buffer came back: %d starved, in flight %d and %d; want every recv re-armed", len(w.starved), c1.inflight, c2.inflight)
	}
}

// TestUringStateToSplice: a direction that receives a full buffer is a
// bulk transfer and moves to the splice path: no recv is re-armed, a poll
// waits for the source instead (nothing is waiting in it here).
func TestUringStateToSplice(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c := openStateConn(t, w)
	w.feed(c, opRecv, uringBufSize, ring.BufferFlags(1))
	w.feed(c, opSend, uringBufSize, 0)
	d := c.dirs[0]
	if !d.splice || !d.pollIn || d.hasPipe || c.inflight != 2 {
		t.Fatalf("after a full buffer: %+v, %d in flight; want the splice path waiting on a poll of the source", d, c.inflight)
	}
	if c.dirs[1].splice {
		t.Fatal("the other direction moved to the splice path too")
	}
	// Drained, however many buffers are free, a bulk direction stays on
	// the splice path (one sent there for want of a buffer would not).
	w.feed(c, opPollIn, unix.POLLIN, 0)
	if d := c.dirs[0]; !d.splice || d.bufferless || !d.pollIn || d.recvOn {
		t.Fatalf("a drained bulk direction: %+v; want it on the splice path, polling", d)
	}
	// A small message stays on the copy path.
	w.feed(c, opRecv+1, 100, ring.BufferFlags(2))
	w.feed(c, opSend+1, 100, 0)
	if c.dirs[1].splice {
		t.Fatal("a 100-byte message moved its direction to the splice path")
	}
}

// TestUringStateClientGone: a client that fails while its backend is
// being connected ends the connection, as in the epoll engine, instead of
// leaving it to retry for as long as the connect timeout allows.
func TestUringStateClientGone(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", time.Hour)
	c, _ := newStateConn(t, w)
	w.feed(c, opConnect, -int32(unix.ECONNREFUSED), 0)
	w.feed(c, opLinkTimeout, -int32(unix.ECANCELED), 0)
	if c.state != ustateBackoff {
		t.Fatalf("state %d, want backing off", c.state)
	}
	// A half-close is no reason to give up: the client's bytes wait.
	w.feed(c, opClientWatch, int32(unix.POLLIN|unix.POLLRDHUP), 0)
	if c.closing {
		t.Fatal("a client's half-close during the connect phase ended the connection")
	}
	c.watching, c.inflight = true, c.inflight+1 // as if the watch were still armed
	w.feed(c, opClientWatch, int32(unix.POLLHUP|unix.POLLERR), 0)
	for c.closing && c.state != ustateFree && c.inflight > 0 {
		w.feed(c, opCancel, 0, 0)
	}
	if c.state != ustateFree || w.s.Tracker.Open() != 0 {
		t.Fatalf("after the client hung up: state %d, %d open", c.state, w.s.Tracker.Open())
	}
}

// TestUringStateGenerationNeverZero: generation 0 is not a connection's,
// even after the counter wraps.
func TestUringStateGenerationNeverZero(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", time.Second)
	c := openStateConn(t, w)
	w.feed(c, opRecv, 0, 0)
	w.feed(c, opRecv+1, 0, 0)
	if c.state != ustateFree {
		t.Fatalf("state %d, want free", c.state)
	}
	c.gen = ring.UserDataGenMask // the next life wraps
	c2, _ := newStateConn(t, w)
	if c2 != c || c2.gen == 0 {
		t.Fatalf("reused slot got generation %d", c2.gen)
	}
}

// noDescriptors makes every new descriptor of the process fail with
// EMFILE until the test ends, by lowering the soft RLIMIT_NOFILE to the
// lowest free descriptor number.
func noDescriptors(t *testing.T) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	lim := old
	lim.Cur = uint64(fd)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
	if fd, err := unix.Dup(0); err != unix.EMFILE {
		unix.Close(fd)
		t.Fatalf("dup under the lowered limit: %v, want EMFILE", err)
	}
}

// TestUringStateNoPipeBuffersFree: a bulk direction that cannot have a
// pipe (out of descriptors) stays on the copy path, and with buffers free
// its recv is re-armed at once.
func TestUringStateNoPipeBuffersFree(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c := openStateConn(t, w)
	w.feed(c, opRecv, uringBufSize, ring.BufferFlags(1))
	noDescriptors(t)
	w.feed(c, opSend, uringBufSize, 0) // the full buffer is sent: to the splice path
	if d := c.dirs[0]; d.splice || d.hasPipe || !d.recvOn || len(w.starved) != 0 || c.inflight != 2 {
		t.Fatalf("no pipe, buffers free: %+v, %d starved, %d in flight; want the copy path's recv armed", d, len(w.starved), c.inflight)
	}
}

// TestUringStateNoPipeNoBuffers: with every buffer held and no pipe to be
// had, a direction waits for a buffer or a descriptor to come back; it is
// not retried at once, which would find the ring empty again, and again.
func TestUringStateNoPipeNoBuffers(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c := openStateConn(t, w)
	other := openStateConn(t, w)
	// As if sends to clients that do not read held them all.
	w.bufsLent, w.bufsOut = uringBufMax, uringBufMax
	noDescriptors(t)
	w.feed(c, opRecv, -int32(unix.ENOBUFS), 0)
	if d := c.dirs[0]; d.splice || d.recvOn || len(w.starved) != 1 || w.recycled {
		t.Fatalf("no pipe, no buffer: %+v, %d starved, retry due %v; want it starved until something comes back", d, len(w.starved), w.recycled)
	}
	// Another connection ends: its descriptors are free, so a retry is due.
	w.finish(other)
	if !w.recycled {
		t.Fatal("a connection closed with a direction starved: no retry due")
	}
	w.recycled = false
	// A buffer comes back: the recv is re-armed.
	w.recycle(0)
	if !w.recycled || w.bufsOut != uringBufMax-1 {
		t.Fatalf("after a recycle: retry due %v, %d buffers out", w.recycled, w.bufsOut)
	}
	w.retryStarved()
	if d := c.dirs[0]; !d.recvOn || len(w.starved) != 0 {
		t.Fatalf("after a buffer came back: %+v, %d starved; want the recv re-armed", d, len(w.starved))
	}
}

// TestUringTeardownClosesPipes: connections left after a drain that timed
// out give their pipes back, and with them their share of the process's
// pipe budget, which a later Serve in the same process draws on.
func TestUringTeardownClosesPipes(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c := openStateConn(t, w)
	before := pipeBytes.Load()
	p, err := w.pipes.Get()
	if err != nil {
		t.Fatal(err)
	}
	dir := &c.dirs[0]
	dir.p, dir.hasPipe, dir.inPipe, dir.splice = p, true, 1, true // bytes in flight
	if pipeBytes.Load() != before+int64(p.Size) {
		t.Fatalf("pipe budget %d after a %d-byte pipe, was %d", pipeBytes.Load(), p.Size, before)
	}
	w.stopping.Store(true)
	w.teardown() // the connection is still open: as after a drain that timed out
	if got := pipeBytes.Load(); got != before {
		t.Fatalf("pipe budget %d after teardown, want %d: the pipe was not closed", got, before)
	}
}

// TestUringStatePollFails: a poll that fails itself (not one reporting an
// error on its socket) ends the connection, resetting the other side,
// instead of leaving the direction with nothing in flight to wake it.
func TestUringStatePollFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      bool
		wantEnd End
	}{
		{"source poll", true, EndClientFailed},
		{"sink poll", false, EndBackendFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
			c := openStateConn(t, w)
			w.feed(c, opRecv, uringBufSize, ring.BufferFlags(1))
			w.feed(c, opSend, uringBufSize, 0) // direction 0 is on the splice path
			op := uint8(opPollIn)
			if !tc.in {
				c.dirs[0].pollOut = true // as if it waited for room in the sink
				c.inflight++
				op = opPollOut
			}
			w.feed(c, op, -int32(unix.ENOMEM), 0)
			if !c.closing || c.end != tc.wantEnd || c.endErr != unix.ENOMEM {
				t.Fatalf("after a failed poll: closing %v, end %v (%v); want closing, end %v (ENOMEM)", c.closing, c.end, c.endErr, tc.wantEnd)
			}
		})
	}
}

// TestUringRunQueuedReadsClock: splice turns alone keep the worker clock
// moving; no completion may come while a bulk direction takes its turns.
func TestUringRunQueuedReadsClock(t *testing.T) {
	w := newStateWorker(t, "127.0.0.1:9", 5*time.Second)
	c, _ := newStateConn(t, w)
	w.clock = 0
	w.runq = append(w.runq, dirRef{c, c.gen, 0})
	time.Sleep(time.Millisecond)
	if n := w.runQueued(); n != 1 {
		t.Fatalf("runQueued ran %d directions, want 1", n)
	}
	if w.clock < int64(time.Millisecond) {
		t.Fatalf("worker clock %v after a splice turn, want the current time", time.Duration(w.clock))
	}
}
