package ring

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Options are the io_uring_setup(2) choices. The zero value (or nil) asks
// for a plain ring whose CQ is twice the SQ.
type Options struct {
	// CQEntries, if nonzero, sizes the completion queue
	// (IORING_SETUP_CQSIZE); the kernel rounds it up to a power of two and
	// it must be at least the SQ size.
	CQEntries uint32

	// Flags are the IORING_SETUP_* flags to ask for: any of
	// SetupSingleIssuer, SetupDeferTaskrun (which needs SetupSingleIssuer),
	// SetupCoopTaskrun and SetupSubmitAll. Setup drops those the kernel
	// refuses; (*Ring).Flags says which it got.
	Flags uint32
}

// askable are the setup flags Options.Flags may hold.
const askable = SetupSingleIssuer | SetupDeferTaskrun | SetupCoopTaskrun | SetupSubmitAll | SetupCQSize

// setupFallbacks are the flags Setup drops, one more step each time the
// kernel answers EINVAL: the newest feature first, ending with a plain ring.
var setupFallbacks = [...]uint32{
	SetupDeferTaskrun,                   // Linux 6.1
	SetupSingleIssuer,                   // 6.0
	SetupCoopTaskrun | setupTaskrunFlag, // 5.19
	SetupSubmitAll,                      // 5.18
	^uint32(0),                          // CQSIZE (5.5): plain
}

// setupAttempts returns the flag sets Setup tries in turn: want, then want
// with setupFallbacks dropped step by step, without repeats.
func setupAttempts(want uint32) []uint32 {
	attempts := []uint32{want}
	flags := want
	for _, drop := range setupFallbacks {
		flags &^= drop
		if flags&(SetupCoopTaskrun|SetupDeferTaskrun) == 0 {
			flags &^= setupTaskrunFlag // valid only with one of them
		}
		if flags != attempts[len(attempts)-1] {
			attempts = append(attempts, flags)
		}
	}
	return attempts
}

// Ring is an io_uring instance: its file descriptor and the shared
// submission and completion queues. A Ring is not safe for concurrent use;
// with SetupSingleIssuer it must stay on the OS thread that created it.
type Ring struct {
	fd       int
	flags    uint32 // setup flags in effect
	features uint32

	sqRing  []byte // mmap'd SQ ring (and the CQ ring with FeatSingleMmap)
	cqRing  []byte // mmap'd CQ ring; aliases sqRing with FeatSingleMmap
	sqeMem  []byte // mmap'd SQE array
	sqHead  *uint32
	sqTail  *uint32
	sqFlags *uint32
	sqMask  uint32
	sqSize  uint32
	sqes    []SQE
	// SQEs in [sqeHead, sqeTail) were handed out by GetSQE but are not yet
	// published to the kernel by moving *sqTail.
	sqeHead uint32
	sqeTail uint32

	cqHead     *uint32
	cqTail     *uint32
	cqOverflow *uint32
	cqMask     uint32
	cqSize     uint32
	cqes       []CQE

	// waitArg and waitTS are the IORING_ENTER_EXT_ARG argument. They live
	// in the Ring, not on the stack, because waitArg holds waitTS's address
	// as an integer.
	waitArg getEventsArg
	waitTS  Timespec

	bufRings []*BufRing
}

