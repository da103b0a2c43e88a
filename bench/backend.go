package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The header every connection starts with: what the backend must do.
//
//	[0]     headerMagic
//	[1]     mode
//	[4:8]   message size (echo modes) or write size (download)
//	[8:16]  total bytes (upload, download); CPU to pin to (pinned echo)
//	[16:24] content seed
const (
	headerLen   = 24
	headerMagic = 0xB5

	modeUpload     = 'u' // read total bytes, check them, answer 'K' (or 'X')
	modeDownload   = 'd' // send total bytes, then wait for EOF
	modeEcho       = 'e' // echo messages of a fixed size until EOF
	modePinnedEcho = 'p' // echo on an OS thread pinned to a CPU, blocking syscalls
)

// bulkChunk is the read and write size of bulk transfers.
const bulkChunk = 256 << 10

type header struct {
	mode  byte
	size  uint32
	total uint64
	seed  uint64
}

func (h header) marshal(b []byte) []byte {
	var a [headerLen]byte
	a[0] = headerMagic
	a[1] = h.mode
	binary.LittleEndian.PutUint32(a[4:], h.size)
	binary.LittleEndian.PutUint64(a[8:], h.total)
	binary.LittleEndian.PutUint64(a[16:], h.seed)
	return append(b, a[:]...)
}

func parseHeader(a []byte) (header, error) {
	if len(a) != headerLen || a[0] != headerMagic {
		return header{}, errors.New("bad header")
	}
	return header{
		mode:  a[1],
		size:  binary.LittleEndian.Uint32(a[4:]),
		total: binary.LittleEndian.Uint64(a[8:]),
		seed:  binary.LittleEndian.Uint64(a[16:]),
	}, nil
}

var bulkBufs = sync.Pool{New: func() any { b := make([]byte, bulkChunk); return &b }}

// Backend is the server at the far side of the proxy. It runs in the
// bench's process, one per measurement, on 127.0.0.1.
type Backend struct {
	ln      net.Listener
	wg      sync.WaitGroup
	started atomic.Int64 // connections whose header has arrived

	mu     sync.Mutex
	open   map[any]func() // closers of open connections
	closed bool
	err    error // first content error seen
}

// NewBackend listens on an ephemeral loopback port and serves until Close.
func NewBackend() (*Backend, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Backend{ln: ln, open: make(map[any]func())}
	b.wg.Add(1)
	go b.serve()
	return b, nil
}

// Addr is the backend's HOST:PORT.
func (b *Backend) Addr() string { return b.ln.Addr().String() }

// Started is the number of connections whose header has arrived.
func (b *Backend) Started() int64 { return b.started.Load() }

// Err returns the first content error the backend saw, if any.
func (b *Backend) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *Backend) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
}

// Close stops accepting, closes every open connection and waits for the
// handlers to return.
func (b *Backend) Close() {
	b.ln.Close()
	b.mu.Lock()
	b.closed = true
	for _, c := range b.open {
		c()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// track registers a closer for key; it reports false (and closes) if the
// backend is already closed.
func (b *Backend) track(key any, closer func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		closer()
		return false
	}
	b.open[key] = closer
	return true
}

func (b *Backend) untrack(key any) {
	b.mu.Lock()
	delete(b.open, key)
	b.mu.Unlock()
}

func (b *Backend) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.handle(c)
		}()
	}
}

func (b *Backend) handle(c net.Conn) {
	if !b.track(c, func() { c.Close() }) {
		return
	}
	defer func() {
		b.untrack(c)
		c.Close()
	}()
	var a [headerLen]byte
	if _, err := io.ReadFull(c, a[:]); err != nil {
		return // a probe or an aborted connection
	}
	h, err := parseHeader(a[:])
	if err != nil {
		b.fail(err)
		return
	}
	b.started.Add(1)
	switch h.mode {
	case modeUpload:
		b.upload(c, h)
	case modeDownload:
		download(c, h)
	case modeEcho:
		echo(c, h)
	case modePinnedEcho:
		b.pinnedEcho(c, h)
	default:
		b.fail(fmt.Errorf("unknown mode %q", h.mode))
	}
}

func (b *Backend) upload(c net.Conn, h header) {
	if err := receiveStream(c, h, "client→backend"); err != nil {
		b.fail(err)
		if errors.Is(err, errCorrupt) {
			c.Write([]byte{'X'})
		}
		return
	}
	c.Write([]byte{'K'})
	io.Copy(io.Discard, c) // bytes past the announced total are the client's to notice
}

// errCorrupt marks a stream whose content differs from the pattern.
var errCorrupt = errors.New("content corrupted")

// receiveStream reads the h.total bytes of the pattern stream seeded
// h.seed from c, checking every one; dir names the direction in errors,
// which wrap errCorrupt when a byte is wrong.
func receiveStream(c net.Conn, h header, dir string) error {
	bp := bulkBufs.Get().(*[]byte)
	defer bulkBufs.Put(bp)
	buf := *bp
	s := stream{seed: h.seed}
	for left := h.total; left > 0; {
		n, err := c.Read(buf[:min(uint64(len(buf)), left)])
		if cerr := s.check(buf[:n]); cerr != nil {
			return fmt.Errorf("%s: %w: %w", dir, errCorrupt, cerr)
		}
		left -= uint64(n)
		if err != nil && left > 0 {
			return fmt.Errorf("%s: stream ended %d bytes early: %w", dir, left, err)
		}
	}
	return nil
}

func download(c net.Conn, h header) {
	s := stream{seed: h.seed}
	chunk := uint64(bulkChunk)
	if h.size > 0 && h.size <= maxWindow {
		chunk = uint64(h.size)
	}
	for left := h.total; left > 0; {
		n := min(chunk, left)
		if _, err := c.Write(s.window(int(n))); err != nil {
			return
		}
		s.pos += n
		left -= n
	}
	io.Copy(io.Discard, c)
}

func echo(c net.Conn, h header) {
	buf := make([]byte, h.size)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// pinnedEcho echoes with blocking read and write on an OS thread pinned to
// the CPU in h.total, so that a wake-up goes straight to this thread on that
// CPU instead of through the Go netpoller on another one. The thread is not
// unlocked: it ends with the goroutine, and its affinity with it.
func (b *Backend) pinnedEcho(c net.Conn, h header) {
	runtime.LockOSThread()
	if err := pinThread(int(h.total)); err != nil {
		b.fail(err)
		return
	}
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		b.fail(err)
		return
	}
	defer f.Close()
	fd := int(f.Fd()) // Fd puts the socket in blocking mode
	c.Close()
	// close(2) does not wake a thread blocked in read(2): shutdown does.
	if !b.track(f, func() { unix.Shutdown(fd, unix.SHUT_RDWR) }) {
		return
	}
	defer b.untrack(f)
	buf := make([]byte, h.size)
	for {
		if err := readFull(fd, buf); err != nil {
			return
		}
		if err := writeAll(fd, buf); err != nil {
			return
		}
	}
}

// pinThread pins the calling OS thread to cpu.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
	}
	return nil
}

// readFull and writeAll are io.ReadFull and a full write on a blocking fd.
func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("read", err)
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b = b[n:]
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		b = b[n:]
	}
	return nil
}
