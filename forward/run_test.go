package forward

import (
	"math"
	"testing"
	"time"
)

// TestBusyPollUntil: off polls not at all, a span polls that long after
// the last event, infinity never stops.
func TestBusyPollUntil(t *testing.T) {
	const now = int64(7 * time.Second)
	for _, tc := range []struct {
		busyPoll time.Duration
		want     int64
	}{
		{0, now},
		{-time.Second, now},
		{50 * time.Microsecond, now + int64(50*time.Microsecond)},
		{Never, math.MaxInt64},
		{Never - 1, math.MaxInt64}, // would overflow
	} {
		s := &Server{BusyPoll: tc.busyPoll}
		if got := s.BusyPollUntil(now); got != tc.want {
			t.Errorf("BusyPoll %v: BusyPollUntil(%d) = %d, want %d", tc.busyPoll, now, got, tc.want)
		}
	}
}
