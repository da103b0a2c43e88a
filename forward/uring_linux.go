package forward

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/ring"
)

// UringEngine is the io_uring engine. Each worker owns a ring on a locked
// OS thread (so the ring can be SINGLE_ISSUER with DEFER_TASKRUN): it keeps
// a multishot accept armed on every listener, connects with a linked
// timeout, and moves bytes with one recv per direction into a buffer the
// kernel picks from a provided-buffer ring only when data arrives, then a
// send of that buffer. An idle connection thus holds its two sockets and
// two pending recvs, no buffer and no kernel thread; a direction never
// buffers more than one buffer, which is the backpressure.
//
// Every completion is dispatched by one switch on the operation packed in
// its user_data, next to a slot index and a generation that recognises
// completions for a slot's previous occupant.
type UringEngine struct{}

// Name implements Engine.
func (UringEngine) Name() string { return "io_uring" }

// Sizes of a worker's rings. The CQ is large because multishot accept
// ends when the CQ is full, and a burst of connections must not end it.
const (
	uringSQEntries = 1024
	uringCQEntries = 16384
	uringBufSize   = 32 << 10 // one recv's worth; a direction that fills one is bulk
	uringBufStart  = 256      // buffers a worker provides at first
	uringBufGrow   = 256      // and adds when an exchanging direction finds none left
	uringBufMax    = 2048     // at most: 64 MiB of address space, touched only when used
	uringBufGroup  = 1
	uringBatch     = 256 // CQEs handled per peek
)

// Operations, packed into user_data with ring.PackUserData.
const (
	opAccept      uint8 = iota + 1 // slot: listener index
	opAcceptRetry                  // the accept pause is over
	opWake                         // the worker's eventfd is readable
	opConnect
	opLinkTimeout
	opBackoff
	opRecv // +direction
	_
	opSend // +direction
	_
	opCancel
	opClose  // no connection: posted only on failure
	opPollIn // +direction: the source is readable (splice path)
	_
	opPollOut // +direction: the sink is writable (splice path)
	_
	opAcceptCancel // a worker's cancel of its own accepts
	opClientWatch  // the client failed while its backend was being connected
	opSweep        // time for an --idle-timeout sweep
	opEndWatch     // the epoll set of ended sources has an event (endWatch)
	opWatchLater   // time for the watches queued by watchLater
)

// Serve implements Engine.
func (UringEngine) Serve(ctx context.Context, s *Server, ready func()) error {
	n := s.Threads
	if n < 1 {
		n = DefaultThreads()
	}
	workers := make([]*uworker, n)
	started := make(chan error, n)
	failed := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range workers {
		w := &uworker{s: s, wakefd: -1, endfd: -1}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // the ring belongs to this thread
			defer runtime.UnlockOSThread()
			if err := w.setup(); err != nil {
				w.teardown()
				started <- err
				return
			}
			started <- nil
			w.err = w.run()
			w.teardown()
			if w.err != nil {
				failed <- struct{}{}
			}
		}()
	}
	var setupErr error
	for range workers {
		if err := <-started; err != nil && setupErr == nil {
			setupErr = err
		}
	}
	if setupErr == nil {
		ready()
		select {
		case <-ctx.Done():
		case <-failed:
			// A worker stopped on an error: stop the others too, rather
			// than go on READY with part of the proxy gone.
		case <-s.StopAccepting():
			acked := make(chan struct{}, n)
			for _, w := range workers {
				w.stopAccepting(acked)
			}
			waitAcks(ctx, failed, acked, n)
			s.AcceptsStopped()
			select {
			case <-ctx.Done():
			case <-failed:
			}
		}
	}
	for _, w := range workers {
		w.stop()
	}
	wg.Wait()
	if setupErr != nil {
		return fmt.Errorf("io_uring engine: %w", setupErr)
	}
	for _, w := range workers {
		if w.err != nil {
			return fmt.Errorf("io_uring engine: %w", w.err)
		}
	}
	return nil
}

