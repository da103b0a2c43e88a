package ring

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// configs are the setups every round trip runs under: a plain ring, and
// the flags the engine asks for.
var configs = []struct {
	name string
	opts *Options
}{
	{"plain", nil},
	{"coop", &Options{Flags: SetupCoopTaskrun | SetupSubmitAll}},
	{"defer", &Options{Flags: SetupSingleIssuer | SetupDeferTaskrun | SetupSubmitAll, CQEntries: 128}},
}

// eachConfig runs f as a subtest on a fresh ring for every config.
func eachConfig(t *testing.T, entries uint32, f func(t *testing.T, r *Ring)) {
	t.Helper()
	eachConfigCQ(t, entries, 0, f)
}

// eachConfigCQ is eachConfig with a CQ of cqEntries, if nonzero.
func eachConfigCQ(t *testing.T, entries, cqEntries uint32, f func(t *testing.T, r *Ring)) {
	t.Helper()
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			var opts Options
			if c.opts != nil {
				opts = *c.opts
			}
			if cqEntries != 0 {
				opts.CQEntries = cqEntries
			}
			f(t, newRing(t, entries, &opts))
		})
	}
}

// newRing sets up a ring closed at the end of the test. It locks the
// goroutine to its thread, as SetupSingleIssuer requires.
func newRing(t testing.TB, entries uint32, opts *Options) *Ring {
	t.Helper()
	runtime.LockOSThread()
	r, err := Setup(entries, opts)
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, os.ErrPermission) {
			t.Skipf("io_uring unusable here: %v", err)
		}
		t.Fatalf("Setup: %v", err)
	}
	if opts != nil && r.Flags()&opts.Flags != opts.Flags {
		t.Logf("kernel refused some setup flags: asked %#x, got %#x", opts.Flags, r.Flags())
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func requireOps(t *testing.T, r *Ring, ops ...Op) {
	t.Helper()
	p, err := r.Probe()
	if err != nil {
		t.Skipf("cannot probe opcodes: %v", err)
	}
	for _, op := range ops {
		if !p.Supports(op) {
			t.Skipf("kernel lacks %v", op)
		}
	}
}

func getSQE(t *testing.T, r *Ring) *SQE {
	t.Helper()
	s, err := r.NextSQE()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func submit(t *testing.T, r *Ring) {
	t.Helper()
	if _, err := r.Submit(); err != nil {
		t.Fatalf("Submit: %v", err)
	}
}

// reap submits what is queued and collects copies of n CQEs, failing the
// test if they take more than five seconds.
func reap(t *testing.T, r *Ring, n int) []CQE {
	t.Helper()
	var out []CQE
	var batch [16]*CQE
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := r.PeekBatch(batch[:min(len(batch), n-len(out))])
		for _, c := range batch[:got] {
			out = append(out, *c)
		}
		r.Advance(got)
		if len(out) == n {
			return out
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("timed out with %d of %d CQEs: %+v", len(out), n, out)
		}
		if _, err := r.SubmitAndWaitTimeout(1, left); err != nil && !errors.Is(err, unix.ETIME) {
			t.Fatalf("SubmitAndWaitTimeout: %v", err)
		}
	}
}

// reapOne reaps one CQE and checks its user_data.
func reapOne(t *testing.T, r *Ring, ud uint64) CQE {
	t.Helper()
	c := reap(t, r, 1)[0]
	if c.UserData() != ud {
		t.Fatalf("CQE %+v, want user_data %d", c, ud)
	}
	return c
}

// byUserData indexes CQEs by user_data, failing on duplicates.
func byUserData(t *testing.T, cqes []CQE) map[uint64]CQE {
	t.Helper()
	m := make(map[uint64]CQE, len(cqes))
	for _, c := range cqes {
		if _, dup := m[c.UserData()]; dup {
			t.Fatalf("two CQEs for user_data %d: %+v", c.UserData(), cqes)
		}
		m[c.UserData()] = c
	}
	return m
}

func wantRes(t *testing.T, c CQE, res int32) {
	t.Helper()
	if c.Res() != res {
		t.Fatalf("CQE user_data %d: res %d (%v), want %d", c.UserData(), c.Res(), c.Err(), res)
	}
}

func closeFds(t *testing.T, fds ...int) {
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
}

// listenTCP returns a listening socket on 127.0.0.1 and its address.
func listenTCP(t *testing.T) (int, *unix.SockaddrInet4) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeFds(t, fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4)
}

// dialTCP returns a socket connected to addr.
func dialTCP(t *testing.T, addr unix.Sockaddr) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeFds(t, fd)
	if err := unix.Connect(fd, addr); err != nil {
		t.Fatal(err)
	}
	return fd
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (int, int) {
	t.Helper()
	ln, addr := listenTCP(t)
	a := dialTCP(t, addr)
	b, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	closeFds(t, b)
	return a, b
}

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	closeFds(t, p[0], p[1])
	return p[0], p[1]
}

func write(t *testing.T, fd int, b []byte) {
	t.Helper()
	if n, err := unix.Write(fd, b); err != nil || n != len(b) {
		t.Fatalf("write: %d, %v", n, err)
	}
}

// readFull reads exactly n bytes from fd.
func readFull(t *testing.T, fd int, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	for off := 0; off < n; {
		m, err := unix.Read(fd, b[off:])
		if err != nil || m == 0 {
			t.Fatalf("read: %d, %v after %d bytes", m, err, off)
		}
		off += m
	}
	return b
}

