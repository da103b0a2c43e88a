package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/cmd/internal/getopt"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/cmd/internal/timespan"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
)

// config is the parsed command line.
type config struct {
	target         string
	hasTarget      bool // false when every listener has a --target
	connectionsMax uint32
	exitIdleTime   time.Duration
	connectTimeout time.Duration
	engine         string
	threads        int
	busyPoll       time.Duration
	drainTimeout   time.Duration
	idleTimeout    time.Duration
	proxyProtocol  forward.ProxyVersion
	keepAlive      bool
	noDelay        bool
	logConnections bool
	targets        []namedTarget
}

// namedTarget is one --target=NAME=TARGET, its target not yet parsed.
type namedTarget struct{ name, target string }

// The options. Original marks those of systemd-socket-proxyd v252: an
// abbreviation that named one of them there still does here, whatever
// options were added since ("anything new is an addition").
var (
	optHelp           = getopt.Option{Long: "help", Short: 'h', Original: true}
	optVersion        = getopt.Option{Long: "version", Original: true}
	optConnectionsMax = getopt.Option{Long: "connections-max", Short: 'c', Arg: getopt.RequiredArgument, Original: true}
	optExitIdleTime   = getopt.Option{Long: "exit-idle-time", Arg: getopt.RequiredArgument, Original: true}
	optConnectTimeout = getopt.Option{Long: "connect-timeout", Arg: getopt.RequiredArgument}
	optEngine         = getopt.Option{Long: "engine", Arg: getopt.RequiredArgument}
	optThreads        = getopt.Option{Long: "threads", Arg: getopt.RequiredArgument}
	optBusyPoll       = getopt.Option{Long: "busy-poll", Arg: getopt.RequiredArgument}
	optDrainTimeout   = getopt.Option{Long: "drain-timeout", Arg: getopt.RequiredArgument}
	optProxyProtocol  = getopt.Option{Long: "proxy-protocol", Arg: getopt.RequiredArgument}
	optIdleTimeout    = getopt.Option{Long: "idle-timeout", Arg: getopt.RequiredArgument}
	optKeepAlive      = getopt.Option{Long: "keepalive"}
	optNoDelay        = getopt.Option{Long: "nodelay", Arg: getopt.RequiredArgument}
	optTarget         = getopt.Option{Long: "target", Arg: getopt.RequiredArgument}
	optLogConnections = getopt.Option{Long: "log-connections"}
	// v252's four first and in its order, which is the order getopt
	// lists the candidates of an ambiguous abbreviation in.
	options = []getopt.Option{optConnectionsMax, optExitIdleTime, optHelp, optVersion,
		optConnectTimeout, optEngine, optThreads, optBusyPoll, optDrainTimeout, optProxyProtocol, optIdleTimeout,
		optKeepAlive, optNoDelay, optTarget, optLogConnections}
)

// Defaults.
const (
	defaultConnectionsMax = 256
	defaultConnectTimeout = 5 * time.Second
	defaultDrainTimeout   = 10 * time.Second
)

