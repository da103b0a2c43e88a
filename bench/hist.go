package bench

import (
	"math/bits"
	"time"
)

// histBuckets: values below 64 ns get a bucket each; above, every power of
// two is split into 32 buckets, so a quantile is within about 3 %.
const histBuckets = 64 + 58*32

// Histogram is a preallocated log-linear latency histogram. Recording is
// an index computation and an increment; it never allocates. It is not
// safe for concurrent use: give each goroutine its own and Merge them.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

func bucketOf(v uint64) int {
	if v < 64 {
		return int(v)
	}
	l := bits.Len64(v)
	m := v >> (l - 6) // 32..63
	return 64 + (l-7)*32 + int(m-32)
}

// bucketValue is the midpoint of bucket i.
func bucketValue(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	l := (i-64)/32 + 7
	m := uint64((i-64)%32 + 32)
	w := uint64(1) << (l - 6)
	return m<<(l-6) + w/2
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

// Count is the number of recorded latencies.
func (h *Histogram) Count() uint64 { return h.n }

// Merge adds o's latencies to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Quantile returns the latency below which a fraction q of the recorded
// ones lie (0 if none was recorded).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var c uint64
	for i, k := range h.counts {
		c += k
		if c >= rank {
			return min(time.Duration(bucketValue(i)), h.max)
		}
	}
	return h.max
}
