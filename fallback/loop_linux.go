package fallback

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
)

// Event tokens. An epoll event carries 64 bits of data, which x/sys splits
// into Fd and Pad: Fd holds the token and Pad a connection's generation, so
// an event for a connection that was released and reused in the same batch
// is recognised as stale.
const (
	tokenWake     = -1 // the loop's eventfd
	tokenListener = -2 // listener i is tokenListener - i
)

// connEvents is the interest of every connection socket: registered once,
// edge-triggered; the loop keeps the readiness itself.
const connEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// yieldEvery is how often a busy loop passes through the Go scheduler.
//
// The loop goroutine never blocks in Go: it sleeps in epoll_wait and its
// splices are raw system calls, so the scheduler sees a goroutine that runs
// for ever. After 10 ms of that, sysmon preempts it with a signal or, while
// it sits in epoll_wait, takes its P away, and sysmon, having found work,
// goes back to polling every 20 µs. A runtime.Gosched every few
// milliseconds keeps it below that threshold. Measured over 4 GiB on one
// bulk connection: preemption signals fell from 227 to 10, sysmon's wake-ups
// from 3,600 to 400 and its CPU from 90 ms to 20 ms.
const yieldEvery = 2 * time.Millisecond

// loop is one event loop: an epoll instance and the connections it
// accepted. Everything but the fields marked otherwise is touched only by
// the loop's own goroutine.
type loop struct {
	s      *forward.Server
	epfd   int
	wakefd int
	epoch  time.Time

	// static is this loop's copy of each listener's target's fixed
	// addresses: x/sys writes into a Sockaddr when it is used, so loops
	// must not share them.
	static [][]unix.Sockaddr
	ctr    *forward.Counters
	hdr    [forward.MaxProxyHeader]byte // scratch for a PROXY header

	// clock is the loop clock read once per wake-up: cheap enough to stamp
	// every connection's activity with it.
	clock     int64
	live      int   // connections in the slot table
	nextSweep int64 // loop clock of the next --idle-timeout sweep; 0: none
	// pollUntil is the loop clock until which epoll_wait does not sleep
	// (--busy-poll after the last events); at or before clock, it may.
	pollUntil int64

	events []unix.EpollEvent
	ctlEv  unix.EpollEvent // scratch for epoll_ctl, so it does not escape per call

	conns []*conn  // slot table; slots are reused, generations tell them apart
	free  []uint32 // free slots
	runq  []*conn  // connections that used up their budget with work left
	pipes forward.PipePool
	timer timerHeap

	acceptPausedUntil int64 // loop clock; 0 when accepting
	lastPauseLog      int64
	fdCap             int64     // connections the descriptor limit leaves room for
	pipeRetryAt       int64     // loop clock; 0 when no connection waits for a pipe
	pipeWaiters       []connRef // connections that found no descriptor for a pipe
	lastYield         int64     // loop clock of the last runtime.Gosched

	lookups   *forward.Lookups // host name lookups, finished off the loop
	stopping  atomic.Bool      // set by Serve's goroutine, followed by a wake
	drainReq  atomic.Bool      // likewise: stop accepting, keep forwarding
	acceptOff bool             // the listeners are out of the epoll set
	broken    []bool           // per listener: it will never accept again
	acked     chan<- struct{}  // told once accepting has stopped
}

func newLoop(s *forward.Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	l := &loop{s: s, epfd: epfd, wakefd: -1, epoch: time.Now(),
		events: make([]unix.EpollEvent, 256), pipes: forward.PipePool{Max: forward.PipePoolMax},
		ctr: s.NewCounters(), broken: make([]bool, len(s.Listeners))}
	for i := range s.Listeners {
		l.static = append(l.static, forward.CloneSockaddrs(s.TargetOf(i).Static()))
	}
	l.lookups = forward.NewLookups(l.wake)
	// Two sockets per connection, and a reserve of descriptors for a few
	// pipes in flight, shared in turn by connections that wait for one.
	l.fdCap = forward.ConnectionCapacity(2, 32)
	l.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.wakefd, unix.EPOLLIN, tokenWake, 0); err != nil {
		l.close()
		return nil, err
	}
	for i, ln := range s.Listeners {
		// EPOLLEXCLUSIVE: one loop is woken per new client, not all; each
		// woken loop accepts until EAGAIN, so no client is left behind.
		if err := l.ctl(unix.EPOLL_CTL_ADD, ln.FD, unix.EPOLLIN|unix.EPOLLET|unix.EPOLLEXCLUSIVE, tokenListener-i, 0); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

func (l *loop) ctl(op, fd int, events uint32, token int, gen uint32) error {
	l.ctlEv = unix.EpollEvent{Events: events, Fd: int32(token), Pad: int32(gen)}
	if err := unix.EpollCtl(l.epfd, op, fd, &l.ctlEv); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// now is the loop clock in nanoseconds, monotonic.
func (l *loop) now() int64 { return int64(time.Since(l.epoch)) }

// stopAccepting asks the loop to stop accepting and tell acked when it
// has; safe from any goroutine.
func (l *loop) stopAccepting(acked chan<- struct{}) {
	l.acked = acked
	l.drainReq.Store(true)
	l.wake()
}

// stop asks the loop to return; safe from any goroutine.
func (l *loop) stop() {
	l.stopping.Store(true)
	l.wake()
}

func (l *loop) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(l.wakefd, one[:])
}

// run is the loop: wait, dispatch each event, run due timers and the
// connections that still have work. It returns when stop is called, after
// closing every connection.
func (l *loop) run() error {
	defer l.closeAll()
	for !l.stopping.Load() {
		n, err := unix.EpollWait(l.epfd, l.events, l.waitTimeout())
		l.clock = l.now()
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("epoll_wait: %w", err)
		}
		if n > 0 {
			l.pollUntil = l.s.BusyPollUntil(l.clock)
		}
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			switch tok := int(ev.Fd); {
			case tok == tokenWake:
				l.handleWake()
			case tok <= tokenListener:
				l.acceptFrom(tokenListener - tok)
			default:
				l.handleConnEvent(uint32(tok)>>1, uint32(ev.Pad), tok&1, ev.Events)
			}
		}
		l.runTimers()
		l.runQueued()
		if now := l.now(); now-l.lastYield >= int64(yieldEvery) {
			l.lastYield = now
			runtime.Gosched()
		}
	}
	return nil
}