// pinned returns n bytes of AllocPinned memory freed at the end of the test.
func pinned(t testing.TB, n int) []byte {
	t.Helper()
	b, err := AllocPinned(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { FreePinned(b) })
	return b
}

func TestSetup(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		if r.Fd() < 0 {
			t.Errorf("Fd() = %d", r.Fd())
		}
		if r.SQEntries() != 8 || r.CQEntries() < 16 {
			t.Errorf("SQ %d, CQ %d entries; want 8 and at least 16", r.SQEntries(), r.CQEntries())
		}
		if r.Features()&FeatSingleMmap != 0 && &r.sqRing[0] != &r.cqRing[0] {
			t.Error("FeatSingleMmap but two ring mappings")
		}
		t.Logf("setup flags %#x, features %#x, SQ %d, CQ %d", r.Flags(), r.Features(), r.SQEntries(), r.CQEntries())
	})
}

func TestSetupErrors(t *testing.T) {
	if _, err := Setup(8, &Options{Flags: 1 << 1}); err == nil { // IORING_SETUP_SQPOLL
		t.Error("Setup accepted a setup flag the package does not handle")
	}
	if _, err := Setup(0, nil); err == nil {
		t.Error("Setup(0) succeeded")
	}
}

// fakeSetup replaces io_uring_setup for the test: refuse decides the errno
// for a given set of flags, 0 to call the kernel.
func fakeSetup(t *testing.T, refuse func(flags uint32) unix.Errno) *[]uint32 {
	real := ioUringSetup
	t.Cleanup(func() { ioUringSetup = real })
	var tried []uint32
	ioUringSetup = func(entries uint32, p *params) (int, error) {
		tried = append(tried, p.flags)
		if errno := refuse(p.flags); errno != 0 {
			return -1, errno
		}
		return real(entries, p)
	}
	return &tried
}

func TestSetupAttempts(t *testing.T) {
	const tf = setupTaskrunFlag
	all := SetupSingleIssuer | SetupDeferTaskrun | SetupCoopTaskrun | SetupSubmitAll | SetupCQSize | tf
	want := []uint32{
		all,
		all &^ SetupDeferTaskrun,
		SetupCoopTaskrun | tf | SetupSubmitAll | SetupCQSize,
		SetupSubmitAll | SetupCQSize,
		SetupCQSize,
		0,
	}
	if got := setupAttempts(all); !slices.Equal(got, want) {
		t.Errorf("setupAttempts(%#x) = %#x, want %#x", all, got, want)
	}
	// DEFER_TASKRUN alone keeps TASKRUN_FLAG only while it stays.
	want = []uint32{SetupSingleIssuer | SetupDeferTaskrun | tf, SetupSingleIssuer, 0}
	if got := setupAttempts(SetupSingleIssuer | SetupDeferTaskrun | tf); !slices.Equal(got, want) {
		t.Errorf("setupAttempts(single|defer) = %#x, want %#x", got, want)
	}
	if got := setupAttempts(0); !slices.Equal(got, []uint32{0}) {
		t.Errorf("setupAttempts(0) = %#x", got)
	}
}

