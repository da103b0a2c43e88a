package bench

import (
	"bytes"
	"fmt"
)

// patternPeriod is the period of the content stream. It is odd and not near
// a power of two, so a dropped or duplicated chunk of any usual size shifts
// the stream against the table and cannot go unnoticed.
const patternPeriod = 1<<20 + 4093

// maxWindow is the largest slice Window and Check handle in one call.
const maxWindow = 1 << 20

// patternTable holds one period of the stream followed by its first
// maxWindow bytes again, so every window of up to maxWindow bytes is one
// contiguous slice: writing needs no copy and checking is one bytes.Equal.
var patternTable = func() []byte {
	b := make([]byte, patternPeriod+maxWindow)
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i < patternPeriod; i += 8 {
		// xorshift64
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := 0; j < 8 && i+j < patternPeriod; j++ {
			b[i+j] = byte(x >> (8 * j))
		}
	}
	copy(b[patternPeriod:], b[:maxWindow])
	return b
}()

// stream is a position in the content stream. Each connection gets its own
// seed, so bytes crossing between connections are caught too.
type stream struct {
	seed uint64
	pos  uint64
}

// window returns the next n bytes (n <= maxWindow) of the stream without
// advancing it. The slice aliases the shared table: never write to it.
func (s *stream) window(n int) []byte {
	off := (s.seed + s.pos) % patternPeriod
	return patternTable[off : off+uint64(n)]
}

// check compares b with the next len(b) bytes of the stream and advances
// past them. It reports the offset of the first difference.
func (s *stream) check(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), maxWindow)
		want := s.window(n)
		if !bytes.Equal(b[:n], want) {
			i := 0
			for i < n && b[i] == want[i] {
				i++
			}
			return &CorruptError{Offset: s.pos + uint64(i), Got: b[i], Want: want[i]}
		}
		s.pos += uint64(n)
		b = b[n:]
	}
	return nil
}

// CorruptError reports content that differs from what was sent.
type CorruptError struct {
	Offset    uint64
	Got, Want byte
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("content corrupted at byte %d: got %#02x, want %#02x", e.Offset, e.Got, e.Want)
}
