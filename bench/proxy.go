package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward/proxytest"
	"golang.org/x/sys/unix"
)

// Proxy names a contender. A Proxy with an empty Path is the direct
// connection: the client talks to the backend itself.
type Proxy struct {
	Name string
	Path string
	Args []string // before the target address
	// Peer, when set, marks Path as another proxy measured for comparison:
	// it runs with a generated configuration instead of a target argument.
	Peer Peer
	// Reference marks a proxy measured only to compare with
	// (systemd-socket-proxyd, the peers): a repetition it fails is a
	// finding about it, reported with the results, and does not fail the
	// run; its other repetitions go on. A proxy under test fails the run
	// and is not measured again in that variant.
	Reference bool
}

// Peer is a kind of proxy other than ours and systemd-socket-proxyd's
// command line.
type Peer int

const (
	NotPeer Peer = iota
	// HAProxy runs with HAProxyConfig.
	HAProxy
	// Nginx runs with NginxConfig.
	Nginx
)

// HAProxyPath is where Debian installs HAProxy.
const HAProxyPath = "/usr/sbin/haproxy"

// NginxPath is where Debian installs nginx.
const NginxPath = "/usr/sbin/nginx"

// NginxStreamModule is Debian's nginx TCP proxy module
// (libnginx-mod-stream), loaded by NginxConfig when present; builds with
// the module compiled in have no such file.
const NginxStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// HAProxyConfig is the configuration HAProxy runs with in front of
// backend: a plain TCP proxy on the socket-activated fd 3, as it comes
// (threads, buffers and splicing at their defaults), with timeouts long
// enough for every workload and a connection limit the 20,000-descriptor
// limit allows (HAProxy refuses to start when maxconn needs more).
func HAProxyConfig(backend string) string {
	return `global
    maxconn 9000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen bench
    bind fd@3
    server backend ` + backend + `
`
}

// NginxConfig is the configuration nginx runs with in front of backend: a
// stream (TCP) proxy on the inherited socket listen, with nginx's defaults
// (one worker process, as our default of one event loop per two CPUs
// here; 16 KiB buffers; no splicing) but for a connection limit the
// 20,000-descriptor limit allows (default 512, too few for the idle
// workload) with its descriptors, and half-closes passed on as
// systemd-socket-proxyd passes them (off by default; no workload
// half-closes, so it costs nothing). The pid file goes to dir; loadStream
// loads the stream module (NginxStreamModule) for builds that have it as a
// module to load.
//
// nginx cannot take sockets from systemd; it inherits listen through its
// own binary-upgrade variable (NGINX=3;), matched to the listen directive
// by address, so listen must be exactly the inherited socket's address.
func NginxConfig(backend, listen, dir string, loadStream bool) string {
	module := ""
	if loadStream {
		module = "load_module " + NginxStreamModule + ";\n"
	}
	return module + `daemon off;
pid ` + filepath.Join(dir, "nginx.pid") + `;
worker_rlimit_nofile 20000;
events {
    worker_connections 18000;
}
stream {
    server {
        listen ` + listen + `;
        proxy_pass ` + backend + `;
        proxy_half_close on;
    }
}
`
}

// Direct is the baseline without a proxy.
const Direct = "direct"

// Systemd is the name of the reference proxy in tables and targets.
const Systemd = "systemd"

// SystemdPath is where Debian installs systemd-socket-proxyd.
const SystemdPath = "/lib/systemd/systemd-socket-proxyd"

// ConnectionsMax is passed to every proxy: the default of 256 would stop
// the idle workload.
const ConnectionsMax = "--connections-max=1000000"

// ParseProxy parses NAME=PATH[:ARG[:ARG…]] (or NAME=direct).
func ParseProxy(s string) (Proxy, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return Proxy{}, fmt.Errorf("proxy %q: want NAME=PATH[:ARGS]", s)
	}
	if rest == Direct {
		return Proxy{Name: name}, nil
	}
	f := strings.Split(rest, ":")
	return Proxy{Name: name, Path: f[0], Args: f[1:]}, nil
}