// waitAcks waits until n workers have stopped accepting, or the engine
// stops.
func waitAcks(ctx context.Context, failed <-chan struct{}, acked <-chan struct{}, n int) {
	for range n {
		select {
		case <-acked:
		case <-ctx.Done():
			return
		case <-failed:
			return
		}
	}
}

// uworker is one ring and the connections it accepted. Only its own
// goroutine touches it, except the fields marked otherwise.
type uworker struct {
	s      *Server
	r      *ring.Ring
	bufs   *ring.BufRing
	bufMem []byte
	wakefd int
	// endfd is an epoll set of sockets whose reading has ended (endWatch),
	// with room for the events of one look at it.
	endfd     int
	endEvents []unix.EpollEvent
	endEv     unix.EpollEvent // scratch for epoll_ctl, kept off the heap
	// watchQueue lists the watches to arm at the next watchQueued, if
	// their connections are still where they were (watchLater).
	watchQueue []dirRef
	watchArmed bool
	watchTS    ring.Timespec
	epoch      time.Time
	static     [][]unix.Sockaddr // per listener: its target's fixed addresses
	err        error
	ctr        *Counters
	hdr        [MaxProxyHeader]byte // scratch for a PROXY header

	// pollUntil is when busy polling stops (Server.BusyPoll after the
	// last completions); at or before clock, the loop sleeps.
	pollUntil int64
	// lastYield is the worker clock of the last maybeYield that yielded.
	lastYield int64
	// clock is the worker clock read once per batch of completions: cheap
	// enough to stamp every connection's activity with it.
	clock      int64
	live       int // connections in the slot table
	sweepArmed bool
	sweepTS    ring.Timespec

	conns    []*uconn
	free     []uint32
	pipes    PipePool // splice path: pipes only while bytes are in flight
	runq     []dirRef // splice directions that used up their turn with work left
	runqNext []dirRef
	starved  []dirRef // directions whose recv found no buffer
	spare    []dirRef // the other backing array of starved, reused
	recycled bool     // a buffer or descriptors came back since the last retryStarved
	bufsOut  int      // provided buffers completions handed us and we hold
	bufsLent int      // buffers provided to the kernel so far (they grow; see growBufs)
	cqes     []*ring.CQE

	acceptArmed  []bool // per listener: an accept is in the kernel
	broken       []bool // per listener: it will never accept again
	acceptPaused bool
	careful      bool  // near the descriptor limit: single accepts
	fdCap        int64 // connections the descriptor limit leaves room for
	acceptTS     ring.Timespec
	lastPauseLog int64

	lookups   *Lookups
	stopping  atomic.Bool
	drainReq  atomic.Bool     // stop accepting, keep forwarding
	acceptOff bool            // the worker has stopped accepting
	acked     chan<- struct{} // told once no accept is armed any more
	wakeMu    sync.Mutex      // wakefd is written by other goroutines and closed by teardown
	wakeBuf   [8]byte
}

// dirRef names direction d of one life of a connection in the worker's
// lists (in watchQueue, d < 0 names its client); 16 bytes, as a burst of
// connections queues one each.
type dirRef struct {
	c   *uconn
	gen uint32
	d   int32
}