func TestSetupFallback(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// A 5.19 kernel: no SINGLE_ISSUER, no DEFER_TASKRUN.
	tried := fakeSetup(t, func(flags uint32) unix.Errno {
		if flags&(SetupSingleIssuer|SetupDeferTaskrun) != 0 {
			return unix.EINVAL
		}
		return 0
	})
	all := SetupSingleIssuer | SetupDeferTaskrun | SetupCoopTaskrun | SetupSubmitAll
	r, err := Setup(8, &Options{Flags: all, CQEntries: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := SetupCoopTaskrun | setupTaskrunFlag | SetupSubmitAll | SetupCQSize
	if r.Flags() != want {
		t.Errorf("flags %#x after fallback, want %#x (tried %#x)", r.Flags(), want, *tried)
	}
	if len(*tried) != 3 {
		t.Errorf("tried %#x, want three attempts", *tried)
	}

	// A kernel that refuses every flag ends with a plain ring.
	*tried = nil
	fakeSetup(t, func(flags uint32) unix.Errno {
		if flags != 0 {
			return unix.EINVAL
		}
		return 0
	})
	r2, err := Setup(8, &Options{Flags: all, CQEntries: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.Flags() != 0 || r2.CQEntries() != 16 {
		t.Errorf("plain fallback: flags %#x, CQ %d", r2.Flags(), r2.CQEntries())
	}
}

func TestSetupUnusable(t *testing.T) {
	for _, c := range []struct {
		errno       unix.Errno
		unsupported bool
		permission  bool
	}{
		{unix.ENOSYS, true, false},
		{unix.EPERM, false, true},
		{unix.EACCES, false, true},
	} {
		fakeSetup(t, func(uint32) unix.Errno { return c.errno })
		r, err := Setup(8, nil)
		if r != nil {
			t.Fatalf("Setup succeeded under %v", c.errno)
		}
		var ue *UnusableError
		if !errors.As(err, &ue) {
			t.Fatalf("Setup under %v: %v, want *UnusableError", c.errno, err)
		}
		if errors.Is(err, errors.ErrUnsupported) != c.unsupported || errors.Is(err, os.ErrPermission) != c.permission {
			t.Errorf("%v: errors.Is ErrUnsupported %v, ErrPermission %v; want %v, %v", err,
				errors.Is(err, errors.ErrUnsupported), errors.Is(err, os.ErrPermission), c.unsupported, c.permission)
		}
		if err := Check(OpNop); !errors.As(err, &ue) {
			t.Errorf("Check under %v: %v, want *UnusableError", c.errno, err)
		}
	}
	fakeSetup(t, func(uint32) unix.Errno { return unix.ENOMEM })
	if _, err := Setup(8, nil); !errors.Is(err, unix.ENOMEM) || errors.As(err, new(*UnusableError)) {
		t.Errorf("Setup under ENOMEM: %v, want a plain ENOMEM", err)
	}
}

func TestProbeAndCheck(t *testing.T) {
	r := newRing(t, 4, nil)
	p, err := r.Probe()
	if err != nil {
		t.Fatal(err)
	}
	for op := range Op(len(opNames)) {
		if opNames[op] != "" && !p.Supports(op) {
			t.Errorf("kernel lacks %v", op)
		}
	}
	if p.Supports(255) {
		t.Error("Supports(255)")
	}
	if err := Check(OpNop, OpAccept, OpConnect, OpSplice, OpPollAdd, OpRecv, OpSend, OpShutdown, OpClose, OpAsyncCancel, OpTimeout, OpLinkTimeout); err != nil {
		t.Errorf("Check: %v", err)
	}
	err = Check(OpNop, Op(250))
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "kernel lacks IORING_OP(250)") {
		t.Errorf("Check(missing op) = %v", err)
	}
}

func TestNopBatches(t *testing.T) {
	eachConfig(t, 32, func(t *testing.T, r *Ring) {
		for _, n := range []int{1, 7, 32} {
			for i := range n {
				s := getSQE(t, r)
				s.PrepNop()
				s.SetUserData(uint64(1000 + i))
			}
			got, err := r.SubmitAndWait(uint32(n))
			if err != nil || got != n {
				t.Fatalf("SubmitAndWait(%d) = %d, %v", n, got, err)
			}
			if r.CQReady() != uint32(n) {
				t.Fatalf("CQReady() = %d after SubmitAndWait(%d)", r.CQReady(), n)
			}
			for i, c := range reap(t, r, n) {
				if c.UserData() != uint64(1000+i) || c.Res() != 0 || c.Flags() != 0 {
					t.Fatalf("CQE %d = %+v", i, c)
				}
			}
		}
	})
}

func TestSQFull(t *testing.T) {
	eachConfig(t, 4, func(t *testing.T, r *Ring) {
		for i := range 4 {
			s := r.GetSQE()
			if s == nil {
				t.Fatalf("GetSQE %d = nil", i)
			}
			s.PrepNop()
			s.SetUserData(uint64(i))
		}
		if s := r.GetSQE(); s != nil {
			t.Fatal("GetSQE on a full SQ returned an entry")
		}
		if _, err := r.NextSQE(); err != ErrSQFull {
			t.Fatalf("NextSQE on a full SQ: %v, want ErrSQFull", err)
		}
		if n := r.SQSpaceLeft(); n != 0 {
			t.Fatalf("SQSpaceLeft() = %d on a full SQ", n)
		}
		if n, err := r.Submit(); n != 4 || err != nil {
			t.Fatalf("Submit() = %d, %v; want 4", n, err)
		}
		if n := r.SQSpaceLeft(); n != 4 {
			t.Fatalf("SQSpaceLeft() = %d after Submit", n)
		}
		if len(byUserData(t, reap(t, r, 4))) != 4 {
			t.Fatal("lost a CQE")
		}
		if n, err := r.Submit(); n != 0 || err != nil {
			t.Fatalf("empty Submit() = %d, %v", n, err)
		}
	})
}

func TestSubmitAndWaitTimeout(t *testing.T) {
	eachConfig(t, 4, func(t *testing.T, r *Ring) {
		start := time.Now()
		_, err := r.SubmitAndWaitTimeout(1, 30*time.Millisecond)
		if !errors.Is(err, unix.ETIME) {
			t.Fatalf("SubmitAndWaitTimeout with nothing in flight: %v, want ETIME", err)
		}
		if d := time.Since(start); d < 25*time.Millisecond || d > 2*time.Second {
			t.Errorf("timed out after %v, want about 30ms", d)
		}
		s := getSQE(t, r)
		s.PrepNop()
		if n, err := r.SubmitAndWaitTimeout(1, time.Second); n != 1 || err != nil {
			t.Fatalf("SubmitAndWaitTimeout(1) = %d, %v", n, err)
		}
		reap(t, r, 1)
	})
}

func TestAcceptConnect(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpAccept, OpConnect)
		ln, addr := listenTCP(t)
		client, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		closeFds(t, client)
		peer, dst := new(RawSockaddr), new(RawSockaddr)
		if err := dst.Set(addr); err != nil {
			t.Fatal(err)
		}
		s := getSQE(t, r)
		s.PrepAccept(ln, peer, unix.SOCK_CLOEXEC)
		s.SetUserData(1)
		s = getSQE(t, r)
		s.PrepConnect(client, dst)
		s.SetUserData(2)
		cqes := byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[2], 0)
		accepted := int(cqes[1].Res())
		if accepted < 0 {
			t.Fatalf("accept: %v", cqes[1].Err())
		}
		closeFds(t, accepted)

		got, err := peer.Sockaddr()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := unix.Getsockname(client)
		if g, w := got.(*unix.SockaddrInet4), want.(*unix.SockaddrInet4); *g != *w {
			t.Errorf("accepted peer %+v, client is %+v", g, w)
		}
		write(t, client, []byte("hi"))
		if b := readFull(t, accepted, 2); string(b) != "hi" {
			t.Errorf("read %q", b)
		}
	})
}

