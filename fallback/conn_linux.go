package fallback

import (
	"math"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
)

// Connection states.
const (
	stateFree       uint8 = iota // slot unused
	stateResolving               // waiting for a host name lookup
	stateConnecting              // non-blocking connect in progress
	stateBackoff                 // every address failed; waiting to retry
	stateOpen                    // forwarding
)

// shovelRounds bounds the chunks one direction moves before the loop
// serves other connections: a fast bulk transfer must not starve the rest.
// 64 chunks of up to 256 KiB is 16 MiB, about 10 ms at loopback speed. A
// smaller budget costs CPU: with 16, eight bulk connections on one loop
// took 25 % more proxy CPU per GB than with 64 (or than
// systemd-socket-proxyd, which shovels until EAGAIN), because switching
// connections every 4 MiB wakes each peer's reader more often, and the
// proxy pays for those wake-ups inside its splice calls.
const shovelRounds = 64

// half is one direction of a connection: source socket → pipe → sink socket.
//
// Invariant: the source is read only when the pipe is empty, so a direction
// never buffers more than one pipe.
type half struct {
	p       forward.Pipe
	hasPipe bool
	n       int  // bytes in the pipe
	eof     bool // the source has ended
	shut    bool // the sink's write side is shut down
}

// conn is one client connection and its backend. It lives in the loop's
// slot table and is reused; gen tells its lives apart.
type conn struct {
	slot, gen uint32
	state     uint8
	queued    bool // in the loop's run queue
	pipeWait  bool // in the loop's list of connections waiting for a pipe

	client, backend int // -1 when closed

	// Edge-triggered readiness: set by events, cleared on EAGAIN.
	clientR, clientW, backendR, backendW bool

	up, down half // client → backend, backend → client

	// Connect phase.
	addrs    []unix.Sockaddr
	next     int   // index of the next address to try
	deadline int64 // loop clock; 0 means no deadline
	backoff  time.Duration
	lastErr  error

	timerAt  int64
	timerIdx int

	ln         int    // listener index
	lastActive int64  // loop clock when a byte last moved
	sentUp     uint64 // bytes delivered to the backend
	sentDown   uint64 // bytes delivered to the client
	end        forward.End
	endErr     unix.Errno
	rec        forward.ConnRecord
}

// other returns the direction opposite to h.
func (c *conn) other(h *half) *half {
	if h == &c.up {
		return &c.down
	}
	return &c.up
}

// startConn takes a client socket accepted on listener ln and admitted.
func (l *loop) startConn(fd, ln int) {
	var c *conn
	if n := len(l.free); n > 0 {
		c = l.conns[l.free[n-1]]
		l.free = l.free[:n-1]
	} else {
		c = &conn{slot: uint32(len(l.conns))}
		l.conns = append(l.conns, c)
	}
	c.gen++
	c.state = stateResolving
	c.client, c.backend = fd, -1
	c.clientR, c.clientW, c.backendR, c.backendW = false, false, false, false
	c.up, c.down = half{}, half{}
	c.addrs, c.next, c.lastErr, c.backoff = nil, 0, nil, forward.BackoffMin
	c.timerIdx = -1
	c.ln, c.lastActive, c.sentUp, c.sentDown, c.end, c.endErr = ln, l.clock, 0, 0, forward.EndClosed, 0
	l.s.Opened(l.ctr, &c.rec, fd, ln)
	l.live++
	l.armSweep(l.clock)
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, connEvents, int(c.slot<<1), c.gen); err != nil {
		l.s.Log.Warnf("Failed to add connection socket: %v", err)
		l.release(c)
		return
	}
	switch t := l.s.ConnectTimeout; {
	case t <= 0:
		c.deadline = 0 // one attempt, bounded by the kernel
	case t == forward.Never:
		c.deadline = math.MaxInt64 // retry for ever
	default:
		c.deadline = l.now() + int64(t)
	}
	l.connectRound(c)
}

// connectRound starts a round of connect attempts: over the target's
// addresses, resolved again for a host name.
func (l *loop) connectRound(c *conn) {
	c.next = 0
	if st := l.static[c.ln]; st != nil {
		c.addrs = st
		l.tryConnect(c)
		return
	}
	c.state = stateResolving
	if c.deadline != 0 {
		l.timer.set(c, c.deadline)
	}
	timeout := l.s.ConnectTimeout
	if timeout <= 0 || timeout == forward.Never {
		timeout = 30 * time.Second
	}
	l.lookups.Start(l.s.TargetOf(c.ln), c.slot, c.gen, timeout)
}

