package forward

import "golang.org/x/sys/unix"

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

// PipeSize is the capacity asked of each pipe: the largest chunk one splice
// moves, and so the most a direction buffers. v252 uses the same.
const PipeSize = 256 << 10

// Pipe is a kernel pipe used as the buffer of one direction of one
// connection while bytes are in flight. Both engines use it.
type Pipe struct{ R, W int }

// PipePool keeps a few empty pipes so that busy connections do not create
// and destroy one per burst. Only empty pipes are ever put back.
type PipePool struct {
	free []Pipe
	// Max is how many empty pipes the pool keeps.
	Max int
}

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
	// Best effort: a smaller pipe still works, it only moves smaller chunks.
	_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, PipeSize)
	return Pipe{R: fds[0], W: fds[1]}, nil
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
