package ring

import (
	"strconv"
	"testing"
)

// BenchmarkNop measures a NOP round trip (GetSQE, PrepNop, SubmitAndWait,
// PeekBatch, Advance) of a batch of NOPs per op, on a ring set up as the
// engine sets it up.
func BenchmarkNop(b *testing.B) {
	for _, batch := range []int{1, 8, 64} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			r := newRing(b, 64, &Options{Flags: SetupSingleIssuer | SetupDeferTaskrun | SetupSubmitAll, CQEntries: 128})
			cqes := make([]*CQE, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := nopRoundTrip(r, batch, cqes); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/nop")
		})
	}
}
