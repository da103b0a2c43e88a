package fallback

import (
	"context"
	"fmt"
	"sync"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
)

// Engine is the epoll + splice engine.
type Engine struct{}

// Name implements forward.Engine.
func (Engine) Name() string { return "epoll" }

// Serve implements forward.Engine: it runs s.Threads event loops, each
// accepting from every listener (EPOLLEXCLUSIVE wakes one loop per new
// client), until ctx is done.
func (Engine) Serve(ctx context.Context, s *forward.Server, ready func()) error {
	n := s.Threads
	if n < 1 {
		n = forward.DefaultThreads()
	}
	loops := make([]*loop, 0, n)
	defer func() {
		for _, l := range loops {
			l.close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := newLoop(s)
		if err != nil {
			return fmt.Errorf("epoll engine: %w", err)
		}
		loops = append(loops, l)
	}
	ready()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.run(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	select {
	case <-ctx.Done():
	case <-s.StopAccepting():
		acked := make(chan struct{}, n)
		for _, l := range loops {
			l.stopAccepting(acked)
		}
		for range loops {
			select {
			case <-acked:
			case <-ctx.Done():
			}
		}
		s.AcceptsStopped()
		<-ctx.Done()
	}
	for _, l := range loops {
		l.stop()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("epoll engine: %w", err)
	default:
		return nil
	}
}
