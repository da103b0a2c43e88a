package ring

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestPrep checks the fields each Prep method writes, as liburing's
// io_uring_prep_* would write them.
func TestPrep(t *testing.T) {
	buf := make([]byte, 10)
	bufAddr := uint64(uintptr(unsafe.Pointer(&buf[0])))
	sa := &RawSockaddr{Len: 16}
	saAddr := uint64(uintptr(unsafe.Pointer(&sa.Addr)))
	saLenAddr := uint64(uintptr(unsafe.Pointer(&sa.Len)))
	csa := &RawSockaddr{Len: 16} // PrepAccept resets sa.Len
	csaAddr := uint64(uintptr(unsafe.Pointer(&csa.Addr)))
	ts := &Timespec{Sec: 1}
	tsAddr := uint64(uintptr(unsafe.Pointer(ts)))

	for _, c := range []struct {
		name string
		prep func(s *SQE)
		want SQE
	}{
		{"nop", func(s *SQE) { s.PrepNop() }, SQE{opcode: 0, fd: -1}},
		{"accept", func(s *SQE) { s.PrepAccept(3, sa, 0x800) },
			SQE{opcode: 13, fd: 3, addr: saAddr, off: saLenAddr, opFlags: 0x800}},
		{"accept nil", func(s *SQE) { s.PrepAccept(3, nil, 0) }, SQE{opcode: 13, fd: 3}},
		{"multishot accept", func(s *SQE) { s.PrepMultishotAccept(3, 0x80000) },
			SQE{opcode: 13, fd: 3, ioprio: 1, opFlags: 0x80000}},
		{"accept direct", func(s *SQE) { s.PrepAcceptDirect(3, nil, 0, 5) },
			SQE{opcode: 13, fd: 3, spliceFdIn: 6}},
		{"multishot accept direct", func(s *SQE) { s.PrepMultishotAcceptDirect(3, 0) },
			SQE{opcode: 13, fd: 3, ioprio: 1, spliceFdIn: -1}},
		{"connect", func(s *SQE) { s.PrepConnect(4, csa) }, SQE{opcode: 16, fd: 4, addr: csaAddr, off: 16}},
		{"splice", func(s *SQE) { s.PrepSplice(5, -1, 6, -1, 4096, 2) },
			SQE{opcode: 30, fd: 6, addr: ^uint64(0), off: ^uint64(0), len: 4096, opFlags: 2, spliceFdIn: 5}},
		{"poll", func(s *SQE) { s.PrepPollAdd(7, 1) }, SQE{opcode: 6, fd: 7, opFlags: pollWord(1)}},
		{"poll multishot", func(s *SQE) { s.PrepPollMultishot(7, 4) }, SQE{opcode: 6, fd: 7, len: 1, opFlags: pollWord(4)}},
		{"recv", func(s *SQE) { s.PrepRecv(8, buf, 0x40) },
			SQE{opcode: 27, fd: 8, addr: bufAddr, len: 10, opFlags: 0x40}},
		{"recv multishot", func(s *SQE) { s.PrepRecvMultishot(8, 9, 0) },
			SQE{opcode: 27, fd: 8, ioprio: 2, bufIndex: 9, flags: FlagBufferSelect}},
		{"recv select, poll first", func(s *SQE) { s.PrepRecvSelect(8, 9, 0); s.SetPollFirst() },
			SQE{opcode: 27, fd: 8, ioprio: 1, bufIndex: 9, flags: FlagBufferSelect}},
		{"send", func(s *SQE) { s.PrepSend(8, buf[:4], 0x4000) },
			SQE{opcode: 26, fd: 8, addr: bufAddr, len: 4, opFlags: 0x4000}},
		{"send empty", func(s *SQE) { s.PrepSend(8, nil, 0) }, SQE{opcode: 26, fd: 8}},
		{"shutdown", func(s *SQE) { s.PrepShutdown(8, 1) }, SQE{opcode: 34, fd: 8, len: 1}},
		{"close", func(s *SQE) { s.PrepClose(8) }, SQE{opcode: 19, fd: 8}},
		{"close direct", func(s *SQE) { s.PrepCloseDirect(2) }, SQE{opcode: 19, spliceFdIn: 3}},
		{"cancel", func(s *SQE) { s.PrepCancel(0xabc, CancelAll) },
			SQE{opcode: 14, fd: -1, addr: 0xabc, opFlags: CancelAll}},
		{"cancel fd", func(s *SQE) { s.PrepCancelFd(8, CancelAll) },
			SQE{opcode: 14, fd: 8, opFlags: CancelAll | CancelFd}},
		{"timeout", func(s *SQE) { s.PrepTimeout(ts, 2, TimeoutAbs) },
			SQE{opcode: 11, fd: -1, addr: tsAddr, len: 1, off: 2, opFlags: TimeoutAbs}},
		{"link timeout", func(s *SQE) { s.PrepLinkTimeout(ts, 0) },
			SQE{opcode: 15, fd: -1, addr: tsAddr, len: 1}},
		{"flags and user data", func(s *SQE) {
			s.SetUserData(42)
			s.SetFlags(FlagIOLink)
			s.PrepRecvMultishot(1, 2, 0)
			s.SetFlags(FlagFixedFile)
		}, SQE{opcode: 27, fd: 1, ioprio: 2, bufIndex: 2, userData: 42, flags: FlagIOLink | FlagBufferSelect | FlagFixedFile}},
	} {
		var s SQE
		c.prep(&s)
		if s != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, s, c.want)
		}
	}
}