// parseCommandLine parses argv as v252 does: options in order, the first
// that ends the program wins. It returns done=true with an exit code when
// the program must end (help, version, or an error, already printed).
// getopt's own errors go to stderr bare, as glibc prints them; the
// program's go through log, as v252's log_error does.
func parseCommandLine(argv []string, stdout, stderr io.Writer, log *forward.Logger) (cfg config, done bool, code int) {
	prog := "uring-socket-proxyd"
	if len(argv) > 0 {
		prog = argv[0] // glibc names the program as it was invoked
	}
	cfg = config{
		connectionsMax: defaultConnectionsMax,
		exitIdleTime:   forward.Never,
		connectTimeout: defaultConnectTimeout,
		engine:         "auto",
		threads:        0, // the engine's default
		drainTimeout:   defaultDrainTimeout,
		idleTimeout:    forward.Never,
		noDelay:        true,
	}
	fail := func(format string, args ...any) (config, bool, int) {
		log.Errorf(format, args...)
		return cfg, true, 1
	}
	events, operands := getopt.Parse(prog, argv[1:], options)
	for _, ev := range events {
		if ev.Err != nil {
			fmt.Fprintln(stderr, ev.Err)
			return cfg, true, 1
		}
		switch ev.Option.Long {
		case optHelp.Long:
			printHelp(stdout, filepath.Base(prog))
			return cfg, true, 0
		case optVersion.Long:
			printVersion(stdout)
			return cfg, true, 0
		case optConnectionsMax.Long:
			n, err := parseUint32Auto(ev.Value)
			if err != nil {
				return fail("Failed to parse --connections-max= argument: %s", ev.Value)
			}
			if n == 0 {
				return fail("Connection limit is too low.")
			}
			cfg.connectionsMax = n
		case optExitIdleTime.Long:
			d, err := timespan.Parse(ev.Value)
			if err != nil {
				return fail("Failed to parse --exit-idle-time= argument: %s", ev.Value)
			}
			cfg.exitIdleTime = d
		case optConnectTimeout.Long:
			d, err := timespan.Parse(ev.Value)
			if err != nil {
				return fail("Failed to parse --connect-timeout= argument: %s", ev.Value)
			}
			cfg.connectTimeout = d
		case optEngine.Long:
			switch ev.Value {
			case "auto", "io_uring", "epoll":
				cfg.engine = ev.Value
			default:
				return fail("Failed to parse --engine= argument: %s (expected auto, io_uring or epoll)", ev.Value)
			}
		case optThreads.Long:
			n, err := strconv.ParseUint(strings.TrimSpace(ev.Value), 10, 16)
			if err != nil || n == 0 || n > 1024 {
				return fail("Failed to parse --threads= argument: %s (expected 1 to 1024)", ev.Value)
			}
			cfg.threads = int(n)
		case optBusyPoll.Long:
			d, err := timespan.Parse(ev.Value)
			if err != nil {
				return fail("Failed to parse --busy-poll= argument: %s", ev.Value)
			}
			cfg.busyPoll = d
		case optDrainTimeout.Long:
			d, err := timespan.Parse(ev.Value)
			if err != nil {
				return fail("Failed to parse --drain-timeout= argument: %s", ev.Value)
			}
			cfg.drainTimeout = d
		case optIdleTimeout.Long:
			d, err := timespan.Parse(ev.Value)
			if err != nil {
				return fail("Failed to parse --idle-timeout= argument: %s", ev.Value)
			}
			if d == 0 {
				d = forward.Never // 0 turns it off, as systemd's timeouts do
			}
			cfg.idleTimeout = d
		case optProxyProtocol.Long:
			v, err := forward.ParseProxyVersion(ev.Value)
			if err != nil {
				return fail("Failed to parse --proxy-protocol= argument: %s (expected v1 or v2)", ev.Value)
			}
			cfg.proxyProtocol = v
		case optKeepAlive.Long:
			cfg.keepAlive = true
		case optNoDelay.Long:
			b, err := parseBoolean(ev.Value)
			if err != nil {
				return fail("Failed to parse --nodelay= argument: %s (expected yes or no)", ev.Value)
			}
			cfg.noDelay = b
		case optTarget.Long:
			name, target, ok := strings.Cut(ev.Value, "=")
			if !ok || name == "" || target == "" {
				return fail("Failed to parse --target= argument: %s (expected NAME=TARGET)", ev.Value)
			}
			for _, nt := range cfg.targets {
				if nt.name == name {
					return fail("Failed to parse --target= argument: %s (a target for %q was given already)", ev.Value, name)
				}
			}
			cfg.targets = append(cfg.targets, namedTarget{name, target})
		case optLogConnections.Long:
			cfg.logConnections = true
		}
	}
	switch {
	case len(operands) < 1 && len(cfg.targets) == 0:
		return fail("Not enough parameters.")
	case len(operands) > 1:
		return fail("Too many parameters.")
	}
	if len(operands) == 1 {
		cfg.target, cfg.hasTarget = operands[0], true
	}
	return cfg, false, 0
}

// parseBoolean parses a boolean as systemd's parse_boolean() does.
func parseBoolean(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q", s)
}

// parseUint32Auto parses like systemd's safe_atou32(): strtoul with an
// automatic base (0x10 = 16, 010 = 8), leading white space allowed, one
// sign, the whole string used, and the value within 32 bits. A '-' is
// refused unless the value is zero: "-0" is 0, as strtoul reads it.
func parseUint32Auto(s string) (uint32, error) {
	t := strings.TrimLeft(s, " \t\n\r\v\f")
	negative := strings.HasPrefix(t, "-")
	if negative {
		t = t[1:]
	} else {
		t = strings.TrimPrefix(t, "+")
	}
	n, err := strconv.ParseUint(t, 0, 32)
	if err != nil || strings.Contains(t, "_") || strings.HasPrefix(t, "0b") || strings.HasPrefix(t, "0B") || strings.HasPrefix(t, "0o") || strings.HasPrefix(t, "0O") {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	if negative && n != 0 {
		return 0, fmt.Errorf("negative value %q", s)
	}
	return uint32(n), nil
}

func printHelp(w io.Writer, prog string) {
	fmt.Fprintf(w, `%[1]s [HOST:PORT]
%[1]s [SOCKET]

Bidirectionally proxy local sockets to another (possibly remote) socket.

  -c --connections-max=  Set the maximum number of connections to be accepted
     --exit-idle-time=   Exit when without a connection for this duration. See
                         the systemd.time(7) man page for time span format
     --connect-timeout=  Keep retrying a refused or missing target for this
                         long before giving up on a connection (default 5s;
                         0 means a single attempt)
     --engine=           io_uring, epoll, or auto (default: io_uring where the
                         kernel allows it, epoll otherwise)
     --threads=          Number of event loops (default: one per two CPUs)
     --busy-poll=        Keep each event loop polling, on its CPU, for this
                         long after its last event instead of sleeping
                         (default 0: sleep at once). Lower latency, more CPU
     --drain-timeout=    On SIGTERM/SIGINT, let open connections finish for
                         this long before closing them (default 10s; 0
                         closes at once)
     --proxy-protocol=   Send a PROXY protocol header (v1 or v2) to the target
                         before any data
     --idle-timeout=     Close a connection that moved no data either way
                         for this long (default infinity: never)
     --keepalive         Enable TCP keepalive on connections to the target
     --nodelay=BOOL      TCP_NODELAY on both legs (default yes)
     --target=NAME=TARGET
                         Send connections of the socket whose
                         FileDescriptorName= is NAME to TARGET (repeatable)
     --log-connections   Log one line per connection when it ends
  -h --help              Show this help
     --version           Show package version

See the uring-socket-proxyd(8) man page for details.
`, prog)
}
