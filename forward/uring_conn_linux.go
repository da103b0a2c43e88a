package forward

import (
	"math"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/ring"
)

// Connection states.
const (
	ustateFree       uint8 = iota // slot unused
	ustateResolving               // waiting for a host name lookup
	ustateConnecting              // connect submitted
	ustateBackoff                 // every address failed; waiting to retry
	ustateOpen                    // forwarding
)

// udir is one direction of a connection: recv from the source into a
// provided buffer and send that buffer to the sink. The next recv is
// armed as the send starts, not after it ends: it goes to the kernel in
// the same enter as the send, and bytes that arrive meanwhile wait in a
// second buffer. So a direction holds at most two buffers, one being sent
// and one next, and has at most one recv and one send in flight.
//
// A direction that receives a full buffer is a bulk transfer, and moves to
// the splice path for the rest of its life: a poll on the source (or the
// sink, when it is full) and then splices through a pipe, made by the
// worker itself as non-blocking system calls, so the bytes never enter
// user memory and no io-wq thread is involved (an IORING_OP_SPLICE is
// always run by one). A direction whose recv found every buffer held moves
// to the splice path too, but only until its source is drained at a time
// when buffers are free again: otherwise a burst of many connections would
// leave each of them on the path that costs messages the most.
type udir struct {
	bid     uint16 // buffer held while sending
	hasBuf  bool   // a buffer is held, and a send of it is in flight
	off, n  int    // sent and received bytes of the held buffer
	nextBid uint16 // received while the held one was being sent
	nextN   int
	hasNext bool
	recvOn  bool // a recv is in flight
	bulk    bool // a recv filled a buffer: splice once the sends are done
	eof     bool // the source has ended
	shut    bool // the sink's write side is shut down

	// Splice path.
	splice             bool
	bufferless         bool // on it only for want of a buffer (see udir)
	p                  Pipe
	hasPipe            bool
	inPipe             int
	srcReady, dstReady bool // readiness learnt from polls, cleared on EAGAIN
	pollIn, pollOut    bool // a poll is armed on the source, on the sink
	sinkWatched        bool // the worker's epoll set waits for the sink (watchSink)
	queued             bool // in the worker's run queue
}

// uconn is one client connection and its backend. It lives in the worker's
// slot table, is reused, and is told apart from earlier lives by gen.
// Memory the kernel reads after submit (the connect address, the
// timespecs) is in the struct, which stays put until the slot is freed,
// and the slot is freed only when no request is in flight.
type uconn struct {
	slot, gen uint32
	state     uint8
	closing   bool
	inflight  int // requests whose last completion is not reaped yet

	client, backend int // -1 when closed
	dirs            [2]udir

	addrs     []unix.Sockaddr
	next      int
	deadline  int64 // worker clock; 0: one attempt; MaxInt64: for ever
	backoff   time.Duration
	lastErr   error
	backoffOn bool
	watching  bool // a poll watches the client during the connect phase
	// clientEnded: the client half-closed during the connect phase and is
	// in the worker's epoll set instead (watchEndedClient).
	clientEnded bool

	ln         int   // listener index
	lastActive int64 // worker clock when a byte last moved
	sentUp     uint64
	sentDown   uint64
	end        End
	endErr     unix.Errno
	rec        ConnRecord

	sa        ring.RawSockaddr
	linkTS    ring.Timespec
	backoffTS ring.Timespec
}

func (w *uworker) ud(op uint8, c *uconn) uint64 { return ring.PackUserData(op, c.gen, c.slot) }

// startConn takes a client socket accepted on listener ln and admitted.
func (w *uworker) startConn(fd, ln int) {
	var c *uconn
	if n := len(w.free); n > 0 {
		c = w.conns[w.free[n-1]]
		w.free = w.free[:n-1]
	} else {
		c = &uconn{slot: uint32(len(w.conns))}
		w.conns = append(w.conns, c)
	}
	c.gen = (c.gen + 1) & ring.UserDataGenMask
	if c.gen == 0 {
		c.gen = 1 // 0 is never a connection's: late completions of a life 1<<24 ago stay unrecognised either way
	}
	c.state, c.closing, c.inflight = ustateResolving, false, 0
	c.client, c.backend = fd, -1
	c.dirs = [2]udir{}
	c.addrs, c.next, c.lastErr, c.backoff, c.backoffOn = nil, 0, nil, BackoffMin, false
	c.clientEnded = false
	c.ln, c.lastActive, c.sentUp, c.sentDown, c.end, c.endErr = ln, w.clock, 0, 0, EndClosed, 0
	w.s.Opened(w.ctr, &c.rec, fd, ln)
	w.live++
	w.armSweep()
	switch t := w.s.ConnectTimeout; {
	case t <= 0:
		c.deadline = 0
	case t == Never:
		c.deadline = math.MaxInt64
	default:
		c.deadline = w.now() + int64(t)
	}
	c.watching = false
	w.connectRound(c)
}