func (w *uworker) setup() error {
	w.epoch = time.Now()
	w.pipes.Max = PipePoolMax
	w.lookups = NewLookups(w.wake)
	w.fdCap = ConnectionCapacity(2, 16)
	w.ctr = w.s.NewCounters()
	for i := range w.s.Listeners {
		w.static = append(w.static, CloneSockaddrs(w.s.TargetOf(i).Static()))
	}
	w.cqes = make([]*ring.CQE, uringBatch)
	r, err := ring.Setup(uringSQEntries, &ring.Options{
		CQEntries: uringCQEntries,
		Flags:     ring.SetupSingleIssuer | ring.SetupDeferTaskrun | ring.SetupSubmitAll,
	})
	if err != nil {
		return err
	}
	w.r = r
	// Nothing the engine submits should need io-wq; cap it so that a
	// kernel that punts anyway cannot grow a thread per connection.
	_, _, _ = r.RegisterIOWQMaxWorkers(4, 4)
	if w.bufMem, err = ring.AllocPinned(uringBufSize * uringBufMax); err != nil {
		return err
	}
	if w.bufs, err = r.RegisterBufRing(uringBufGroup, uringBufMax); err != nil {
		return err
	}
	w.growBufs()
	if w.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	w.armWake()
	if w.endfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	w.endEvents = make([]unix.EpollEvent, 64)
	w.watchTS = ring.NewTimespec(watchDelay)
	w.armEndWatch()
	w.acceptArmed = make([]bool, len(w.s.Listeners))
	w.broken = make([]bool, len(w.s.Listeners))
	w.careful = w.fdCap <= careMargin
	for i := range w.s.Listeners {
		w.ensureAccept(i)
	}
	_, err = w.r.Submit()
	return err
}

// growBufs provides the kernel with uringBufGrow more buffers, unless it
// has all uringBufMax, and says whether it did. Buffers are provided only
// as the traffic needs them because the kernel takes them in ring order:
// every buffer provided is used in turn, and its first page, once touched,
// stays resident. So a few connections, or a burst of new ones, touch a
// few hundred buffers (idle memory stays low), while a thousand busy
// connections get the buffers they need instead of finding the ring empty
// and falling back to the splice path, which costs a small message more.
func (w *uworker) growBufs() bool {
	n := min(uringBufGrow, uringBufMax-w.bufsLent)
	if n <= 0 {
		return false
	}
	for i := range n {
		bid := uint16(w.bufsLent + i)
		w.bufs.Add(bid, w.buf(bid), i)
	}
	w.bufs.Advance(n)
	w.bufsLent += n
	return true
}

func (w *uworker) buf(bid uint16) []byte {
	off := int(bid) * uringBufSize
	return w.bufMem[off : off+uringBufSize : off+uringBufSize]
}

// now is the worker clock in nanoseconds, monotonic.
func (w *uworker) now() int64 { return int64(time.Since(w.epoch)) }

// stopAccepting asks the worker to stop accepting and tell acked when no
// accept is armed any more; safe from any goroutine.
func (w *uworker) stopAccepting(acked chan<- struct{}) {
	w.acked = acked
	w.drainReq.Store(true)
	w.wake()
}

// stop asks the worker to return; safe from any goroutine.
func (w *uworker) stop() {
	w.stopping.Store(true)
	w.wake()
}

func (w *uworker) wake() {
	w.wakeMu.Lock()
	defer w.wakeMu.Unlock()
	if w.wakefd >= 0 {
		one := [8]byte{1}
		_, _ = unix.Write(w.wakefd, one[:])
	}
}

// sqe returns a free SQE, submitting what is queued when the SQ is full.
func (w *uworker) sqe() *ring.SQE {
	for {
		if s := w.r.GetSQE(); s != nil {
			return s
		}
		if _, err := w.r.Submit(); err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EAGAIN) {
			w.s.Log.Warnf("io_uring submit: %v", err)
		}
	}
}

// reserve makes room for n SQEs that must be queued back to back (a
// linked pair).
func (w *uworker) reserve(n uint32) {
	for w.r.SQSpaceLeft() < n {
		if _, err := w.r.Submit(); err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EAGAIN) {
			w.s.Log.Warnf("io_uring submit: %v", err)
		}
	}
}

