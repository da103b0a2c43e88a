package fallback_test

import (
	"testing"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/fallback"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward/proxytest"
)

// TestBehaviour runs the engine-neutral suite against the epoll engine in
// this process, where the race detector can see it.
func TestBehaviour(t *testing.T) {
	proxytest.Run(t, proxytest.InProcess(fallback.Engine{}))
}
