package bench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The workloads. Each one measures the proxy's CPU time around exactly the
// measured phase, and fails (rather than scores) if a byte was lost or
// changed, if the backend saw bad content, or if the proxy died.

// BulkParams describes a bulk transfer.
type BulkParams struct {
	Conns   int   // parallel connections
	Up      bool  // client→backend (else backend→client)
	Bytes   int64 // in total, split evenly across the connections
	Chunk   int   // write size; 0 means bulkChunk (at most maxWindow)
	Timeout time.Duration
}

// BulkResult is what a bulk transfer measured.
type BulkResult struct {
	Bytes   int64
	Elapsed time.Duration
	CPU     time.Duration // proxy CPU during the transfer
}

// Bulk streams p.Bytes of checked content through r.
func Bulk(r *Running, be *Backend, p BulkParams) (BulkResult, error) {
	per := uint64(p.Bytes) / uint64(p.Conns)
	conns, err := dialN(r.Addr, p.Conns)
	if err != nil {
		return BulkResult{}, err
	}
	defer closeAll(conns)
	u0, err := r.Usage()
	if err != nil {
		return BulkResult{}, err
	}
	t0 := time.Now()
	errs := make(chan error, len(conns))
	for _, c := range conns {
		c.SetDeadline(t0.Add(p.Timeout))
		chunk := p.Chunk
		if chunk <= 0 || chunk > maxWindow {
			chunk = bulkChunk
		}
		h := header{size: uint32(chunk), total: per, seed: rand.Uint64()}
		if p.Up {
			h.mode = modeUpload
			go func() { errs <- upload(c, h) }()
		} else {
			h.mode = modeDownload
			go func() { errs <- downloadClient(c, h) }()
		}
	}
	err = firstError(errs, len(conns))
	elapsed := time.Since(t0)
	u1, uerr := r.Usage()
	if err := checkAfter(r, be, err, uerr); err != nil {
		return BulkResult{}, err
	}
	return BulkResult{Bytes: int64(per) * int64(p.Conns), Elapsed: elapsed, CPU: u1.CPUSince(u0)}, nil
}

func upload(c net.Conn, h header) error {
	if _, err := c.Write(h.marshal(nil)); err != nil {
		return err
	}
	s := stream{seed: h.seed}
	for left := h.total; left > 0; {
		n := min(uint64(h.size), left)
		if _, err := c.Write(s.window(int(n))); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		s.pos += n
		left -= n
	}
	var st [1]byte
	if _, err := io.ReadFull(c, st[:]); err != nil {
		return fmt.Errorf("upload: waiting for the backend's verdict: %w", err)
	}
	if st[0] != 'K' {
		return errors.New("upload: the backend received corrupted content")
	}
	return nil
}

func downloadClient(c net.Conn, h header) error {
	if _, err := c.Write(h.marshal(nil)); err != nil {
		return err
	}
	return receiveStream(c, h, "backend→client")
}

// RRParams describes a request/response (ping-pong) run.
type RRParams struct {
	Conns    int
	Size     int           // message size
	Duration time.Duration // measure this long…
	Ops      int           // …or, if > 0, this many round trips per connection
	Warmup   int           // unmeasured round trips per connection first
	Pin      int           // ≥ 0: one connection, client, backend and proxy on this CPU
	Timeout  time.Duration
}

// RRResult is what a request/response run measured.
type RRResult struct {
	Ops     uint64
	Elapsed time.Duration
	Latency Histogram
	CPU     time.Duration
}

// RR ping-pongs checked messages through r on p.Conns connections.
func RR(r *Running, be *Backend, p RRParams) (*RRResult, error) {
	if p.Pin >= 0 {
		p.Conns = 1
		if err := r.Pin(p.Pin); err != nil {
			return nil, err
		}
	}
	res := &RRResult{}
	hists := make([]Histogram, p.Conns)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, p.Conns)
	var t0 time.Time // written before start is closed
	ends := make([]time.Time, p.Conns)
	for i := range p.Conns {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			var err error
			if p.Pin >= 0 {
				err = pingPongPinned(r.Addr, p, &hists[i], &ready, start, &ends[i])
			} else {
				err = pingPong(r.Addr, p, &hists[i], &ready, start, &ends[i])
			}
			errs <- err
		}()
	}
	ready.Wait()
	if p.Pin >= 0 {
		if err := r.Pin(p.Pin); err != nil { // threads started meanwhile
			close(start)
			done.Wait()
			return nil, err
		}
	}
	u0, err := r.Usage()
	if err != nil {
		close(start)
		done.Wait()
		return nil, err
	}
	t0 = time.Now()
	close(start)
	done.Wait()
	err = firstError(errs, p.Conns)
	u1, uerr := r.Usage()
	if err := checkAfter(r, be, err, uerr); err != nil {
		return nil, err
	}
	var last time.Time
	for i := range hists {
		res.Latency.Merge(&hists[i])
		if ends[i].After(last) {
			last = ends[i]
		}
	}
	res.Ops = res.Latency.Count()
	res.Elapsed = last.Sub(t0)
	res.CPU = u1.CPUSince(u0)
	return res, nil
}