// run is the reaper loop: submit what is queued and wait for at least one
// completion, then handle every completion there is. It never polls: an
// idle worker sleeps in io_uring_enter.
//
// While completions keep coming it only flushes (submit, and have the
// kernel post deferred completions), which never blocks; it waits in the
// kernel only when a flush brought nothing.
func (w *uworker) run() error {
	defer w.closeAll()
	for !w.stopping.Load() {
		w.maybeYield(w.clock)
		// Enter without waiting only for a reason: requests to submit, or
		// splice directions taking turns, which must not keep completions
		// (posted in an enter, with DEFER_TASKRUN) from the others. A pass
		// that only reaped goes on to the wait, which returns at once if
		// more completions are there. Per forwarded message that is one
		// enter for the send and the next recv, and one that waits.
		if w.r.SQPending() > 0 || len(w.runq) > 0 {
			if _, err := w.r.Flush(); err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EAGAIN) {
				return err
			}
		}
		// Both, every time: queued splice directions must get their turn
		// while other connections keep the completions coming.
		if n, m := w.reap(), w.runQueued(); n+m > 0 {
			if w.s.BusyPoll > 0 {
				w.pollUntil = w.s.BusyPollUntil(w.now())
			}
			continue
		}
		if w.busyPoll() {
			continue
		}
		if _, err := w.r.SubmitAndWait(1); err != nil &&
			!errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.ETIME) {
			return err
		}
		if w.reap() > 0 && w.s.BusyPoll > 0 {
			w.pollUntil = w.s.BusyPollUntil(w.clock)
		}
	}
	return nil
}

// busyPoll spins until completions come or --busy-poll's time since the
// last ones is up, and reports whether they came. Between enters it
// watches the ring's memory only (CQ tail and the kernel's task-run flag),
// so it makes no system call; reap then enters to have deferred
// completions posted. It enters on its own only to submit what is queued,
// at the start, and every flushEvery: a kernel may leave deferred work
// over after an enter without raising the flag again, and only an enter
// runs it. Spinning for long, it yields its processor (maybeYield), so
// that other goroutines are not kept waiting for sysmon to preempt it.
func (w *uworker) busyPoll() bool {
	if w.pollUntil <= w.clock {
		return false
	}
	lastFlush := w.now() - flushEvery
	for !w.stopping.Load() {
		now := w.now()
		if now-lastFlush >= flushEvery {
			lastFlush = now
			if _, err := w.r.Flush(); err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EAGAIN) {
				break // to the loop's waiting enter, which reports it
			}
		}
		if w.r.CompletionsWaiting() {
			return true
		}
		if now >= w.pollUntil {
			break
		}
		w.maybeYield(now)
	}
	w.pollUntil = 0
	return false
}

// maybeYield passes through the Go scheduler once every yieldEvery (by the
// worker clock now). Go counts a goroutine as running from one scheduling
// to the next, system calls included, so a worker that never yields looks
// to sysmon like one running without end: sysmon preempts it every 10 ms
// or so (a signal, then a locked thread's hand-off to another and back),
// and each preemption puts sysmon back to polling at its shortest interval.
// Pinned to one CPU with its peers, that was 61 preemption signals and
// 1,500 sysmon wake-ups a second, and a round trip's p99 1.2× v252's; a
// Gosched every 5 ms made it 0 and 100, p99 1.0–1.06× and CPU per
// exchange 6–10 % lower (same-run comparisons; 2 ms instead cost hand-offs
// without a gain).
func (w *uworker) maybeYield(now int64) {
	if now-w.lastYield >= int64(yieldEvery) {
		w.lastYield = now
		runtime.Gosched()
	}
}

// flushEvery is how often a busy-polling worker enters the kernel anyway
// (see busyPoll): rarely next to the spin's cost, often next to a wake-up.
const flushEvery = int64(50 * time.Microsecond)

// yieldEvery is how long the worker holds its processor before it yields
// it (see maybeYield).
const yieldEvery = 5 * time.Millisecond

// reap handles every completion available now and says how many, then
// re-arms the starved directions if a buffer or descriptors came back.
func (w *uworker) reap() int {
	total := 0
	for {
		n := w.r.PeekBatch(w.cqes)
		if n == 0 {
			break
		}
		w.clock = w.now()
		for _, p := range w.cqes[:n] {
			w.dispatch(*p)
		}
		w.r.Advance(n)
		total += n
	}
	// Also when nothing completed: a connection a splice turn released
	// may have freed the descriptors starved directions wait for.
	if w.recycled && len(w.starved) > 0 {
		w.retryStarved()
	}
	return total
}

