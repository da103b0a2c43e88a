package bench

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// flipProxyPath builds the corrupting test proxy once per test binary.
var flipProxyPath = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "proxybench-flip")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "flipproxy")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goTool, "build", "-o", bin,
		"github.com/uring-socket-proxyd/uring-socket-proxyd/bench/internal/flipproxy").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

func flipProxy(t testing.TB, args ...string) Proxy {
	t.Helper()
	bin, err := flipProxyPath()
	if err != nil {
		t.Fatalf("build flipproxy: %v", err)
	}
	return Proxy{Name: "flip", Path: bin, Args: args}
}

// allowedCPU is a CPU this process may run on.
func allowedCPU(t *testing.T) int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for i := range 1024 {
		if set.IsSet(i) {
			return i
		}
	}
	t.Fatal("no CPU allowed")
	return -1
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := flipProxyPath(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// withProxy runs f against a fresh backend and a fresh p.
func withProxy(t *testing.T, p Proxy, f func(*Running, *Backend) error) error {
	t.Helper()
	be, err := NewBackend()
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r, err := Start(p, be.Addr())
	if err != nil {
		t.Fatal(err)
	}
	err = f(r, be)
	if serr := r.Stop(); err == nil {
		err = serr
	}
	return err
}

var tiny = sizes{
	bulkBytes: 2 << 20, rrFor: 20 * time.Millisecond, connFor: 20 * time.Millisecond,
	idleConns: 20, idleSettle: 10 * time.Millisecond, idleFor: 20 * time.Millisecond, idleOps: 20,
	timeout: 10 * time.Second, defaultReps: 1,
}

func TestCorruptingProxyFails(t *testing.T) {
	bulk := func(up bool) func(*Running, *Backend) error {
		return func(r *Running, be *Backend) error {
			_, err := Bulk(r, be, BulkParams{Conns: 2, Up: up, Bytes: 1 << 20, Chunk: 64 << 10, Timeout: 10 * time.Second})
			return err
		}
	}
	rr := func(r *Running, be *Backend) error {
		_, err := RR(r, be, RRParams{Conns: 2, Size: 64, Ops: 50, Pin: -1, Timeout: 10 * time.Second})
		return err
	}
	for _, c := range []struct {
		name string
		args []string
		run  func(*Running, *Backend) error
	}{
		{"flip-up-bulk", []string{"-flip-up", "100000"}, bulk(true)},
		{"drop-up-bulk", []string{"-drop-up", "300000"}, bulk(true)},
		{"flip-down-bulk", []string{"-flip-down", "100000"}, bulk(false)},
		{"flip-up-rr", []string{"-flip-up", "200"}, rr},
		{"flip-down-rr", []string{"-flip-down", "70"}, rr},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := withProxy(t, flipProxy(t, c.args...), c.run)
			if err == nil || !strings.Contains(err.Error(), "corrupted") {
				t.Fatalf("a corrupting proxy passed: err = %v", err)
			}
		})
	}
}

