// Command proxybench measures direct loopback, systemd-socket-proxyd and
// the engines of uring-socket-proxyd on the same workloads, interleaved,
// and prints a table per workload with ratios and targets. It exits 1 if
// any proxy under test failed a measurement (a corrupted byte fails the
// run; it never scores). systemd-socket-proxyd and the peers are references:
// a repetition one of them fails is reported with the results and left out
// of its figures (v252 refuses connections when more than 256 wait for its
// resolver, which a burst of idle connections can cause).
//
//	proxybench [-quick] [-reps N] [-workloads bulk,rr/conns=32] [-pin CPU]
//	           [-bin PATH] [-engines epoll,io_uring] [-proxy NAME=PATH[:ARGS]]…
//	           [-json FILE] [-svg FILE] [-md FILE]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/bench"
	"golang.org/x/sys/unix"
)

type proxyFlags []bench.Proxy

func (p *proxyFlags) String() string { return fmt.Sprint(*p) }
func (p *proxyFlags) Set(s string) error {
	x, err := bench.ParseProxy(s)
	if err != nil {
		return err
	}
	*p = append(*p, x)
	return nil
}

func main() {
	var (
		quick     = flag.Bool("quick", false, "small sizes and 3 repetitions (under 2 minutes)")
		reps      = flag.Int("reps", 0, "repetitions (default 5, or 3 with -quick)")
		workloads = flag.String("workloads", "", "comma-separated prefixes or patterns of variant names (bulk, rr, rr/pinned, connrate, idle, bulk/up/*)")
		pin       = flag.Int("pin", defaultPinCPU(), "CPU of the pinned request/response variant; -1 leaves it out")
		bin       = flag.String("bin", "bin/uring-socket-proxyd", "our binary; each of -engines runs it with --engine=NAME")
		engines   = flag.String("engines", "epoll,io_uring", "engines of -bin to measure; one that does not start is skipped with a note")
		systemd   = flag.String("systemd", bench.SystemdPath, "systemd-socket-proxyd binary; skipped with a note if absent")
		haproxy   = flag.String("haproxy", bench.HAProxyPath, "HAProxy binary, measured as a peer with its default tuning; skipped with a note if absent, left out if empty")
		busyPoll  = flag.String("busy-poll", "50us", "also measure the io_uring engine with --busy-poll=SPAN, as io_uring+busy; empty leaves it out")
		nginx     = flag.String("nginx", bench.NginxPath, "nginx binary with the stream module, measured as a peer with its default tuning; skipped with a note if absent, left out if empty")
		jsonOut   = flag.String("json", "", "write every figure as JSON to this file")
		svgOut    = flag.String("svg", "", "write the chart of ratios to this SVG file")
		mdOut     = flag.String("md", "", "write the tables as Markdown to this file")
		list      = flag.Bool("list", false, "list the variants and exit")
		extra     proxyFlags
	)
	flag.Var(&extra, "proxy", "NAME=PATH[:ARG:ARG…] an extra contender (repeatable); NAME=direct for a direct connection")
	flag.Parse()

	cfg := bench.Config{Quick: *quick, Reps: *reps, Pin: *pin, Progress: os.Stderr}
	if *workloads != "" {
		cfg.Workloads = strings.Split(*workloads, ",")
	}
	if *list {
		for _, v := range bench.Variants(cfg) {
			fmt.Printf("%-28s %s\n", v.Name, v.Params)
		}
		return
	}
	var notes []string
	cfg.Proxies = append(cfg.Proxies, bench.Proxy{Name: bench.Direct})
	if _, err := os.Stat(*systemd); err == nil {
		cfg.Proxies = append(cfg.Proxies, bench.Proxy{Name: bench.Systemd, Path: *systemd, Args: []string{bench.ConnectionsMax}, Reference: true})
	} else {
		notes = append(notes, fmt.Sprintf("systemd-socket-proxyd skipped: %s is not installed", *systemd))
	}
	for _, e := range strings.Split(*engines, ",") {
		if e == "" {
			continue
		}
		p := bench.Proxy{Name: e, Path: *bin, Args: []string{"--engine=" + e, bench.ConnectionsMax}}
		if abs, err := filepath.Abs(*bin); err == nil {
			p.Path = abs
		}
		if note := bench.Probe(p); note != "" {
			notes = append(notes, fmt.Sprintf("%s skipped: %s", e, note))
			continue
		}
		cfg.Proxies = append(cfg.Proxies, p)
	}
	if *busyPoll != "" {
		// The opt-in for latency, measured in the same run as the default
		// it departs from, so its price (CPU, pinned tails) shows too.
		for _, p := range cfg.Proxies {
			if p.Name == "io_uring" {
				p.Name = "io_uring+busy"
				p.Args = append([]string{"--busy-poll=" + *busyPoll}, p.Args...)
				cfg.Proxies = append(cfg.Proxies, p)
				break
			}
		}
	}
	for _, peer := range []bench.Proxy{
		{Name: "haproxy", Path: *haproxy, Peer: bench.HAProxy, Reference: true},
		{Name: "nginx", Path: *nginx, Peer: bench.Nginx, Reference: true},
	} {
		if peer.Path == "" {
			continue
		}
		if note := bench.Probe(peer); note != "" {
			notes = append(notes, fmt.Sprintf("%s skipped: %s", peer.Name, note))
			continue
		}
		cfg.Proxies = append(cfg.Proxies, peer)
	}
	cfg.Proxies = append(cfg.Proxies, extra...)
	for _, n := range notes {
		fmt.Fprintf(os.Stderr, "note: %s\n", n)
	}
	if cfg.Reps <= 0 {
		cfg.Reps = bench.DefaultReps(cfg.Quick)
	}
	fmt.Fprintf(os.Stderr, "proxybench: %d CPUs, fd limit %d, %d repetitions, proxies interleaved:", runtime.NumCPU(), bench.FDLimit(), cfg.Reps)
	for _, p := range cfg.Proxies {
		fmt.Fprintf(os.Stderr, " %s", p.Name)
	}
	fmt.Fprintln(os.Stderr)
	for _, p := range cfg.Proxies {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", p.Name, p)
	}

	start := time.Now()
	res, runErr := bench.Run(cfg)
	res.Meta.Notes = append(res.Meta.Notes, notes...)
	res.Meta.Elapsed = bench.JSONDuration(time.Since(start))
	res.WriteText(os.Stdout)
	fmt.Printf("elapsed: %.0fs\n", time.Since(start).Seconds())
	write := func(name string, f func(*os.File) error) {
		if name == "" {
			return
		}
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			fatal(err)
		}
		out, err := os.Create(name)
		if err != nil {
			fatal(err)
		}
		if err := f(out); err != nil {
			fatal(err)
		}
		if err := out.Close(); err != nil {
			fatal(err)
		}
	}
	write(*jsonOut, func(f *os.File) error { return res.WriteJSON(f) })
	write(*svgOut, func(f *os.File) error { return res.WriteSVG(f) })
	write(*mdOut, func(f *os.File) error { return res.WriteMarkdown(f) })
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "proxybench: FAILED:\n%v\n", runErr)
		os.Exit(1)
	}
}

// defaultPinCPU is the last CPU this process may run on.
func defaultPinCPU() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	last := -1
	for i := range 1024 {
		if set.IsSet(i) {
			last = i
		}
	}
	return max(last, 0)
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "proxybench: %v\n", err)
	os.Exit(2)
}
