package forward

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// checkPipe fails unless pp.Size is the capacity the kernel gave the pipe.
func checkPipe(pp Pipe) error {
	got, err := unix.FcntlInt(uintptr(pp.R), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return err
	}
	if got != pp.Size {
		return fmt.Errorf("pipe says Size %d, kernel says %d", pp.Size, got)
	}
	return nil
}

func TestPipePoolGivesLargestGrantedSize(t *testing.T) {
	p := PipePool{Max: 1}
	defer p.CloseAll()
	a, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPipe(a); err != nil {
		t.Fatal(err)
	}
	max, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		t.Fatal(err)
	}
	limit, _ := strconv.Atoi(strings.TrimSpace(string(max)))
	if limit >= PipeSizes[0] && a.Size != PipeSizes[0] {
		t.Errorf("pipe-max-size is %d, yet the pipe has %d, not %d", limit, a.Size, PipeSizes[0])
	}
	p.Put(a)
	b, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	if b != a {
		t.Errorf("the pool made a new pipe %v instead of reusing %v", b, a)
	}
	p.Put(b)
	c, _ := p.Get()
	d, _ := p.Get()
	p.Put(c)
	p.Put(d) // over Max: closed
	if _, err := unix.FcntlInt(uintptr(d.R), unix.F_GETPIPE_SZ, 0); err != unix.EBADF {
		t.Errorf("a pipe beyond Max was kept open (fcntl: %v)", err)
	}
}

// TestPipesPastUserLimit runs a helper as an unprivileged user that holds
// pipes until it is past pipe-user-pages-soft, where the kernel refuses to
// let pipes grow: every pipe must still know its true, smaller size, the
// first ones must be the largest, and the limit must come no sooner than
// it would with 256 KiB pipes alone.
func TestPipesPastUserLimit(t *testing.T) {
	if os.Getenv("PIPE_HELPER") == "1" {
		pipeHelper()
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the helper as nobody")
	}
	soft, err := os.ReadFile("/proc/sys/fs/pipe-user-pages-soft")
	if err != nil || strings.TrimSpace(string(soft)) == "0" {
		t.Skip("no pipe-user-pages-soft limit here")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary's own directory is private to root: copy it where
	// nobody may run it.
	dir, err := os.MkdirTemp("", "pipetest")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "forward.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestPipesPastUserLimit$")
	cmd.Env = append(os.Environ(), "PIPE_HELPER=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sizes:") {
		t.Fatalf("helper said nothing about its pipes:\n%s", out)
	}
	t.Logf("%s", out)
}

// pipeHelper holds new pipes until their sizes have fallen below the
// largest, checks each one's Size, and says what it saw.
func pipeHelper() {
	var p PipePool
	var held []Pipe
	var sizes []string
	last := 0
	for i := 0; i < 400; i++ {
		pp, err := p.Get()
		if err != nil {
			fmt.Printf("Get after %d pipes: %v\n", i, err)
			os.Exit(1)
		}
		held = append(held, pp)
		if err := checkPipe(pp); err != nil {
			fmt.Printf("pipe %d: %v\n", i, err)
			os.Exit(1)
		}
		if pp.Size != last {
			sizes = append(sizes, fmt.Sprintf("%d from pipe %d", pp.Size, i))
			last = pp.Size
		}
		if pp.Size < PipeSizes[len(PipeSizes)-1] {
			if i < 256 {
				fmt.Printf("limited after only %d pipes: %s\n", i, strings.Join(sizes, ", "))
				os.Exit(1)
			}
			if !strings.HasPrefix(sizes[0], strconv.Itoa(PipeSizes[0])+" ") {
				fmt.Printf("the first pipe was not the largest: %s\n", strings.Join(sizes, ", "))
				os.Exit(1)
			}
			// Past the limit: show the small pipe moves bytes.
			msg := make([]byte, pp.Size)
			if n, err := unix.Write(pp.W, msg); err != nil || n != pp.Size {
				fmt.Printf("write %d bytes into a %d-byte pipe: %d, %v\n", pp.Size, pp.Size, n, err)
				os.Exit(1)
			}
			fmt.Printf("sizes: %s\n", strings.Join(sizes, ", "))
			return
		}
	}
	fmt.Printf("never limited after %d pipes: %s\n", len(held), strings.Join(sizes, ", "))
	os.Exit(1)
}
