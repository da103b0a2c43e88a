package ring

import (
	"time"
	"unsafe"
)

// The Prep methods fill an SQE that GetSQE handed out zeroed. They write
// only their operation's fields, so SetFlags and SetUserData may come before
// or after them. Arguments that are memory (buffers, socket addresses,
// timespecs) are lent to the kernel until the request's last CQE is reaped:
// see the package documentation for the rule.
//
// A multishot request (PrepMultishotAccept, PrepPollMultishot,
// PrepRecvMultishot) posts CQEs with More set until its last one, which lacks
// it. Besides errors and cancellation, it also ends when its next CQE finds
// the CQ full: size the CQ for the backlog, reap promptly, and re-arm a
// multishot request whose last CQE reports success.

// escapeSink is never written: escapes only makes the compiler believe so.
var escapeSink struct {
	on bool
	p  unsafe.Pointer
}

// escapes forces p's referent onto the heap. Memory lent to the kernel past
// a syscall must not be on a goroutine stack, which moves when it grows.
func escapes(p unsafe.Pointer) {
	if escapeSink.on {
		escapeSink.p = p
	}
}

// addrOf returns the address of b's first byte, or 0 for an empty b.
func addrOf(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	escapes(p)
	return uint64(uintptr(p))
}

// bigEndian is true on big-endian machines, where the kernel expects
// poll32_events with its 16-bit halves swapped.
var bigEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 0
}()

func (s *SQE) prep(op Op, fd int, addr uint64, n uint32, off uint64) {
	s.opcode = uint8(op)
	s.fd = int32(fd)
	s.addr = addr
	s.len = n
	s.off = off
}

// SetUserData sets the value the request's CQEs carry back.
func (s *SQE) SetUserData(u uint64) { s.userData = u }

// UserData returns the value set by SetUserData.
func (s *SQE) UserData() uint64 { return s.userData }

// SetFlags sets the given IOSQE_* flags (FlagIOLink, FlagFixedFile, …),
// keeping those already set: PrepRecvMultishot sets FlagBufferSelect.
func (s *SQE) SetFlags(flags uint8) { s.flags |= flags }

// Flags returns the SQE's IOSQE_* flags.
func (s *SQE) Flags() uint8 { return s.flags }

// PrepNop prepares a request that does nothing and completes with 0.
func (s *SQE) PrepNop() { s.prep(OpNop, -1, 0, 0, 0) }

// PrepAccept prepares accept4(fd, sa, flags). If sa is non-nil the kernel
// writes the peer's address into it on completion; it must stay alive and
// unmoved until then.
func (s *SQE) PrepAccept(fd int, sa *RawSockaddr, flags uint32) {
	var addr, addrLen uint64
	if sa != nil {
		escapes(unsafe.Pointer(sa))
		sa.Len = uint32(len(sa.Addr))
		addr = uint64(uintptr(unsafe.Pointer(&sa.Addr)))
		addrLen = uint64(uintptr(unsafe.Pointer(&sa.Len)))
	}
	s.prep(OpAccept, fd, addr, 0, addrLen)
	s.opFlags = flags
}

// PrepMultishotAccept prepares an accept that keeps accepting: each
// connection posts a CQE with More set whose Res is the new descriptor.
// Peer addresses are not reported.
func (s *SQE) PrepMultishotAccept(fd int, flags uint32) {
	s.PrepAccept(fd, nil, flags)
	s.ioprio |= acceptMultishot
}

// PrepAcceptDirect is PrepAccept installing the new socket in the registered
// files (see RegisterFilesSparse) rather than the descriptor table: at slot
// index, Res being 0, or if index is FileIndexAlloc in a free slot the
// kernel picks, Res being that slot.
func (s *SQE) PrepAcceptDirect(fd int, sa *RawSockaddr, flags uint32, index uint32) {
	s.PrepAccept(fd, sa, flags)
	fileIndex := index + 1 // file_index is 1-based: 0 means "not direct"
	if index == FileIndexAlloc {
		fileIndex = FileIndexAlloc
	}
	s.spliceFdIn = int32(fileIndex)
}

// PrepMultishotAcceptDirect is PrepMultishotAccept installing each new socket
// in a free registered-file slot; each CQE's Res is the slot index.
func (s *SQE) PrepMultishotAcceptDirect(fd int, flags uint32) {
	s.PrepAcceptDirect(fd, nil, flags, FileIndexAlloc)
	s.ioprio |= acceptMultishot
}

// PrepConnect prepares connect(fd, sa). The kernel reads sa during submit,
// but like all lent memory it must stay alive until the CQE is reaped.
func (s *SQE) PrepConnect(fd int, sa *RawSockaddr) {
	escapes(unsafe.Pointer(sa))
	s.prep(OpConnect, fd, uint64(uintptr(unsafe.Pointer(&sa.Addr))), 0, uint64(sa.Len))
}

// PrepSplice prepares splice(fdIn, offIn, fdOut, offOut, n, flags). One of
// the descriptors must be a pipe; an offset of -1 means "no offset", as for
// a pipe or socket. With SpliceFdInFixed in flags fdIn is a registered-file
// index; FlagFixedFile makes fdOut one.
func (s *SQE) PrepSplice(fdIn int, offIn int64, fdOut int, offOut int64, n uint32, flags uint32) {
	s.prep(OpSplice, fdOut, uint64(offIn), n, uint64(offOut))
	s.spliceFdIn = int32(fdIn)
	s.opFlags = flags
}

