package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitsVerify runs systemd-analyze verify on every unit of
// contrib/systemd, pointed at the binary under test, and wants it silent:
// verify exits 0 even on an unknown directive, and only says so.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the units are not verified")
	}
	src := filepath.Join("..", "..", "contrib", "systemd")
	units, err := filepath.Glob(filepath.Join(src, "*.s*"))
	if err != nil || len(units) == 0 {
		t.Fatalf("no units in %s: %v", src, err)
	}
	dir := t.TempDir()
	var args []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		// The examples name installed paths; verify checks that
		// ExecStart= binaries exist.
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/uring-socket-proxyd"), []byte(binPath))
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/app"), []byte("/bin/true"))
		dst := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, dst)
	}
	// The backend the man page's setups put behind the proxy.
	if err := os.WriteFile(filepath.Join(dir, "nginx.service"), []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, args...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	t.Logf("verified %d units", len(args))
}

// TestManPage renders the man page with warnings on, and checks that it
// and --help document every long option of the command line.
func TestManPage(t *testing.T) {
	page := filepath.Join("..", "..", "doc", "uring-socket-proxyd.8")
	src, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	help := runBinary(t, binPath, nil, "--help")
	for _, o := range options {
		if !strings.Contains(string(src), `\-\-`+strings.ReplaceAll(o.Long, "-", `\-`)) {
			t.Errorf("the man page does not document --%s", o.Long)
		}
		if !strings.Contains(help.stdout, "--"+o.Long) {
			t.Errorf("--help does not mention --%s", o.Long)
		}
	}
	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("man is not installed: the page is not rendered")
	}
	cmd := exec.Command(man, "-l", "--warnings", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_DISABLE_SECCOMP=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("man -l --warnings: %v\n%s", err, stderr.String())
	}
	for _, section := range []string{"NAME", "SYNOPSIS", "OPTIONS", "SIGNALS", "ENGINES", "EXIT STATUS", "DIFFERENCES FROM SYSTEMD-SOCKET-PROXYD"} {
		if !strings.Contains(stdout.String(), "\n"+section+"\n") {
			t.Errorf("rendered page has no %s section", section)
		}
	}
}