// watchClient watches the client while its backend keeps it waiting (a
// host name lookup, a back-off, a connect still in flight after
// watchDelay): nothing else looks at the client then, and one that resets
// must be let go, not retried for the connect timeout. A connect that
// succeeds at once, the common case, needs no watch.
func (w *uworker) watchClient(c *uconn) {
	if c.watching || c.clientEnded {
		return
	}
	c.watching = true
	s := w.sqe()
	s.PrepPollAdd(c.client, 0) // no event asked: errors, hang-ups and half-closes
	s.SetUserData(w.ud(opClientWatch, c))
	c.inflight++
}

// connectRound tries the target's addresses, resolved again for a host name.
func (w *uworker) connectRound(c *uconn) {
	c.backoffOn = false
	c.next = 0
	if st := w.static[c.ln]; st != nil {
		c.addrs = st
		w.tryConnect(c)
		return
	}
	c.state = ustateResolving
	w.watchClient(c)
	timeout := 30 * time.Second
	if d := c.deadline - w.now(); c.deadline != 0 && c.deadline != math.MaxInt64 {
		timeout = time.Duration(max(d, int64(time.Millisecond)))
	}
	w.lookups.Start(w.s.TargetOf(c.ln), c.slot, c.gen, timeout)
}

func (w *uworker) resolvedAddrs(c *uconn, addrs []unix.Sockaddr, err error) {
	if err != nil {
		w.s.Log.Errorf("%v (client %s, target %s)", err, PeerName(c.client), w.s.TargetOf(c.ln))
		w.ctr.FailedConnects.Add(1)
		c.end = EndConnectFailed
		w.release(c)
		return
	}
	c.addrs = addrs
	w.tryConnect(c)
}

// tryConnect submits a connect to the next address, with a linked timeout
// when the connection has a deadline; when no address is left it retries
// or gives up.
//
// A Unix socket connects at once instead, with a non-blocking connect(2):
// it never waits for the peer, and either succeeds or fails at once,
// with EAGAIN when the backlog is full. Made by io_uring, that last case
// would block an io-wq thread until the deadline and end in EINTR.
func (w *uworker) tryConnect(c *uconn) {
	for c.next < len(c.addrs) {
		sa := c.addrs[c.next]
		c.next++
		family := SockaddrFamily(sa)
		flags := unix.SOCK_STREAM | unix.SOCK_CLOEXEC
		if family == unix.AF_UNIX {
			flags |= unix.SOCK_NONBLOCK
		}
		fd, err := unix.Socket(family, flags, 0)
		if err != nil {
			c.lastErr = err
			if err == unix.EMFILE || err == unix.ENFILE {
				// Clients hold the descriptors their backends need:
				// accept no more until some are free.
				w.pauseAccept(PauseBackend, err.(unix.Errno))
			}
			continue
		}
		w.s.PrepareBackend(fd, family)
		if family == unix.AF_UNIX {
			if err := unix.Connect(fd, sa); err != nil {
				unix.Close(fd)
				c.lastErr = err
				continue
			}
			c.backend = fd
			w.connected(c)
			return
		}
		if err := c.sa.Set(sa); err != nil {
			unix.Close(fd)
			c.lastErr = err
			continue
		}
		c.backend = fd
		c.state = ustateConnecting
		w.reserve(2)
		s := w.sqe()
		s.PrepConnect(fd, &c.sa)
		s.SetUserData(w.ud(opConnect, c))
		c.inflight++
		if c.deadline != 0 {
			// An address that drops SYNs must not use up the whole
			// deadline while others wait untried: each attempt but the
			// last gets an equal share of what remains.
			now := w.now()
			d := c.deadline - now
			if left := len(c.addrs) - c.next; left > 0 {
				d /= int64(left + 1)
			}
			c.linkTS = ring.NewTimespec(time.Duration(min(max(d, int64(time.Millisecond)), int64(24*time.Hour))))
			s.SetFlags(ring.FlagIOLink)
			t := w.sqe()
			t.PrepLinkTimeout(&c.linkTS, 0)
			t.SetUserData(w.ud(opLinkTimeout, c))
			c.inflight++
		}
		w.watchLater(c, -1) // a client that resets meanwhile is let go
		return
	}
	w.retryOrFail(c)
}

func (w *uworker) handleConnect(c *uconn, res int32) {
	if c.closing {
		return
	}
	if res == 0 {
		w.connected(c)
		return
	}
	if res == -int32(unix.ECANCELED) {
		c.lastErr = unix.ETIMEDOUT // the linked timeout fired
	} else {
		c.lastErr = unix.Errno(-res)
	}
	unix.Close(c.backend)
	c.backend = -1
	if c.deadline == 0 || w.now() < c.deadline {
		w.tryConnect(c)
		return
	}
	w.failConnect(c)
}

