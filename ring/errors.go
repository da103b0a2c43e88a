package ring

import (
	"errors"
	"strconv"
)

// ErrSQFull reports that the submission queue has no free entry: submit
// what is queued, or reap completions, and try again. GetSQE answers nil
// instead; NextSQE answers this error.
var ErrSQFull = errors.New("ring: submission queue full")

// UnusableError reports that io_uring cannot be used here: the kernel lacks
// it (ENOSYS) or an opcode the caller needs, or the kernel or a seccomp
// filter forbids it (EPERM, kernel.io_uring_disabled). It is the explicit
// answer that lets a caller choose another engine.
//
// errors.Is(err, errors.ErrUnsupported) is true when io_uring or an opcode is
// missing; errors.Is(err, os.ErrPermission) is true when it is forbidden.
type UnusableError struct {
	Reason string // what is wrong, e.g. "kernel lacks IORING_OP_SPLICE"
	Err    error  // the cause: a *os.SyscallError, or errors.ErrUnsupported
}

func (e *UnusableError) Error() string {
	if e.Err == nil || e.Err == errors.ErrUnsupported {
		return "io_uring unusable: " + e.Reason
	}
	return "io_uring unusable: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the cause. A syscall.Errno cause answers errors.Is itself:
// ENOSYS matches errors.ErrUnsupported, EPERM and EACCES match
// os.ErrPermission.
func (e *UnusableError) Unwrap() error { return e.Err }

var opNames = [...]string{
	OpNop:         "IORING_OP_NOP",
	OpPollAdd:     "IORING_OP_POLL_ADD",
	OpTimeout:     "IORING_OP_TIMEOUT",
	OpAccept:      "IORING_OP_ACCEPT",
	OpAsyncCancel: "IORING_OP_ASYNC_CANCEL",
	OpLinkTimeout: "IORING_OP_LINK_TIMEOUT",
	OpConnect:     "IORING_OP_CONNECT",
	OpClose:       "IORING_OP_CLOSE",
	OpSend:        "IORING_OP_SEND",
	OpRecv:        "IORING_OP_RECV",
	OpSplice:      "IORING_OP_SPLICE",
	OpShutdown:    "IORING_OP_SHUTDOWN",
}

// String returns the opcode's C name, e.g. "IORING_OP_SPLICE", or
// "IORING_OP(n)" for an opcode this package does not name.
func (op Op) String() string {
	if int(op) < len(opNames) && opNames[op] != "" {
		return opNames[op]
	}
	return "IORING_OP(" + strconv.Itoa(int(op)) + ")"
}
