package ring

import (
	"testing"
	"unsafe"
)

// The expected numbers below are read off include/uapi/linux/io_uring.h.

func TestABISizes(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"struct io_uring_sqe", unsafe.Sizeof(SQE{}), 64},
		{"struct io_uring_cqe", unsafe.Sizeof(CQE{}), 16},
		{"struct io_uring_params", unsafe.Sizeof(params{}), 120},
		{"struct io_sqring_offsets", unsafe.Sizeof(sqringOffsets{}), 40},
		{"struct io_cqring_offsets", unsafe.Sizeof(cqringOffsets{}), 40},
		{"struct io_uring_getevents_arg", unsafe.Sizeof(getEventsArg{}), 24},
		{"struct __kernel_timespec", unsafe.Sizeof(Timespec{}), 16},
		{"struct io_uring_probe", unsafe.Sizeof(probeHeader{}), 16},
		{"struct io_uring_probe_op", unsafe.Sizeof(probeOp{}), 8},
		{"struct io_uring_rsrc_register", unsafe.Sizeof(rsrcRegister{}), 32},
		{"struct io_uring_files_update", unsafe.Sizeof(filesUpdate{}), 16},
		{"struct io_uring_buf", unsafe.Sizeof(bufDesc{}), 16},
		{"struct io_uring_buf_reg", unsafe.Sizeof(bufReg{}), 40},
		{"sqeSize", sqeSize, 64},
		{"cqeSize", cqeSize, 16},
		{"getEventsArgSize", getEventsArgSize, 24},
		{"timespecSize", timespecSize, 16},
	} {
		if c.got != c.want {
			t.Errorf("sizeof(%s) = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestABIOffsets(t *testing.T) {
	var sqe SQE
	var p params
	var so sqringOffsets
	var co cqringOffsets
	var ga getEventsArg
	var rr rsrcRegister
	var fu filesUpdate
	var bd bufDesc
	var br bufReg
	var po probeOp
	var ph probeHeader
	var rp rawProbe
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"sqe.opcode", unsafe.Offsetof(sqe.opcode), 0},
		{"sqe.flags", unsafe.Offsetof(sqe.flags), 1},
		{"sqe.ioprio", unsafe.Offsetof(sqe.ioprio), 2},
		{"sqe.fd", unsafe.Offsetof(sqe.fd), 4},
		{"sqe.off", unsafe.Offsetof(sqe.off), 8},
		{"sqe.addr", unsafe.Offsetof(sqe.addr), 16},
		{"sqe.len", unsafe.Offsetof(sqe.len), 24},
		{"sqe.rw_flags", unsafe.Offsetof(sqe.opFlags), 28},
		{"sqe.user_data", unsafe.Offsetof(sqe.userData), 32},
		{"sqe.buf_index", unsafe.Offsetof(sqe.bufIndex), 40},
		{"sqe.personality", unsafe.Offsetof(sqe.personality), 42},
		{"sqe.splice_fd_in", unsafe.Offsetof(sqe.spliceFdIn), 44},
		{"sqe.addr3", unsafe.Offsetof(sqe.addr3), 48},
		{"sqe.__pad2", unsafe.Offsetof(sqe.pad2), 56},

		{"cqe.user_data", unsafe.Offsetof(CQE{}.userData), 0},
		{"cqe.res", unsafe.Offsetof(CQE{}.res), 8},
		{"cqe.flags", unsafe.Offsetof(CQE{}.flags), 12},

		{"params.sq_entries", unsafe.Offsetof(p.sqEntries), 0},
		{"params.cq_entries", unsafe.Offsetof(p.cqEntries), 4},
		{"params.flags", unsafe.Offsetof(p.flags), 8},
		{"params.sq_thread_cpu", unsafe.Offsetof(p.sqThreadCPU), 12},
		{"params.sq_thread_idle", unsafe.Offsetof(p.sqThreadIdle), 16},
		{"params.features", unsafe.Offsetof(p.features), 20},
		{"params.wq_fd", unsafe.Offsetof(p.wqFd), 24},
		{"params.resv", unsafe.Offsetof(p.resv), 28},
		{"params.sq_off", unsafe.Offsetof(p.sqOff), 40},
		{"params.cq_off", unsafe.Offsetof(p.cqOff), 80},

		{"sq_off.head", unsafe.Offsetof(so.head), 0},
		{"sq_off.tail", unsafe.Offsetof(so.tail), 4},
		{"sq_off.ring_mask", unsafe.Offsetof(so.ringMask), 8},
		{"sq_off.ring_entries", unsafe.Offsetof(so.ringEntries), 12},
		{"sq_off.flags", unsafe.Offsetof(so.flags), 16},
		{"sq_off.dropped", unsafe.Offsetof(so.dropped), 20},
		{"sq_off.array", unsafe.Offsetof(so.array), 24},
		{"sq_off.resv1", unsafe.Offsetof(so.resv1), 28},
		{"sq_off.user_addr", unsafe.Offsetof(so.userAddr), 32},

		{"cq_off.head", unsafe.Offsetof(co.head), 0},
		{"cq_off.tail", unsafe.Offsetof(co.tail), 4},
		{"cq_off.ring_mask", unsafe.Offsetof(co.ringMask), 8},
		{"cq_off.ring_entries", unsafe.Offsetof(co.ringEntries), 12},
		{"cq_off.overflow", unsafe.Offsetof(co.overflow), 16},
		{"cq_off.cqes", unsafe.Offsetof(co.cqes), 20},
		{"cq_off.flags", unsafe.Offsetof(co.flags), 24},
		{"cq_off.resv1", unsafe.Offsetof(co.resv1), 28},
		{"cq_off.user_addr", unsafe.Offsetof(co.userAddr), 32},

		{"getevents_arg.sigmask", unsafe.Offsetof(ga.sigmask), 0},
		{"getevents_arg.sigmask_sz", unsafe.Offsetof(ga.sigmaskSz), 8},
		{"getevents_arg.pad", unsafe.Offsetof(ga.pad), 12},
		{"getevents_arg.ts", unsafe.Offsetof(ga.ts), 16},

		{"probe.last_op", unsafe.Offsetof(ph.lastOp), 0},
		{"probe.ops_len", unsafe.Offsetof(ph.opsLen), 1},
		{"probe.ops", unsafe.Offsetof(rp.ops), 16},
		{"probe_op.op", unsafe.Offsetof(po.op), 0},
		{"probe_op.flags", unsafe.Offsetof(po.flags), 2},

		{"rsrc_register.nr", unsafe.Offsetof(rr.nr), 0},
		{"rsrc_register.flags", unsafe.Offsetof(rr.flags), 4},
		{"rsrc_register.data", unsafe.Offsetof(rr.data), 16},
		{"rsrc_register.tags", unsafe.Offsetof(rr.tags), 24},

		{"files_update.offset", unsafe.Offsetof(fu.offset), 0},
		{"files_update.fds", unsafe.Offsetof(fu.fds), 8},

		{"buf.addr", unsafe.Offsetof(bd.addr), 0},
		{"buf.len", unsafe.Offsetof(bd.len), 8},
		{"buf.bid", unsafe.Offsetof(bd.bid), 12},
		{"buf_ring.tail", unsafe.Offsetof(bd.resv), 14},
		{"bufRingTailOffset", bufRingTailOffset, 14},

		{"buf_reg.ring_addr", unsafe.Offsetof(br.ringAddr), 0},
		{"buf_reg.ring_entries", unsafe.Offsetof(br.ringEntries), 8},
		{"buf_reg.bgid", unsafe.Offsetof(br.bgid), 12},
		{"buf_reg.resv", unsafe.Offsetof(br.resv), 16},

		{"timespec.tv_nsec", unsafe.Offsetof(Timespec{}.Nsec), 8},
	} {
		if c.got != c.want {
			t.Errorf("offsetof(%s) = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestABIValues checks the opcode numbers (an implicit C enum, so easy to
// miscount) and the flag bits, against the header.
func TestABIValues(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uint64
		want uint64
	}{
		{"IORING_OP_NOP", uint64(OpNop), 0},
		{"IORING_OP_POLL_ADD", uint64(OpPollAdd), 6},
		{"IORING_OP_TIMEOUT", uint64(OpTimeout), 11},
		{"IORING_OP_ACCEPT", uint64(OpAccept), 13},
		{"IORING_OP_ASYNC_CANCEL", uint64(OpAsyncCancel), 14},
		{"IORING_OP_LINK_TIMEOUT", uint64(OpLinkTimeout), 15},
		{"IORING_OP_CONNECT", uint64(OpConnect), 16},
		{"IORING_OP_CLOSE", uint64(OpClose), 19},
		{"IORING_OP_SEND", uint64(OpSend), 26},
		{"IORING_OP_RECV", uint64(OpRecv), 27},
		{"IORING_OP_SPLICE", uint64(OpSplice), 30},
		{"IORING_OP_SHUTDOWN", uint64(OpShutdown), 34},

		{"IOSQE_FIXED_FILE", uint64(FlagFixedFile), 0x01},
		{"IOSQE_IO_LINK", uint64(FlagIOLink), 0x04},
		{"IOSQE_BUFFER_SELECT", uint64(FlagBufferSelect), 0x20},
		{"IOSQE_CQE_SKIP_SUCCESS", uint64(FlagCQESkipSuccess), 0x40},

		{"IORING_SETUP_CQSIZE", uint64(SetupCQSize), 0x8},
		{"IORING_SETUP_SUBMIT_ALL", uint64(SetupSubmitAll), 0x80},
		{"IORING_SETUP_COOP_TASKRUN", uint64(SetupCoopTaskrun), 0x100},
		{"IORING_SETUP_TASKRUN_FLAG", uint64(setupTaskrunFlag), 0x200},
		{"IORING_SETUP_SINGLE_ISSUER", uint64(SetupSingleIssuer), 0x1000},
		{"IORING_SETUP_DEFER_TASKRUN", uint64(SetupDeferTaskrun), 0x2000},

		{"IORING_FEAT_SINGLE_MMAP", uint64(FeatSingleMmap), 0x1},
		{"IORING_FEAT_NODROP", uint64(FeatNoDrop), 0x2},
		{"IORING_FEAT_EXT_ARG", uint64(FeatExtArg), 0x100},

		{"IORING_CQE_F_BUFFER", uint64(CQEFBuffer), 0x1},
		{"IORING_CQE_F_MORE", uint64(CQEFMore), 0x2},
		{"IORING_CQE_BUFFER_SHIFT", cqeBufferShift, 16},

		{"IORING_SQ_CQ_OVERFLOW", sqCQOverflow, 0x2},
		{"IORING_SQ_TASKRUN", sqTaskrun, 0x4},
		{"IORING_ENTER_GETEVENTS", enterGetEvents, 0x1},
		{"IORING_ENTER_EXT_ARG", enterExtArg, 0x8},
		{"IORING_OFF_CQ_RING", offCQRing, 0x8000000},
		{"IORING_OFF_SQES", offSQEs, 0x10000000},

		{"IORING_REGISTER_FILES", registerFiles, 2},
		{"IORING_REGISTER_FILES_UPDATE", registerFilesUpdate, 6},
		{"IORING_REGISTER_PROBE", registerProbe, 8},
		{"IORING_REGISTER_FILES2", registerFiles2, 13},
		{"IORING_REGISTER_IOWQ_MAX_WORKERS", registerIOWQMaxWorkers, 19},
		{"IORING_REGISTER_PBUF_RING", registerPbufRing, 22},
		{"IORING_UNREGISTER_PBUF_RING", unregisterPbufRing, 23},

		{"IORING_POLL_ADD_MULTI", pollAddMulti, 1},
		{"IORING_RECV_MULTISHOT", recvMultishot, 2},
		{"IORING_RECVSEND_POLL_FIRST", recvsendPollFirst, 1},
		{"IORING_ACCEPT_MULTISHOT", acceptMultishot, 1},
		{"IORING_ASYNC_CANCEL_FD", uint64(CancelFd), 2},
		{"IORING_ASYNC_CANCEL_ANY", uint64(CancelAny), 4},
		{"IORING_TIMEOUT_ETIME_SUCCESS", uint64(TimeoutETimeSuccess), 0x20},
		{"IORING_FILE_INDEX_ALLOC", uint64(FileIndexAlloc), 0xffffffff},
		{"SPLICE_F_FD_IN_FIXED", uint64(SpliceFdInFixed), 0x80000000},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}