func TestMultishotAccept(t *testing.T) {
	const conns = 24
	// A multishot request ends when its CQE would overflow the CQ, so the
	// CQ must hold every accept we leave unreaped.
	eachConfigCQ(t, 8, 2*conns, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpAccept, OpAsyncCancel)
		ln, addr := listenTCP(t)
		s := getSQE(t, r)
		s.PrepMultishotAccept(ln, unix.SOCK_CLOEXEC)
		s.SetUserData(7)
		submit(t, r)
		for range conns {
			dialTCP(t, addr)
		}
		for i, c := range reap(t, r, conns) {
			if c.UserData() != 7 || c.Res() < 0 || !c.More() {
				t.Fatalf("accept CQE %d: %+v (%v)", i, c, c.Err())
			}
			closeFds(t, int(c.Res()))
		}
		s = getSQE(t, r)
		s.PrepCancel(7, 0)
		s.SetUserData(8)
		cqes := byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[8], 0)
		if c := cqes[7]; c.Res() != -int32(unix.ECANCELED) || c.More() {
			t.Fatalf("cancelled multishot accept: %+v", c)
		}
	})
}

func TestSplice(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpSplice)
		src, srcPeer := tcpPair(t)
		dst, dstPeer := tcpPair(t)
		pr, pw := pipe(t)
		msg := bytes.Repeat([]byte("splice "), 1000)
		write(t, srcPeer, msg)
		// Wait for all of it to be readable, so one splice moves it all.
		for {
			n, err := unix.IoctlGetInt(src, unix.SIOCINQ)
			if err != nil {
				t.Fatal(err)
			}
			if n == len(msg) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		s := getSQE(t, r)
		s.PrepSplice(src, -1, pw, -1, uint32(len(msg)), 0)
		s.SetFlags(FlagIOLink)
		s.SetUserData(1)
		s = getSQE(t, r)
		s.PrepSplice(pr, -1, dst, -1, uint32(len(msg)), 0)
		s.SetUserData(2)
		cqes := byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[1], int32(len(msg)))
		wantRes(t, cqes[2], int32(len(msg)))
		if got := readFull(t, dstPeer, len(msg)); !bytes.Equal(got, msg) {
			t.Error("spliced bytes differ")
		}
	})
}

func TestSendRecvShutdown(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpSend, OpRecv, OpShutdown)
		a, b := tcpPair(t)
		buf := pinned(t, 64)
		out := pinned(t, 4)
		copy(out, "ping")
		s := getSQE(t, r)
		s.PrepRecv(b, buf, 0)
		s.SetUserData(1)
		s = getSQE(t, r)
		s.PrepSend(a, out, unix.MSG_NOSIGNAL)
		s.SetUserData(2)
		cqes := byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[1], 4)
		wantRes(t, cqes[2], 4)
		if string(buf[:4]) != "ping" {
			t.Errorf("received %q", buf[:4])
		}

		s = getSQE(t, r)
		s.PrepShutdown(a, unix.SHUT_WR)
		s.SetUserData(3)
		s = getSQE(t, r)
		s.PrepRecv(b, buf, 0)
		s.SetUserData(4)
		cqes = byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[3], 0)
		wantRes(t, cqes[4], 0) // EOF
	})
}

func TestClose(t *testing.T) {
	eachConfig(t, 4, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpClose)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		s := getSQE(t, r)
		s.PrepClose(fd)
		s.SetUserData(1)
		wantRes(t, reapOne(t, r, 1), 0)
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("fd still open after close: %v", err)
		}
	})
}

func TestPoll(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpPollAdd, OpAsyncCancel)
		pr, pw := pipe(t)
		s := getSQE(t, r)
		s.PrepPollAdd(pr, unix.POLLIN)
		s.SetUserData(1)
		submit(t, r)
		write(t, pw, []byte("x"))
		c := reapOne(t, r, 1)
		if c.Res()&unix.POLLIN == 0 || c.More() {
			t.Fatalf("poll CQE %+v", c)
		}
		readFull(t, pr, 1)

		s = getSQE(t, r)
		s.PrepPollMultishot(pr, unix.POLLIN)
		s.SetUserData(2)
		submit(t, r)
		for i := range 3 {
			write(t, pw, []byte("y"))
			c := reapOne(t, r, 2)
			if c.Res()&unix.POLLIN == 0 || !c.More() {
				t.Fatalf("multishot poll CQE %d: %+v", i, c)
			}
			readFull(t, pr, 1)
		}
		s = getSQE(t, r)
		s.PrepCancel(2, 0)
		s.SetUserData(3)
		cqes := byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[3], 0)
		if c := cqes[2]; c.Res() != -int32(unix.ECANCELED) || c.More() {
			t.Fatalf("cancelled multishot poll: %+v", c)
		}
	})
}