// retryOrFail runs after every address of a round failed: a target that
// refuses, is missing or has a full backlog may be starting, so try again
// after a back-off while the deadline allows; the last try falls on the
// deadline itself.
func (w *uworker) retryOrFail(c *uconn) {
	now := w.now()
	if c.deadline != 0 && Retryable(c.lastErr) && now < c.deadline {
		wait := min(int64(c.backoff), c.deadline-now)
		c.backoff = NextBackoff(c.backoff)
		c.state = ustateBackoff
		w.watchClient(c)
		c.backoffTS = ring.NewTimespec(time.Duration(wait))
		s := w.sqe()
		s.PrepTimeout(&c.backoffTS, 0, 0)
		s.SetUserData(w.ud(opBackoff, c))
		c.inflight++
		c.backoffOn = true
		return
	}
	w.failConnect(c)
}

func (w *uworker) failConnect(c *uconn) {
	w.s.Log.Errorf("Failed to connect to remote host: %s (client %s, target %s)",
		ErrnoText(c.lastErr), PeerName(c.client), w.s.TargetOf(c.ln))
	w.ctr.FailedConnects.Add(1)
	c.end = EndConnectFailed
	if e, ok := c.lastErr.(unix.Errno); ok {
		c.endErr = e
	}
	w.release(c)
}

// connected starts forwarding both ways. Bytes the client sent while the
// backend was connecting wait in its socket and are the first recv.
func (w *uworker) connected(c *uconn) {
	c.state = ustateOpen
	c.addrs = nil
	c.lastActive = w.clock
	if c.clientEnded {
		// Out of the set, where endWatch may put it again.
		_ = unix.EpollCtl(w.endfd, unix.EPOLL_CTL_DEL, c.client, nil)
		c.clientEnded = false
	}
	if c.watching {
		s := w.sqe()
		s.PrepCancel(w.ud(opClientWatch, c), 0)
		s.SetUserData(w.ud(opCancel, c))
		c.inflight++
	}
	if w.s.ProxyProtocol != ProxyNone && !w.sendProxyHeader(c) {
		return
	}
	w.armRecv(c, 0, false) // the client may have written already
	w.armRecv(c, 1, true)
}

// sendProxyHeader sends the PROXY protocol header before any byte of the
// client's, as a non-blocking send (on a socket just connected the ≤ 108
// bytes always fit), or closes the connection.
func (w *uworker) sendProxyHeader(c *uconn) bool {
	if err := w.s.SendProxyHeader(w.hdr[:], c.client, c.backend, c.ln); err != nil {
		c.end = EndRefused
		c.endErr, _ = err.(unix.Errno)
		w.release(c)
		return false
	}
	return true
}

// sent counts n bytes delivered by direction d.
func (w *uworker) sent(c *uconn, d int, n int) {
	c.lastActive = w.clock
	if d == 0 {
		c.sentUp += uint64(n)
		w.ctr.BytesUp.Add(uint64(n))
	} else {
		c.sentDown += uint64(n)
		w.ctr.BytesDown.Add(uint64(n))
	}
}

// forwarded returns the bytes direction d has delivered.
func (c *uconn) forwarded(d int) uint64 {
	if d == 0 {
		return c.sentUp
	}
	return c.sentDown
}

// fds returns direction d's source and sink: 0 is client → backend.
func (c *uconn) fds(d int) (src, dst int) {
	if d == 0 {
		return c.client, c.backend
	}
	return c.backend, c.client
}

// armRecv submits direction d's next recv. drained says the source most
// likely has nothing to read yet (its last recv took less than a buffer, or
// the backend has only just been connected): the recv then waits for the
// socket to be readable before its first attempt, saving the attempt that
// would fail with EAGAIN — on a request/response connection, every recv.
func (w *uworker) armRecv(c *uconn, d int, drained bool) {
	dir := &c.dirs[d]
	if dir.recvOn {
		return
	}
	dir.recvOn = true
	src, _ := c.fds(d)
	s := w.sqe()
	s.PrepRecvSelect(src, uringBufGroup, 0)
	if drained {
		s.SetPollFirst()
	}
	s.SetUserData(w.ud(opRecv+uint8(d), c))
	c.inflight++
}

