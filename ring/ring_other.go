//go:build !linux

package ring

import (
	"errors"
	"time"
)

var errUnusable = &UnusableError{Reason: "io_uring is Linux-only", Err: errors.ErrUnsupported}

// Options are the io_uring_setup(2) choices; see the Linux documentation.
type Options struct {
	CQEntries uint32
	Flags     uint32
}

// Ring is an io_uring instance. Off Linux none can be made.
type Ring struct{}

// Setup answers an *UnusableError off Linux.
func Setup(entries uint32, opts *Options) (*Ring, error) { return nil, errUnusable }

// Check answers an *UnusableError off Linux.
func Check(ops ...Op) error { return errUnusable }

func (r *Ring) Close() error                      { return errUnusable }
func (r *Ring) Fd() int                           { return -1 }
func (r *Ring) Flags() uint32                     { return 0 }
func (r *Ring) Features() uint32                  { return 0 }
func (r *Ring) SQEntries() uint32                 { return 0 }
func (r *Ring) CQEntries() uint32                 { return 0 }
func (r *Ring) GetSQE() *SQE                      { return nil }
func (r *Ring) NextSQE() (*SQE, error)            { return nil, errUnusable }
func (r *Ring) SQSpaceLeft() uint32               { return 0 }
func (r *Ring) SQPending() uint32                 { return 0 }
func (r *Ring) Submit() (int, error)              { return 0, errUnusable }
func (r *Ring) Flush() (int, error)               { return 0, errUnusable }
func (r *Ring) SubmitAndWait(uint32) (int, error) { return 0, errUnusable }
func (r *Ring) SubmitAndWaitTimeout(uint32, time.Duration) (int, error) {
	return 0, errUnusable
}
func (r *Ring) CQReady() uint32                          { return 0 }
func (r *Ring) PeekBatch(cqes []*CQE) int                { return 0 }
func (r *Ring) Advance(n int)                            {}
func (r *Ring) Probe() (*Probe, error)                   { return nil, errUnusable }
func (r *Ring) RegisterFilesSparse(uint32) error         { return errUnusable }
func (r *Ring) UpdateFiles(uint32, []int32) (int, error) { return 0, errUnusable }
func (r *Ring) UnregisterFiles() error                   { return errUnusable }
func (r *Ring) RegisterIOWQMaxWorkers(bounded, unbounded uint32) (uint32, uint32, error) {
	return 0, 0, errUnusable
}
func (r *Ring) RegisterBufRing(uint16, uint32) (*BufRing, error) { return nil, errUnusable }

// Probe is the kernel's list of supported opcodes. Off Linux it is empty.
type Probe struct{}

func (p *Probe) Supports(Op) bool { return false }

// BufRing is a provided-buffer ring. Off Linux none can be made.
type BufRing struct{}

func (b *BufRing) Group() uint16           { return 0 }
func (b *BufRing) Entries() int            { return 0 }
func (b *BufRing) Add(uint16, []byte, int) {}
func (b *BufRing) Advance(int)             {}
func (b *BufRing) Recycle(uint16, []byte)  {}
func (b *BufRing) Close() error            { return errUnusable }

// AllocPinned answers errors.ErrUnsupported off Linux.
func AllocPinned(n int) ([]byte, error) { return nil, errUnusable }

// FreePinned answers errors.ErrUnsupported off Linux.
func FreePinned(b []byte) error { return errUnusable }
