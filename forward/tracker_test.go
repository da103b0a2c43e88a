package forward

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTrackerLimitExact admits exactly max connections, then refuses, and
// admits again once one closes.
func TestTrackerLimitExact(t *testing.T) {
	tr := NewTracker(3, Never, nil, nil)
	for i := 0; i < 3; i++ {
		if !tr.TryOpen() {
			t.Fatalf("connection %d refused under the limit of 3", i+1)
		}
	}
	if tr.TryOpen() {
		t.Fatal("fourth connection admitted with a limit of 3")
	}
	if tr.Open() != 3 || tr.Accepted() != 3 || tr.Refused() != 1 {
		t.Fatalf("open %d accepted %d refused %d, want 3 3 1", tr.Open(), tr.Accepted(), tr.Refused())
	}
	tr.Close()
	if !tr.TryOpen() {
		t.Fatal("refused after a connection closed")
	}
	if tr.TryOpen() {
		t.Fatal("admitted over the limit again")
	}
	for i := 0; i < 3; i++ {
		tr.Close()
	}
	if tr.Open() != 0 || tr.Accepted() != 4 || tr.Refused() != 2 {
		t.Fatalf("open %d accepted %d refused %d, want 0 4 2", tr.Open(), tr.Accepted(), tr.Refused())
	}
}

// TestTrackerLimitConcurrent hammers TryOpen and Close from many
// goroutines: never more than max are open at once, and the counts add up.
func TestTrackerLimitConcurrent(t *testing.T) {
	const (
		max        = 4
		goroutines = 32
		iterations = 2000
	)
	var fired atomic.Int32
	tr := NewTracker(max, time.Millisecond, func() { fired.Add(1) }, nil)
	tr.Start()
	var inside, peak atomic.Int64
	var admitted atomic.Uint64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < iterations; i++ {
				if !tr.TryOpen() {
					continue
				}
				admitted.Add(1)
				n := inside.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				if n > max {
					t.Errorf("%d connections inside with a limit of %d", n, max)
				}
				if i%7 == 0 {
					time.Sleep(time.Microsecond)
				}
				inside.Add(-1)
				tr.Close()
			}
		}()
	}
	close(start)
	wg.Wait()
	if tr.Open() != 0 {
		t.Errorf("Open() = %d after every connection closed", tr.Open())
	}
	if got := tr.Accepted() + tr.Refused(); got != goroutines*iterations {
		t.Errorf("accepted %d + refused %d = %d, want %d attempts", tr.Accepted(), tr.Refused(), got, goroutines*iterations)
	}
	if tr.Accepted() != admitted.Load() {
		t.Errorf("Accepted() = %d, but %d TryOpen calls returned true", tr.Accepted(), admitted.Load())
	}
	if peak.Load() == 0 || tr.Refused() == 0 {
		t.Errorf("peak %d, refused %d: the test did not reach the limit", peak.Load(), tr.Refused())
	}
	t.Logf("peak %d, accepted %d, refused %d, idle timer fired %d times", peak.Load(), tr.Accepted(), tr.Refused(), fired.Load())
}

// TestTrackerLimitBurst starts many connections at the same instant: exactly
// max get in.
func TestTrackerLimitBurst(t *testing.T) {
	for round := 0; round < 20; round++ {
		tr := NewTracker(5, Never, nil, nil)
		var in atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 50; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if tr.TryOpen() {
					in.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if in.Load() != 5 || tr.Open() != 5 || tr.Refused() != 45 {
			t.Fatalf("round %d: %d admitted (Open %d, Refused %d) of 50 with a limit of 5", round, in.Load(), tr.Open(), tr.Refused())
		}
	}
}

// idleRecorder counts onIdle calls and says when the first came.
type idleRecorder struct {
	n  atomic.Int32
	ch chan time.Time
}

func newIdleRecorder() *idleRecorder { return &idleRecorder{ch: make(chan time.Time, 16)} }

func (r *idleRecorder) onIdle() {
	r.n.Add(1)
	r.ch <- time.Now()
}

// wait returns when onIdle was called, or fails after d.
func (r *idleRecorder) wait(t *testing.T, d time.Duration, what string) time.Time {
	t.Helper()
	select {
	case at := <-r.ch:
		return at
	case <-time.After(d):
		t.Fatalf("idle timer did not fire within %v %s", d, what)
		return time.Time{}
	}
}

// none checks that onIdle is not called for d.
func (r *idleRecorder) none(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-r.ch:
		t.Fatalf("idle timer fired %s", what)
	case <-time.After(d):
	}
}

const testIdle = 25 * time.Millisecond

func TestTrackerIdleArmedAtStart(t *testing.T) {
	r := newIdleRecorder()
	tr := NewTracker(4, testIdle, r.onIdle, nil)
	r.none(t, 3*testIdle, "before Start")
	start := time.Now()
	tr.Start()
	at := r.wait(t, 5*time.Second, "after Start with no connection")
	if el := at.Sub(start); el < testIdle {
		t.Errorf("fired %v after Start, before the idle time %v", el, testIdle)
	}
	r.none(t, 2*testIdle, "a second time with nothing happening")
}

