package ring

// This file mirrors, by hand, the part of the kernel's io_uring ABI
// (include/uapi/linux/io_uring.h) that this package uses. Every value is
// written out with its C name; abi_test.go checks sizes, offsets and opcode
// numbers against numbers read off the header.

// Op is an io_uring opcode (enum io_uring_op).
type Op uint8

// The opcodes the engine uses.
const (
	OpNop         Op = 0  // IORING_OP_NOP
	OpPollAdd     Op = 6  // IORING_OP_POLL_ADD
	OpTimeout     Op = 11 // IORING_OP_TIMEOUT
	OpAccept      Op = 13 // IORING_OP_ACCEPT
	OpAsyncCancel Op = 14 // IORING_OP_ASYNC_CANCEL
	OpLinkTimeout Op = 15 // IORING_OP_LINK_TIMEOUT
	OpConnect     Op = 16 // IORING_OP_CONNECT
	OpClose       Op = 19 // IORING_OP_CLOSE
	OpSend        Op = 26 // IORING_OP_SEND
	OpRecv        Op = 27 // IORING_OP_RECV
	OpSplice      Op = 30 // IORING_OP_SPLICE
	OpShutdown    Op = 34 // IORING_OP_SHUTDOWN
)

// SQE flags (sqe->flags), set with (*SQE).SetFlags.
const (
	FlagFixedFile      uint8 = 1 << 0 // IOSQE_FIXED_FILE: fd is an index into the registered files
	FlagIODrain        uint8 = 1 << 1 // IOSQE_IO_DRAIN
	FlagIOLink         uint8 = 1 << 2 // IOSQE_IO_LINK: the next SQE starts when this one succeeds
	FlagIOHardlink     uint8 = 1 << 3 // IOSQE_IO_HARDLINK
	FlagAsync          uint8 = 1 << 4 // IOSQE_ASYNC
	FlagBufferSelect   uint8 = 1 << 5 // IOSQE_BUFFER_SELECT: take a buffer from sqe->buf_group
	FlagCQESkipSuccess uint8 = 1 << 6 // IOSQE_CQE_SKIP_SUCCESS: post no CQE if the request succeeds
)

// io_uring_setup(2) flags (io_uring_params.flags), asked for with Options.Flags.
const (
	SetupCQSize       uint32 = 1 << 3  // IORING_SETUP_CQSIZE
	SetupSubmitAll    uint32 = 1 << 7  // IORING_SETUP_SUBMIT_ALL
	SetupCoopTaskrun  uint32 = 1 << 8  // IORING_SETUP_COOP_TASKRUN
	setupTaskrunFlag  uint32 = 1 << 9  // IORING_SETUP_TASKRUN_FLAG
	SetupSingleIssuer uint32 = 1 << 12 // IORING_SETUP_SINGLE_ISSUER
	SetupDeferTaskrun uint32 = 1 << 13 // IORING_SETUP_DEFER_TASKRUN
)

// io_uring_params.features, reported by (*Ring).Features.
const (
	FeatSingleMmap     uint32 = 1 << 0  // IORING_FEAT_SINGLE_MMAP
	FeatNoDrop         uint32 = 1 << 1  // IORING_FEAT_NODROP
	FeatSubmitStable   uint32 = 1 << 2  // IORING_FEAT_SUBMIT_STABLE
	FeatRWCurPos       uint32 = 1 << 3  // IORING_FEAT_RW_CUR_POS
	FeatCurPersonality uint32 = 1 << 4  // IORING_FEAT_CUR_PERSONALITY
	FeatFastPoll       uint32 = 1 << 5  // IORING_FEAT_FAST_POLL
	FeatPoll32Bits     uint32 = 1 << 6  // IORING_FEAT_POLL_32BITS
	FeatSQPollNonfixed uint32 = 1 << 7  // IORING_FEAT_SQPOLL_NONFIXED
	FeatExtArg         uint32 = 1 << 8  // IORING_FEAT_EXT_ARG
	FeatNativeWorkers  uint32 = 1 << 9  // IORING_FEAT_NATIVE_WORKERS
	FeatRsrcTags       uint32 = 1 << 10 // IORING_FEAT_RSRC_TAGS
	FeatCQESkip        uint32 = 1 << 11 // IORING_FEAT_CQE_SKIP
	FeatLinkedFile     uint32 = 1 << 12 // IORING_FEAT_LINKED_FILE
)