// Setup creates a ring with at least entries submission queue entries
// (rounded up to a power of two by the kernel). With SetupSingleIssuer in
// opts, call runtime.LockOSThread first and use the ring from that
// goroutine only.
//
// Where io_uring is missing or forbidden the error is an *UnusableError;
// see there.
func Setup(entries uint32, opts *Options) (*Ring, error) {
	var want, cqEntries uint32
	if opts != nil {
		want, cqEntries = opts.Flags, opts.CQEntries
	}
	if want&^askable != 0 {
		return nil, fmt.Errorf("ring: setup flags %#x not supported by this package", want&^askable)
	}
	want &^= SetupCQSize
	if cqEntries != 0 {
		want |= SetupCQSize
	}
	if want&(SetupCoopTaskrun|SetupDeferTaskrun) != 0 {
		// Have the kernel raise IORING_SQ_TASKRUN when completions wait for
		// us to enter, so PeekBatch knows to.
		want |= setupTaskrunFlag
	}

	var p params
	var fd int
	var err error
	for _, flags := range setupAttempts(want) {
		p = params{flags: flags, cqEntries: cqEntries}
		if fd, err = ioUringSetup(entries, &p); err != unix.EINVAL {
			break
		}
	}
	switch err {
	case nil:
	case unix.ENOSYS:
		return nil, &UnusableError{Reason: "kernel has no io_uring", Err: os.NewSyscallError("io_uring_setup", err)}
	case unix.EPERM, unix.EACCES:
		return nil, &UnusableError{Reason: "io_uring is not permitted (kernel.io_uring_disabled or a seccomp filter)", Err: os.NewSyscallError("io_uring_setup", err)}
	default:
		return nil, os.NewSyscallError("io_uring_setup", err)
	}

	r := &Ring{fd: fd, flags: p.flags, features: p.features}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// ioUringSetup is io_uring_setup(2); a variable so tests can play older or
// locked-down kernels.
var ioUringSetup = func(entries uint32, p *params) (int, error) {
	fd, _, errno := unix.Syscall6(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0, 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// mmap maps the rings described by p and points r's fields into them.
func (r *Ring) mmap(p *params) error {
	const prot, flags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_POPULATE
	sqLen := int(p.sqOff.array) + int(p.sqEntries)*sqArrayEntrySize
	cqLen := int(p.cqOff.cqes) + int(p.cqEntries)*cqeSize
	var err error
	if p.features&FeatSingleMmap != 0 {
		r.sqRing, err = unix.Mmap(r.fd, offSQRing, max(sqLen, cqLen), prot, flags)
		if err != nil {
			return os.NewSyscallError("mmap", err)
		}
		r.cqRing = r.sqRing
	} else {
		if r.sqRing, err = unix.Mmap(r.fd, offSQRing, sqLen, prot, flags); err != nil {
			return os.NewSyscallError("mmap", err)
		}
		if r.cqRing, err = unix.Mmap(r.fd, offCQRing, cqLen, prot, flags); err != nil {
			return os.NewSyscallError("mmap", err)
		}
	}
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, prot, flags); err != nil {
		return os.NewSyscallError("mmap", err)
	}

	sq, cq := r.sqRing, r.cqRing
	r.sqHead = word(sq, p.sqOff.head)
	r.sqTail = word(sq, p.sqOff.tail)
	r.sqFlags = word(sq, p.sqOff.flags)
	r.sqMask = *word(sq, p.sqOff.ringMask)
	r.sqSize = *word(sq, p.sqOff.ringEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), r.sqSize)
	// The SQ array maps ring positions to SQE indexes. Fill it once with
	// the identity, so that position i always submits SQE i.
	array := unsafe.Slice(word(sq, p.sqOff.array), r.sqSize)
	for i := range array {
		array[i] = uint32(i)
	}
	r.sqeHead = atomic.LoadUint32(r.sqHead)
	r.sqeTail = r.sqeHead

	r.cqHead = word(cq, p.cqOff.head)
	r.cqTail = word(cq, p.cqOff.tail)
	r.cqOverflow = word(cq, p.cqOff.overflow)
	r.cqMask = *word(cq, p.cqOff.ringMask)
	r.cqSize = *word(cq, p.cqOff.ringEntries)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&cq[p.cqOff.cqes])), r.cqSize)
	return nil
}

// word returns the uint32 at offset off of mapped memory b.
func word(b []byte, off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&b[off]))
}

// Close unmaps the rings and closes the ring's descriptor; the kernel then
// cancels requests still in flight, asynchronously. Memory they use must
// stay valid: reap their CQEs (cancel them first if need be) before Close,
// or keep the memory. Buffer rings registered on r are freed too.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	for _, b := range r.bufRings {
		b.free()
	}
	r.bufRings = nil
	if r.cqRing != nil && &r.cqRing[0] != &r.sqRing[0] {
		unix.Munmap(r.cqRing)
	}
	if r.sqRing != nil {
		unix.Munmap(r.sqRing)
	}
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	r.sqes, r.cqes, r.sqeMem, r.cqRing, r.sqRing = nil, nil, nil, nil, nil
	err := unix.Close(r.fd)
	r.fd = -1
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// Fd returns the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// Flags returns the IORING_SETUP_* flags the ring was created with: those
// of Options.Flags the kernel accepted, plus IORING_SETUP_CQSIZE if
// Options.CQEntries was set and IORING_SETUP_TASKRUN_FLAG (1<<9), which
// Setup adds to SetupCoopTaskrun and SetupDeferTaskrun.
func (r *Ring) Flags() uint32 { return r.flags }