func (w *uworker) handleRecv(c *uconn, d int, cqe ring.CQE) {
	res := cqe.Res()
	dir := &c.dirs[d]
	dir.recvOn = false
	if bid, ok := cqe.BufferID(); ok {
		w.bufsOut++
		if c.closing || res <= 0 {
			w.recycle(bid)
		} else {
			if !dir.hasBuf {
				dir.bid, dir.hasBuf, dir.off, dir.n = bid, true, 0, int(res)
				w.send(c, d)
			} else {
				dir.nextBid, dir.hasNext, dir.nextN = bid, true, int(res)
			}
			if res == uringBufSize {
				dir.bulk = true // a full buffer: a bulk transfer
			}
			if !dir.bulk && !dir.hasNext {
				w.armRecv(c, d, true) // less than a buffer: the source is drained
			}
			return
		}
	}
	if c.closing {
		return
	}
	switch {
	case res == 0:
		dir.eof = true
		if !dir.hasBuf {
			w.shutdownSink(c, d)
		} // else once the held bytes are sent
	case res == -int32(unix.ENOBUFS):
		// The kernel found every buffer taken. If many have come back
		// since (sends completed, or the worker provided more for an
		// earlier recv of this batch), receive again. Otherwise, among
		// connections already exchanging bytes, the worker needs more:
		// provide them if it may, and receive again. Not for a
		// connection's first bytes: a burst of new connections (each
		// arming its first recvs together) is over at once, and buffers
		// once provided stay touched.
		if w.bufsLent-w.bufsOut >= uringBufGrow/4 || (c.forwarded(d) > 0 && w.growBufs()) {
			w.armRecv(c, d, false)
			return
		}
		// Perhaps by sends to clients that do not read: move to the
		// splice path, which needs none, rather than wait for one to come
		// back; once this direction's own send is done, so that no byte
		// overtakes another.
		dir.bufferless = true
		if dir.hasBuf {
			dir.bulk = true
		} else if !w.toSplice(c, d) {
			dir.bufferless = false
			w.starved = append(w.starved, dirRef{c, c.gen, int32(d)})
		}
	case res < 0:
		w.abort(c, d, unix.Errno(-res)) // the source failed
	}
}

func (w *uworker) send(c *uconn, d int) {
	dir := &c.dirs[d]
	_, dst := c.fds(d)
	s := w.sqe()
	s.PrepSend(dst, w.buf(dir.bid)[dir.off:dir.n], unix.MSG_NOSIGNAL)
	s.SetUserData(w.ud(opSend+uint8(d), c))
	c.inflight++
}

func (w *uworker) handleSend(c *uconn, d int, res int32) {
	dir := &c.dirs[d]
	if c.closing {
		if dir.hasBuf {
			w.recycle(dir.bid)
			dir.hasBuf = false
		}
		return
	}
	if res <= 0 {
		if res == 0 {
			res = -int32(unix.EPIPE)
		}
		w.abort(c, 1-d, unix.Errno(-res)) // the sink failed
		return
	}
	dir.off += int(res)
	w.sent(c, d, int(res))
	if dir.off < dir.n {
		w.send(c, d) // a short send: the rest
		return
	}
	w.recycle(dir.bid)
	dir.hasBuf = false
	if dir.hasNext {
		dir.bid, dir.hasBuf, dir.off, dir.n = dir.nextBid, true, 0, dir.nextN
		dir.hasNext = false
		w.send(c, d)
		if !dir.bulk && !dir.eof {
			w.armRecv(c, d, false) // it stopped with two buffers held: bytes may wait
		}
		return
	}
	switch {
	case dir.eof:
		w.shutdownSink(c, d)
	case dir.bulk:
		dir.bulk = false
		if !w.toSplice(c, d) {
			dir.bufferless = false
			w.armRecv(c, d, false) // stay on the copy path
		}
	} // else the next recv is in flight already
}

// toSplice moves direction d to the splice path: it filled a whole
// buffer, so it is a bulk transfer. The sockets become non-blocking, which
// the splices need and io_uring's recv and send do not mind. Neither a
// recv nor a send of the direction may be in flight.
func (w *uworker) toSplice(c *uconn, d int) bool {
	for _, fd := range [2]int{c.client, c.backend} {
		if err := unix.SetNonblock(fd, true); err != nil {
			return false
		}
	}
	dir := &c.dirs[d]
	dir.splice = true
	dir.srcReady, dir.dstReady = true, true // likely: it just moved a full buffer
	w.pump(c, d)
	return true
}

// spliceRounds bounds the chunks one direction moves per turn, so that a
// bulk transfer does not starve the worker's other connections.
const spliceRounds = 64

