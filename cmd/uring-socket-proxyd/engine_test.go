package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/ring"
)

// TestEngineReason classifies the errors forward.CheckUring answers, as
// ring makes them, under each kernel.io_uring_disabled policy.
func TestEngineReason(t *testing.T) {
	setupErr := func(errno unix.Errno) error {
		return &ring.UnusableError{Reason: "io_uring is not permitted (kernel.io_uring_disabled or a seccomp filter)",
			Err: os.NewSyscallError("io_uring_setup", errno)}
	}
	enosys := &ring.UnusableError{Reason: "kernel has no io_uring", Err: os.NewSyscallError("io_uring_setup", unix.ENOSYS)}
	eperm := setupErr(unix.EPERM)
	open := uringAccess{disabled: 0, group: -1}
	const (
		notPermitted = "io_uring unusable: io_uring_setup: operation not permitted "
		seccomp      = notPermitted + "(blocked by a seccomp filter or security policy)"
	)
	cases := []struct {
		name   string
		err    error
		access uringAccess
		want   string
	}{
		{"ENOSYS", enosys, open, "io_uring unusable: the kernel has no io_uring (ENOSYS)"},
		{"ENOSYS wrapped", fmt.Errorf("check: %w", enosys), open, "io_uring unusable: the kernel has no io_uring (ENOSYS)"},
		{"EPERM seccomp", eperm, open, seccomp},
		{"EPERM sysctl unknown", eperm, uringAccess{disabled: -1, group: -1}, seccomp},
		{"EPERM disabled=2", eperm, uringAccess{disabled: 2, group: -1, capSysAdmin: true},
			notPermitted + "(kernel.io_uring_disabled=2 disables io_uring for every process)"},
		{"EPERM disabled=1 unprivileged", eperm, uringAccess{disabled: 1, group: -1, gids: []int{1000}},
			notPermitted + "(kernel.io_uring_disabled=1 allows io_uring only with CAP_SYS_ADMIN, which this process lacks)"},
		{"EPERM disabled=1 not in group", eperm, uringAccess{disabled: 1, group: 990, gids: []int{1000, 27}},
			notPermitted + "(kernel.io_uring_disabled=1 allows io_uring only with CAP_SYS_ADMIN or in group 990 (kernel.io_uring_group), and this process has neither)"},
		{"EPERM disabled=1 in group", eperm, uringAccess{disabled: 1, group: 990, gids: []int{1000, 990}}, seccomp},
		{"EPERM disabled=1 CAP_SYS_ADMIN", eperm, uringAccess{disabled: 1, group: -1, capSysAdmin: true}, seccomp},
		{"EACCES", setupErr(unix.EACCES), open, "io_uring unusable: io_uring_setup: permission denied (blocked by a seccomp filter or security policy)"},
		{"missing opcode", &ring.UnusableError{Reason: "kernel lacks IORING_OP_SEND", Err: errors.ErrUnsupported}, open,
			"io_uring unusable: kernel lacks IORING_OP_SEND"},
		{"no probe", &ring.UnusableError{Reason: "kernel cannot probe io_uring opcodes", Err: errors.ErrUnsupported}, open,
			"io_uring unusable: kernel cannot probe io_uring opcodes"},
		{"no buffer rings", &ring.UnusableError{Reason: "kernel lacks provided buffer rings", Err: os.NewSyscallError("io_uring_register", unix.EINVAL)}, open,
			"io_uring unusable: kernel lacks provided buffer rings: io_uring_register: invalid argument"},
		{"other error", os.NewSyscallError("io_uring_setup", unix.ENOMEM), open,
			"io_uring unusable: io_uring_setup: cannot allocate memory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			read := false
			got := unusableReason(c.err, func() uringAccess { read = true; return c.access })
			if got != c.want {
				t.Errorf("reason\n got %q\nwant %q", got, c.want)
			}
			if perm := errors.Is(c.err, os.ErrPermission); read != perm {
				t.Errorf("sysctls read: %v, want %v", read, perm)
			}
		})
	}
}

// fakeEngine stands for the io_uring engine.
type fakeEngine struct{}

func (fakeEngine) Name() string                                         { return "fake" }
func (fakeEngine) Serve(context.Context, *forward.Server, func()) error { return nil }

// TestEngineChoice checks each --engine value against a check that
// passes or fails, with and without an io_uring engine built in.
func TestEngineChoice(t *testing.T) {
	pass := func() error { return nil }
	fail := func() error {
		return &ring.UnusableError{Reason: "kernel lacks IORING_OP_SEND", Err: errors.ErrUnsupported}
	}
	notCalled := func() error { t.Error("epoll ran the io_uring check"); return nil }
	fake := fakeEngine{}
	cases := []struct {
		name    string
		check   func() error
		uring   forward.Engine
		engine  string // "" for an error
		why     string // or the error
		wantErr bool
	}{
		{"epoll", notCalled, fake, "epoll", "chosen with --engine=epoll", false},
		{"auto", pass, fake, "fake", "io_uring usable", false},
		{"auto", fail, fake, "epoll", "io_uring unusable: kernel lacks IORING_OP_SEND", false},
		{"io_uring", pass, fake, "fake", "io_uring usable", false},
		{"io_uring", fail, fake, "", "Cannot use --engine=io_uring: io_uring unusable: kernel lacks IORING_OP_SEND; use --engine=epoll or auto.", true},
	}
	for _, c := range cases {
		e, why, err := chooseEngine(c.name, c.check, c.uring)
		if c.wantErr {
			if err == nil || err.Error() != c.why || e != nil {
				t.Errorf("%s: got %v, %q, %v; want error %q", c.name, e, why, err, c.why)
			}
			continue
		}
		if err != nil || e == nil || e.Name() != c.engine || why != c.why {
			t.Errorf("%s: got %v, %q, %v; want %s, %q", c.name, e, why, err, c.engine, c.why)
		}
	}
}
