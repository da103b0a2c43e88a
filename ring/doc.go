// Package ring is a small io_uring binding built on golang.org/x/sys/unix
// alone. It owns a ring's life: Setup (with the setup flags the kernel
// accepts, falling back on EINVAL), the mmap'd submission and completion
// queues, Close. It speaks liburing's verbs in Go: GetSQE, a Prep method per
// operation the proxy engine uses, SetFlags, SetUserData, Submit,
// SubmitAndWait, PeekBatch, Advance; and it registers what those operations
// need: the opcode probe, sparse fixed files, provided-buffer rings, io-wq
// limits.
//
// It knows nothing of sockets, connections or proxying: a descriptor is an
// integer, user_data is a uint64 the caller packs (PackUserData helps), and
// each CQE is handed back as the kernel wrote it. When io_uring cannot be
// used (ENOSYS, EPERM, a missing opcode) the error is an *UnusableError that
// errors.Is matches with errors.ErrUnsupported or os.ErrPermission, and Check
// asks the question up front; the engine choice stays the caller's.
//
// Memory rule: the kernel is given integers, never Go pointers it could keep,
// except memory a caller lends through an SQE or a BufRing: buffers
// (PrepRecv, PrepSend, BufRing.Add), socket addresses (PrepAccept,
// PrepConnect) and timespecs (PrepTimeout, PrepLinkTimeout). From the Prep
// call until the request's last CQE is reaped (the one without More), that
// memory must stay valid and unmoved: take it from AllocPinned, or keep it in
// a Go object the caller keeps reachable, such as a slot table allocated once
// (heap objects do not move; Prep methods force their arguments onto the
// heap). A buffer handed to a BufRing is lent until its ID comes back in a
// CQE. Close does not wait for cancelled requests, so reap them first.
//
// A Ring is not safe for concurrent use. With SetupSingleIssuer the kernel
// ties it to the thread that created it (another thread's io_uring_enter
// gets EEXIST): call runtime.LockOSThread before Setup and use the ring from
// that goroutine only.
//
// On systems other than Linux the package builds, and everything answers
// errors.ErrUnsupported.
package ring
