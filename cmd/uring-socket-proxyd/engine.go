package main

import (
	"errors"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/fallback"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
)

// errNoUring is the reason auto does not pick io_uring in this version.
var errNoUring = errors.New("the io_uring engine is not built into this version yet")

// selectEngine picks the engine for --engine=NAME and says why.
func selectEngine(name string, _ *forward.Logger) (forward.Engine, string, error) {
	switch name {
	case "epoll":
		return fallback.Engine{}, "chosen with --engine=epoll", nil
	case "io_uring":
		return nil, "", errors.New("Cannot use --engine=io_uring: " + errNoUring.Error() + "; use --engine=epoll or auto.")
	default:
		return fallback.Engine{}, "io_uring unusable: " + errNoUring.Error(), nil
	}
}