// PrepPollAdd prepares a one-shot poll of fd for events (POLLIN, POLLOUT, …);
// Res is the returned event mask.
func (s *SQE) PrepPollAdd(fd int, events uint32) {
	s.prep(OpPollAdd, fd, 0, 0, 0)
	if bigEndian {
		events = events<<16 | events>>16
	}
	s.opFlags = events
}

// PrepPollMultishot is PrepPollAdd posting a CQE, with More set, each time
// fd becomes ready, until cancelled.
func (s *SQE) PrepPollMultishot(fd int, events uint32) {
	s.PrepPollAdd(fd, events)
	s.len = pollAddMulti
}

// PrepRecv prepares recv(fd, buf, flags). The kernel writes into buf after
// submit.
func (s *SQE) PrepRecv(fd int, buf []byte, flags uint32) {
	s.prep(OpRecv, fd, addrOf(buf), uint32(len(buf)), 0)
	s.opFlags = flags
}

// PrepRecvSelect prepares one recv into a buffer the kernel takes from the
// provided-buffer group bgid when data arrives, so a recv waiting on an
// idle socket holds no buffer. The CQE carries the BufferID; -ENOBUFS
// means the group was empty.
func (s *SQE) PrepRecvSelect(fd int, bgid uint16, flags uint32) {
	s.prep(OpRecv, fd, 0, 0, 0)
	s.opFlags = flags
	s.bufIndex = bgid
	s.flags |= FlagBufferSelect
}

// PrepRecvMultishot prepares a recv that keeps receiving into buffers taken
// from the provided-buffer group bgid (see RegisterBufRing). Each CQE carries
// a BufferID and, while the request continues, More. It ends with a CQE
// without More: on error, EOF (Res 0), or -ENOBUFS when the group is empty.
func (s *SQE) PrepRecvMultishot(fd int, bgid uint16, flags uint32) {
	s.prep(OpRecv, fd, 0, 0, 0)
	s.opFlags = flags
	s.ioprio |= recvMultishot
	s.bufIndex = bgid
	s.flags |= FlagBufferSelect
}

// SetPollFirst makes a prepared recv or send wait for readiness before
// its first attempt (IORING_RECVSEND_POLL_FIRST). Use it when the socket
// is known to have nothing to read (or no room to write): it saves the
// attempt that would fail with EAGAIN before the kernel arms its poll. A
// socket that is ready after all costs one poll wake-up, not an error.
func (s *SQE) SetPollFirst() { s.ioprio |= recvsendPollFirst }

// PrepSend prepares send(fd, buf, flags). The kernel may read buf after
// submit. Pass MSG_NOSIGNAL in flags to get EPIPE rather than SIGPIPE.
func (s *SQE) PrepSend(fd int, buf []byte, flags uint32) {
	s.prep(OpSend, fd, addrOf(buf), uint32(len(buf)), 0)
	s.opFlags = flags
}

// PrepShutdown prepares shutdown(fd, how).
func (s *SQE) PrepShutdown(fd int, how int) {
	s.prep(OpShutdown, fd, 0, uint32(how), 0)
}

// PrepClose prepares close(fd).
func (s *SQE) PrepClose(fd int) { s.prep(OpClose, fd, 0, 0, 0) }

// PrepCloseDirect prepares closing the registered file at slot index.
func (s *SQE) PrepCloseDirect(index uint32) {
	s.prep(OpClose, 0, 0, 0, 0)
	s.spliceFdIn = int32(index + 1)
}

// PrepCancel prepares cancelling the request(s) whose user_data is
// userData. Res is 0 if one was found and cancelled (it then completes with
// -ECANCELED), -ENOENT if none was found, -EALREADY if it was running and
// could not be stopped; with CancelAll, the number cancelled.
func (s *SQE) PrepCancel(userData uint64, flags uint32) {
	s.prep(OpAsyncCancel, -1, userData, 0, 0)
	s.opFlags = flags
}

// PrepCancelFd prepares cancelling requests on fd (CancelFd is implied; add
// CancelAll for all of them, CancelFdFixed if fd is a registered-file index).
func (s *SQE) PrepCancelFd(fd int, flags uint32) {
	s.prep(OpAsyncCancel, fd, 0, 0, 0)
	s.opFlags = flags | CancelFd
}

// PrepTimeout prepares a timeout that completes after ts with -ETIME, or
// with 0 once count other requests have completed if count > 0. flags may
// hold TimeoutAbs, TimeoutBoottime, TimeoutRealtime, TimeoutETimeSuccess.
func (s *SQE) PrepTimeout(ts *Timespec, count uint32, flags uint32) {
	escapes(unsafe.Pointer(ts))
	s.prep(OpTimeout, -1, uint64(uintptr(unsafe.Pointer(ts))), 1, uint64(count))
	s.opFlags = flags
}

// PrepLinkTimeout prepares a timeout for the previous SQE, which must carry
// FlagIOLink: if that request is still running after ts it is cancelled
// (it completes with -ECANCELED, the timeout with -ETIME); otherwise the
// timeout completes with -ECANCELED (or -ENOENT).
func (s *SQE) PrepLinkTimeout(ts *Timespec, flags uint32) {
	escapes(unsafe.Pointer(ts))
	s.prep(OpLinkTimeout, -1, uint64(uintptr(unsafe.Pointer(ts))), 1, 0)
	s.opFlags = flags
}

// NewTimespec returns d as a Timespec.
func NewTimespec(d time.Duration) Timespec {
	return Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
}