func TestCancel(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpRecv, OpAsyncCancel)
		a, _ := tcpPair(t)
		buf := pinned(t, 16)
		s := getSQE(t, r)
		s.PrepRecv(a, buf, 0)
		s.SetUserData(10)
		submit(t, r)
		s = getSQE(t, r)
		s.PrepCancel(10, 0)
		s.SetUserData(11)
		s = getSQE(t, r)
		s.PrepCancel(99, 0)
		s.SetUserData(12)
		cqes := byUserData(t, reap(t, r, 3))
		wantRes(t, cqes[10], -int32(unix.ECANCELED))
		wantRes(t, cqes[11], 0)
		wantRes(t, cqes[12], -int32(unix.ENOENT))

		// By descriptor, every request on it.
		for ud := range uint64(2) {
			s = getSQE(t, r)
			s.PrepPollAdd(a, unix.POLLIN)
			s.SetUserData(20 + ud)
		}
		submit(t, r)
		s = getSQE(t, r)
		s.PrepCancelFd(a, CancelAll)
		s.SetUserData(22)
		cqes = byUserData(t, reap(t, r, 3))
		wantRes(t, cqes[20], -int32(unix.ECANCELED))
		wantRes(t, cqes[21], -int32(unix.ECANCELED))
		wantRes(t, cqes[22], 2)
	})
}

func TestTimeout(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpTimeout)
		ts := new(Timespec)
		*ts = NewTimespec(20 * time.Millisecond)
		start := time.Now()
		s := getSQE(t, r)
		s.PrepTimeout(ts, 0, 0)
		s.SetUserData(1)
		wantRes(t, reapOne(t, r, 1), -int32(unix.ETIME))
		if d := time.Since(start); d < 15*time.Millisecond {
			t.Errorf("timeout fired after %v, want 20ms", d)
		}

		// A timeout with a count completes (with 0) once that many other
		// requests have.
		long := new(Timespec)
		*long = NewTimespec(10 * time.Second)
		s = getSQE(t, r)
		s.PrepTimeout(long, 2, 0)
		s.SetUserData(2)
		for ud := range uint64(2) {
			s = getSQE(t, r)
			s.PrepNop()
			s.SetUserData(3 + ud)
		}
		cqes := byUserData(t, reap(t, r, 3))
		wantRes(t, cqes[2], 0)
	})
}

func TestLinkTimeout(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpRecv, OpLinkTimeout)
		a, b := tcpPair(t)
		buf := pinned(t, 16)
		ts := new(Timespec)
		*ts = NewTimespec(20 * time.Millisecond)

		// A recv that gets nothing is cancelled by its link timeout.
		s := getSQE(t, r)
		s.PrepRecv(a, buf, 0)
		s.SetFlags(FlagIOLink)
		s.SetUserData(1)
		s = getSQE(t, r)
		s.PrepLinkTimeout(ts, 0)
		s.SetUserData(2)
		cqes := byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[1], -int32(unix.ECANCELED))
		wantRes(t, cqes[2], -int32(unix.ETIME))

		// A recv that gets data in time cancels its link timeout.
		write(t, b, []byte("data"))
		s = getSQE(t, r)
		s.PrepRecv(a, buf, 0)
		s.SetFlags(FlagIOLink)
		s.SetUserData(3)
		s = getSQE(t, r)
		s.PrepLinkTimeout(ts, 0)
		s.SetUserData(4)
		cqes = byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[3], 4)
		wantRes(t, cqes[4], -int32(unix.ECANCELED))
	})
}

func TestLinks(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		for ud := range uint64(3) {
			s := getSQE(t, r)
			s.PrepNop()
			s.SetUserData(ud)
			if ud < 2 {
				s.SetFlags(FlagIOLink)
			}
		}
		for i, c := range reap(t, r, 3) {
			if c.UserData() != uint64(i) || c.Res() != 0 {
				t.Fatalf("linked CQE %d: %+v", i, c)
			}
		}

		// A failed request cancels the rest of its chain.
		buf := pinned(t, 8)
		s := getSQE(t, r)
		s.PrepRecv(-1, buf, 0)
		s.SetFlags(FlagIOLink)
		s.SetUserData(10)
		s = getSQE(t, r)
		s.PrepNop()
		s.SetUserData(11)
		cqes := byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[10], -int32(unix.EBADF))
		wantRes(t, cqes[11], -int32(unix.ECANCELED))
	})
}

func TestCQESkipSuccess(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		if r.Features()&FeatCQESkip == 0 {
			t.Skip("kernel lacks IORING_FEAT_CQE_SKIP")
		}
		s := getSQE(t, r)
		s.PrepNop()
		s.SetFlags(FlagCQESkipSuccess)
		s.SetUserData(1)
		s = getSQE(t, r)
		s.PrepNop()
		s.SetUserData(2)
		reapOne(t, r, 2)
		if n := r.CQReady(); n != 0 {
			t.Fatalf("%d CQEs ready after a skipped success", n)
		}
	})
}