func (l *loop) resolvedAddrs(c *conn, addrs []unix.Sockaddr, err error) {
	l.timer.cancel(c)
	if err != nil {
		l.s.Log.Errorf("%v (client %s, target %s)", err, forward.PeerName(c.client), l.s.TargetOf(c.ln))
		l.ctr.FailedConnects.Add(1)
		c.end, c.endErr = forward.EndConnectFailed, 0
		l.release(c)
		return
	}
	c.addrs = addrs
	l.tryConnect(c)
}

// tryConnect tries the remaining addresses in order until one is connected
// or in progress; when all have failed it retries or gives up.
func (l *loop) tryConnect(c *conn) {
	for c.next < len(c.addrs) {
		sa := c.addrs[c.next]
		c.next++
		family := forward.SockaddrFamily(sa)
		fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			c.lastErr = err
			continue
		}
		l.s.PrepareBackend(fd, family)
		err = unix.Connect(fd, sa)
		if err != nil && err != unix.EINPROGRESS {
			unix.Close(fd)
			c.lastErr = err
			continue
		}
		if cerr := l.ctl(unix.EPOLL_CTL_ADD, fd, connEvents, int(c.slot<<1|1), c.gen); cerr != nil {
			unix.Close(fd)
			c.lastErr = cerr
			continue
		}
		c.backend = fd
		if err == nil { // Unix sockets connect at once
			l.connected(c)
			return
		}
		c.state = stateConnecting
		l.armAttemptTimer(c)
		return
	}
	l.retryOrFail(c)
}

// armAttemptTimer bounds one connect attempt. An address that drops SYNs
// must not use up the whole deadline while others wait untried, so each
// attempt but the last gets an equal share of what remains.
func (l *loop) armAttemptTimer(c *conn) {
	if c.deadline == 0 {
		return
	}
	at := c.deadline
	if left := len(c.addrs) - c.next; left > 0 {
		now := l.now()
		at = now + (c.deadline-now)/int64(left+1)
	}
	l.timer.set(c, at)
}

// retryOrFail runs after every address of a round failed: a backend that
// refuses, is missing, or has a full backlog may be starting, so try again
// after a back-off while the deadline allows.
func (l *loop) retryOrFail(c *conn) {
	if c.deadline != 0 && forward.Retryable(c.lastErr) {
		now := l.now()
		// The last try falls on the deadline itself, so the backend has
		// the whole connect timeout to come up.
		if at := min(now+int64(c.backoff), c.deadline); now < c.deadline {
			c.state = stateBackoff
			l.timer.set(c, at)
			c.backoff = forward.NextBackoff(c.backoff)
			return
		}
	}
	l.failConnect(c)
}