// pump moves direction d on the splice path: source → pipe → sink, until
// it must wait for a poll, or its turn is over.
//
// Invariant, as in the epoll engine: the source is read only when the pipe
// is empty, so a direction never buffers more than one pipe.
func (w *uworker) pump(c *uconn, d int) {
	src, dst := c.fds(d)
	dir := &c.dirs[d]
	for round := 0; round < spliceRounds; round++ {
		if dir.inPipe > 0 {
			if !dir.dstReady {
				w.poll(c, d, false)
				return
			}
			n, errno := Splice(dir.p.R, dst, dir.inPipe)
			if errno == unix.EAGAIN {
				dir.dstReady = false
				w.poll(c, d, false)
				return
			}
			if errno != 0 {
				w.abort(c, 1-d, errno) // the sink failed
				return
			}
			dir.inPipe -= n
			w.sent(c, d, n)
			if dir.inPipe > 0 {
				continue
			}
			w.pipes.Put(dir.p)
			dir.hasPipe = false
		}
		if dir.eof {
			w.shutdownSink(c, d)
			return
		}
		if !dir.srcReady {
			w.poll(c, d, true)
			return
		}
		if !dir.hasPipe {
			p, err := w.pipes.Get()
			if err != nil {
				// No descriptor for a pipe: back to the copy path, which
				// needs none. At once if a buffer is free; otherwise when
				// one comes back or a connection closes (retryStarved).
				// Retrying at once with every buffer held would only
				// find the ring empty again, and spin.
				dir.splice, dir.bufferless = false, false
				if w.bufsOut < w.bufsLent || w.growBufs() {
					w.armRecv(c, d, false)
				} else {
					w.starved = append(w.starved, dirRef{c, c.gen, int32(d)})
				}
				return
			}
			dir.p, dir.hasPipe = p, true
		}
		n, errno := Splice(src, dir.p.W, dir.p.Size)
		switch {
		case errno == unix.EAGAIN:
			dir.srcReady = false
			w.pipes.Put(dir.p)
			dir.hasPipe = false
			if dir.bufferless && w.bufsOut < w.bufsLent/2 {
				// Drained, and buffers are back (half of them, so that
				// it does not come straight back): the copy path again.
				dir.splice, dir.bufferless = false, false
				w.armRecv(c, d, true)
				return
			}
			w.poll(c, d, true)
			return
		case errno != 0:
			w.abort(c, d, errno) // the source failed
			return
		case n == 0:
			dir.eof = true
			w.pipes.Put(dir.p)
			dir.hasPipe = false
		default:
			dir.inPipe = n
		}
	}
	if !dir.queued {
		dir.queued = true
		w.runq = append(w.runq, dirRef{c, c.gen, int32(d)})
	}
}

// poll arms a one-shot poll on direction d's source (in) or sink.
func (w *uworker) poll(c *uconn, d int, in bool) {
	dir := &c.dirs[d]
	src, dst := c.fds(d)
	if (in && dir.pollIn) || (!in && (dir.pollOut || dir.sinkWatched)) {
		return
	}
	s := w.sqe()
	if in {
		dir.pollIn = true
		s.PrepPollAdd(src, unix.POLLIN|unix.POLLRDHUP)
		s.SetUserData(w.ud(opPollIn+uint8(d), c))
	} else {
		dir.pollOut = true
		s.PrepPollAdd(dst, unix.POLLOUT)
		s.SetUserData(w.ud(opPollOut+uint8(d), c))
	}
	c.inflight++
}

// handlePoll learns readiness from a poll and pumps. A poll that reports
// an error on its socket (POLLERR, POLLHUP) still counts as ready: the
// splice then says what failed. A poll that itself failed ends the
// connection: the direction has nothing else in flight to wake it, and
// leaving it would hang the connection with bytes in its pipe.
func (w *uworker) handlePoll(c *uconn, d int, in bool, res int32) {
	dir := &c.dirs[d]
	if in {
		dir.pollIn = false
	} else {
		dir.pollOut = false
	}
	if c.closing {
		return
	}
	if res < 0 {
		side := d // the polled socket: direction d's source…
		if !in {
			side = 1 - d // …or its sink
		}
		w.abort(c, side, unix.Errno(-res))
		return
	}
	if in {
		dir.srcReady = true
	} else if res&(unix.POLLOUT|unix.POLLERR|unix.POLLHUP) == 0 {
		// Only POLLRDHUP, which the kernel adds to every io_uring poll:
		// the sink's peer has half-closed, and stays so. Polling again
		// would complete at once, in a loop, while the sink is full.
		w.watchSink(c, d)
		return
	} else {
		dir.dstReady = true
	}
	w.pump(c, d)
}

// watchSink waits, in the worker's epoll set, for direction d's sink to
// become writable or fail: an io_uring poll of a socket whose peer has
// half-closed completes at once (handlePoll). The sink is then the ended
// source of the other direction, which may be in the set already: its
// entry becomes this one, which reports errors too, and is turned back
// into an end watch once the sink is writable (handleEndWatch).
func (w *uworker) watchSink(c *uconn, d int) {
	_, dst := c.fds(d)
	c.dirs[d].sinkWatched = true
	if err := w.ctlEnded(unix.EPOLL_CTL_ADD, c, dst, sinkOf0+d, unix.EPOLLOUT); err == unix.EEXIST {
		_ = w.ctlEnded(unix.EPOLL_CTL_MOD, c, dst, sinkOf0+d, unix.EPOLLOUT)
	}
}