// TestCQOverflow posts more completions than the CQ holds, without reaping,
// and checks that none are lost (IORING_FEAT_NODROP) and that PeekBatch
// flushes the kernel's backlog in order.
func TestCQOverflow(t *testing.T) {
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			opts := &Options{CQEntries: 4}
			if c.opts != nil {
				opts.Flags = c.opts.Flags
			}
			r := newRing(t, 4, opts)
			if r.CQEntries() != 4 {
				t.Fatalf("CQ has %d entries, want 4", r.CQEntries())
			}
			if r.Features()&FeatNoDrop == 0 {
				t.Skip("kernel lacks IORING_FEAT_NODROP")
			}
			const total = 20
			for i := 0; i < total; {
				for range 4 {
					s := getSQE(t, r)
					s.PrepNop()
					s.SetUserData(uint64(i))
					i++
				}
				if n, err := r.Submit(); err != nil || n != 4 {
					t.Fatalf("Submit() = %d, %v", n, err)
				}
			}
			if atomic.LoadUint32(r.sqFlags)&sqCQOverflow == 0 {
				t.Fatal("IORING_SQ_CQ_OVERFLOW not set after overflowing the CQ")
			}
			var got []uint64
			var batch [8]*CQE
			for tries := 0; len(got) < total && tries < 100; tries++ {
				n := r.PeekBatch(batch[:])
				for _, c := range batch[:n] {
					got = append(got, c.UserData())
				}
				r.Advance(n)
			}
			if len(got) != total {
				t.Fatalf("reaped %d of %d CQEs: %v", len(got), total, got)
			}
			for i, ud := range got {
				if ud != uint64(i) {
					t.Fatalf("CQEs out of order: %v", got)
				}
			}
			if d := r.dropped(); d != 0 {
				t.Errorf("kernel dropped %d CQEs", d)
			}
			if atomic.LoadUint32(r.sqFlags)&sqCQOverflow != 0 {
				t.Error("IORING_SQ_CQ_OVERFLOW still set after reaping everything")
			}
		})
	}
}

func TestRecvMultishotBufRing(t *testing.T) {
	const (
		bgid    = 3
		entries = 4
		bufSize = 16
	)
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpRecv)
		br, err := r.RegisterBufRing(bgid, entries)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("no provided buffer rings: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if br.Group() != bgid || br.Entries() != entries {
			t.Fatalf("BufRing group %d, %d entries", br.Group(), br.Entries())
		}
		mem := pinned(t, entries*bufSize)
		buf := func(bid uint16) []byte { return mem[int(bid)*bufSize:][:bufSize] }
		for bid := range uint16(entries) {
			br.Add(bid, buf(bid), int(bid))
		}
		br.Advance(entries)

		a, b := tcpPair(t)
		msg := make([]byte, 100)
		for i := range msg {
			msg[i] = byte(i)
		}
		write(t, b, msg)
		arm := func() {
			s := getSQE(t, r)
			s.PrepRecvMultishot(a, bgid, 0)
			s.SetUserData(5)
			submit(t, r)
		}
		// consume reaps CQEs until the request ends or want bytes arrived in
		// all, checking buffer IDs and recycling the buffers if asked.
		var received []byte
		consume := func(want int, recycle bool) (last CQE) {
			for len(received) < want {
				c := reapOne(t, r, 5)
				if c.Res() <= 0 {
					return c
				}
				bid, ok := c.BufferID()
				if !ok || bid >= entries {
					t.Fatalf("recv CQE without a valid buffer: %+v", c)
				}
				if !c.More() {
					t.Fatalf("multishot recv ended early: %+v", c)
				}
				received = append(received, buf(bid)[:c.Res()]...)
				if recycle {
					br.Recycle(bid, buf(bid))
				}
			}
			return CQE{}
		}

		arm()
		last := consume(len(msg), false)
		if last.Res() != -int32(unix.ENOBUFS) || last.More() {
			t.Fatalf("after using every buffer: %+v (%v), want -ENOBUFS without More", last, last.Err())
		}
		if len(received) != entries*bufSize {
			t.Fatalf("received %d bytes into %d buffers of %d", len(received), entries, bufSize)
		}

		// Give every buffer back, in another order, and re-arm.
		for i, bid := range []uint16{2, 0, 3, 1} {
			br.Add(bid, buf(bid), i)
		}
		br.Advance(entries)
		arm()
		consume(len(msg), true)
		if !bytes.Equal(received, msg) {
			t.Fatalf("received %v\nwant %v", received, msg)
		}

		// Many more buffers' worth than the ring holds, one at a time,
		// recycled as they come: the tail laps the ring several times.
		received = received[:0]
		var msg2 []byte
		for i := range 5 * entries {
			chunk := bytes.Repeat([]byte{byte('a' + i)}, bufSize)
			msg2 = append(msg2, chunk...)
			write(t, b, chunk)
			consume(len(msg2), true)
		}
		if !bytes.Equal(received, msg2) {
			t.Fatalf("received %q\nwant %q", received, msg2)
		}

		unix.Shutdown(b, unix.SHUT_WR)
		if c := reapOne(t, r, 5); c.Res() != 0 || c.More() {
			t.Fatalf("at EOF: %+v, want res 0 without More", c)
		}
		if err := br.Close(); err != nil {
			t.Fatalf("BufRing.Close: %v", err)
		}
		if br2, err := r.RegisterBufRing(bgid, entries); err != nil {
			t.Fatalf("re-registering group %d after Close: %v", bgid, err)
		} else if br2 == nil {
			t.Fatal("nil BufRing")
		}
	})
}