// connTimer handles a connection's timer: an attempt or the whole connect
// phase ran out of time, or a back-off ended.
func (l *loop) connTimer(c *conn) {
	switch c.state {
	case stateBackoff:
		l.connectRound(c)
	case stateResolving:
		c.lastErr = unix.ETIMEDOUT
		l.failConnect(c)
	case stateConnecting:
		// The answer may be in already, its event not yet read.
		c.lastErr = unix.ETIMEDOUT
		if soerr, err := unix.GetsockoptInt(c.backend, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soerr != 0 {
			c.lastErr = unix.Errno(soerr)
		}
		l.closeBackend(c)
		if l.now() < c.deadline {
			l.tryConnect(c) // next address, or a retry
			return
		}
		l.failConnect(c)
	}
}

func (l *loop) closeBackend(c *conn) {
	if c.backend >= 0 {
		unix.Close(c.backend)
		c.backend = -1
	}
	c.backendR, c.backendW = false, false
}

// finishConnect runs when a connecting backend socket reports writable or
// an error. TCP reports EPOLLOUT on a connecting socket only once it is
// established, and a failure always with EPOLLERR or EPOLLHUP, so only
// those need SO_ERROR: one system call less per connection.
func (l *loop) finishConnect(c *conn, ev uint32) {
	var err error
	if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		var soerr int
		soerr, err = unix.GetsockoptInt(c.backend, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && soerr != 0 {
			err = unix.Errno(soerr)
		}
	}
	if err != nil {
		l.timer.cancel(c)
		l.closeBackend(c)
		c.lastErr = err
		l.tryConnect(c)
		return
	}
	l.connected(c)
}

func (l *loop) failConnect(c *conn) {
	l.s.Log.Errorf("Failed to connect to remote host: %s (client %s, target %s)",
		forward.ErrnoText(c.lastErr), forward.PeerName(c.client), l.s.TargetOf(c.ln))
	l.ctr.FailedConnects.Add(1)
	c.end = forward.EndConnectFailed
	if e, ok := c.lastErr.(unix.Errno); ok {
		c.endErr = e
	}
	l.release(c)
}

// connected starts forwarding. Bytes the client sent while the backend was
// connecting wait in its socket and go first.
func (l *loop) connected(c *conn) {
	l.timer.cancel(c)
	c.state = stateOpen
	c.addrs = nil
	c.lastActive = l.clock
	if l.s.ProxyProtocol != forward.ProxyNone && !l.sendProxyHeader(c) {
		return
	}
	c.clientR, c.backendW = true, true
	l.shovel(c)
}

// sendProxyHeader sends the PROXY protocol header before any byte of the
// client's, or closes the connection.
func (l *loop) sendProxyHeader(c *conn) bool {
	if err := l.s.SendProxyHeader(l.hdr[:], c.client, c.backend, c.ln); err != nil {
		c.end = forward.EndRefused
		c.endErr, _ = err.(unix.Errno)
		l.release(c)
		return false
	}
	return true
}

// handleConnEvent records readiness from an epoll event and acts on it.
func (l *loop) handleConnEvent(slot, gen uint32, side int, ev uint32) {
	c := l.lookup(slot, gen)
	if c == nil {
		return // stale: the connection was released in this batch
	}
	readable := ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	writable := ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0
	if side == 0 {
		c.clientR = c.clientR || readable
		c.clientW = c.clientW || writable
	} else {
		c.backendR = c.backendR || readable
		c.backendW = c.backendW || writable
	}
	switch c.state {
	case stateOpen:
		if ev&unix.EPOLLERR != 0 && l.socketFailed(c, side) {
			return
		}
		l.shovel(c)
	case stateConnecting:
		if side == 1 && writable {
			l.finishConnect(c, ev)
		} else if side == 0 && clientLeft(c.client, ev) {
			c.end = forward.EndClientGone
			l.release(c) // the client gave up while we connected
		}
	default:
		if side == 0 && clientLeft(c.client, ev) {
			c.end = forward.EndClientGone
			l.release(c)
		}
	}
}

// clientLeft says whether the client event ev, while the backend is not
// connected, means the client has gone for good (forward.ClientLeft).
func clientLeft(fd int, ev uint32) bool {
	return forward.ClientLeft(fd, ev&unix.EPOLLERR != 0, ev&unix.EPOLLHUP != 0)
}

// socketFailed checks a socket that reported EPOLLERR. A reset is passed on
// to the other side as a reset, even when no direction would touch the
// failed socket soon.
func (l *loop) socketFailed(c *conn, side int) bool {
	fd := c.client
	if side == 1 {
		fd = c.backend
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil || soerr == 0 {
		return false
	}
	l.abort(c, side, unix.Errno(soerr))
	return true
}

// shovel moves bytes both ways until nothing more can move now, then
// closes the connection when both directions have ended.
func (l *loop) shovel(c *conn) {
	upDone, err := l.pump(c, &c.up, c.client, c.backend, &c.clientR, &c.backendW)
	if err != nil {
		l.abort(c, err.side, err.errno)
		return
	}
	downDone, err := l.pump(c, &c.down, c.backend, c.client, &c.backendR, &c.clientW)
	if err != nil {
		l.abort(c, 1-err.side, err.errno)
		return
	}
	if c.up.shut && c.down.shut {
		l.release(c)
		return
	}
	if !(upDone && downDone) && !c.queued {
		c.queued = true
		l.runq = append(l.runq, c)
	}
}

// pumpError says which socket of a direction failed: side 0 is the
// direction's source, 1 its sink.
type pumpError struct {
	side  int
	errno unix.Errno
}

// pump moves one direction: source → pipe → sink. It returns done=true
// when it stopped because it must wait (EAGAIN or the end), false when it
// used up its rounds with work left.
func (l *loop) pump(c *conn, h *half, src, dst int, srcReady, dstReady *bool) (done bool, perr *pumpError) {
	for round := 0; round < shovelRounds; round++ {
		if h.n > 0 {
			if !*dstReady {
				return true, nil
			}
			n, errno := forward.Splice(h.p.R, dst, h.n)
			if errno == unix.EAGAIN {
				*dstReady = false
				return true, nil
			}
			if errno != 0 {
				return true, &pumpError{side: 1, errno: errno}
			}
			h.n -= n
			c.lastActive = l.clock
			if h == &c.up {
				c.sentUp += uint64(n)
				l.ctr.BytesUp.Add(uint64(n))
			} else {
				c.sentDown += uint64(n)
				l.ctr.BytesDown.Add(uint64(n))
			}
			if h.n > 0 {
				continue
			}
			l.pipes.Put(h.p)
			h.hasPipe = false
		}
		if h.eof {
			if !h.shut {
				// Pending bytes are delivered; pass the half-close on.
				// When the other direction has ended too, shovel
				// releases the connection right away and close sends
				// the FIN itself: both sockets are read to their end,
				// so no unread byte turns it into a reset. One system
				// call less per connection.
				if other := c.other(h); !other.shut {
					_ = unix.Shutdown(dst, unix.SHUT_WR)
				}
				h.shut = true
			}
			return true, nil
		}
		if !*srcReady {
			return true, nil
		}
		if !h.hasPipe {
			p, err := l.pipes.Get()
			if err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOMEM {
				// Out of descriptors: the bytes wait in the socket, the
				// connection is not lost; try again shortly or when a
				// connection closes.
				l.waitForPipe(c)
				return true, nil
			}
			if err != nil {
				l.s.Log.Warnf("Failed to allocate pipe buffer: %v", forward.ErrnoText(err))
				return true, &pumpError{side: 0, errno: asErrno(err)}
			}
			h.p, h.hasPipe = p, true
		}
		n, errno := forward.Splice(src, h.p.W, h.p.Size)
		if errno == unix.EAGAIN {
			*srcReady = false
			l.pipes.Put(h.p)
			h.hasPipe = false
			return true, nil
		}
		if errno != 0 {
			return true, &pumpError{side: 0, errno: errno}
		}
		if n == 0 {
			h.eof = true
			l.pipes.Put(h.p)
			h.hasPipe = false
			continue
		}
		h.n = n
	}
	return false, nil
}

func asErrno(err error) unix.Errno {
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	return unix.EIO
}

// abort ends a connection because the socket on side (0 client, 1 backend)
// failed: the other side is reset, so a reset travels through the proxy as
// it would without it.
func (l *loop) abort(c *conn, side int, errno unix.Errno) {
	if l.s.Log.Enabled(forward.LevelDebug) {
		which := "client"
		if side == 1 {
			which = "backend"
		}
		l.s.Log.Debugf("Connection from %s: %s failed: %s; resetting the other side.", forward.PeerName(c.client), which, forward.ErrnoString(errno))
	}
	if side == 0 {
		forward.ResetOnClose(c.backend)
		c.end = forward.EndClientFailed
	} else {
		forward.ResetOnClose(c.client)
		c.end = forward.EndBackendFailed
	}
	c.endErr = errno
	l.release(c)
}

// release closes the connection's sockets and pipes and frees its slot.
func (l *loop) release(c *conn) {
	l.timer.cancel(c)
	l.s.Closed(l.ctr, &c.rec, c.ln, c.sentUp, c.sentDown, c.end, c.endErr)
	l.live--
	for _, h := range [2]*half{&c.up, &c.down} {
		if h.hasPipe {
			if h.n == 0 {
				l.pipes.Put(h.p)
			} else {
				h.p.Close() // bytes left in it: never reuse a dirty pipe
			}
			h.hasPipe = false
		}
	}
	if c.client >= 0 {
		unix.Close(c.client)
		c.client = -1
	}
	l.closeBackend(c)
	c.state = stateFree
	c.addrs = nil
	c.lastErr = nil
	l.free = append(l.free, c.slot)
	l.s.Tracker.Close()
	c.pipeWait = false
	if len(l.pipeWaiters) > 0 {
		l.pipeRetryAt = l.now() // descriptors were freed: try at once
	}
	l.resumeAccept()
}
