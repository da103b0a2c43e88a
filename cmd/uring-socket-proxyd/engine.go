package main

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/fallback"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/ring"
)

// selectEngine picks the engine for --engine=NAME ("auto", "io_uring" or
// "epoll") and returns it with the reason main logs, e.g. "io_uring
// usable" or "io_uring unusable: the kernel has no io_uring (ENOSYS)".
// auto runs io_uring when forward.CheckUring passes and epoll otherwise;
// io_uring answers an error instead, which main prints before it exits 1.
func selectEngine(name string, _ *forward.Logger) (forward.Engine, string, error) {
	return chooseEngine(name, forward.CheckUring, forward.UringEngine{})
}

// chooseEngine is selectEngine with the io_uring check and engine given.
func chooseEngine(name string, check func() error, uring forward.Engine) (forward.Engine, string, error) {
	if name == "epoll" {
		return fallback.Engine{}, "chosen with --engine=epoll", nil
	}
	err := check()
	switch {
	case err == nil:
		return uring, "io_uring usable", nil
	case name == "io_uring":
		return nil, "", errors.New("Cannot use --engine=io_uring: " + unusableReason(err, readUringAccess) + "; use --engine=epoll or auto.")
	}
	return fallback.Engine{}, unusableReason(err, readUringAccess), nil
}

// unusableReason says in one phrase why io_uring cannot run, from the
// error of forward.CheckUring, in the form "io_uring unusable: …". For
// EPERM it asks access (read only then) whether kernel.io_uring_disabled
// forbids this process io_uring, and otherwise blames a seccomp filter or
// a security module, the only other sources of EPERM from io_uring_setup.
//
// ENOSYS reads "the kernel has no io_uring (ENOSYS)"; a seccomp filter
// that answers ENOSYS cannot be told apart from a kernel built without
// io_uring.
func unusableReason(err error, access func() uringAccess) string {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return "io_uring unusable: the kernel has no io_uring (ENOSYS)"
	case errors.Is(err, os.ErrPermission):
		call := "permission denied"
		if se := (*os.SyscallError)(nil); errors.As(err, &se) {
			call = se.Error() // "io_uring_setup: operation not permitted"
		}
		why, forbids := access().forbids()
		if !forbids {
			why = "blocked by a seccomp filter or security policy"
		}
		return "io_uring unusable: " + call + " (" + why + ")"
	}
	// errors.ErrUnsupported other than ENOSYS is a missing opcode or
	// feature, which ring names: "io_uring unusable: kernel lacks
	// IORING_OP_SPLICE".
	if ue := (*ring.UnusableError)(nil); errors.As(err, &ue) {
		return ue.Error()
	}
	return "io_uring unusable: " + err.Error()
}

// uringAccess is what the kernel.io_uring_disabled policy looks at.
type uringAccess struct {
	disabled    int   // kernel.io_uring_disabled (0, 1 or 2), -1 if unknown
	group       int   // kernel.io_uring_group, -1 if none
	capSysAdmin bool  // CAP_SYS_ADMIN is in the effective set
	gids        []int // the effective group and the supplementary groups
}

// forbids reports whether kernel.io_uring_disabled denies this process
// io_uring, and if so says why. It mirrors the kernel's
// io_uring_allowed(): 2 denies everyone; 1 allows CAP_SYS_ADMIN and
// members of kernel.io_uring_group (none when it is -1); 0 allows all.
func (a uringAccess) forbids() (string, bool) {
	switch {
	case a.disabled == 2:
		return "kernel.io_uring_disabled=2 disables io_uring for every process", true
	case a.disabled != 1 || a.capSysAdmin:
		return "", false
	case a.group < 0:
		return "kernel.io_uring_disabled=1 allows io_uring only with CAP_SYS_ADMIN, which this process lacks", true
	case !slices.Contains(a.gids, a.group):
		return "kernel.io_uring_disabled=1 allows io_uring only with CAP_SYS_ADMIN or in group " +
			strconv.Itoa(a.group) + " (kernel.io_uring_group), and this process has neither", true
	}
	return "", false
}

// readUringAccess reads the sysctls and this process's credentials. In a
// user namespace it may think the process privileged when, for the
// kernel's check, it is not; the reason then blames a security policy.
func readUringAccess() uringAccess {
	a := uringAccess{
		disabled: readSysctlInt("/proc/sys/kernel/io_uring_disabled", -1),
		group:    readSysctlInt("/proc/sys/kernel/io_uring_group", -1),
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) == nil {
		a.capSysAdmin = data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0
	}
	a.gids, _ = unix.Getgroups()
	a.gids = append(a.gids, unix.Getegid())
	return a
}

// readSysctlInt reads an integer from a /proc/sys file, or answers def.
func readSysctlInt(path string, def int) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return def
	}
	return n
}