func TestFixedFiles(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		requireOps(t, r, OpSend, OpAccept, OpClose)
		if err := r.RegisterFilesSparse(8); err != nil {
			t.Fatal(err)
		}
		a, b := tcpPair(t)
		if n, err := r.UpdateFiles(1, []int32{int32(a)}); err != nil || n != 1 {
			t.Fatalf("UpdateFiles = %d, %v", n, err)
		}
		out := pinned(t, 5)
		copy(out, "fixed")
		s := getSQE(t, r)
		s.PrepSend(1, out, unix.MSG_NOSIGNAL)
		s.SetFlags(FlagFixedFile)
		s.SetUserData(1)
		wantRes(t, reapOne(t, r, 1), 5)
		if got := readFull(t, b, 5); string(got) != "fixed" {
			t.Errorf("read %q", got)
		}

		// Accept straight into slot 4, then into slots the kernel picks.
		ln, addr := listenTCP(t)
		s = getSQE(t, r)
		s.PrepAcceptDirect(ln, nil, 0, 4)
		s.SetUserData(2)
		submit(t, r)
		c1 := dialTCP(t, addr)
		wantRes(t, reapOne(t, r, 2), 0) // direct accept into a given slot reports 0
		s = getSQE(t, r)
		s.PrepMultishotAcceptDirect(ln, 0)
		s.SetUserData(3)
		submit(t, r)
		dialTCP(t, addr)
		dialTCP(t, addr)
		slots := map[int32]bool{}
		for _, c := range reap(t, r, 2) {
			if c.UserData() != 3 || c.Res() < 0 || !c.More() || c.Res() == 1 || c.Res() == 4 {
				t.Fatalf("multishot direct accept: %+v (%v)", c, c.Err())
			}
			slots[c.Res()] = true
		}
		if len(slots) != 2 {
			t.Fatalf("two accepts shared a slot: %v", slots)
		}

		// Slot 4 holds the connection to c1: send through it, then close it.
		s = getSQE(t, r)
		s.PrepSend(4, out[:2], unix.MSG_NOSIGNAL)
		s.SetFlags(FlagFixedFile | FlagIOLink)
		s.SetUserData(4)
		s = getSQE(t, r)
		s.PrepCloseDirect(4)
		s.SetUserData(5)
		cqes := byUserData(t, reap(t, r, 2))
		wantRes(t, cqes[4], 2)
		wantRes(t, cqes[5], 0)
		if got := readFull(t, c1, 2); string(got) != "fi" {
			t.Errorf("read %q", got)
		}
		if n, err := r.UpdateFiles(1, []int32{-1}); err != nil || n != 1 {
			t.Fatalf("UpdateFiles(-1) = %d, %v", n, err)
		}
		s = getSQE(t, r)
		s.PrepCancel(3, 0)
		s.SetUserData(6)
		reap(t, r, 2)
		if err := r.UnregisterFiles(); err != nil {
			t.Fatalf("UnregisterFiles: %v", err)
		}
	})
}

func TestIOWQMaxWorkers(t *testing.T) {
	r := newRing(t, 4, nil)
	if _, _, err := r.RegisterIOWQMaxWorkers(4, 8); err != nil {
		if errors.Is(err, unix.EINVAL) {
			t.Skipf("kernel lacks IORING_REGISTER_IOWQ_MAX_WORKERS: %v", err)
		}
		t.Fatal(err)
	}
	b, u, err := r.RegisterIOWQMaxWorkers(0, 0) // 0: just read
	if err != nil || b != 4 || u != 8 {
		t.Fatalf("RegisterIOWQMaxWorkers(0, 0) = %d, %d, %v; want 4, 8", b, u, err)
	}
}

func TestCloseTwice(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := Setup(4, nil)
	if err != nil {
		t.Skip(err)
	}
	if _, err := r.RegisterBufRing(1, 8); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestAllocPinned(t *testing.T) {
	b, err := AllocPinned(10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 10000 {
		t.Fatalf("len %d", len(b))
	}
	b[9999] = 1
	if err := FreePinned(b[:10]); err != nil {
		t.Fatal(err)
	}
	if _, err := AllocPinned(0); err == nil {
		t.Error("AllocPinned(0) succeeded")
	}
}

// nopRoundTrip submits n NOPs, waits for them and reaps them.
func nopRoundTrip(r *Ring, n int, cqes []*CQE) error {
	for i := range n {
		s := r.GetSQE()
		if s == nil {
			return ErrSQFull
		}
		s.PrepNop()
		s.SetUserData(uint64(i))
	}
	if _, err := r.SubmitAndWait(uint32(n)); err != nil {
		return err
	}
	for got := 0; got < n; {
		k := r.PeekBatch(cqes)
		if k == 0 {
			return errors.New("CQE missing after SubmitAndWait")
		}
		r.Advance(k)
		got += k
	}
	return nil
}

func TestZeroAllocs(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		cqes := make([]*CQE, 8)
		var err error
		allocs := testing.AllocsPerRun(200, func() {
			if e := nopRoundTrip(r, 8, cqes); e != nil {
				err = e
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if allocs != 0 {
			t.Errorf("NOP round trip allocates %v times", allocs)
		}
		buf := pinned(t, 64)
		ts := &Timespec{Sec: 1}
		allocs = testing.AllocsPerRun(200, func() {
			s := r.GetSQE()
			s.PrepRecv(0, buf, 0)
			*s = SQE{}
			s.PrepTimeout(ts, 0, 0)
			*s = SQE{}
			s.PrepNop()
			r.SubmitAndWaitTimeout(1, time.Second)
			r.Advance(r.PeekBatch(cqes))
		})
		if allocs != 0 {
			t.Errorf("Prep, SubmitAndWaitTimeout and reap allocate %v times", allocs)
		}
	})
}

// TestPeekBatchFlushes checks that PeekBatch alone, with no SubmitAndWait,
// sees a completion the kernel defers as task work (IORING_SQ_TASKRUN).
func TestPeekBatchFlushes(t *testing.T) {
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		a, b := tcpPair(t)
		buf := pinned(t, 8)
		s := getSQE(t, r)
		s.PrepRecv(a, buf, 0)
		s.SetUserData(1)
		submit(t, r)
		write(t, b, []byte("x"))
		var batch [1]*CQE
		deadline := time.Now().Add(5 * time.Second)
		for r.PeekBatch(batch[:]) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no CQE seen by PeekBatch (sq flags %#x)", atomic.LoadUint32(r.sqFlags))
			}
			time.Sleep(time.Millisecond)
		}
		if c := *batch[0]; c.UserData() != 1 || c.Res() != 1 {
			t.Fatalf("CQE %+v", c)
		}
		r.Advance(1)
	})
}

