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
	wake func()
	mu   sync.Mutex
	done []Lookup
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
		l.done = append(l.done, Lookup{Slot: slot, Gen: gen, Addrs: addrs, Err: err})
		l.mu.Unlock()
		l.wake()
	}()
}

// Take returns the lookups finished since the last call.
func (l *Lookups) Take() []Lookup {
	l.mu.Lock()
	defer l.mu.Unlock()
	done := l.done
	l.done = nil
	return done
}
