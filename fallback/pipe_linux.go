package fallback

import "golang.org/x/sys/unix"

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