// runQueued gives splice directions that used up their turn another one,
// and says how many there were.
//
// It reads the clock when there are any: a worker whose only work is
// splice turns reaps nothing, and the clock must still move for the
// bytes' activity stamps (--idle-timeout) and maybeYield.
func (w *uworker) runQueued() int {
	q := w.runq
	if len(q) == 0 {
		return 0
	}
	w.clock = w.now()
	w.runq = w.runqNext[:0]
	for _, r := range q {
		r.c.dirs[r.d].queued = false
		if r.c.gen == r.gen && r.c.state == ustateOpen && !r.c.closing && r.c.dirs[r.d].splice {
			w.pump(r.c, int(r.d))
		}
	}
	w.runqNext = q[:0]
	return len(q)
}

// recycle gives a buffer back to the kernel. Starved directions try again
// once the batch of completions is handled (retryStarved).
func (w *uworker) recycle(bid uint16) {
	w.bufs.Recycle(bid, w.buf(bid))
	w.bufsOut--
	w.recycled = true
}

// retryStarved re-arms every direction whose recv found the buffer ring
// empty, after buffers came back. All of them, not one per buffer: a recv
// takes a buffer only if data is waiting (otherwise it gives it back and
// waits), so a direction that is merely idle would use up a retry and
// leave others starved for good. One that finds the ring empty again is
// starved again, and retried when the buffers in flight come back.
func (w *uworker) retryStarved() {
	w.recycled = false
	starved := w.starved
	w.starved = w.spare[:0]
	for _, r := range starved {
		if r.c.gen == r.gen && r.c.state == ustateOpen && !r.c.closing {
			w.armRecv(r.c, int(r.d), false)
		}
	}
	w.spare = starved[:0]
}

// shutdownSink passes a half-close on: the source ended and every byte it
// sent is delivered.
//
// It is a plain shutdown(2), not an IORING_OP_SHUTDOWN: the kernel never
// runs that opcode inline but always hands it to an io-wq thread, and on
// the connection-rate workload (two half-closes per connection) those
// threads took a fifth of the proxy's CPU. A socket's shutdown does not
// block: it queues a FIN. Its error, if any, is ignored as the FIN's fate
// is the peer's business; a failed socket shows up in the next recv or send.
//
// The second half-close of a connection makes no system call: both
// directions have ended, so the connection is released and closing the
// socket sends the FIN itself. Both sockets are read to their end, so no
// unread byte turns that close into a reset. One system call less per
// connection, as in the epoll engine.
func (w *uworker) shutdownSink(c *uconn, d int) {
	dir := &c.dirs[d]
	if dir.shut {
		return
	}
	dir.shut = true
	if c.dirs[1-d].shut {
		w.release(c)
		return
	}
	_, dst := c.fds(d)
	_, _, _ = unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(dst), unix.SHUT_WR, 0)
	w.watchLater(c, d)
}

// watchDelay is how long a connection stays in a state that could hide a
// peer's reset before it is watched: a connect in flight (watchClient) or
// a half-close (endWatch). Nearly every connection leaves both within
// microseconds (a connect on loopback, a request, its reply, both
// closes), and watching each at once would cost a poll and its cancel, or
// an epoll_ctl and its removal: 3–5 % of the connection rate, measured
// for the half-close. A reset in a longer wait is passed on this much
// later than the epoll engine, which watches every socket anyway, does.
const watchDelay = 50 * time.Millisecond

// watchLater queues a watch for watchQueued, at most watchDelay from now:
// of c's client while it connects (d < 0), or of direction d's source,
// which has ended.
func (w *uworker) watchLater(c *uconn, d int) {
	w.watchQueue = append(w.watchQueue, dirRef{c, c.gen, int32(d)})
	if w.watchArmed || w.stopping.Load() {
		return
	}
	w.watchArmed = true
	s := w.sqe()
	s.PrepTimeout(&w.watchTS, 0, 0)
	s.SetUserData(ring.PackUserData(opWatchLater, 0, 0))
}

// watchQueued arms the queued watches of the connections still in the
// state they were queued in.
func (w *uworker) watchQueued() {
	w.watchArmed = false
	// Arming a watch queues none, so the list is reused in place.
	for _, r := range w.watchQueue {
		c := r.c
		switch {
		case c.gen != r.gen || c.closing:
		case r.d < 0 && c.state == ustateConnecting:
			w.watchClient(c)
		case r.d >= 0 && c.state == ustateOpen:
			w.endWatch(c, int(r.d))
		}
	}
	w.watchQueue = w.watchQueue[:0]
}

// endWatch watches direction d's source, which has ended, while the
// connection stays half-open (from watchQueued). Nothing reads it any
// more, and the other direction writes to it only when its own source
// sends: a reset of this peer would go unnoticed for as long as the other
// peer stays silent, holding the connection (against -c, and the idle
// exit) and never reaching that peer, where the epoll engine passes it on
// at once.
//
// The watch is the worker's epoll set, not an io_uring poll: the kernel
// adds POLLRDHUP to every io_uring poll, and an ended source has it
// already, so such a poll would complete at once. epoll reports only what
// is asked for, plus errors and hang-ups. One-shot, as a hang-up stays;
// closing the socket takes it out of the set, so release has nothing to
// cancel. A failure to add (no memory) leaves the connection as it was
// before: the reset is found at the next send.
func (w *uworker) endWatch(c *uconn, d int) {
	src, _ := c.fds(d)
	w.addEnded(c, src, d)
}

