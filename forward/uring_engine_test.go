package forward_test

import (
	"testing"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward/proxytest"
)

// TestUringBehaviour runs the engine-neutral suite against the io_uring
// engine in this process, where the race detector can see it.
func TestUringBehaviour(t *testing.T) {
	if err := forward.CheckUring(); err != nil {
		t.Skipf("io_uring unusable here: %v", err)
	}
	proxytest.Run(t, proxytest.InProcess(forward.UringEngine{}))
}
