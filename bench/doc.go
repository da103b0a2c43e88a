// Package bench measures what a proxy costs: it drives the same workloads
// through a direct loopback connection (the physical limit),
// systemd-socket-proxyd and each engine of uring-socket-proxyd, every proxy
// started as a real process with real socket activation.
//
// The package owns the workloads (bulk, request/response, connection rate,
// idle scale), the backend server they talk to, the verification of every
// byte that crosses a proxy, and the reporting (tables, JSON, SVG, targets).
// It knows nothing about how a proxy works: it only speaks to one through
// sockets, signals and /proc, like proxytest.
//
// Every connection starts with a fixed header (see header) that tells the
// in-process backend what to do, so one backend serves every workload and a
// proxy sees nothing but an opaque byte stream. Content is a deterministic
// pseudo-random stream (see pattern), checked on the fly by comparing each
// received window with the same window of a precomputed table: a dropped,
// added or flipped byte fails the run; it never scores.
package bench