// TestSingleIssuerOtherThread documents what SetupSingleIssuer means in Go:
// a goroutine on another thread gets EEXIST, not a hang or a lost SQE.
func TestSingleIssuerOtherThread(t *testing.T) {
	r := newRing(t, 4, &Options{Flags: SetupSingleIssuer | SetupDeferTaskrun})
	if r.Flags()&SetupSingleIssuer == 0 {
		t.Skip("kernel lacks IORING_SETUP_SINGLE_ISSUER")
	}
	s := getSQE(t, r)
	s.PrepNop()
	s.SetUserData(1)
	errc := make(chan error)
	go func() { // newRing locked this goroutine's thread: this one runs elsewhere
		_, err := r.SubmitAndWait(1)
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, unix.EEXIST) {
		t.Fatalf("SubmitAndWait from another thread: %v, want EEXIST", err)
	}
	reapOne(t, r, 1) // the SQE is still queued, and the owner submits it
}

// recvGroup registers provided-buffer group bgid with two empty entries of
// 32 bytes for a recv test (skipping where the kernel has no buffer rings),
// and returns it with the memory of each buffer ID.
func recvGroup(t *testing.T, r *Ring, bgid uint16) (*BufRing, func(bid uint16) []byte) {
	t.Helper()
	const entries, bufSize = 2, 32
	requireOps(t, r, OpRecv)
	br, err := r.RegisterBufRing(bgid, entries)
	if err != nil {
		t.Skipf("no provided buffer rings: %v", err)
	}
	t.Cleanup(func() { br.Close() })
	mem := pinned(t, entries*bufSize)
	return br, func(bid uint16) []byte { return mem[int(bid)*bufSize:][:bufSize] }
}

// TestRecvSelect: a single-shot recv takes its buffer from the group only
// when data arrives, reports its ID, and fails with -ENOBUFS when the group
// is empty.
func TestRecvSelect(t *testing.T) {
	const bgid = 4
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		br, buf := recvGroup(t, r, bgid)
		a, b := tcpPair(t)
		recv := func() CQE {
			s := getSQE(t, r)
			s.PrepRecvSelect(a, bgid, 0)
			s.SetUserData(9)
			submit(t, r)
			write(t, b, []byte("hello"))
			return reapOne(t, r, 9)
		}
		if c := recv(); c.Res() != -int32(unix.ENOBUFS) {
			t.Fatalf("recv with an empty group: %+v, want -ENOBUFS", c)
		}
		br.Recycle(1, buf(1))
		c := recv()
		bid, ok := c.BufferID()
		// The failed recv consumed nothing: the first "hello" is read now.
		if c.Res() != 5 || !ok || bid != 1 || c.More() {
			t.Fatalf("recv: %+v (buffer %d, %v), want 5 bytes in buffer 1, no More", c, bid, ok)
		}
		if got := string(buf(1)[:5]); got != "hello" {
			t.Fatalf("buffer holds %q", got)
		}
	})
}

// TestRecvPollFirst: a recv told to poll first still receives, both when
// its data is already waiting (the poll fires at once) and when the data
// comes later.
func TestRecvPollFirst(t *testing.T) {
	const bgid = 5
	eachConfig(t, 8, func(t *testing.T, r *Ring) {
		br, buf := recvGroup(t, r, bgid)
		br.Recycle(0, buf(0))
		br.Recycle(1, buf(1))
		a, b := tcpPair(t)
		recv := func(ud uint64, before, after string) {
			t.Helper()
			if before != "" {
				write(t, b, []byte(before))
			}
			s := getSQE(t, r)
			s.PrepRecvSelect(a, bgid, 0)
			s.SetPollFirst()
			s.SetUserData(ud)
			submit(t, r)
			if after != "" {
				write(t, b, []byte(after))
			}
			c := reapOne(t, r, ud)
			bid, ok := c.BufferID()
			want := before + after
			if c.Res() != int32(len(want)) || !ok || string(buf(bid)[:len(want)]) != want {
				t.Fatalf("recv: %+v (buffer %d, %v), want %q", c, bid, ok, want)
			}
		}
		recv(1, "ready", "")
		recv(2, "", "later")
	})
}
