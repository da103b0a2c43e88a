package forward

import (
	"context"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Engine moves bytes between accepted clients and the target.
type Engine interface {
	// Name is the engine's name as --engine= spells it.
	Name() string
	// Serve accepts on every listener and forwards each admitted connection
	// until ctx is done; then it stops accepting, closes every connection and
	// returns. It calls ready once every listener is being served. When
	// s.StopAccepting() is closed it stops accepting, leaves clients not yet
	// accepted in the listeners' queues, calls s.AcceptsStopped() and goes
	// on forwarding the open connections (the drain). An error means the
	// engine could not serve at all.
	Serve(ctx context.Context, s *Server, ready func()) error
}

// Server is everything an engine needs besides itself.
type Server struct {
	Listeners []Listener
	// Target is the default target, for listeners without their own.
	Target *Target
	// ConnectTimeout bounds the connect phase of each connection, retries
	// included; 0 means a single attempt bounded by the kernel's timeout.
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection that moved no byte either way for
	// that long; 0 or Never: never.
	IdleTimeout time.Duration
	// ProxyProtocol is the PROXY protocol header sent to the backend.
	ProxyProtocol ProxyVersion
	// NoDelay sets TCP_NODELAY on both legs; KeepAlive sets SO_KEEPALIVE
	// on the backend leg.
	NoDelay, KeepAlive bool
	// LogConnections logs one line per connection when it ends.
	LogConnections bool
	// Threads is the number of event loops; < 1 means DefaultThreads.
	Threads int
	// BusyPoll is how long an event loop keeps polling for events
	// without sleeping after its last one; 0 sleeps at once. Polling
	// spares a sleeping loop's wake-up (on a VM that halts idle vCPUs,
	// tens of µs per message) at the cost of a CPU kept busy while
	// traffic flows; once no event came for BusyPoll the loop sleeps,
	// so an idle proxy still uses no CPU. Never polls without end.
	BusyPoll time.Duration
	Tracker  *Tracker
	Log      *Logger

	engineName    string
	stats         stats
	draining      atomic.Bool
	stopAccepting chan struct{} // closed when the drain starts
	acceptsOnce   sync.Once
	acceptsDone   chan struct{}  // closed by AcceptsStopped
	noDelayDebt   []atomic.Int64 // per listener: clients queued before TCP_NODELAY was set
	// brokenListeners holds the index of each listener reported by
	// ListenerBroke.
	brokenListeners sync.Map
}

// TargetOf returns the target of listener i.
func (s *Server) TargetOf(i int) *Target { return s.Listeners[i].targetOr(s.Target) }

// BusyPollUntil is when a loop whose last event came at now (in any
// nanosecond clock of the loop's) stops polling and sleeps: at now when
// polling is off, never at all for Never.
func (s *Server) BusyPollUntil(now int64) int64 {
	switch {
	case s.BusyPoll <= 0:
		return now
	case s.BusyPoll == Never || now > math.MaxInt64-int64(s.BusyPoll):
		return math.MaxInt64 // a span past the clock's end polls without end
	}
	return now + int64(s.BusyPoll)
}

// IdleTimeoutOn reports whether connections are closed when idle.
func (s *Server) IdleTimeoutOn() bool { return s.IdleTimeout > 0 && s.IdleTimeout != Never }

// StopAccepting is closed when the engine must stop accepting: the drain
// has begun. It is nil (never ready) for a server not run by Run.
func (s *Server) StopAccepting() <-chan struct{} { return s.stopAccepting }

// AcceptsStopped tells Run that no loop accepts any more; from then on the
// open connections are all there will be.
func (s *Server) AcceptsStopped() {
	if s.acceptsDone != nil {
		s.acceptsOnce.Do(func() { close(s.acceptsDone) })
	}
}

// Options configures Run.
type Options struct {
	ConnectionsMax uint32
	// ExitIdleTime is --exit-idle-time; Never disables it.
	ExitIdleTime time.Duration
	// DrainTimeout is how long open connections may go on once the proxy
	// stops (ctx done, or idle exit); 0 closes them at once; Never waits
	// for every one.
	DrainTimeout time.Duration
	// Hurry, when it becomes ready during the drain, ends it at once (a
	// second SIGTERM).
	Hurry <-chan struct{}
}

// statusPeriod is how often STATUS= may change.
const statusPeriod = time.Second

// Run serves s with eng until ctx is done or the idle timer fires, sending
// READY=1, WATCHDOG=1, STATUS= and STOPPING=1 to the service manager when
// NOTIFY_SOCKET is set. Then it drains: accepting stops at once (clients
// not yet accepted stay queued for the next instance), the open
// connections go on for up to DrainTimeout, and whatever is left is
// closed. It returns nil on an orderly stop.
func Run(ctx context.Context, eng Engine, s *Server, o Options) error {
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	idle := make(chan struct{})
	var idleOnce sync.Once
	s.Tracker = NewTracker(o.ConnectionsMax, o.ExitIdleTime, func() {
		idleOnce.Do(func() { close(idle) })
	}, func() bool { return anyPending(s.Listeners) })
	s.engineName = eng.Name()
	s.stopAccepting = make(chan struct{})
	s.acceptsDone = make(chan struct{})
	for i := range s.Listeners {
		if s.Listeners[i].Target == nil {
			s.Listeners[i].Target = s.Target
		}
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	ready := func() {
		s.Tracker.Start()
		notify(s.Log, daemon.SdNotifyReady)
		if iv, err := daemon.SdWatchdogEnabled(false); err == nil && iv > 0 {
			go watchdog(runCtx, s.Log, iv/2)
		}
		if os.Getenv("NOTIFY_SOCKET") != "" {
			go statusLoop(runCtx, s)
		}
	}
	served := make(chan error, 1)
	go func() { served <- eng.Serve(serveCtx, s, ready) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	case <-idle:
		s.Log.Debugf("Exiting: no connection for %v.", o.ExitIdleTime)
	}
	notify(s.Log, daemon.SdNotifyStopping)
	s.draining.Store(true)
	close(s.stopAccepting)
	if err := drain(s, o, served); err != nil {
		return err
	}
	stopServe()
	return <-served
}

// drain waits, for at most o.DrainTimeout, until the engine has stopped
// accepting and every open connection has finished. It returns early with
// the engine's error if the engine stops by itself.
func drain(s *Server, o Options, served chan error) error {
	if o.DrainTimeout <= 0 {
		return nil
	}
	var deadline <-chan time.Time
	if o.DrainTimeout != Never {
		t := time.NewTimer(o.DrainTimeout)
		defer t.Stop()
		deadline = t.C
	}
	acceptsDone := s.acceptsDone
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	logged := false
	for {
		if acceptsDone == nil {
			open := s.Tracker.Open()
			if open == 0 {
				return nil
			}
			if !logged {
				logged = true
				s.Log.Infof("Stopping: letting %d open connection(s) finish, for up to %v.", open, fmtSpan(o.DrainTimeout))
			}
		}
		select {
		case <-acceptsDone:
			acceptsDone = nil
		case <-tick.C:
		case <-deadline:
			if n := s.Tracker.Open(); n > 0 {
				s.Log.Infof("Drain time is over: closing %d connection(s).", n)
			}
			return nil
		case <-o.Hurry:
			s.Log.Infof("Stopping at once: closing %d connection(s).", s.Tracker.Open())
			return nil
		case err := <-served:
			served <- err // for Run's final receive
			return nil
		}
	}
}

// fmtSpan prints a drain time for the log; Never is "ever".
func fmtSpan(d time.Duration) string {
	if d == Never {
		return "ever"
	}
	return d.String()
}

// statusLoop sends STATUS= with the live figures, at most once per
// statusPeriod and only when they changed.
func statusLoop(ctx context.Context, s *Server) {
	t := time.NewTicker(statusPeriod)
	defer t.Stop()
	last := ""
	for {
		if st := s.Snapshot().Status(); st != last {
			last = st
			notify(s.Log, "STATUS="+st)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// LogStats logs the figures and each listener's, for SIGUSR1.
func (s *Server) LogStats() {
	for _, line := range s.Snapshot().Report() {
		s.Log.Infof("%s", line)
	}
}

func notify(log *Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warnf("Failed to send %q to the service manager: %v", state, err)
	}
}

// watchdog pings the service manager every period until ctx is done.
func watchdog(ctx context.Context, log *Logger, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		notify(log, daemon.SdNotifyWatchdog)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// anyPending reports whether a client is waiting in any listener's accept
// queue.
func anyPending(ls []Listener) bool {
	if len(ls) == 0 {
		return false
	}
	pfds := make([]unix.PollFd, len(ls))
	for i, l := range ls {
		pfds[i] = unix.PollFd{Fd: int32(l.FD), Events: unix.POLLIN}
	}
	n, err := unix.Poll(pfds, 0)
	return err == nil && n > 0
}

// DefaultThreads is the number of event loops when --threads is not given:
// one per two CPUs. Measured on 2 cores with both engines, one loop beats
// two on connection rate, single-connection latency and CPU per GB, and
// ties on 32-connection request/response: the other CPU is the peers'.
func DefaultThreads() int { return max(1, runtime.NumCPU()/2) }