// dispatch calls the handler of one completion.
func (w *uworker) dispatch(cqe ring.CQE) {
	op, gen, slot := ring.UnpackUserData(cqe.UserData())
	switch op {
	case opAccept:
		w.handleAccept(int(slot), cqe)
		return
	case opAcceptRetry:
		if w.acceptPaused {
			w.resumeAccept()
		}
		return
	case opWake:
		w.handleWake()
		return
	case opAcceptCancel:
		return
	case opSweep:
		w.sweepIdle()
		return
	case opEndWatch:
		w.handleEndWatch(cqe)
		return
	case opWatchLater:
		w.watchQueued()
		return
	case opClose:
		if cqe.Res() < 0 {
			w.s.Log.Debugf("close: %v", unix.Errno(-cqe.Res()))
		}
		return
	}
	if int(slot) >= len(w.conns) {
		return
	}
	c := w.conns[slot]
	if c == nil || c.gen != gen&ring.UserDataGenMask {
		return
	}
	if !cqe.More() {
		c.inflight--
	}
	switch op {
	case opConnect:
		w.handleConnect(c, cqe.Res())
	case opBackoff:
		if !c.closing {
			w.connectRound(c)
		}
	case opRecv, opRecv + 1:
		w.handleRecv(c, int(op-opRecv), cqe)
	case opSend, opSend + 1:
		w.handleSend(c, int(op-opSend), cqe.Res())
	case opPollIn, opPollIn + 1:
		w.handlePoll(c, int(op-opPollIn), true, cqe.Res())
	case opPollOut, opPollOut + 1:
		w.handlePoll(c, int(op-opPollOut), false, cqe.Res())
	case opClientWatch:
		// The watch asks for no event; the kernel still completes it on
		// an error, a hang-up or a half-close (POLLRDHUP, which it adds
		// to every io_uring poll). Only an error, or a hang-up with
		// nothing left to read, means the client has gone: a Unix client
		// that closed after sending hangs up with its bytes still to be
		// forwarded. Otherwise the bytes and the end of the stream wait
		// for the backend, and a client that half-closed is watched on
		// in the worker's epoll set, as a new poll would complete at once.
		c.watching = false
		res := cqe.Res()
		switch {
		case res <= 0 || c.state == ustateOpen || c.closing:
		case ClientLeft(c.client, res&unix.POLLERR != 0, res&unix.POLLHUP != 0):
			c.end = EndClientGone
			w.release(c) // the client gave up while we connected
		case res&unix.POLLRDHUP != 0:
			w.watchEndedClient(c) // it may still reset
		}
	case opLinkTimeout, opCancel:
	}
	if c.closing && c.inflight == 0 {
		w.finish(c)
	}
}

// careMargin is how close to the descriptor limit a worker stops using
// multishot accept: the kernel accepts a whole burst at once, and clients
// accepted beyond the limit would find no descriptor for their backends.
// Near the limit one accept per listener is in flight, re-armed after each
// connection has its backend socket, so the two alternate.
const careMargin = 64

// ensureAccept arms an accept on listener i unless one is armed, accepting
// is paused, or the worker stops: multishot normally, single near the
// descriptor limit.
func (w *uworker) ensureAccept(i int) {
	if w.acceptArmed[i] || w.broken[i] || w.acceptPaused || w.acceptOff || w.stopping.Load() {
		return
	}
	w.acceptArmed[i] = true
	s := w.sqe()
	if w.careful {
		s.PrepAccept(w.s.Listeners[i].FD, nil, unix.SOCK_CLOEXEC)
	} else {
		s.PrepMultishotAccept(w.s.Listeners[i].FD, unix.SOCK_CLOEXEC)
	}
	s.SetUserData(ring.PackUserData(opAccept, 0, uint32(i)))
}

