// Command uring-socket-proxyd is a drop-in replacement for
// systemd-socket-proxyd: it takes the listening sockets passed by socket
// activation and forwards every connection to one target, on io_uring where
// the kernel allows it and on epoll + splice otherwise.
//
// This file is the process around the engines: the command line (the same
// as systemd-socket-proxyd's, with additions), engine selection, signals,
// and exit codes.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr, forward.NewStderrLogger()))
}

// run is main without the exit.
func run(argv []string, stdout, stderr io.Writer, log *forward.Logger) int {
	cfg, done, code := parseCommandLine(argv, stdout, stderr, log)
	if done {
		return code
	}

	var target *forward.Target
	if cfg.hasTarget { // an empty one too: ParseTarget refuses it
		t, err := forward.ParseTarget(cfg.target)
		if err != nil {
			log.Errorf("Invalid target: %v", err)
			return 1
		}
		target = t
	}
	named := make([]forward.NamedTarget, 0, len(cfg.targets))
	for _, nt := range cfg.targets {
		t, err := forward.ParseTarget(nt.target)
		if err != nil {
			log.Errorf("Invalid target for %s: %v", nt.name, err)
			return 1
		}
		named = append(named, forward.NamedTarget{Name: nt.name, Target: t})
	}
	engine, why, err := selectEngine(cfg.engine, log)
	if err != nil {
		log.Errorf("%v", err)
		return 1
	}
	raiseFileLimit(log)
	listeners, err := forward.InheritListeners()
	if err != nil {
		log.Errorf("%v", err)
		return 1
	}
	if err := forward.AssignTargets(listeners, target, named); err != nil {
		log.Errorf("%v", err)
		return 1
	}
	logStart(log, engine.Name(), why, listeners, target)
	if cfg.busyPoll > 0 {
		// Said once at start: a CPU kept busy must not come as a surprise.
		until := "for " + cfg.busyPoll.String() + " after each event"
		if cfg.busyPoll == forward.Never {
			until = "without end"
		}
		log.Infof("Busy polling %s (--busy-poll): each event loop keeps its CPU busy while traffic flows.", until)
	}

	// Writes to a socket whose peer is gone must fail with EPIPE, and a
	// closed stderr must not kill a proxy that is carrying traffic.
	signal.Ignore(syscall.SIGPIPE)

	s := &forward.Server{
		Listeners:      listeners,
		Target:         target,
		ConnectTimeout: cfg.connectTimeout,
		IdleTimeout:    cfg.idleTimeout,
		ProxyProtocol:  cfg.proxyProtocol,
		NoDelay:        cfg.noDelay,
		KeepAlive:      cfg.keepAlive,
		LogConnections: cfg.logConnections,
		Threads:        cfg.threads,
		BusyPoll:       cfg.busyPoll,
		Log:            log,
	}
	s.PrepareListeners()
	ctx, hurry := handleSignals(s)
	o := forward.Options{
		ConnectionsMax: cfg.connectionsMax,
		ExitIdleTime:   cfg.exitIdleTime,
		DrainTimeout:   cfg.drainTimeout,
		Hurry:          hurry,
	}
	if err := forward.Run(ctx, engine, s, o); err != nil {
		log.Errorf("%v", err)
		return 1
	}
	return 0
}

// handleSignals turns signals into the proxy's controls: the first SIGTERM
// or SIGINT ends ctx (stop accepting, drain), the second closes hurry
// (close what is left now), SIGUSR1 logs the figures.
func handleSignals(s *forward.Server) (ctx context.Context, hurry <-chan struct{}) {
	ctx, stop := context.WithCancel(context.Background())
	h := make(chan struct{})
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	go func() {
		stops := 0
		for sig := range sigs {
			if sig == syscall.SIGUSR1 {
				s.LogStats()
				continue
			}
			stops++
			switch stops {
			case 1:
				stop()
			case 2:
				close(h)
			}
		}
	}()
	return ctx, h
}

// logStart says which engine serves which listeners, and where each goes.
func logStart(log *forward.Logger, engine, why string, ls []forward.Listener, def *forward.Target) {
	routes := map[string]bool{}
	for _, l := range ls {
		if l.Target != def {
			routes[l.Name] = true
		}
	}
	if len(routes) == 0 {
		log.Infof("Using the %s engine (%s), forwarding %d listener(s) to %s.", engine, why, len(ls), def)
		return
	}
	log.Infof("Using the %s engine (%s), forwarding %d listener(s).", engine, why, len(ls))
	for _, l := range ls {
		log.Infof("Listener %s (%s) → %s.", l.Address(), l.Name, l.Target)
	}
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit: every
// connection costs descriptors, and systemd's default soft limit of 1024
// would cap the proxy far below what it can carry. (The Go runtime does
// this too since Go 1.19; doing it here keeps it true whatever the runtime
// does, and says so when it cannot.)
func raiseFileLimit(log *forward.Logger) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur >= lim.Max {
		return
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		log.Warnf("Failed to raise the open file limit to %d, continuing: %v", lim.Max, err)
	}
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0"

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "uring-socket-proxyd %s (command line of systemd-socket-proxyd 252)\n", version)
}