func pollWord(ev uint32) uint32 {
	if bigEndian {
		return ev<<16 | ev>>16
	}
	return ev
}

func TestNewTimespec(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want Timespec
	}{
		{0, Timespec{}},
		{1500 * time.Millisecond, Timespec{1, 500_000_000}},
		{time.Nanosecond, Timespec{0, 1}},
	} {
		if got := NewTimespec(c.d); got != c.want {
			t.Errorf("NewTimespec(%v) = %+v, want %+v", c.d, got, c.want)
		}
	}
}

func TestCQEAccessors(t *testing.T) {
	c := CQE{userData: 7, res: 100, flags: CQEFBuffer | CQEFMore | 3<<cqeBufferShift}
	if c.UserData() != 7 || c.Res() != 100 || !c.More() || c.Err() != nil {
		t.Errorf("accessors of %+v wrong", c)
	}
	if id, ok := c.BufferID(); !ok || id != 3 {
		t.Errorf("BufferID() = %d, %v; want 3, true", id, ok)
	}
	c = CQE{res: -int32(syscall.ENOBUFS)}
	if _, ok := c.BufferID(); ok || c.More() {
		t.Errorf("flags of %+v wrong", c)
	}
	if !errors.Is(c.Err(), syscall.ENOBUFS) {
		t.Errorf("Err() = %v, want ENOBUFS", c.Err())
	}
}

func TestOpString(t *testing.T) {
	if s := OpSplice.String(); s != "IORING_OP_SPLICE" {
		t.Errorf("OpSplice.String() = %q", s)
	}
	if s := Op(200).String(); s != "IORING_OP(200)" {
		t.Errorf("Op(200).String() = %q", s)
	}
}

func TestUnusableErrorIs(t *testing.T) {
	for _, c := range []struct {
		err         error
		unsupported bool
		permission  bool
	}{
		{&UnusableError{Reason: "kernel lacks IORING_OP_SPLICE", Err: errors.ErrUnsupported}, true, false},
		{&UnusableError{Reason: "x", Err: os.NewSyscallError("io_uring_setup", syscall.ENOSYS)}, true, false},
		{&UnusableError{Reason: "x", Err: os.NewSyscallError("io_uring_setup", syscall.EPERM)}, false, true},
	} {
		if got := errors.Is(c.err, errors.ErrUnsupported); got != c.unsupported {
			t.Errorf("errors.Is(%v, ErrUnsupported) = %v", c.err, got)
		}
		if got := errors.Is(c.err, os.ErrPermission); got != c.permission {
			t.Errorf("errors.Is(%v, ErrPermission) = %v", c.err, got)
		}
		var ue *UnusableError
		if !errors.As(c.err, &ue) {
			t.Errorf("errors.As(%v, *UnusableError) = false", c.err)
		}
	}
}

func TestPackUserData(t *testing.T) {
	u := PackUserData(3, 0x123456, 0xdeadbeef)
	if u != 0x03123456deadbeef {
		t.Errorf("PackUserData = %#x", u)
	}
	op, gen, slot := UnpackUserData(u)
	if op != 3 || gen != 0x123456 || slot != 0xdeadbeef {
		t.Errorf("UnpackUserData(%#x) = %d, %#x, %#x", u, op, gen, slot)
	}
	if _, gen, _ := UnpackUserData(PackUserData(0, 1<<24|5, 0)); gen != 5 {
		t.Errorf("generation not truncated to 24 bits: %#x", gen)
	}
}

func FuzzPackUserData(f *testing.F) {
	f.Add(uint8(0), uint32(0), uint32(0))
	f.Add(uint8(255), uint32(UserDataGenMask), ^uint32(0))
	f.Add(uint8(7), uint32(1<<24), uint32(12345))
	f.Add(uint8(1), ^uint32(0), uint32(1))
	f.Fuzz(func(t *testing.T, op uint8, gen, slot uint32) {
		u := PackUserData(op, gen, slot)
		gotOp, gotGen, gotSlot := UnpackUserData(u)
		if gotOp != op || gotGen != gen&UserDataGenMask || gotSlot != slot {
			t.Fatalf("round trip of (%d, %#x, %#x) via %#x gave (%d, %#x, %#x)", op, gen, slot, u, gotOp, gotGen, gotSlot)
		}
		if PackUserData(gotOp, gotGen, gotSlot) != u {
			t.Fatalf("repacking %#x differs", u)
		}
	})
}
