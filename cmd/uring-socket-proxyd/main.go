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

	target, err := forward.ParseTarget(cfg.target)
	if err != nil {
		log.Errorf("Invalid target: %v", err)
		return 1
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
	log.Infof("Using the %s engine (%s), forwarding %d listener(s) to %s.", engine.Name(), why, len(listeners), target)

	// Writes to a socket whose peer is gone must fail with EPIPE, and a
	// closed stderr must not kill a proxy that is carrying traffic.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	s := &forward.Server{
		Listeners:      listeners,
		Target:         target,
		ConnectTimeout: cfg.connectTimeout,
		Threads:        cfg.threads,
		Log:            log,
	}
	if err := forward.Run(ctx, engine, s, forward.Options{ConnectionsMax: cfg.connectionsMax, ExitIdleTime: cfg.exitIdleTime}); err != nil {
		log.Errorf("%v", err)
		return 1
	}
	return 0
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