// cancelAccepts ends the armed accepts; each final completion re-arms as
// the worker's mode then says.
func (w *uworker) cancelAccepts() {
	for i := range w.s.Listeners {
		if w.acceptArmed[i] {
			s := w.sqe()
			s.PrepCancel(ring.PackUserData(opAccept, 0, uint32(i)), 0)
			s.SetUserData(ring.PackUserData(opAcceptCancel, 0, 0))
		}
	}
}

func (w *uworker) handleAccept(i int, cqe ring.CQE) {
	res := cqe.Res()
	if !cqe.More() {
		w.acceptArmed[i] = false
		switch -res {
		case int32(unix.EMFILE), int32(unix.ENFILE), int32(unix.ENOBUFS), int32(unix.ENOMEM):
			w.pauseAccept(PauseAccept, unix.Errno(-res))
		}
	}
	if res >= 0 {
		w.acceptOne(int(res), i)
	} else {
		switch unix.Errno(-res) {
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.EAGAIN, unix.EINTR, unix.ECONNABORTED, unix.ECANCELED:
		default:
			if ListenerBroken(unix.Errno(-res)) {
				w.broken[i] = true
				w.s.ListenerBroke(i, unix.Errno(-res))
				break
			}
			w.s.Log.Warnf("Failed to accept connection, ignoring: %s", ErrnoString(unix.Errno(-res)))
			if !cqe.More() {
				// It may fail again at once: do not re-arm in a loop.
				w.pauseAccept(PauseAccept, unix.Errno(-res))
			}
		}
	}
	w.ensureAccept(i)
	w.ackAcceptsStopped()
}

// acceptOne admits a client accepted on listener ln, or turns it away at
// the limit. One accepted while the drain starts is served: it is ours now.
func (w *uworker) acceptOne(fd, ln int) {
	if w.stopping.Load() {
		unix.Close(fd)
		return
	}
	w.s.Arrived(fd)
	if !w.s.Tracker.TryOpen() {
		w.s.Log.Warnf("Hit connection limit, refusing connection.")
		unix.Close(fd)
		return
	}
	w.startConn(fd, ln)
	w.checkDescriptors()
}

// ackAcceptsStopped tells Serve, once, that the worker stopped accepting
// and the kernel holds no accept of its any more.
func (w *uworker) ackAcceptsStopped() {
	if !w.acceptOff || w.acked == nil {
		return
	}
	for _, armed := range w.acceptArmed {
		if armed {
			return
		}
	}
	w.acked <- struct{}{}
	w.acked = nil
}

// checkDescriptors moves between multishot accept, single accepts and a
// pause as the open connections approach what the descriptor limit holds.
func (w *uworker) checkDescriptors() {
	open := w.s.Tracker.Open()
	switch {
	case open >= w.fdCap:
		w.pauseAccept(PauseFull, 0)
	case !w.careful && open >= w.fdCap-careMargin:
		w.careful = true
		w.cancelAccepts()
	case w.careful && open < w.fdCap-2*careMargin:
		w.careful = false // the next re-arm is multishot again
	}
}

// pauseAccept stops accepting for AcceptPause after a call failed for want
// of file descriptors or memory, or on reaching the connections the
// descriptor limit leaves room for (see AcceptPauseText).
func (w *uworker) pauseAccept(failed string, err unix.Errno) {
	if w.acceptPaused {
		return
	}
	w.acceptPaused = true
	now := w.now()
	if w.lastPauseLog == 0 || now-w.lastPauseLog >= int64(time.Second) {
		w.lastPauseLog = now
		w.s.Log.Warnf("%s", AcceptPauseText(failed, err, w.s.Tracker.Open()))
	}
	w.acceptTS = ring.NewTimespec(AcceptPause)
	s := w.sqe()
	s.PrepTimeout(&w.acceptTS, 0, 0)
	s.SetUserData(ring.PackUserData(opAcceptRetry, 0, 0))
	w.cancelAccepts()
}