// Tags of the worker's epoll set besides 0 and 1, the ended source of
// that direction: the client of a connection still connecting, and the
// sink of direction 0 or 1 (sinkOf0+d) waited for by watchSink.
const (
	endedClient = 2
	sinkOf0     = 3
)

// watchEndedClient watches, in the worker's epoll set, a client that
// half-closed while its backend was being connected: a poll of it would
// complete at once (the kernel adds POLLRDHUP to every io_uring poll), and
// a reset after the half-close must still let the client go.
func (w *uworker) watchEndedClient(c *uconn) {
	c.clientEnded = true
	w.addEnded(c, c.client, endedClient)
}

// addEnded puts fd in the worker's epoll set of ended sockets, tagged with
// c's slot and generation and what it is (a direction, endedClient).
func (w *uworker) addEnded(c *uconn, fd, tag int) {
	err := w.ctlEnded(unix.EPOLL_CTL_ADD, c, fd, tag, 0)
	if err == unix.EEXIST && tag < endedClient && !c.dirs[1-tag].sinkWatched {
		// The entry of a sink watch that is over: an end watch now. (One
		// still waiting reports errors too, and becomes an end watch
		// once the sink is writable.)
		_ = w.ctlEnded(unix.EPOLL_CTL_MOD, c, fd, tag, 0)
	}
}

// ctlEnded adds fd to the worker's epoll set, or changes its entry (op),
// one-shot, for events besides errors and hang-ups, tagged with c's slot
// and generation and what it is; handleEndWatch reads the tag back.
func (w *uworker) ctlEnded(op int, c *uconn, fd, tag int, events uint32) error {
	w.endEv = unix.EpollEvent{Events: events | unix.EPOLLONESHOT, Fd: int32(c.slot), Pad: int32(c.gen<<3) | int32(tag)}
	return unix.EpollCtl(w.endfd, op, fd, &w.endEv)
}

// armEndWatch polls the epoll set of ended sources, multishot.
func (w *uworker) armEndWatch() {
	s := w.sqe()
	s.PrepPollMultishot(w.endfd, unix.POLLIN)
	s.SetUserData(ring.PackUserData(opEndWatch, 0, 0))
}