// String is the proxy's command line (or "direct").
func (p Proxy) String() string {
	if p.Path == "" {
		return Direct
	}
	switch p.Peer {
	case HAProxy:
		return strings.Join(append([]string{p.Path}, p.Args...), " ") + " -db -f CONFIG (bind fd@3; defaults)"
	case Nginx:
		return strings.Join(append([]string{p.Path}, p.Args...), " ") + " -e stderr -c CONFIG (stream proxy on the inherited socket; defaults but proxy_half_close on, worker_connections 18000)"
	}
	return strings.Join(append([]string{p.Path}, p.Args...), " ")
}

// Running is a proxy started for one measurement, in front of a backend.
type Running struct {
	Proxy Proxy
	Addr  string // where clients connect
	proc  *proxytest.Process
	// pid is the process measured and pinned: the one started, or for
	// nginx its worker (the master only supervises).
	pid int
	// cfgDir holds a generated configuration; Stop removes it.
	cfgDir string
}

// Start starts p with a fresh listener on 127.0.0.1 passed by socket
// activation, forwarding to backend, and waits until a connection makes a
// round trip through it.
func Start(p Proxy, backend string) (*Running, error) {
	if p.Path == "" {
		return &Running{Proxy: p, Addr: backend}, nil
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close() // the socket lives on in f, and then in the proxy
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	args := append(append([]string(nil), p.Args...), backend)
	var env []string
	var cfgDir string
	if p.Peer != NotPeer {
		if cfgDir, err = os.MkdirTemp("", "proxybench-"); err != nil {
			f.Close()
			return nil, err
		}
		cfgFile := filepath.Join(cfgDir, "proxy.conf")
		var cfg string
		switch p.Peer {
		case HAProxy:
			cfg = HAProxyConfig(backend)
			args = append(append([]string(nil), p.Args...), "-db", "-f", cfgFile)
		case Nginx:
			cfg = NginxConfig(backend, addr, cfgDir, nginxStreamIsModule(p.Path))
			args = append(append([]string(nil), p.Args...), "-p", cfgDir, "-e", "stderr", "-c", cfgFile)
			env = []string{"NGINX=3;"}
		}
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
			f.Close()
			os.RemoveAll(cfgDir)
			return nil, err
		}
	}
	proc, err := proxytest.Start(proxytest.Activated{
		Path:      p.Path,
		Args:      args,
		Listeners: []*os.File{f},
		Env:       env,
	})
	f.Close()
	if err != nil {
		if cfgDir != "" {
			os.RemoveAll(cfgDir)
		}
		return nil, err
	}
	r := &Running{Proxy: p, Addr: addr, proc: proc, pid: proc.Pid(), cfgDir: cfgDir}
	if err := r.probe(); err != nil {
		r.Stop()
		return nil, &ProbeError{Name: p.Name, Err: err, Stderr: r.Stderr()}
	}
	if p.Peer == Nginx {
		// The worker that forwarded the probe is up by now.
		if r.pid, err = onlyChild(proc.Pid()); err != nil {
			r.Stop()
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return r, nil
}

// nginxStreamIsModule reports whether the nginx at path was built with
// its stream (TCP proxy) module as a module to load, as Debian's is,
// rather than compiled in.
func nginxStreamIsModule(path string) bool {
	out, _ := exec.Command(path, "-V").CombinedOutput()
	return bytes.Contains(out, []byte("--with-stream=dynamic"))
}

// onlyChild is the one child process of pid.
func onlyChild(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		return 0, fmt.Errorf("process %d has children %q, want one", pid, f)
	}
	return strconv.Atoi(f[0])
}

// probe makes one echo round trip through the proxy.
func (r *Running) probe() error {
	deadline := time.Now().Add(10 * time.Second)
	c, err := net.DialTimeout("tcp", r.Addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	msg := header{mode: modeEcho, size: 8}.marshal(nil)
	msg = append(msg, "probe!!!"...)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, 8)
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != "probe!!!" {
		return fmt.Errorf("probe echoed %q", got)
	}
	return nil
}

// Pid is the proxy's process id, 0 for direct.
func (r *Running) Pid() int {
	return r.pid
}

// Stderr is what the proxy has logged so far.
func (r *Running) Stderr() string {
	if r.proc == nil {
		return ""
	}
	return r.proc.Stderr()
}

func (r *Running) stderrNote() string { return stderrNote(r.Stderr()) }

func stderrNote(stderr string) string {
	s := strings.TrimSpace(stderr)
	if s == "" {
		return ""
	}
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return "; proxy stderr: " + s
}

// ProbeError is a proxy that started but did not forward the probe
// connection, with what it wrote.
type ProbeError struct {
	Name   string
	Err    error
	Stderr string
}

func (e *ProbeError) Error() string {
	return fmt.Sprintf("%s did not forward a probe: %v%s", e.Name, e.Err, stderrNote(e.Stderr))
}

func (e *ProbeError) Unwrap() error { return e.Err }

// note is the error in one line for a skip note: why the probe failed and
// the proxy's last line of output, where a program that refuses to start
// says why (nginx's "[emerg] unknown directive", after its notices).
func (e *ProbeError) note() string {
	n := firstLine(fmt.Sprintf("%s did not forward a probe: %v", e.Name, e.Err))
	lines := strings.Split(strings.TrimSpace(e.Stderr), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		n += "; it said: " + firstLine(last)
	}
	return n
}

// Alive reports an error if the proxy has exited.
func (r *Running) Alive() error {
	if r.proc == nil {
		return nil
	}
	select {
	case <-r.proc.Done():
		code, err := r.proc.Wait(0)
		return fmt.Errorf("%s exited during the measurement (code %d, %v)%s", r.Proxy.Name, code, err, r.stderrNote())
	default:
		return nil
	}
}

// Stop stops the proxy; it reports an error if it had died before.
func (r *Running) Stop() error {
	if r.proc == nil {
		return nil
	}
	err := r.Alive()
	r.proc.Stop()
	if r.pid != r.proc.Pid() {
		// nginx's worker, should it outlive a master killed after the
		// grace period.
		_ = unix.Kill(r.pid, unix.SIGKILL)
	}
	if r.cfgDir != "" {
		os.RemoveAll(r.cfgDir)
	}
	return err
}

// Pin sets the CPU affinity of every thread of the proxy to cpu. Threads
// it creates later inherit it from their (pinned) creator.
func (r *Running) Pin(cpu int) error {
	if r.proc == nil {
		return nil
	}
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", r.Pid()))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin %s thread %d to CPU %d: %w", r.Proxy.Name, tid, cpu, err)
		}
	}
	return nil
}

