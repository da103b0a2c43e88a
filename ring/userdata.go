package ring

// User data layout of PackUserData: op in the top 8 bits, a generation in
// the next 24, a slot index in the low 32.
const (
	UserDataGenBits = 24
	UserDataGenMask = 1<<UserDataGenBits - 1
)

// PackUserData packs an operation tag, a generation and a slot index into a
// CQE's user_data. Only the low UserDataGenBits of gen are kept: a caller
// that bumps a slot's generation on reuse recognises a late completion for
// the slot's previous occupant as long as fewer than 1<<24 reuses separate
// them.
func PackUserData(op uint8, gen uint32, slot uint32) uint64 {
	return uint64(op)<<56 | uint64(gen&UserDataGenMask)<<32 | uint64(slot)
}

// UnpackUserData is the inverse of PackUserData.
func UnpackUserData(u uint64) (op uint8, gen uint32, slot uint32) {
	return uint8(u >> 56), uint32(u>>32) & UserDataGenMask, uint32(u)
}