// handleEndWatch passes a reset of an ended source on to the other peer,
// as the epoll engine does. A hang-up without an error (a Unix peer that
// closed after its half-close) is left to the other direction's next send:
// the peer may still read what it is sent. Events of sockets whose
// connection has since ended or been reused are recognised by generation.
//
// The multishot poll ends when the kernel's completion queue overflowed or
// the poll was cancelled: it is armed again. If it failed, it is not (the
// same failure would come back at once, in a loop): a reset after a
// half-close is then found by the other direction's next send, as before
// the watch existed.
func (w *uworker) handleEndWatch(cqe ring.CQE) {
	if res := cqe.Res(); !cqe.More() && !w.stopping.Load() {
		if res >= 0 || res == -int32(unix.ECANCELED) {
			w.armEndWatch()
		} else {
			w.s.Log.Warnf("Watching half-closed connections for resets failed, continuing without: %s", ErrnoString(unix.Errno(-res)))
			return
		}
	}
	for {
		n, err := unix.EpollWait(w.endfd, w.endEvents, 0)
		if err != nil || n <= 0 {
			return
		}
		for _, ev := range w.endEvents[:n] {
			slot, gen, tag := uint32(ev.Fd), uint32(ev.Pad)>>3, int(ev.Pad&7)
			if int(slot) >= len(w.conns) {
				continue
			}
			c := w.conns[slot]
			if c == nil || c.gen != gen || c.closing {
				continue
			}
			failed, hungUp := ev.Events&unix.EPOLLERR != 0, ev.Events&unix.EPOLLHUP != 0
			switch {
			case tag == endedClient && c.clientEnded && c.state != ustateOpen:
				if ClientLeft(c.client, failed, hungUp) {
					c.end = EndClientGone
					w.release(c) // the client gave up while we connected
				}
			case tag >= sinkOf0 && c.state == ustateOpen:
				d := tag - sinkOf0
				dir := &c.dirs[d]
				dir.sinkWatched = false
				dir.dstReady = true // or failed: the splice says which
				if c.dirs[1-d].shut {
					// The sink is the other direction's ended source:
					// watched for a reset again.
					_, dst := c.fds(d)
					_ = w.ctlEnded(unix.EPOLL_CTL_MOD, c, dst, 1-d, 0)
				}
				w.pump(c, d)
			case tag < endedClient && c.state == ustateOpen && failed:
				src, _ := c.fds(tag)
				if soerr, err := unix.GetsockoptInt(src, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soerr != 0 {
					w.abort(c, tag, unix.Errno(soerr))
				}
			}
		}
		if n < len(w.endEvents) {
			return
		}
	}
}

// abort ends a connection whose socket on side (0 client, 1 backend)
// failed: the other side is reset, so a reset travels through the proxy.
func (w *uworker) abort(c *uconn, side int, errno unix.Errno) {
	if w.s.Log.Enabled(LevelDebug) {
		which := "client"
		if side == 1 {
			which = "backend"
		}
		w.s.Log.Debugf("Connection from %s: %s failed: %s; resetting the other side.", PeerName(c.client), which, ErrnoString(errno))
	}
	if side == 0 {
		ResetOnClose(c.backend)
		c.end = EndClientFailed
	} else {
		ResetOnClose(c.client)
		c.end = EndBackendFailed
	}
	c.endErr = errno
	w.release(c)
}

// release starts closing a connection: requests still in the kernel are
// cancelled, and finish runs once the last of them has completed.
func (w *uworker) release(c *uconn) {
	if c.closing {
		return
	}
	c.closing = true
	if c.inflight == 0 {
		w.finish(c)
		return
	}
	for _, fd := range [2]int{c.client, c.backend} {
		if fd >= 0 {
			s := w.sqe()
			s.PrepCancelFd(fd, ring.CancelAll)
			s.SetUserData(w.ud(opCancel, c))
			c.inflight++
		}
	}
	if c.backoffOn {
		s := w.sqe()
		s.PrepCancel(w.ud(opBackoff, c), 0)
		s.SetUserData(w.ud(opCancel, c))
		c.inflight++
	}
}

// finish closes the sockets, returns held buffers and frees the slot: no
// request of this connection is in the kernel any more. It runs once per
// life of a slot, however many paths reach it.
func (w *uworker) finish(c *uconn) {
	if c.state == ustateFree {
		return
	}
	for d := range c.dirs {
		dir := &c.dirs[d]
		if dir.hasBuf {
			w.recycle(dir.bid)
			dir.hasBuf = false
		}
		if dir.hasNext {
			w.recycle(dir.nextBid)
			dir.hasNext = false
		}
		if dir.hasPipe {
			if dir.inPipe == 0 {
				w.pipes.Put(dir.p)
			} else {
				dir.p.Close() // bytes left in it: never reuse a dirty pipe
			}
			dir.hasPipe = false
		}
	}
	for _, fd := range [2]int{c.client, c.backend} {
		if fd >= 0 {
			s := w.sqe()
			s.PrepClose(fd)
			s.SetFlags(ring.FlagCQESkipSuccess)
			s.SetUserData(ring.PackUserData(opClose, 0, 0))
		}
	}
	c.client, c.backend = -1, -1
	if len(w.starved) > 0 {
		w.recycled = true // descriptors came back: a pipe may be had now
	}
	c.state = ustateFree
	w.s.Closed(w.ctr, &c.rec, c.ln, c.sentUp, c.sentDown, c.end, c.endErr)
	w.live--
	c.addrs, c.lastErr = nil, nil
	w.free = append(w.free, c.slot)
	w.s.Tracker.Close()
	if w.acceptPaused {
		w.resumeAccept()
	} else if w.careful {
		w.checkDescriptors()
	}
}

// armSweep arms the --idle-timeout sweep while the worker has connections.
func (w *uworker) armSweep() {
	if w.sweepArmed || w.live == 0 || !w.s.IdleTimeoutOn() || w.stopping.Load() {
		return
	}
	w.sweepArmed = true
	w.sweepTS = ring.NewTimespec(IdleSweepPeriod(w.s.IdleTimeout))
	s := w.sqe()
	s.PrepTimeout(&w.sweepTS, 0, 0)
	s.SetUserData(ring.PackUserData(opSweep, 0, 0))
}

// sweepIdle closes every open connection that moved no byte for the idle
// timeout. One ring timeout per worker, a fraction of the idle timeout
// apart, visits every connection: cheaper than a timeout per connection
// re-armed on every chunk.
func (w *uworker) sweepIdle() {
	w.sweepArmed = false
	now := w.now()
	limit := int64(w.s.IdleTimeout)
	for _, c := range w.conns {
		if c != nil && c.state == ustateOpen && !c.closing && now-c.lastActive >= limit {
			w.ctr.IdleClosed.Add(1)
			if w.s.Log.Enabled(LevelDebug) {
				w.s.Log.Debugf("Connection from %s: idle for %v, closing.", PeerName(c.client), w.s.IdleTimeout)
			}
			c.end = EndIdle
			w.release(c)
		}
	}
	w.armSweep()
}
