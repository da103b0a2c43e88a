package forward

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Lookup is a host name resolution done for one connection of an event
// loop, off the loop: the resolver may block, the loop must not.
type Lookup struct {
	Slot, Gen uint32 // the connection, as the loop knows it
	Addrs     []unix.Sockaddr
	Err       error
}

// Lookups carries lookups from resolver goroutines back to the event loop
// that started them. Start and Take may be called from the loop; the
// goroutines post results and call wake, which must make the loop call
// Take soon.
type Lookups struct {
	wake   func()
	mu     sync.Mutex
	done   []Lookup
	closed bool
}

// NewLookups returns a mailbox whose results are announced with wake.
func NewLookups(wake func()) *Lookups { return &Lookups{wake: wake} }

// Start resolves t for connection (slot, gen) within timeout.
func (l *Lookups) Start(t *Target, slot, gen uint32, timeout time.Duration) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		addrs, err := t.Resolve(ctx)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			return // the loop is gone, and so may be what wake writes to
		}
		l.done = append(l.done, Lookup{Slot: slot, Gen: gen, Addrs: addrs, Err: err})
		l.wake()
	}()
}

// Close drops lookups still running: after it returns, wake is not called
// again, so the loop may close what wake uses.
func (l *Lookups) Close() {
	l.mu.Lock()
	l.closed = true
	l.done = nil
	l.mu.Unlock()
}

// Take returns the lookups finished since the last call.
func (l *Lookups) Take() []Lookup {
	l.mu.Lock()
	defer l.mu.Unlock()
	done := l.done
	l.done = nil
	return done
}