// pingPong runs one connection of RR. It signals ready once connected and
// warmed up, waits for start, and records the time of its last reply in end.
func pingPong(addr string, p RRParams, h *Histogram, ready *sync.WaitGroup, start <-chan struct{}, end *time.Time) error {
	c, err := net.DialTimeout("tcp", addr, p.Timeout)
	if err != nil {
		ready.Done()
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(p.Timeout + p.Duration))
	seed := rand.Uint64()
	s := stream{seed: seed}
	reply := make([]byte, p.Size)
	first := header{mode: modeEcho, size: uint32(p.Size), seed: seed}.marshal(nil)
	exchange := func() error {
		msg := s.window(p.Size)
		out := msg
		if first != nil {
			out = append(first, msg...)
			first = nil
		}
		if _, err := c.Write(out); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			return err
		}
		if err := s.check(reply); err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		return nil
	}
	for range p.Warmup {
		if err := exchange(); err != nil {
			ready.Done()
			return err
		}
	}
	ready.Done()
	<-start
	return timeExchanges(p, h, end, exchange)
}

// timeExchanges runs exchange p.Ops times, or for p.Duration when Ops is
// 0, recording each one's latency in h and the time the last one ended.
func timeExchanges(p RRParams, h *Histogram, end *time.Time, exchange func() error) error {
	deadline := time.Now().Add(p.Duration)
	for i := 0; ; i++ {
		if p.Ops > 0 && i >= p.Ops {
			break
		}
		t := time.Now()
		if err := exchange(); err != nil {
			return err
		}
		now := time.Now()
		h.Record(now.Sub(t))
		*end = now
		if p.Ops <= 0 && now.After(deadline) {
			break
		}
	}
	return nil
}

// pingPongPinned is pingPong with blocking syscalls on an OS thread pinned
// to p.Pin; the backend does the same on its side (modePinnedEcho).
func pingPongPinned(addr string, p RRParams, h *Histogram, ready *sync.WaitGroup, start <-chan struct{}, end *time.Time) error {
	runtime.LockOSThread() // never unlocked: the pinned thread dies with us
	readyDone := sync.OnceFunc(ready.Done)
	defer readyDone()
	if err := pinThread(p.Pin); err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", addr, p.Timeout)
	if err != nil {
		return err
	}
	seed := rand.Uint64()
	if _, err := c.Write(header{mode: modePinnedEcho, size: uint32(p.Size), total: uint64(p.Pin), seed: seed}.marshal(nil)); err != nil {
		c.Close()
		return err
	}
	f, err := c.(*net.TCPConn).File()
	c.Close()
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd()) // blocking from here on
	tv := unix.NsecToTimeval((p.Timeout + p.Duration).Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	s := stream{seed: seed}
	reply := make([]byte, p.Size)
	exchange := func() error {
		if err := writeAll(fd, s.window(p.Size)); err != nil {
			return err
		}
		if err := readFull(fd, reply); err != nil {
			return err
		}
		if err := s.check(reply); err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		return nil
	}
	for range p.Warmup {
		if err := exchange(); err != nil {
			return err
		}
	}
	readyDone()
	<-start
	return timeExchanges(p, h, end, exchange)
}

// ConnRateParams describes a connection-rate run.
type ConnRateParams struct {
	Workers  int
	Size     int // the one exchange's message size
	Duration time.Duration
	Conns    int // if > 0, this many connections per worker instead
	Timeout  time.Duration
}

// ConnRateResult is what a connection-rate run measured.
type ConnRateResult struct {
	Conns   uint64
	Elapsed time.Duration
	Latency Histogram // connect, one exchange, close
	CPU     time.Duration
}

// ConnRate has p.Workers workers connect, exchange one message and close,
// as fast as they can.
func ConnRate(r *Running, be *Backend, p ConnRateParams) (*ConnRateResult, error) {
	res := &ConnRateResult{}
	hists := make([]Histogram, p.Workers)
	errs := make(chan error, p.Workers)
	u0, err := r.Usage()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	deadline := t0.Add(p.Duration)
	for i := range p.Workers {
		go func() {
			errs <- connectLoop(r.Addr, p, deadline, &hists[i])
		}()
	}
	err = firstError(errs, p.Workers)
	res.Elapsed = time.Since(t0)
	u1, uerr := r.Usage()
	if err := checkAfter(r, be, err, uerr); err != nil {
		return nil, err
	}
	for i := range hists {
		res.Latency.Merge(&hists[i])
	}
	res.Conns = res.Latency.Count()
	res.CPU = u1.CPUSince(u0)
	return res, nil
}