// Features returns the IORING_FEAT_* features the kernel reported.
func (r *Ring) Features() uint32 { return r.features }

// SQEntries returns the size of the submission queue.
func (r *Ring) SQEntries() uint32 { return r.sqSize }

// CQEntries returns the size of the completion queue.
func (r *Ring) CQEntries() uint32 { return r.cqSize }

// GetSQE returns the next free submission queue entry, zeroed, or nil if
// the queue is full (every entry handed out and not yet consumed by a
// Submit). It never submits on its own, so a link chain is never split.
func (r *Ring) GetSQE() *SQE {
	if r.sqeTail-atomic.LoadUint32(r.sqHead) >= r.sqSize {
		return nil
	}
	s := &r.sqes[r.sqeTail&r.sqMask]
	r.sqeTail++
	*s = SQE{}
	return s
}

// NextSQE is GetSQE answering ErrSQFull rather than nil.
func (r *Ring) NextSQE() (*SQE, error) {
	if s := r.GetSQE(); s != nil {
		return s, nil
	}
	return nil, ErrSQFull
}

// SQSpaceLeft returns how many SQEs GetSQE can hand out before the queue is
// full; a caller reserves room for a whole link chain with it.
func (r *Ring) SQSpaceLeft() uint32 {
	return r.sqSize - (r.sqeTail - atomic.LoadUint32(r.sqHead))
}

// flushSQ publishes the SQEs handed out since the last flush and returns
// how many the kernel has yet to consume.
func (r *Ring) flushSQ() uint32 {
	if r.sqeHead != r.sqeTail {
		r.sqeHead = r.sqeTail
		// The store orders the SQE writes before the kernel's view of the tail.
		atomic.StoreUint32(r.sqTail, r.sqeTail)
	}
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

// SQPending returns how many SQEs are queued and not yet submitted.
func (r *Ring) SQPending() uint32 { return r.sqeTail - atomic.LoadUint32(r.sqHead) }

// cqNeedsEnter reports whether completions wait in the kernel for us to
// enter it: overflowed CQEs to flush, or deferred task work to run.
func (r *Ring) cqNeedsEnter() bool {
	return atomic.LoadUint32(r.sqFlags)&(sqCQOverflow|sqTaskrun) != 0
}

// CompletionsWaiting reports whether a PeekBatch would find completions:
// CQEs posted, or completions the kernel posts at the next enter. It makes
// no system call, so a loop may spin on it.
func (r *Ring) CompletionsWaiting() bool { return r.cqReady() > 0 || r.cqNeedsEnter() }

// Submit hands the queued SQEs to the kernel and returns how many it
// consumed. Fewer than queued means the kernel stopped at an SQE it could
// not start (without SetupSubmitAll); that SQE's CQE says why, and the rest
// stay queued for the next Submit.
func (r *Ring) Submit() (int, error) { return r.submit(0, false, 0) }

// Flush submits the queued SQEs and, where completions wait to be posted
// (DEFER_TASKRUN, an overflowed CQ), has the kernel post them, without
// waiting for any. It never blocks.
func (r *Ring) Flush() (int, error) {
	toSubmit := r.flushSQ()
	for {
		n, err := r.enter(toSubmit, 0, enterGetEvents, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("io_uring_enter", err)
		}
		return n, nil
	}
}

// SubmitAndWait is Submit followed by waiting until at least n CQEs are
// ready (n is capped at the CQ size).
func (r *Ring) SubmitAndWait(n uint32) (int, error) { return r.submit(n, false, 0) }

// SubmitAndWaitTimeout is SubmitAndWait giving up after d. On timeout the
// error matches unix.ETIME (errors.Is); the submitted count is still
// returned. It needs FeatExtArg (Linux 5.11).
func (r *Ring) SubmitAndWaitTimeout(n uint32, d time.Duration) (int, error) {
	return r.submit(n, true, d)
}

func (r *Ring) submit(waitNr uint32, timed bool, d time.Duration) (int, error) {
	waitNr = min(waitNr, r.cqSize)
	var deadline time.Time
	if timed {
		if r.features&FeatExtArg == 0 {
			return 0, os.NewSyscallError("io_uring_enter", unix.ENOTSUP)
		}
		deadline = time.Now().Add(d)
	}
	submitted := 0
	for {
		toSubmit := r.flushSQ()
		var flags uint32
		if waitNr > 0 || r.cqNeedsEnter() {
			flags |= enterGetEvents
		}
		if toSubmit == 0 && flags == 0 {
			return submitted, nil
		}
		var arg unsafe.Pointer
		var argSize uintptr
		if timed && waitNr > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				if r.cqReady() >= waitNr {
					return submitted, nil
				}
				left = 0
			}
			r.waitTS = NewTimespec(left)
			r.waitArg = getEventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
			arg, argSize = unsafe.Pointer(&r.waitArg), getEventsArgSize
			flags |= enterExtArg
		}
		n, err := r.enter(toSubmit, waitNr, flags, arg, argSize)
		switch {
		case err == unix.EINTR:
			continue // nothing was submitted; try again
		case err != nil:
			return submitted, os.NewSyscallError("io_uring_enter", err)
		}
		submitted += n
		if uint32(n) < toSubmit || waitNr == 0 || r.cqReady() >= waitNr {
			return submitted, nil
		}
		// The kernel reports what it submitted even when the wait that
		// followed was cut short (by a signal, or the timeout): wait again.
	}
}

