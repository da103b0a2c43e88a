package forward

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// Counters are one event loop's share of the proxy's figures. Each loop
// has its own, so that counting a chunk of bytes is an atomic add on a
// cache line no other thread writes; readers (STATUS=, SIGUSR1) add the
// shares up.
type Counters struct {
	BytesUp        atomic.Uint64 // client → backend
	BytesDown      atomic.Uint64 // backend → client
	FailedConnects atomic.Uint64
	IdleClosed     atomic.Uint64 // closed by --idle-timeout
	listeners      []ListenerCounters
	_              [64]byte // keep the next loop's counters off this cache line
}

// ListenerCounters are one loop's figures for one listener.
type ListenerCounters struct {
	Accepted atomic.Uint64
	Open     atomic.Int64
}

// stats holds every loop's counters.
type stats struct {
	mu     sync.Mutex
	shards []*Counters
}

// NewCounters returns counters for one event loop of s, counted in the
// figures from now on. Engines call it once per loop.
func (s *Server) NewCounters() *Counters {
	c := &Counters{listeners: make([]ListenerCounters, len(s.Listeners))}
	s.stats.mu.Lock()
	s.stats.shards = append(s.stats.shards, c)
	s.stats.mu.Unlock()
	return c
}

// Snapshot is the proxy's figures at one moment.
type Snapshot struct {
	Engine         string
	Draining       bool
	Open           int64
	Accepted       uint64
	Refused        uint64
	FailedConnects uint64
	IdleClosed     uint64
	BytesUp        uint64
	BytesDown      uint64
	Listeners      []ListenerSnapshot
}

// ListenerSnapshot is one listener's figures.
type ListenerSnapshot struct {
	Name     string
	Address  string
	Target   string
	Accepted uint64
	Open     int64
}

// Snapshot adds up every loop's counters.
func (s *Server) Snapshot() Snapshot {
	sn := Snapshot{Engine: s.engineName, Draining: s.draining.Load()}
	if s.Tracker != nil {
		sn.Open, sn.Accepted, sn.Refused = s.Tracker.Open(), s.Tracker.Accepted(), s.Tracker.Refused()
	}
	sn.Listeners = make([]ListenerSnapshot, len(s.Listeners))
	for i, l := range s.Listeners {
		sn.Listeners[i] = ListenerSnapshot{Name: l.Name, Address: l.Address(), Target: l.targetOr(s.Target).String()}
	}
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	for _, c := range s.stats.shards {
		sn.BytesUp += c.BytesUp.Load()
		sn.BytesDown += c.BytesDown.Load()
		sn.FailedConnects += c.FailedConnects.Load()
		sn.IdleClosed += c.IdleClosed.Load()
		for i := range c.listeners {
			sn.Listeners[i].Accepted += c.listeners[i].Accepted.Load()
			sn.Listeners[i].Open += c.listeners[i].Open.Load()
		}
	}
	return sn
}

// Status is the one-line summary sent as STATUS= and shown by systemctl
// status.
func (sn Snapshot) Status() string {
	var b strings.Builder
	if sn.Draining {
		b.WriteString("Draining: ")
	}
	fmt.Fprintf(&b, "%d open, %d accepted, %d refused, %d failed connects; %s up, %s down; %s engine",
		sn.Open, sn.Accepted, sn.Refused, sn.FailedConnects, FormatBytes(sn.BytesUp), FormatBytes(sn.BytesDown), sn.Engine)
	return b.String()
}

// Report is the multi-line report SIGUSR1 logs: the status figures and
// each listener's.
func (sn Snapshot) Report() []string {
	lines := []string{fmt.Sprintf("Statistics: %s; %d closed idle.", sn.Status(), sn.IdleClosed)}
	for _, l := range sn.Listeners {
		lines = append(lines, fmt.Sprintf("Listener %s (%s) → %s: %d open, %d accepted.", l.Address, l.Name, l.Target, l.Open, l.Accepted))
	}
	return lines
}

// FormatBytes formats a byte count with a binary unit, as systemd does
// (format_bytes): "512B", "1.5K", "3.2G".
func FormatBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%c", v, units[i])
}
