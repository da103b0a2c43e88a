package bench

import (
	"context"
	"io"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/fallback"
	"github.com/uring-socket-proxyd/uring-socket-proxyd/forward"
)

// The in-process micro-benchmarks run each engine inside the benchmark
// process through forward.Run, so that allocs/op covers the engine's hot
// path: the client and backend below allocate nothing per operation, so a
// non-zero figure is the engine's.

func inProcessEngines() []forward.Engine {
	engines := []forward.Engine{fallback.Engine{}}
	if forward.CheckUring() == nil {
		engines = append(engines, forward.UringEngine{})
	}
	return engines
}

// inProcessProxy serves a fresh listener with engine in front of target
// and returns the listener's address.
func inProcessProxy(b *testing.B, engine forward.Engine, target string) string {
	b.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	f, err := l.(*net.TCPListener).File()
	l.Close()
	if err != nil {
		b.Fatal(err)
	}
	ln, err := forward.NewListener(f)
	if err != nil {
		b.Fatal(err)
	}
	tg, err := forward.ParseTarget(target)
	if err != nil {
		b.Fatal(err)
	}
	s := &forward.Server{Listeners: []forward.Listener{ln}, Target: tg, ConnectTimeout: 5 * time.Second,
		Log: forward.NewLogger(io.Discard, forward.LevelWarning, false)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- forward.Run(ctx, readyEngine{engine, ready}, s, forward.Options{ConnectionsMax: 1 << 20, ExitIdleTime: forward.Never})
	}()
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("engine %s: %v", engine.Name(), err)
	}
	b.Cleanup(func() {
		cancel()
		<-done
		f.Close()
	})
	return addr
}

type readyEngine struct {
	forward.Engine
	ready chan struct{}
}

func (e readyEngine) Serve(ctx context.Context, s *forward.Server, ready func()) error {
	return e.Engine.Serve(ctx, s, func() { ready(); close(e.ready) })
}

// echoBackend echoes on every connection until the benchmark ends.
func echoBackend(b *testing.B) string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// BenchmarkInProcessRR ping-pongs 64-byte messages through each engine in
// this process: ns/op is a round trip, allocs/op the engine's (the client
// and backend allocate nothing per round trip).
func BenchmarkInProcessRR(b *testing.B) {
	for _, e := range inProcessEngines() {
		b.Run("engine="+e.Name()+"/size=64B", func(b *testing.B) {
			addr := inProcessProxy(b, e, echoBackend(b))
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 64)
			got := make([]byte, 64)
			lat := make([]time.Duration, 0, max(b.N, 1))
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkInProcessBulk streams 1 MiB per op through each engine and back
// (echoed by the backend): both directions at once.
func BenchmarkInProcessBulk(b *testing.B) {
	for _, e := range inProcessEngines() {
		b.Run("engine="+e.Name()+"/size=1MiB", func(b *testing.B) {
			addr := inProcessProxy(b, e, echoBackend(b))
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 1<<20)
			got := make([]byte, 1<<20)
			// One writer goroutine for the whole run, so that allocs/op
			// counts the engine, not the benchmark.
			start, wrote := make(chan struct{}), make(chan error)
			defer close(start)
			go func() {
				for range start {
					_, err := c.Write(chunk)
					wrote <- err
				}
			}()
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start <- struct{}{}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
				if err := <-wrote; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInProcessConnRate opens, uses once and closes connections.
func BenchmarkInProcessConnRate(b *testing.B) {
	for _, e := range inProcessEngines() {
		b.Run("engine="+e.Name(), func(b *testing.B) {
			addr := inProcessProxy(b, e, echoBackend(b))
			msg := make([]byte, 64)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp4", addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, msg); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
		})
	}
}
