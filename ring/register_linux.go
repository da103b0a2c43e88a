package ring

import (
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Probe is the kernel's answer to IORING_REGISTER_PROBE: which opcodes it
// supports.
type Probe struct {
	lastOp Op
	ops    [probeOpsLen]uint16 // io_uring_probe_op.flags by opcode
}

// Probe asks the kernel which opcodes it supports (Linux 5.6). A kernel
// too old to answer gives an *UnusableError.
func (r *Ring) Probe() (*Probe, error) {
	var raw rawProbe
	if _, err := r.register(registerProbe, unsafe.Pointer(&raw), probeOpsLen); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return nil, &UnusableError{Reason: "kernel cannot probe io_uring opcodes", Err: errors.ErrUnsupported}
		}
		return nil, err
	}
	p := &Probe{lastOp: Op(raw.lastOp)}
	for _, o := range raw.ops[:raw.opsLen] {
		p.ops[o.op] = o.flags
	}
	return p, nil
}

// Supports reports whether the kernel supports op.
func (p *Probe) Supports(op Op) bool {
	return op <= p.lastOp && p.ops[op]&ioUringOpSupported != 0
}

// RegisterFilesSparse registers a table of n empty file slots, for
// FlagFixedFile and the *Direct Prep methods; fill it with UpdateFiles or
// PrepAcceptDirect. n may not exceed RLIMIT_NOFILE.
func (r *Ring) RegisterFilesSparse(n uint32) error {
	reg := rsrcRegister{nr: n, flags: rsrcRegisterSparse}
	_, err := r.register(registerFiles2, unsafe.Pointer(&reg), unsafe.Sizeof(reg))
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	// Before Linux 5.19 there is no IORING_RSRC_REGISTER_SPARSE: register
	// an array of -1, which means "empty slot" since 5.12.
	fds := make([]int32, n)
	for i := range fds {
		fds[i] = -1
	}
	_, err = r.register(registerFiles, unsafe.Pointer(unsafe.SliceData(fds)), uintptr(n))
	runtime.KeepAlive(fds)
	return err
}

// UpdateFiles sets the registered-file slots from index off to fds: -1
// empties a slot, RegisterFilesSkip leaves it. The ring holds its own
// reference to each file, so the caller may close its descriptor after.
// It returns how many slots were updated.
func (r *Ring) UpdateFiles(off uint32, fds []int32) (int, error) {
	if len(fds) == 0 {
		return 0, nil
	}
	upd := filesUpdate{offset: off, fds: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(fds))))}
	n, err := r.register(registerFilesUpdate, unsafe.Pointer(&upd), uintptr(len(fds)))
	runtime.KeepAlive(fds) // upd holds their address as an integer
	return n, err
}

// UnregisterFiles drops the registered-file table.
func (r *Ring) UnregisterFiles() error {
	_, err := r.register(unregisterFiles, nil, 0)
	return err
}

// RegisterIOWQMaxWorkers caps the kernel's io-wq worker threads for the
// ring, bounded (regular file I/O) and unbounded (sockets, pipes); 0 leaves
// a limit unchanged. It returns the previous limits.
func (r *Ring) RegisterIOWQMaxWorkers(bounded, unbounded uint32) (prevBounded, prevUnbounded uint32, err error) {
	vals := [2]uint32{bounded, unbounded}
	if _, err := r.register(registerIOWQMaxWorkers, unsafe.Pointer(&vals), 2); err != nil {
		return 0, 0, err
	}
	return vals[0], vals[1], nil
}

// BufRing is a provided-buffer ring (Linux 5.19): a group of buffers the
// kernel picks from for requests with FlagBufferSelect, such as
// PrepRecvMultishot. The ring itself is anonymous mmap'd memory; the buffers
// are the caller's and must stay valid while in the ring or in use.
//
// The caller owns the ring's tail: Add writes entries beyond it, Advance
// publishes them. A buffer the kernel used comes back in a CQE's BufferID;
// once the caller is done with it, Recycle puts it back.
type BufRing struct {
	r        *Ring
	mem      []byte
	bufs     []bufDesc
	tailWord *uint32 // the 32-bit word holding the tail and bufs[0].bid
	mask     uint16
	tail     uint16 // our copy of the tail
	bgid     uint16
}

