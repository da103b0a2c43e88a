package fallback

import "golang.org/x/sys/unix"

// spliceFlags: SPLICE_F_MOVE is a hint the kernel may ignore; with
// SPLICE_F_NONBLOCK and non-blocking sockets a splice never sleeps.
const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

// splice moves up to n bytes from fd in to fd out and returns how many, 0
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
func splice(in, out, n int) (int, unix.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), spliceFlags)
	return int(r), e
}

// pipeSize is the capacity asked of each pipe: the largest chunk one splice
// moves, and so the most a direction buffers. v252 uses the same.
const pipeSize = 256 << 10

// pipe is a kernel pipe used as the buffer of one direction of one
// connection while bytes are in flight.
type pipe struct{ r, w int }

// pipePool keeps a few empty pipes so that busy connections do not create
// and destroy one per burst. Only empty pipes are ever put back.
type pipePool struct {
	free []pipe
	max  int
}

func (p *pipePool) get() (pipe, error) {
	if n := len(p.free); n > 0 {
		pp := p.free[n-1]
		p.free = p.free[:n-1]
		return pp, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return pipe{}, err
	}
	// Best effort: a smaller pipe still works, it only moves smaller chunks.
	_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	return pipe{r: fds[0], w: fds[1]}, nil
}

// put returns an empty pipe to the pool, or closes it when the pool is full.
func (p *pipePool) put(pp pipe) {
	if len(p.free) < p.max {
		p.free = append(p.free, pp)
		return
	}
	pp.close()
}

func (pp pipe) close() {
	unix.Close(pp.r)
	unix.Close(pp.w)
}

func (p *pipePool) closeAll() {
	for _, pp := range p.free {
		pp.close()
	}
	p.free = nil
}
