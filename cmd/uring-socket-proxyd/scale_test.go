package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward/proxytest"
)

// TestIdleScale holds 5,000 idle connections through each engine, each
// having moved bytes first, and checks what they cost the proxy: at most
// two descriptors each, no kernel thread per connection (an
// IORING_OP_SPLICE waiting on an idle socket would park an iou-wrk thread
// each), and no CPU while nothing moves.
func TestIdleScale(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, engine := range []string{"epoll", "io_uring"} {
		t.Run("engine="+engine, func(t *testing.T) {
			if engine == "io_uring" {
				if err := forward.CheckUring(); err != nil {
					t.Skipf("io_uring unusable here: %v", err)
				}
			}
			testIdleScale(t, engine, 5000)
		})
	}
}

func testIdleScale(t *testing.T, engine string, n int) {
	// The test process holds both ends it sees: n clients and n backend
	// connections, under the same open-file limit as the proxy.
	b := opsServe(t, func(c net.Conn) {
		buf := make([]byte, 64)
		for {
			m, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:m]); err != nil {
				return
			}
		}
	})
	front, f := opsListen(t)
	p := opsStart(t, proxytest.Activated{Path: binPath,
		Args:      []string{"--engine=" + engine, fmt.Sprintf("--connections-max=%d", n+10), b.addr()},
		Listeners: []*os.File{f}})
	base, err := proxytest.ReadUsage(p.Pid())
	if err != nil {
		t.Fatal(err)
	}

	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", front.Addr().String(), 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			// A burst: write without waiting for the echo, so that
			// thousands of first reads compete for the engine's buffers.
			if _, err := fmt.Fprintf(c, "hello %05d", i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, c := range conns {
		msg := fmt.Sprintf("hello %05d", i)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("connection %d: %q, %v", i, buf, err)
		}
	}

	time.Sleep(200 * time.Millisecond) // let the last pipes and buffers go back
	idle, err := proxytest.ReadUsage(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	later, err := proxytest.ReadUsage(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	fdsPer := float64(idle.FDs-base.FDs) / float64(n)
	rssPer := float64(idle.RSSBytes-base.RSSBytes) / float64(n)
	ticks := later.CPUTicks - idle.CPUTicks
	t.Logf("%s, %d idle connections: %.2f fds and %.0f B of RSS each; %d threads, %d iou-wrk; %d CPU ticks in 2 s",
		engine, n, fdsPer, rssPer, idle.Threads, idle.IOWorkers, ticks)
	// Pools (pipes, buffers) are constants, not per connection.
	if extra := idle.FDs - base.FDs - 2*n; extra > 128 {
		t.Errorf("%d fds for %d idle connections (%.2f each): more than two per connection", idle.FDs-base.FDs, n, fdsPer)
	}
	if idle.IOWorkers > 8 {
		t.Errorf("%d iou-wrk kernel threads for %d idle connections: a thread per connection", idle.IOWorkers, n)
	}
	if ticks > 10 {
		t.Errorf("%d CPU ticks (of 200) in 2 idle seconds: the proxy polls", ticks)
	}
	// Still forwarding, on every connection.
	for i := 0; i < n; i += n / 10 {
		msg := []byte("again")
		if _, err := conns[i].Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conns[i], msg); err != nil || string(msg) != "again" {
			t.Fatalf("connection %d after idling: %q, %v", i, msg, err)
		}
	}
}
