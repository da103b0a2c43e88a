package forward

import (
	"github.com/uring-socket-proxyd/uring-socket-proxyd/ring"
)

// uringOps are the io_uring operations the io_uring engine submits; the
// kernel must support every one of them.
var uringOps = []ring.Op{
	ring.OpAccept, ring.OpConnect, ring.OpRecv, ring.OpSend,
	ring.OpClose, ring.OpAsyncCancel, ring.OpTimeout, ring.OpLinkTimeout, ring.OpPollAdd,
}

// CheckUring reports whether the io_uring engine can run here. It sets up a
// small ring with the flags the engine asks for, probes every opcode the
// engine uses, and registers a provided-buffer ring. The error says why not
// and matches errors.ErrUnsupported (ENOSYS, a missing opcode or feature)
// or os.ErrPermission (EPERM: kernel.io_uring_disabled, a seccomp filter).
func CheckUring() error {
	if err := ring.Check(uringOps...); err != nil {
		return err
	}
	r, err := ring.Setup(8, &ring.Options{})
	if err != nil {
		return err
	}
	defer r.Close()
	br, err := r.RegisterBufRing(0, 8)
	if err != nil {
		return err
	}
	return br.Close()
}