// RegisterBufRing registers an empty provided-buffer ring of entries slots
// (a power of two up to 32768) as buffer group bgid.
func (r *Ring) RegisterBufRing(bgid uint16, entries uint32) (*BufRing, error) {
	if entries == 0 || entries > bufRingMaxEntries || entries&(entries-1) != 0 {
		return nil, os.NewSyscallError("io_uring_register", unix.EINVAL)
	}
	mem, err := AllocPinned(int(entries) * int(unsafe.Sizeof(bufDesc{})))
	if err != nil {
		return nil, err
	}
	reg := bufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: entries, bgid: bgid}
	if _, err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		FreePinned(mem)
		if errors.Is(err, unix.EINVAL) {
			err = &UnusableError{Reason: "kernel lacks provided buffer rings", Err: err}
		}
		return nil, err
	}
	b := &BufRing{
		r:        r,
		mem:      mem,
		bufs:     unsafe.Slice((*bufDesc)(unsafe.Pointer(&mem[0])), entries),
		tailWord: (*uint32)(unsafe.Pointer(&mem[bufRingTailOffset-2])),
		mask:     uint16(entries - 1),
		bgid:     bgid,
	}
	r.bufRings = append(r.bufRings, b)
	return b, nil
}

// Group returns the ring's buffer group ID, for PrepRecvMultishot.
func (b *BufRing) Group() uint16 { return b.bgid }

// Entries returns the number of slots.
func (b *BufRing) Entries() int { return len(b.bufs) }

// Add writes buffer buf, with ID bid, into the slot offset places past the
// tail. The kernel does not see it until Advance moves the tail over it.
func (b *BufRing) Add(bid uint16, buf []byte, offset int) {
	d := &b.bufs[(b.tail+uint16(offset))&b.mask]
	// Field by field: in slot 0, the word after bid is the ring's tail.
	d.addr = addrOf(buf)
	d.len = uint32(len(buf))
	d.bid = bid
}

// Advance hands the next n added buffers to the kernel.
func (b *BufRing) Advance(n int) {
	b.tail += uint16(n)
	// Go has no 16-bit atomic store; the tail shares a 32-bit word with
	// bufs[0].bid, which only we write, so store both. The store orders
	// the Add writes before the kernel's view of the tail.
	bid0 := uint32(b.bufs[0].bid)
	w := bid0 | uint32(b.tail)<<16
	if bigEndian {
		w = bid0<<16 | uint32(b.tail)
	}
	atomic.StoreUint32(b.tailWord, w)
}

// Recycle gives buffer buf, ID bid, back to the kernel: Add then Advance(1).
func (b *BufRing) Recycle(bid uint16, buf []byte) {
	b.Add(bid, buf, 0)
	b.Advance(1)
}

// Close unregisters the buffer group and frees the ring (not the buffers).
func (b *BufRing) Close() error {
	if b.mem == nil {
		return nil
	}
	reg := bufReg{bgid: b.bgid}
	_, err := b.r.register(unregisterPbufRing, unsafe.Pointer(&reg), 1)
	for i, o := range b.r.bufRings {
		if o == b {
			b.r.bufRings = append(b.r.bufRings[:i], b.r.bufRings[i+1:]...)
			break
		}
	}
	b.free()
	return err
}

// free unmaps the ring memory. The kernel pins the pages it registered, so
// this is safe even while the group is still registered.
func (b *BufRing) free() {
	if b.mem != nil {
		FreePinned(b.mem)
		b.mem, b.bufs, b.tailWord = nil, nil, nil
	}
}

// AllocPinned returns n bytes of zeroed anonymous mmap'd memory: it never
// moves and the garbage collector never frees it, so it may be lent to the
// kernel across submits (buffers, socket addresses). Free it with
// FreePinned once no request uses it.
func AllocPinned(n int) ([]byte, error) {
	if n <= 0 {
		return nil, os.NewSyscallError("mmap", unix.EINVAL)
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return b, nil
}

// FreePinned frees memory from AllocPinned. b must start where the
// allocation started (it may be resliced shorter).
func FreePinned(b []byte) error {
	if err := unix.Munmap(b[:cap(b)]); err != nil {
		return os.NewSyscallError("munmap", err)
	}
	return nil
}
