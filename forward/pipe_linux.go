package forward

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// spliceFlags: SPLICE_F_MOVE is a hint the kernel may ignore; with
// SPLICE_F_NONBLOCK and non-blocking sockets a splice never sleeps.
const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

// Splice moves up to n bytes from fd in to fd out and returns how many, 0
// at the end of in's stream, or the errno (unix.EAGAIN when nothing can
// move now).
//
// It is a raw system call, made without telling the Go scheduler, because
// it never blocks yet is not short: moving 256 KiB takes 50–100 µs. As an
// ordinary syscall that is long enough for sysmon to take the loop's P away
// and hand it to another thread, and getting it back costs futex wake-ups
// and thread switches. Measured on one bulk connection: with unix.Splice
// the runtime made 5,400 futex calls per GiB (the loop made 8,300
// splices) and the proxy used 1.27× systemd-socket-proxyd's CPU per GB;
// raw, 230 futex calls and 1.06×.
func Splice(in, out, n int) (int, unix.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), spliceFlags)
	return int(r), e
}

// PipeSizes are the capacities asked of each new pipe, largest first; the
// first the kernel grants is the pipe's. A pipe's capacity is the largest
// chunk one splice moves, and so the most a direction buffers.
//
// 1 MiB, the default /proc/sys/fs/pipe-max-size that an unprivileged
// process may ask for, measured best on bulk transfers: against v252 (256
// KiB pipes, as we had) in the same run, 512 KiB moved 1.09–1.21× and 1
// MiB 1.22–1.31× the bytes per second at 0.65–0.67× the CPU per GB, while
// 2 MiB and 4 MiB (granted to root) fell to 0.86–0.91× at 1.25–1.52× the
// CPU. The smaller sizes are for a lower pipe-max-size, and for a user
// past pipe-user-pages-soft, whose pipes the kernel no longer lets grow
// (then a pipe keeps the size it was created with).
var PipeSizes = [...]int{1 << 20, 256 << 10, 64 << 10}

// pipeShares are the parts of the user's pipe budget up to which pipes of
// each of PipeSizes are asked for. Past pipe-user-pages-soft an
// unprivileged user's new pipes get 8 KiB and can no longer grow: a cliff
// that 1 MiB pipes alone would reach at 64 directions moving bytes at once
// (256 KiB pipes, as v252's, at 256). Asking smaller pipes as the budget
// fills keeps 1 MiB for the first 32 transfers and the cliff no nearer
// than with 256 KiB pipes alone: 32 of 1 MiB, 96 of 256 KiB, 128 of 64 KiB.
var pipeShares = [len(PipeSizes)]int64{4, 7, 8} // eighths of the budget

// pipeBytes is the capacity of every pipe this process holds, pooled or in
// use: what the kernel counts against the user's pipe-user-pages-soft.
var pipeBytes atomic.Int64

// pipeBudget is pipe-user-pages-soft in bytes, or 0 for no limit.
var pipeBudget = sync.OnceValue(func() int64 {
	b, err := os.ReadFile("/proc/sys/fs/pipe-user-pages-soft")
	if err != nil {
		return 0
	}
	pages, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || pages <= 0 {
		return 0
	}
	return pages * int64(os.Getpagesize())
})

// Pipe is a kernel pipe used as the buffer of one direction of one
// connection while bytes are in flight. Both engines use it.
type Pipe struct {
	R, W int
	Size int // capacity in bytes: what one splice into it may ask for
}

// PipePool keeps a few empty pipes so that busy connections do not create
// and destroy one per burst. Only empty pipes are ever put back.
type PipePool struct {
	free []Pipe
	// Max is how many empty pipes the pool keeps. Each counts against the
	// user's pipe-user-pages-soft at its full capacity, filled or not.
	Max int
}

// PipePoolMax is how many empty pipes each event loop keeps: eight 1 MiB
// pipes are an eighth of the default pipe-user-pages-soft (64 MiB).
const PipePoolMax = 8

// Get returns an empty pipe, from the pool or new.
func (p *PipePool) Get() (Pipe, error) {
	if n := len(p.free); n > 0 {
		pp := p.free[n-1]
		p.free = p.free[:n-1]
		return pp, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return Pipe{}, err
	}
	pp := Pipe{R: fds[0], W: fds[1]}
	budget, used := pipeBudget(), pipeBytes.Load()
	for i, want := range PipeSizes {
		if budget > 0 && i < len(PipeSizes)-1 && used+int64(want) > budget*pipeShares[i]/8 {
			continue
		}
		if got, err := unix.FcntlInt(uintptr(pp.R), unix.F_SETPIPE_SZ, want); err == nil {
			pp.Size = got
			break
		}
	}
	if pp.Size == 0 {
		// Best effort: a smaller pipe still works, it only moves smaller
		// chunks.
		got, err := unix.FcntlInt(uintptr(pp.R), unix.F_GETPIPE_SZ, 0)
		if err != nil || got <= 0 {
			got = os.Getpagesize()
		}
		pp.Size = got
	}
	pipeBytes.Add(int64(pp.Size))
	return pp, nil
}

// Put returns an empty pipe to the pool, or closes it when the pool is full.
func (p *PipePool) Put(pp Pipe) {
	if len(p.free) < p.Max {
		p.free = append(p.free, pp)
		return
	}
	pp.Close()
}

// Close closes both ends.
func (pp Pipe) Close() {
	pipeBytes.Add(-int64(pp.Size))
	unix.Close(pp.R)
	unix.Close(pp.W)
}

// CloseAll closes every pipe the pool keeps.
func (p *PipePool) CloseAll() {
	for _, pp := range p.free {
		pp.Close()
	}
	p.free = nil
}
