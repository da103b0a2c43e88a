package fallback

// timerHeap orders connections by their one pending deadline (connect
// deadline or retry back-off). Each connection knows its index, so a timer
// is cancelled in O(log n) when the connection moves on, and the heap holds
// only connections that are waiting for something.
type timerHeap struct{ h []*conn }

// next returns the earliest deadline, 0 if none.
func (t *timerHeap) next() int64 {
	if len(t.h) == 0 {
		return 0
	}
	return t.h[0].timerAt
}

// set (re)arms c's timer at when (loop clock, > 0).
func (t *timerHeap) set(c *conn, when int64) {
	if c.timerIdx >= 0 {
		c.timerAt = when
		t.fix(c.timerIdx)
		return
	}
	c.timerAt = when
	c.timerIdx = len(t.h)
	t.h = append(t.h, c)
	t.up(c.timerIdx)
}

// cancel disarms c's timer if it is armed.
func (t *timerHeap) cancel(c *conn) {
	i := c.timerIdx
	if i < 0 {
		return
	}
	last := len(t.h) - 1
	t.swap(i, last)
	t.h[last] = nil
	t.h = t.h[:last]
	c.timerIdx = -1
	if i < last {
		t.fix(i)
	}
}

// popDue removes and returns a connection whose deadline is ≤ now, or nil.
func (t *timerHeap) popDue(now int64) *conn {
	if len(t.h) == 0 || t.h[0].timerAt > now {
		return nil
	}
	c := t.h[0]
	t.cancel(c)
	return c
}

func (t *timerHeap) fix(i int) {
	if !t.down(i) {
		t.up(i)
	}
}

func (t *timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if t.h[p].timerAt <= t.h[i].timerAt {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *timerHeap) down(i int) bool {
	start := i
	n := len(t.h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && t.h[r].timerAt < t.h[l].timerAt {
			m = r
		}
		if t.h[i].timerAt <= t.h[m].timerAt {
			break
		}
		t.swap(i, m)
		i = m
	}
	return i > start
}

func (t *timerHeap) swap(i, j int) {
	t.h[i], t.h[j] = t.h[j], t.h[i]
	t.h[i].timerIdx = i
	t.h[j].timerIdx = j
}