func TestTrackerIdleCancelledAndRearmed(t *testing.T) {
	r := newIdleRecorder()
	tr := NewTracker(4, testIdle, r.onIdle, nil)
	tr.Start()
	if !tr.TryOpen() {
		t.Fatal("refused")
	}
	r.none(t, 4*testIdle, "while a connection was open")
	if !tr.TryOpen() {
		t.Fatal("refused")
	}
	tr.Close()
	r.none(t, 4*testIdle, "while one of two connections was still open")
	closed := time.Now()
	tr.Close()
	at := r.wait(t, 5*time.Second, "after the last connection closed")
	if el := at.Sub(closed); el < testIdle {
		t.Errorf("fired %v after the last close, before the idle time %v", el, testIdle)
	}
	// And again: a new connection after the exit decision re-arms it when
	// it closes.
	tr.TryOpen()
	r.none(t, 2*testIdle, "while a new connection was open")
	tr.Close()
	r.wait(t, 5*time.Second, "after the new connection closed")
	if n := r.n.Load(); n != 2 {
		t.Errorf("onIdle called %d times, want 2", n)
	}
}

// TestTrackerIdleRestartsOnEachClose checks the timer counts from the last
// close, not from the first arming.
func TestTrackerIdleRestartsOnEachClose(t *testing.T) {
	r := newIdleRecorder()
	tr := NewTracker(4, 4*testIdle, r.onIdle, nil)
	tr.Start()
	// Keep the proxy busy with short connections past several idle times.
	var lastClose time.Time
	for deadline := time.Now().Add(12 * testIdle); time.Now().Before(deadline); {
		tr.TryOpen()
		time.Sleep(testIdle / 5)
		lastClose = time.Now()
		tr.Close()
		time.Sleep(testIdle / 5)
	}
	r.none(t, testIdle, "during a stream of short connections")
	at := r.wait(t, 5*time.Second, "after the stream ended")
	if el := at.Sub(lastClose); el < 4*testIdle {
		t.Errorf("fired %v after the last close, before the idle time %v", el, 4*testIdle)
	}
}

func TestTrackerIdleZero(t *testing.T) {
	r := newIdleRecorder()
	tr := NewTracker(4, 0, r.onIdle, nil)
	tr.TryOpen()
	r.none(t, 2*testIdle, "with a connection open and idle time 0")
	tr.Close()
	r.wait(t, 5*time.Second, "at once after the last close with idle time 0")
}

// TestTrackerPendingDelaysExit checks the pending hook: while a client
// waits in an accept queue the proxy is not idle.
func TestTrackerPendingDelaysExit(t *testing.T) {
	r := newIdleRecorder()
	var waiting atomic.Bool
	var asked atomic.Int32
	waiting.Store(true)
	tr := NewTracker(4, testIdle, r.onIdle, func() bool {
		asked.Add(1)
		return waiting.Load()
	})
	tr.Start()
	r.none(t, 6*testIdle, "while a client was pending")
	if asked.Load() < 2 {
		t.Errorf("pending asked %d times while waiting, want it asked again and again", asked.Load())
	}
	// The client is accepted and served: not idle.
	tr.TryOpen()
	waiting.Store(false)
	r.none(t, 3*testIdle, "while the pending client, now accepted, was open")
	tr.Close()
	r.wait(t, 5*time.Second, "after the pending client was served")

	// A client that gives up while pending: the proxy exits once the queue
	// is empty, without a connection.
	r2 := newIdleRecorder()
	waiting.Store(true)
	tr2 := NewTracker(4, testIdle, r2.onIdle, func() bool { return waiting.Load() })
	tr2.Start()
	r2.none(t, 3*testIdle, "while a client was pending")
	waiting.Store(false)
	r2.wait(t, 5*time.Second, "once nothing was pending")
}

func TestTrackerNeverDisablesIdle(t *testing.T) {
	r := newIdleRecorder()
	var asked atomic.Int32
	tr := NewTracker(4, Never, r.onIdle, func() bool { asked.Add(1); return false })
	tr.Start()
	tr.TryOpen()
	tr.Close()
	r.none(t, 4*testIdle, "with idle time Never")
	if asked.Load() != 0 {
		t.Errorf("pending asked %d times with idle time Never", asked.Load())
	}
	// No onIdle at all is allowed too.
	tr = NewTracker(4, time.Millisecond, nil, nil)
	tr.Start()
	tr.TryOpen()
	tr.Close()
	time.Sleep(5 * time.Millisecond)
}

// TestTrackerIdleRace races the close of the last connection against the
// open of the next, on many trackers at once: whatever the order, a
// tracker left with an open connection must not fire.
func TestTrackerIdleRace(t *testing.T) {
	const trackers = 200
	recs := make([]*idleRecorder, trackers)
	var wg sync.WaitGroup
	for i := range recs {
		r := newIdleRecorder()
		recs[i] = r
		tr := NewTracker(4, 3*testIdle, r.onIdle, nil)
		tr.Start()
		tr.TryOpen()
		wg.Add(2)
		go func() { defer wg.Done(); tr.Close() }()
		go func() { defer wg.Done(); tr.TryOpen() }()
	}
	wg.Wait()
	time.Sleep(6 * testIdle)
	for i, r := range recs {
		if n := r.n.Load(); n != 0 {
			t.Errorf("tracker %d fired %d times with a connection open", i, n)
		}
	}
}