func (w *uworker) resumeAccept() {
	if !w.acceptPaused || w.acceptOff || w.stopping.Load() {
		return
	}
	w.acceptPaused = false
	w.checkDescriptors()
	for i := range w.s.Listeners {
		w.ensureAccept(i)
	}
}

// armWake waits for the eventfd that other goroutines write to reach the
// worker: stop, and host name lookups.
func (w *uworker) armWake() {
	s := w.sqe()
	s.PrepPollAdd(w.wakefd, unix.POLLIN)
	s.SetUserData(ring.PackUserData(opWake, 0, 0))
}

func (w *uworker) handleWake() {
	_, _ = unix.Read(w.wakefd, w.wakeBuf[:])
	if w.stopping.Load() {
		return
	}
	w.armWake()
	if w.drainReq.Load() && !w.acceptOff {
		w.acceptOff = true
		w.cancelAccepts()
		w.ackAcceptsStopped()
	}
	for _, r := range w.lookups.Take() {
		if int(r.Slot) < len(w.conns) {
			if c := w.conns[r.Slot]; c != nil && c.gen == r.Gen && c.state == ustateResolving && !c.closing {
				w.resolvedAddrs(c, r.Addrs, r.Err)
			}
		}
	}
}

// closeAll ends every connection because the proxy stops: both sockets are
// shut down at once (the peers see the end now), then the worker reaps
// until the kernel has let go of every request, so no memory it may still
// touch is freed under it.
func (w *uworker) closeAll() {
	w.stopping.Store(true) // also on an error: no accept is re-armed
	w.cancelAccepts()      // clients not yet accepted stay for the next instance
	for _, c := range w.conns {
		if c != nil && c.state != ustateFree && !c.closing {
			for _, fd := range [2]int{c.client, c.backend} {
				if fd >= 0 {
					_ = unix.Shutdown(fd, unix.SHUT_RDWR)
				}
			}
			c.end = EndStopped
			w.release(c)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for w.busy() && time.Now().Before(deadline) {
		if _, err := w.r.SubmitAndWaitTimeout(1, 50*time.Millisecond); err != nil &&
			!errors.Is(err, unix.ETIME) && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EBUSY) {
			break
		}
		w.reap()
	}
}

// busy reports whether any connection still has requests in the kernel.
func (w *uworker) busy() bool {
	for _, c := range w.conns {
		if c != nil && c.state != ustateFree {
			return true
		}
	}
	return false
}

func (w *uworker) teardown() {
	drained := !w.busy()
	if w.lookups != nil {
		w.lookups.Close()
	}
	if w.r != nil {
		_, _ = w.r.Submit()
		w.r.Close() // cancels what is left: accepts, the wake poll
		w.r = nil
	}
	for _, c := range w.conns {
		if c != nil && c.state != ustateFree {
			// Only after a failed drain: close what the kernel gave back,
			// and the pipes, which also gives their size back to the
			// process's pipe budget (a later Serve in this process).
			for _, fd := range [2]int{c.client, c.backend} {
				if fd >= 0 {
					unix.Close(fd)
				}
			}
			c.client, c.backend = -1, -1
			for d := range c.dirs {
				if dir := &c.dirs[d]; dir.hasPipe {
					dir.p.Close()
					dir.hasPipe = false
				}
			}
			c.state = ustateFree
			w.s.Tracker.Close()
		}
	}
	w.wakeMu.Lock()
	if w.wakefd >= 0 {
		unix.Close(w.wakefd)
		w.wakefd = -1
	}
	w.wakeMu.Unlock()
	if w.endfd >= 0 {
		unix.Close(w.endfd)
		w.endfd = -1
	}
	w.pipes.CloseAll()
	// The buffer memory is not unmapped while requests could still use
	// it: only after a clean drain. Otherwise it stays mapped (the process
	// is on its way out).
	if w.bufMem != nil && drained {
		_ = ring.FreePinned(w.bufMem)
		w.bufMem = nil
	}
}
