package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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
	proxies = append(proxies, installedPeers(t)...)
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

// installedPeers are the peers the benchmark measures that can run here;
// a missing one is logged, as proxybench notes it.
func installedPeers(t *testing.T) []Proxy {
	var peers []Proxy
	for _, p := range []Proxy{
		{Name: "haproxy", Path: HAProxyPath, Peer: HAProxy},
		{Name: "nginx", Path: NginxPath, Peer: Nginx},
	} {
		if note := Probe(p); note != "" {
			t.Logf("peer %s left out: %s", p.Name, note)
			continue
		}
		peers = append(peers, p)
	}
	return peers
}

// TestPeerConfigRemoved: the configuration generated for a peer names the
// backend and the inherited socket, and lives as long as the peer runs.
// The process measured for nginx is its worker, not the master.
func TestPeerConfigRemoved(t *testing.T) {
	peers := installedPeers(t)
	if len(peers) == 0 {
		t.Skip("neither HAProxy nor nginx with its stream module is installed")
	}
	for _, p := range peers {
		t.Run(p.Name, func(t *testing.T) {
			var dir string
			err := withProxy(t, p, func(r *Running, be *Backend) error {
				dir = r.cfgDir
				b, err := os.ReadFile(filepath.Join(dir, "proxy.conf"))
				if err != nil {
					return err
				}
				listen := map[Peer]string{HAProxy: "bind fd@3", Nginx: "listen " + r.Addr + ";"}[p.Peer]
				if !strings.Contains(string(b), be.Addr()) || !strings.Contains(string(b), listen) {
					t.Errorf("config does not name the backend %s and the inherited socket (%q):\n%s", be.Addr(), listen, b)
				}
				if p.Peer == Nginx {
					ppid, err := parentOf(r.Pid())
					if err != nil {
						return err
					}
					if r.Pid() == r.proc.Pid() || ppid != r.proc.Pid() {
						t.Errorf("measured process %d (parent %d), want a child of the master %d", r.Pid(), ppid, r.proc.Pid())
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("config directory %s left behind after Stop (%v)", dir, err)
			}
		})
	}
}

// TestProbeNoteSaysWhy: a contender that exits at start is skipped with a
// note that quotes the last line it wrote, where programs say why, even
// after a screenful of other output.
func TestProbeNoteSaysWhy(t *testing.T) {
	script := `for i in 1 2 3 4 5 6 7 8 9 10; do echo "notice: a long line of start-up chatter that fills the first line $i" >&2; done
echo '[emerg] unknown directive "stream"' >&2; exit 1`
	note := Probe(Proxy{Name: "refuser", Path: "/bin/sh", Args: []string{"-c", script}})
	if !strings.Contains(note, "did not forward a probe") || !strings.Contains(note, `[emerg] unknown directive "stream"`) {
		t.Errorf("note %q does not say the probe failed and why", note)
	}
	if strings.Contains(note, "\n") {
		t.Errorf("note %q is more than one line", note)
	}
}

// parentOf is the parent process id of pid.
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return strconv.Atoi(f[1])
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

// TestRunRecordsReferenceFailures: a reference proxy's failed repetition
// is recorded and left out, its other repetitions go on, and the run does
// not fail; one that fails every repetition has no figures.
func TestRunRecordsReferenceFailures(t *testing.T) {
	good := flipProxy(t).Path
	dir := t.TempDir()
	// Fails its first start (corrupting a byte), then forwards honestly.
	script := filepath.Join(dir, "once")
	body := "#!/bin/sh\nif [ -e " + dir + "/started ]; then exec " + good + " \"$@\"; fi\n" +
		": > " + dir + "/started\nexec " + good + " -flip-down 30 \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	always := flipProxy(t, "-flip-down", "30")
	always.Name, always.Reference = "always", true
	cfg := Config{
		Reps: 3, Pin: allowedCPU(t), sizes: &tiny, Workloads: []string{"rr/conns=1/size=64B"},
		Proxies: []Proxy{{Name: Direct}, {Name: "once", Path: script, Reference: true}, always},
	}
	res, err := Run(cfg)
	if err != nil {
		t.Fatalf("Run failed on a reference's failures: %v", err)
	}
	if len(res.Variants) != 1 {
		t.Fatalf("%d variants, want 1", len(res.Variants))
	}
	vr := res.Variants[0]
	once := vr.Lookup("once")
	if once == nil || once.Error != "" || len(once.Failed) != 1 || len(once.Samples["ops/s"]) != 2 {
		t.Fatalf("once: %+v; want 1 failed repetition recorded and 2 measured", once)
	}
	if !strings.Contains(once.Failed[0], "repetition 1") || !strings.Contains(once.Failed[0], "corrupted") {
		t.Errorf("once's failure %q does not say which repetition and why", once.Failed[0])
	}
	if a := vr.Lookup("always"); a == nil || !strings.Contains(a.Error, "every repetition failed") || len(a.Stats) != 0 {
		t.Errorf("always: %+v; want marked failed, with no figures", a)
	}
	var sb strings.Builder
	res.WriteText(&sb)
	if out := sb.String(); !strings.Contains(out, "once failed 1 of 3 repetitions, left out of its figures; repetition 1:") {
		t.Errorf("report does not mention once's failed repetition:\n%s", out)
	}
}
