//go:build linux

// Command seccompexec runs a program where io_uring is refused, as a
// container runtime's seccomp profile or a hardened kernel would refuse it:
//
//	seccompexec [-all] ERRNO PROGRAM [ARG...]
//
// It installs a seccomp filter that makes io_uring_setup(2) fail with
// ERRNO (a name such as ENOSYS or EPERM, or a number) and execs PROGRAM,
// which keeps the pid, so socket activation's LISTEN_PID stays right. With
// -all, io_uring_enter(2) and io_uring_register(2) fail too; io_uring_setup
// alone is enough to keep a process from making a ring, which is all the
// tests need, but a ring fd inherited across exec would still work.
//
// It is a test tool, not a sandbox: only native system calls of the
// architecture it was built for are filtered, everything else is allowed.
// It exits with 2 when it cannot install the filter or exec.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	all := flag.Bool("all", false, "also refuse io_uring_enter and io_uring_register")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: seccompexec [-all] ERRNO PROGRAM [ARG...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 2 {
		flag.Usage()
		os.Exit(2)
	}
	errno, err := parseErrno(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	path, err := exec.LookPath(flag.Arg(1))
	if err != nil {
		fail(err)
	}
	nrs := []uint32{unix.SYS_IO_URING_SETUP}
	if *all {
		nrs = append(nrs, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER)
	}
	arch, ok := auditArch[runtime.GOARCH]
	if !ok {
		fail(fmt.Errorf("no seccomp audit architecture known for %s", runtime.GOARCH))
	}

	// A filter binds the thread that installs it (and what it execs), so
	// the filter and the exec must happen on one thread.
	runtime.LockOSThread()
	if err := installFilter(program(arch, nrs, errno)); err != nil {
		fail(err)
	}
	fail(syscall.Exec(path, flag.Args()[1:], os.Environ()))
}

// auditArch is the AUDIT_ARCH_* value seccomp reports for native calls.
var auditArch = map[string]uint32{
	"amd64": unix.AUDIT_ARCH_X86_64,
	"arm64": unix.AUDIT_ARCH_AARCH64,
}

// Offsets in struct seccomp_data, which a filter reads.
const (
	dataNr   = 0 // offsetof(struct seccomp_data, nr)
	dataArch = 4 // offsetof(struct seccomp_data, arch)
)

// program returns a classic BPF seccomp program that answers errno to the
// system calls nrs of architecture arch and allows everything else.
func program(arch uint32, nrs []uint32, errno syscall.Errno) []unix.SockFilter {
	n := uint8(len(nrs))
	p := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: dataArch},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: arch, Jf: n + 1}, // other arch: allow
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: dataNr},
	}
	for i, nr := range nrs {
		p = append(p, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: nr, Jt: n - uint8(i)})
	}
	return append(p,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(errno)&unix.SECCOMP_RET_DATA},
	)
}

// installFilter sets no_new_privs, which lets an unprivileged process
// install a filter, and installs p on the calling thread.
func installFilter(p []unix.SockFilter) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", err)
	}
	prog := unix.SockFprog{Len: uint16(len(p)), Filter: &p[0]}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(p)
	if e != 0 {
		return os.NewSyscallError("seccomp(SECCOMP_SET_MODE_FILTER)", e)
	}
	return nil
}

// parseErrno reads an errno name ("EPERM") or number ("1").
func parseErrno(s string) (syscall.Errno, error) {
	if n, err := strconv.ParseUint(s, 10, 12); err == nil && n > 0 {
		return syscall.Errno(n), nil
	}
	for n := syscall.Errno(1); n < 4096; n++ {
		if unix.ErrnoName(n) == s {
			return n, nil
		}
	}
	return 0, fmt.Errorf("unknown errno %q", s)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "seccompexec: %v\n", err)
	os.Exit(2)
}