// Usage is the proxy's resource use (zero for direct).
type Usage struct {
	proxytest.Usage
	// SchedCPU is the sum of the live threads' on-CPU nanoseconds
	// (/proc/PID/task/*/schedstat): finer than CPUTicks, but blind to
	// threads that have exited.
	SchedCPU time.Duration
}

// Usage reads the proxy's resource use from /proc.
func (r *Running) Usage() (Usage, error) {
	if r.proc == nil {
		return Usage{}, nil
	}
	u, err := proxytest.ReadUsage(r.Pid())
	if err != nil {
		return Usage{}, err
	}
	return Usage{Usage: u, SchedCPU: schedCPU(r.Pid())}, nil
}

// tick is one USER_HZ clock tick, the unit of utime and stime.
const tick = time.Second / 100

// CPUSince is the CPU time used between snapshot b and u: the nanosecond
// counters, unless the tick counters (which keep the time of exited
// threads, such as io-wq workers) show clearly more.
func (u Usage) CPUSince(b Usage) time.Duration {
	fine := u.SchedCPU - b.SchedCPU
	coarse := time.Duration(u.CPUTicks-b.CPUTicks) * tick
	if coarse > fine+2*tick {
		return coarse
	}
	return fine
}

func schedCPU(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		f, _, _ := bytes.Cut(b, []byte(" "))
		ns, _ := strconv.ParseInt(string(f), 10, 64)
		sum += time.Duration(ns)
	}
	return sum
}

// Probe starts p once and makes a round trip through it. It returns "" if
// that worked, else a one-line note saying why p cannot be measured.
func Probe(p Proxy) string {
	if p.Path != "" {
		if _, err := os.Stat(p.Path); err != nil {
			if p.Peer != NotPeer {
				return fmt.Sprintf("%s is not installed", p.Path)
			}
			return fmt.Sprintf("%s not found (build it first)", p.Path)
		}
	}
	be, err := NewBackend()
	if err != nil {
		return err.Error()
	}
	defer be.Close()
	r, err := Start(p, be.Addr())
	var pe *ProbeError
	if errors.As(err, &pe) {
		return pe.note()
	}
	if err != nil {
		return firstLine(err.Error())
	}
	if err := r.Stop(); err != nil {
		return firstLine(err.Error())
	}
	return ""
}