// waitTimeout is how long epoll_wait may sleep: not at all while
// connections have queued work or --busy-poll's time since the last events
// runs, until the next timer otherwise, forever when nothing is pending (an
// idle proxy uses no CPU).
func (l *loop) waitTimeout() int {
	if len(l.runq) > 0 || l.pollUntil > l.clock {
		return 0
	}
	next := l.timer.next()
	if l.acceptPausedUntil != 0 && (next == 0 || l.acceptPausedUntil < next) {
		next = l.acceptPausedUntil
	}
	if l.pipeRetryAt != 0 && (next == 0 || l.pipeRetryAt < next) {
		next = l.pipeRetryAt
	}
	if l.nextSweep != 0 && (next == 0 || l.nextSweep < next) {
		next = l.nextSweep
	}
	if next == 0 {
		return -1
	}
	d := next - l.now()
	if d <= 0 {
		return 0
	}
	// Round up, so a timer never fires early; cap, so a far deadline
	// ("infinity") fits epoll_wait's int.
	return int((min(d, int64(time.Hour)) + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

func (l *loop) handleWake() {
	var buf [8]byte
	_, _ = unix.Read(l.wakefd, buf[:])
	if l.drainReq.Load() && !l.acceptOff {
		l.acceptOff = true
		for _, ln := range l.s.Listeners {
			_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, ln.FD, nil)
		}
		l.acked <- struct{}{}
	}
	for _, r := range l.lookups.Take() {
		if c := l.lookup(r.Slot, r.Gen); c != nil && c.state == stateResolving {
			l.resolvedAddrs(c, r.Addrs, r.Err)
		}
	}
}

// lookup returns the connection in slot if it still has generation gen.
func (l *loop) lookup(slot, gen uint32) *conn {
	if int(slot) >= len(l.conns) {
		return nil
	}
	c := l.conns[slot]
	if c == nil || c.gen != gen || c.state == stateFree {
		return nil
	}
	return c
}

// acceptFrom accepts every client waiting on listener i.
func (l *loop) acceptFrom(i int) {
	if l.acceptPausedUntil != 0 || l.acceptOff || l.broken[i] || l.stopping.Load() {
		return // resumed by a timer or a closing connection
	}
	lfd := l.s.Listeners[i].FD
	for {
		fd, err := accept4(lfd)
		switch {
		case err == nil:
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR || err == unix.ECONNABORTED:
			continue
		case err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOBUFS || err == unix.ENOMEM:
			l.pauseAccept(forward.PauseAccept, err.(unix.Errno))
			return
		case forward.ListenerBroken(err.(unix.Errno)):
			// Out of the epoll set, so that it raises no more events.
			l.broken[i] = true
			_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, lfd, nil)
			l.s.ListenerBroke(i, err.(unix.Errno))
			return
		default:
			l.s.Log.Warnf("Failed to accept connection, ignoring: %v", forward.ErrnoText(err))
			return
		}
		l.s.Arrived(fd)
		if !l.s.Tracker.TryOpen() {
			l.s.Log.Warnf("Hit connection limit, refusing connection.")
			unix.Close(fd)
			continue
		}
		l.startConn(fd, i)
		if l.s.Tracker.Open() >= l.fdCap {
			// Each connection needs a backend socket and, while bytes
			// move, pipes: stop before clients take the descriptors.
			l.pauseAccept(forward.PauseFull, 0)
			return
		}
	}
}

// pauseAccept stops accepting for forward.AcceptPause after an accept
// failed for want of file descriptors or memory, or on reaching the
// connections the descriptor limit leaves room for (see
// forward.AcceptPauseText).
func (l *loop) pauseAccept(failed string, err unix.Errno) {
	now := l.now()
	l.acceptPausedUntil = now + int64(forward.AcceptPause)
	if l.lastPauseLog == 0 || now-l.lastPauseLog >= int64(time.Second) {
		l.lastPauseLog = now
		l.s.Log.Warnf("%s", forward.AcceptPauseText(failed, err, l.s.Tracker.Open()))
	}
}

// resumeAccept accepts again after a pause. Listeners are edge-triggered,
// so waiting clients raise no new event: look at each listener now.
func (l *loop) resumeAccept() {
	if l.acceptPausedUntil == 0 || l.acceptOff || l.stopping.Load() {
		return
	}
	l.acceptPausedUntil = 0
	for i := range l.s.Listeners {
		l.acceptFrom(i)
	}
}

// runTimers fires every connection timer that is due, and ends an accept
// pause.
func (l *loop) runTimers() {
	now := l.now()
	if l.acceptPausedUntil != 0 && now >= l.acceptPausedUntil {
		l.resumeAccept()
	}
	if l.pipeRetryAt != 0 && now >= l.pipeRetryAt {
		l.retryPipeWaiters()
	}
	if l.nextSweep != 0 && now >= l.nextSweep {
		l.sweepIdle(now)
	}
	for {
		c := l.timer.popDue(now)
		if c == nil {
			return
		}
		l.connTimer(c)
	}
}

// runQueued continues connections that stopped for fairness.
func (l *loop) runQueued() {
	q := l.runq
	l.runq = l.runq[len(l.runq):] // keep capacity, appends go after q
	for _, c := range q {
		c.queued = false
		if c.state == stateOpen {
			l.shovel(c)
		}
	}
	if len(l.runq) == 0 {
		l.runq = q[:0]
	} else {
		l.runq = append(q[:0], l.runq...)
	}
}

// closeAll closes every connection: the proxy is stopping.
func (l *loop) closeAll() {
	for _, c := range l.conns {
		if c != nil && c.state != stateFree {
			c.end = forward.EndStopped
			l.release(c)
		}
	}
}

// sweepIdle closes every open connection that moved no byte for the idle
// timeout. One sweep a fraction of the timeout visits every connection:
// cheaper than a timer per connection re-armed on every chunk, and the
// timeout is a limit, not an appointment.
func (l *loop) sweepIdle(now int64) {
	l.nextSweep = 0
	limit := int64(l.s.IdleTimeout)
	for _, c := range l.conns {
		if c != nil && c.state == stateOpen && now-c.lastActive >= limit {
			l.ctr.IdleClosed.Add(1)
			if l.s.Log.Enabled(forward.LevelDebug) {
				l.s.Log.Debugf("Connection from %s: idle for %v, closing.", forward.PeerName(c.client), l.s.IdleTimeout)
			}
			c.end = forward.EndIdle
			l.release(c)
		}
	}
	l.armSweep(now)
}

// armSweep schedules the next idle sweep while the loop has connections.
func (l *loop) armSweep(now int64) {
	if l.nextSweep == 0 && l.live > 0 && l.s.IdleTimeoutOn() {
		l.nextSweep = now + int64(forward.IdleSweepPeriod(l.s.IdleTimeout))
	}
}

func (l *loop) close() {
	if l.lookups != nil {
		l.lookups.Close()
	}
	l.pipes.CloseAll()
	if l.wakefd >= 0 {
		unix.Close(l.wakefd)
		l.wakefd = -1
	}
	if l.epfd >= 0 {
		unix.Close(l.epfd)
		l.epfd = -1
	}
}

// accept4 accepts without asking for the peer address, which would make
// x/sys allocate a Sockaddr per connection.
func accept4(lfd int) (int, error) {
	fd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// connRef names one life of a connection.
type connRef struct {
	c   *conn
	gen uint32
}

// pipeRetry is how soon a connection that found no descriptor for a pipe
// tries again, unless a connection closes first.
const pipeRetry = 10 * time.Millisecond

// waitForPipe parks c until a descriptor may be free.
func (l *loop) waitForPipe(c *conn) {
	if c.pipeWait {
		return
	}
	c.pipeWait = true
	l.pipeWaiters = append(l.pipeWaiters, connRef{c, c.gen})
	if at := l.now() + int64(pipeRetry); l.pipeRetryAt == 0 || at < l.pipeRetryAt {
		l.pipeRetryAt = at
	}
}

// retryPipeWaiters lets every parked connection try again.
func (l *loop) retryPipeWaiters() {
	l.pipeRetryAt = 0
	waiters := l.pipeWaiters
	l.pipeWaiters = nil
	for _, r := range waiters {
		if r.c.gen == r.gen && r.c.state == stateOpen {
			r.c.pipeWait = false
			l.shovel(r.c)
		}
	}
}