// enter is io_uring_enter(2). It may block, so it goes through Syscall6.
func (r *Ring) enter(toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSize uintptr) (int, error) {
	if minComplete == 0 {
		// An enter that does not wait never sleeps: what would block is
		// punted or polled by the kernel. A raw system call spares the Go
		// scheduler the hand-off of this thread's P to another thread,
		// which on a busy ring costs more than the enter itself.
		n, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), 0, uintptr(flags), uintptr(arg), argSize)
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), uintptr(arg), argSize)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// cqReady returns how many CQEs are ready to be reaped.
func (r *Ring) cqReady() uint32 {
	return atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
}

// CQReady returns how many CQEs are ready to be reaped, without entering
// the kernel.
func (r *Ring) CQReady() uint32 { return r.cqReady() }

// PeekBatch fills cqes with pointers to up to len(cqes) ready CQEs, oldest
// first, and returns how many. They stay valid, and in the queue, until
// Advance. If none is ready but the kernel holds some back (CQ overflow,
// deferred task work), PeekBatch enters the kernel once to flush them.
func (r *Ring) PeekBatch(cqes []*CQE) int {
	ready := r.cqReady()
	if ready == 0 && r.cqNeedsEnter() {
		// An error here (EINTR, or EEXIST from the wrong thread under
		// SetupSingleIssuer) leaves the CQEs for the next enter to flush.
		r.enter(0, 0, enterGetEvents, nil, 0)
		ready = r.cqReady()
	}
	n := min(int(ready), len(cqes))
	head := atomic.LoadUint32(r.cqHead)
	for i := range n {
		cqes[i] = &r.cqes[(head+uint32(i))&r.cqMask]
	}
	return n
}

// Advance marks n CQEs as seen, handing their slots back to the kernel.
func (r *Ring) Advance(n int) {
	if n > 0 {
		atomic.StoreUint32(r.cqHead, atomic.LoadUint32(r.cqHead)+uint32(n))
	}
}

// dropped returns the number of CQEs the kernel could not post (the CQ
// ring's overflow counter). With FeatNoDrop it stays 0 unless the kernel
// runs out of memory.
func (r *Ring) dropped() uint32 { return atomic.LoadUint32(r.cqOverflow) }

// register is io_uring_register(2). It may sleep (quiescing the ring, on old
// kernels), so it goes through Syscall6; EINTR is retried.
func (r *Ring) register(op uint32, arg unsafe.Pointer, nrArgs uintptr) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(op), uintptr(arg), nrArgs, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, os.NewSyscallError("io_uring_register", errno)
	}
}

// Check reports whether io_uring is usable here with the given opcodes: it
// sets up a tiny ring, probes it, and returns nil, or an *UnusableError
// naming the first thing missing ("kernel lacks IORING_OP_SPLICE").
func Check(ops ...Op) error {
	r, err := Setup(2, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	p, err := r.Probe()
	if err != nil {
		return err
	}
	for _, op := range ops {
		if !p.Supports(op) {
			return &UnusableError{Reason: "kernel lacks " + op.String(), Err: errors.ErrUnsupported}
		}
	}
	return nil
}