func connectLoop(addr string, p ConnRateParams, deadline time.Time, h *Histogram) error {
	d := net.Dialer{Timeout: p.Timeout}
	seed := rand.Uint64()
	s := stream{seed: seed}
	out := header{mode: modeEcho, size: uint32(p.Size), seed: seed}.marshal(nil)
	out = append(out, s.window(p.Size)...)
	reply := make([]byte, p.Size)
	for i := 0; ; i++ {
		if p.Conns > 0 && i >= p.Conns {
			return nil
		}
		t := time.Now()
		if p.Conns <= 0 && t.After(deadline) {
			return nil
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c.SetDeadline(t.Add(p.Timeout))
		if _, err := c.Write(out); err != nil {
			c.Close()
			return err
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			c.Close()
			return fmt.Errorf("connection %d: %w", i, err)
		}
		c.Close()
		h.Record(time.Since(t))
		check := s // every connection carries the same message
		if err := check.check(reply); err != nil {
			return fmt.Errorf("echo: %w", err)
		}
	}
}

// IdleParams describes an idle-scale run.
type IdleParams struct {
	Conns      int           // idle connections held open through the proxy
	Settle     time.Duration // wait after opening them, before measuring
	IdleFor    time.Duration // CPU is measured over this idle interval
	ActiveOps  int           // round trips of the one active connection
	ActiveSize int
	Timeout    time.Duration
}

// IdleResult is what an idle-scale run measured.
type IdleResult struct {
	Conns         int
	Before, After Usage         // proxy with one active connection; with all the idle ones too
	IdleCPU       time.Duration // proxy CPU over IdleFor
	IdleFor       time.Duration
	Latency       Histogram // the active connection, with the idle ones open
}

// Idle holds p.Conns idle connections through r and then measures one
// active connection.
func Idle(r *Running, be *Backend, p IdleParams) (*IdleResult, error) {
	res := &IdleResult{Conns: p.Conns, IdleFor: p.IdleFor}
	active, err := net.DialTimeout("tcp", r.Addr, p.Timeout)
	if err != nil {
		return nil, err
	}
	defer active.Close()
	active.SetDeadline(time.Now().Add(10*p.Timeout + p.Settle + p.IdleFor))
	seed := rand.Uint64()
	s := stream{seed: seed}
	first := header{mode: modeEcho, size: uint32(p.ActiveSize), seed: seed}.marshal(nil)
	reply := make([]byte, p.ActiveSize)
	exchange := func() error {
		out := s.window(p.ActiveSize)
		if first != nil {
			out = append(first, out...)
			first = nil
		}
		if _, err := active.Write(out); err != nil {
			return err
		}
		if _, err := io.ReadFull(active, reply); err != nil {
			return err
		}
		return s.check(reply)
	}
	for range 100 {
		if err := exchange(); err != nil {
			return nil, err
		}
	}
	time.Sleep(p.Settle / 2)
	base := be.Started()
	if res.Before, err = r.Usage(); err != nil {
		return nil, err
	}

	conns, err := dialIdle(r.Addr, p.Conns, p.Timeout)
	defer closeAll(conns)
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(p.Timeout); be.Started() < base+int64(p.Conns); {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d idle connections reached the backend%s",
				be.Started()-base, p.Conns, r.stderrNote())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(p.Settle)
	if res.After, err = r.Usage(); err != nil {
		return nil, err
	}
	time.Sleep(p.IdleFor)
	u2, err := r.Usage()
	if err != nil {
		return nil, err
	}
	res.IdleCPU = u2.CPUSince(res.After)
	for range p.ActiveOps {
		t := time.Now()
		if err := exchange(); err != nil {
			return nil, fmt.Errorf("active connection: %w", err)
		}
		res.Latency.Record(time.Since(t))
	}
	return res, checkAfter(r, be, nil, nil)
}

// dialIdle opens n connections, each sending an echo header and nothing
// else, from 8 dialers at once.
func dialIdle(addr string, n int, timeout time.Duration) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	const workers = 8
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < n; i += workers {
				c, err := net.DialTimeout("tcp", addr, timeout)
				if err != nil {
					errs <- fmt.Errorf("idle connection %d: %w", i, err)
					return
				}
				conns[i] = c
				if _, err := c.Write(header{mode: modeEcho, size: 64}.marshal(nil)); err != nil {
					errs <- fmt.Errorf("idle connection %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	err := firstError(errs, workers)
	return conns, err
}

func dialN(addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// firstError collects n results and returns the first error.
func firstError(errs <-chan error, n int) error {
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// checkAfter turns a measurement's outcome into its verdict: content errors
// first (the backend's, then the client's), then a dead proxy, then the
// client's other errors.
func checkAfter(r *Running, be *Backend, clientErr, usageErr error) error {
	if err := be.Err(); err != nil {
		return fmt.Errorf("%s: %w", r.Proxy.Name, err)
	}
	var ce *CorruptError
	if errors.As(clientErr, &ce) {
		return fmt.Errorf("%s: %w", r.Proxy.Name, clientErr)
	}
	if err := r.Alive(); err != nil {
		return err
	}
	if clientErr != nil {
		return fmt.Errorf("%s: %w%s", r.Proxy.Name, clientErr, r.stderrNote())
	}
	return usageErr
}
