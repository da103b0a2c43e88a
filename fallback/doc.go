// Package fallback is the epoll + splice engine of uring-socket-proxyd: the
// engine that runs where io_uring cannot (an old kernel, io_uring disabled
// by sysctl, a seccomp profile that forbids it), and the reference the
// io_uring engine is measured against.
//
// Each event loop owns an epoll instance, a slot table of connections and a
// small pool of pipes. Sockets are registered once, edge-triggered, and the
// loop remembers their readiness, so moving data costs two splice calls per
// chunk and no epoll_ctl. Bytes move socket → pipe → socket without
// entering user space. A pipe is taken from the pool only while bytes are in
// flight and given back when it drains, so an idle connection costs its two
// sockets and a small struct, nothing else. The pipe is the per-direction
// buffer: while it holds bytes the source is not read, which is the
// backpressure that keeps a slow reader from growing the proxy.
//
// Policy (the connection limit, the idle timer, where to connect) belongs
// to package forward; this package only carries it out.
package fallback
