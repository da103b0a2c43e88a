package forward

import (
	"sync"
	"sync/atomic"
	"time"
)

// Never is an idle time that never expires (systemd's "infinity").
const Never time.Duration = 1<<63 - 1

// Tracker counts connections from accept to close, enforces
// --connections-max exactly, and runs the --exit-idle-time timer. Engines
// call TryOpen for every accepted connection and Close when it is gone; both
// are safe from any goroutine and cost one atomic operation unless the count
// crosses zero.
type Tracker struct {
	max  int64
	open atomic.Int64

	accepted atomic.Uint64
	refused  atomic.Uint64

	idle    time.Duration
	onIdle  func()
	pending func() bool

	mu    sync.Mutex
	timer *time.Timer
	armed bool
}

// NewTracker returns a tracker admitting at most max connections at once.
// When idle is not Never, onIdle is called once the proxy has had no
// connection for idle; pending, if not nil, is asked first whether a client
// is waiting in an accept queue, in which case the proxy is not idle.
func NewTracker(max uint32, idle time.Duration, onIdle func(), pending func() bool) *Tracker {
	return &Tracker{max: int64(max), idle: idle, onIdle: onIdle, pending: pending}
}

// TryOpen admits one connection, or reports false when --connections-max
// connections are already open; the caller then closes it at once.
func (t *Tracker) TryOpen() bool {
	for {
		n := t.open.Load()
		if n >= t.max {
			t.refused.Add(1)
			return false
		}
		if t.open.CompareAndSwap(n, n+1) {
			t.accepted.Add(1)
			if n == 0 {
				t.updateIdle()
			}
			return true
		}
	}
}

// Close records that an admitted connection is gone.
func (t *Tracker) Close() {
	if t.open.Add(-1) == 0 {
		t.updateIdle()
	}
}

// Open returns the number of connections open now.
func (t *Tracker) Open() int64 { return t.open.Load() }

// Accepted and Refused return totals since start.
func (t *Tracker) Accepted() uint64 { return t.accepted.Load() }

// Refused returns how many connections were turned away by the limit.
func (t *Tracker) Refused() uint64 { return t.refused.Load() }

// Start arms the idle timer for the first time: a proxy that never gets a
// connection exits after the idle time too.
func (t *Tracker) Start() { t.updateIdle() }

// updateIdle arms the timer when no connection is open and stops it
// otherwise. It decides on the count read under the lock, so whichever of
// two racing updates runs last sees the truth.
func (t *Tracker) updateIdle() {
	if t.idle == Never || t.onIdle == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open.Load() > 0 {
		if t.armed {
			t.timer.Stop()
			t.armed = false
		}
		return
	}
	if t.timer == nil {
		t.timer = time.AfterFunc(t.idle, t.fire)
	} else {
		t.timer.Reset(t.idle)
	}
	t.armed = true
}

func (t *Tracker) fire() {
	t.mu.Lock()
	if !t.armed || t.open.Load() > 0 {
		t.mu.Unlock()
		return
	}
	if t.pending != nil && t.pending() {
		// A client waits to be accepted: look again shortly rather than
		// exit and leave it to a restarted proxy.
		t.timer.Reset(10 * time.Millisecond)
		t.mu.Unlock()
		return
	}
	t.armed = false
	t.mu.Unlock()
	t.onIdle()
}