// CQE flags (cqe->flags), read with (*CQE).Flags.
const (
	CQEFBuffer       uint32 = 1 << 0 // IORING_CQE_F_BUFFER: the upper 16 bits are a buffer ID
	CQEFMore         uint32 = 1 << 1 // IORING_CQE_F_MORE: the request will post more CQEs
	CQEFSockNonempty uint32 = 1 << 2 // IORING_CQE_F_SOCK_NONEMPTY: more data to read after this recv
	cqeBufferShift          = 16     // IORING_CQE_BUFFER_SHIFT
)

// Timeout flags (sqe->timeout_flags) for PrepTimeout and PrepLinkTimeout.
const (
	TimeoutAbs          uint32 = 1 << 0 // IORING_TIMEOUT_ABS
	TimeoutBoottime     uint32 = 1 << 2 // IORING_TIMEOUT_BOOTTIME
	TimeoutRealtime     uint32 = 1 << 3 // IORING_TIMEOUT_REALTIME
	TimeoutETimeSuccess uint32 = 1 << 5 // IORING_TIMEOUT_ETIME_SUCCESS
)

// Cancel flags (sqe->cancel_flags) for PrepCancel and PrepCancelFd.
const (
	CancelAll     uint32 = 1 << 0 // IORING_ASYNC_CANCEL_ALL: cancel every match, not just the first
	CancelFd      uint32 = 1 << 1 // IORING_ASYNC_CANCEL_FD: match on fd, not user_data
	CancelAny     uint32 = 1 << 2 // IORING_ASYNC_CANCEL_ANY: match any request
	CancelFdFixed uint32 = 1 << 3 // IORING_ASYNC_CANCEL_FD_FIXED: the fd is a registered-file index
)

// Values for file descriptor fields.
const (
	// FileIndexAlloc asks the kernel to pick a free registered-file slot
	// (IORING_FILE_INDEX_ALLOC), for PrepAcceptDirect.
	FileIndexAlloc uint32 = ^uint32(0)
	// RegisterFilesSkip leaves a slot unchanged in UpdateFiles
	// (IORING_REGISTER_FILES_SKIP).
	RegisterFilesSkip int32 = -2
	// SpliceFdInFixed marks PrepSplice's fdIn as a registered-file index
	// (SPLICE_F_FD_IN_FIXED).
	SpliceFdInFixed uint32 = 1 << 31
)

// Request-specific flags kept in sqe->ioprio or sqe->len, and registration
// flags.
const (
	pollAddMulti       = 1 << 0 // IORING_POLL_ADD_MULTI, in sqe->len
	recvMultishot      = 1 << 1 // IORING_RECV_MULTISHOT, in sqe->ioprio
	recvsendPollFirst  = 1 << 0 // IORING_RECVSEND_POLL_FIRST, in sqe->ioprio
	acceptMultishot    = 1 << 0 // IORING_ACCEPT_MULTISHOT, in sqe->ioprio
	ioUringOpSupported = 1 << 0 // IO_URING_OP_SUPPORTED, in io_uring_probe_op.flags
	rsrcRegisterSparse = 1 << 0 // IORING_RSRC_REGISTER_SPARSE, in io_uring_rsrc_register.flags
)

// Sizes and limits.
const (
	sqeSize           = 64      // sizeof(struct io_uring_sqe), without IORING_SETUP_SQE128
	cqeSize           = 16      // sizeof(struct io_uring_cqe), without IORING_SETUP_CQE32
	sqArrayEntrySize  = 4       // an SQ array entry is a __u32 SQE index
	timespecSize      = 16      // sizeof(struct __kernel_timespec)
	getEventsArgSize  = 24      // sizeof(struct io_uring_getevents_arg)
	probeOpsLen       = 256     // ops[] entries asked of IORING_REGISTER_PROBE (opcodes are __u8)
	bufRingMaxEntries = 1 << 15 // the kernel's limit on a provided-buffer ring
)

// sq_ring->flags.
const (
	sqCQOverflow = 1 << 1 // IORING_SQ_CQ_OVERFLOW
	sqTaskrun    = 1 << 2 // IORING_SQ_TASKRUN
)

// io_uring_enter(2) flags.
const (
	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS
	enterExtArg    = 1 << 3 // IORING_ENTER_EXT_ARG
)

// mmap(2) offsets of the ring regions.
const (
	offSQRing = 0          // IORING_OFF_SQ_RING
	offCQRing = 0x8000000  // IORING_OFF_CQ_RING
	offSQEs   = 0x10000000 // IORING_OFF_SQES
)

