package ring

import "syscall"

// UserData returns the user_data of the request that posted c.
func (c CQE) UserData() uint64 { return c.userData }

// Res returns the result: what the matching syscall would return, or a
// negated errno.
func (c CQE) Res() int32 { return c.res }

// Flags returns the IORING_CQE_F_* flags.
func (c CQE) Flags() uint32 { return c.flags }

// More reports whether the request will post more CQEs (IORING_CQE_F_MORE).
// A multishot request's memory is the kernel's until a CQE without it.
func (c CQE) More() bool { return c.flags&CQEFMore != 0 }

// BufferID returns the ID of the provided buffer the request consumed, and
// whether it consumed one (IORING_CQE_F_BUFFER).
func (c CQE) BufferID() (id uint16, ok bool) {
	return uint16(c.flags >> cqeBufferShift), c.flags&CQEFBuffer != 0
}

// Err returns the errno of a failed request (Res < 0), or nil.
func (c CQE) Err() error {
	if c.res < 0 {
		return syscall.Errno(-c.res)
	}
	return nil
}

// NewCQE returns a completion as the kernel would post it. Engines use it
// to feed synthetic completions to their dispatchers in tests, so that a
// state machine is checked without a kernel deciding the order of events.
func NewCQE(userData uint64, res int32, flags uint32) CQE {
	return CQE{userData: userData, res: res, flags: flags}
}

// BufferFlags returns the CQE flags that report buffer id consumed.
func BufferFlags(id uint16) uint32 { return CQEFBuffer | uint32(id)<<cqeBufferShift }