func TestWorkloadsThroughProxies(t *testing.T) {
	proxies := []Proxy{{Name: Direct}, flipProxy(t)}
	if _, err := os.Stat(SystemdPath); err == nil {
		proxies = append(proxies, Proxy{Name: Systemd, Path: SystemdPath, Args: []string{ConnectionsMax}})
	}
	if bin := os.Getenv("URING_PROXY_BIN"); bin != "" {
		proxies = append(proxies, Proxy{Name: "epoll", Path: bin, Args: []string{"--engine=epoll", ConnectionsMax}})
	}
	if _, err := os.Stat(HAProxyPath); err == nil {
		proxies = append(proxies, Proxy{Name: "haproxy", Path: HAProxyPath, HAProxy: true})
	}
	for _, p := range proxies {
		t.Run(p.Name, func(t *testing.T) {
			err := withProxy(t, p, func(r *Running, be *Backend) error {
				for _, up := range []bool{true, false} {
					res, err := Bulk(r, be, BulkParams{Conns: 3, Up: up, Bytes: 3 << 20, Timeout: 10 * time.Second})
					if err != nil {
						return err
					}
					if res.Bytes != 3<<20 || res.Elapsed <= 0 {
						t.Errorf("bulk up=%v: %+v", up, res)
					}
				}
				rr, err := RR(r, be, RRParams{Conns: 4, Size: 16 << 10, Ops: 20, Warmup: 2, Pin: -1, Timeout: 10 * time.Second})
				if err != nil {
					return err
				}
				if rr.Ops != 80 || rr.Latency.Quantile(0.5) <= 0 {
					t.Errorf("rr: %d ops, p50 %v", rr.Ops, rr.Latency.Quantile(0.5))
				}
				cr, err := ConnRate(r, be, ConnRateParams{Workers: 2, Size: 64, Conns: 10, Timeout: 10 * time.Second})
				if err != nil {
					return err
				}
				if cr.Conns != 20 {
					t.Errorf("connrate: %d connections, want 20", cr.Conns)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHAProxyConfigRemoved: the configuration generated for an HAProxy
// contender lives as long as it runs.
func TestHAProxyConfigRemoved(t *testing.T) {
	if _, err := os.Stat(HAProxyPath); err != nil {
		t.Skip("HAProxy is not installed")
	}
	var cfg string
	err := withProxy(t, Proxy{Name: "haproxy", Path: HAProxyPath, HAProxy: true}, func(r *Running, be *Backend) error {
		cfg = r.cfgFile
		b, err := os.ReadFile(cfg)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "server backend "+be.Addr()) || !strings.Contains(string(b), "bind fd@3") {
			t.Errorf("config does not name the backend and the inherited socket:\n%s", b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg); !os.IsNotExist(err) {
		t.Errorf("config %s left behind after Stop (%v)", cfg, err)
	}
}

func TestPinnedAndIdle(t *testing.T) {
	if _, err := os.Stat(SystemdPath); err != nil {
		t.Skipf("%s not installed", SystemdPath)
	}
	p := Proxy{Name: Systemd, Path: SystemdPath, Args: []string{ConnectionsMax}}
	err := withProxy(t, p, func(r *Running, be *Backend) error {
		rr, err := RR(r, be, RRParams{Conns: 1, Size: 64, Ops: 50, Warmup: 5, Pin: allowedCPU(t), Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		if rr.Ops != 50 {
			t.Errorf("pinned rr: %d ops", rr.Ops)
		}
		idle, err := Idle(r, be, IdleParams{Conns: 30, Settle: 20 * time.Millisecond, IdleFor: 20 * time.Millisecond, ActiveOps: 10, ActiveSize: 64, Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		if fds := idle.After.FDs - idle.Before.FDs; fds != 6*30 {
			t.Errorf("systemd-socket-proxyd holds %d fds for 30 connections, want 180", fds)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRunFailsOnCorruption(t *testing.T) {
	cfg := Config{
		Reps: 2, Pin: allowedCPU(t), sizes: &tiny,
		Proxies: []Proxy{{Name: Direct}, flipProxy(t, "-flip-down", "30"), {Name: "good", Path: flipProxy(t).Path}},
	}
	res, err := Run(cfg)
	if err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Fatalf("Run with a corrupting proxy: err = %v", err)
	}
	var sb strings.Builder
	res.WriteText(&sb)
	out := sb.String()
	for _, want := range []string{"== bulk ==", "== rr ==", "== connrate ==", "== idle ==", "rr/pinned", "FAIL", "good"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	for _, vr := range res.Variants {
		if p := vr.Lookup("good"); p == nil || p.Error != "" || len(p.Stats) == 0 {
			t.Errorf("%s: the honest proxy has no figures: %+v", vr.Name, p)
		}
		// Uploads of 2 MiB with a byte flipped downstream still pass; every
		// variant that sends data back must have failed.
		if strings.HasPrefix(vr.Name, "bulk/up") {
			continue
		}
		if p := vr.Lookup("flip"); p == nil || p.Error == "" {
			t.Errorf("%s: the corrupting proxy scored", vr.Name)
		}
	}
}
