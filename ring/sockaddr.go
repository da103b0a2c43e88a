package ring

// RawSockaddr is a socket address in the kernel's form (the bytes of a
// struct sockaddr_storage) with its length. PrepConnect reads it; PrepAccept
// has the kernel write the peer's address into it, so it must live where it
// cannot move or be collected until the CQE is reaped, e.g. in a slot table
// allocated once. On Linux, Set and Sockaddr convert from and to
// unix.Sockaddr.
type RawSockaddr struct {
	Addr [128]byte // struct sockaddr_storage
	Len  uint32    // bytes of Addr in use (socklen_t)
}
