// Package forward owns what every engine of uring-socket-proxyd shares: the
// target and how it is resolved, the inherited listeners and their checks,
// connection accounting (the --connections-max limit and the idle exit
// timer), service-manager notification, logging, and the Engine contract.
//
// An Engine moves bytes; it does not decide policy. It asks the Tracker
// before serving an accepted connection, tells it when one closes, asks the
// Target where to connect, and logs through the Logger. Run ties an engine
// to the lifecycle: READY=1 once the engine serves, WATCHDOG=1 while it
// runs, STOPPING=1 on the way out, and a stop when the idle timer fires or
// the caller's context ends.
//
// forward knows nothing about epoll or io_uring, and nothing about the
// command line.
package forward