// io_uring_register(2) opcodes.
const (
	registerFiles          = 2  // IORING_REGISTER_FILES
	unregisterFiles        = 3  // IORING_UNREGISTER_FILES
	registerFilesUpdate    = 6  // IORING_REGISTER_FILES_UPDATE
	registerProbe          = 8  // IORING_REGISTER_PROBE
	registerFiles2         = 13 // IORING_REGISTER_FILES2
	registerIOWQMaxWorkers = 19 // IORING_REGISTER_IOWQ_MAX_WORKERS
	registerPbufRing       = 22 // IORING_REGISTER_PBUF_RING
	unregisterPbufRing     = 23 // IORING_UNREGISTER_PBUF_RING
)

// SQE is a submission queue entry, struct io_uring_sqe (64 bytes). It lives
// in the ring's shared memory: get one with (*Ring).GetSQE, fill it with one
// Prep method, then SetFlags and SetUserData as needed.
type SQE struct {
	opcode      uint8  // opcode
	flags       uint8  // flags (IOSQE_*)
	ioprio      uint16 // ioprio; request flags for accept, recv, send
	fd          int32  // fd
	off         uint64 // off, addr2
	addr        uint64 // addr, splice_off_in
	len         uint32 // len
	opFlags     uint32 // rw_flags, msg_flags, poll32_events, timeout_flags, accept_flags, cancel_flags, splice_flags …
	userData    uint64 // user_data
	bufIndex    uint16 // buf_index, buf_group
	personality uint16 // personality
	spliceFdIn  int32  // splice_fd_in, file_index, addr_len
	addr3       uint64 // addr3
	pad2        uint64 // __pad2[0]
}

// CQE is a completion queue entry, struct io_uring_cqe (16 bytes).
type CQE struct {
	userData uint64 // user_data
	res      int32  // res
	flags    uint32 // flags (IORING_CQE_F_*)
}

// params is struct io_uring_params (120 bytes).
type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sqOff        sqringOffsets
	cqOff        cqringOffsets
}

// sqringOffsets is struct io_sqring_offsets (40 bytes).
type sqringOffsets struct {
	head        uint32
	tail        uint32
	ringMask    uint32
	ringEntries uint32
	flags       uint32
	dropped     uint32
	array       uint32
	resv1       uint32
	userAddr    uint64 // resv2 in older headers
}

// cqringOffsets is struct io_cqring_offsets (40 bytes).
type cqringOffsets struct {
	head        uint32
	tail        uint32
	ringMask    uint32
	ringEntries uint32
	overflow    uint32
	cqes        uint32
	flags       uint32
	resv1       uint32
	userAddr    uint64 // resv2 in older headers
}

// getEventsArg is struct io_uring_getevents_arg (24 bytes), passed with
// IORING_ENTER_EXT_ARG.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	pad       uint32
	ts        uint64 // address of a Timespec
}

// Timespec is struct __kernel_timespec, the time argument of PrepTimeout and
// PrepLinkTimeout.
type Timespec struct {
	Sec  int64
	Nsec int64
}

// probeHeader is the fixed part of struct io_uring_probe (16 bytes).
type probeHeader struct {
	lastOp uint8
	opsLen uint8
	resv   uint16
	resv2  [3]uint32
}

// probeOp is struct io_uring_probe_op (8 bytes).
type probeOp struct {
	op    uint8
	resv  uint8
	flags uint16
	resv2 uint32
}

// rawProbe is struct io_uring_probe with room for probeOpsLen ops.
type rawProbe struct {
	probeHeader
	ops [probeOpsLen]probeOp
}

// rsrcRegister is struct io_uring_rsrc_register (32 bytes), the argument of
// IORING_REGISTER_FILES2.
type rsrcRegister struct {
	nr    uint32
	flags uint32
	resv2 uint64
	data  uint64
	tags  uint64
}

// filesUpdate is struct io_uring_files_update (16 bytes), the argument of
// IORING_REGISTER_FILES_UPDATE.
type filesUpdate struct {
	offset uint32
	resv   uint32
	fds    uint64 // address of an int32 array
}

// bufDesc is struct io_uring_buf (16 bytes), one entry of a provided-buffer
// ring. In entry 0, resv is the ring's tail (struct io_uring_buf_ring).
type bufDesc struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16
}

// bufRingTailOffset is the offset of io_uring_buf_ring.tail: it overlays
// bufs[0].resv.
const bufRingTailOffset = 14

// bufReg is struct io_uring_buf_reg (40 bytes), the argument of
// IORING_(UN)REGISTER_PBUF_RING.
type bufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16 // pad in older headers
	resv        [3]uint64
}
