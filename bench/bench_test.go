package bench

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// The micro-benchmarks run the workloads against the real binaries (the
// engines' in-process API may add more later): direct, systemd-socket-proxyd
// if installed, and the engines of the binary named by URING_PROXY_BIN,
// skipped with a note when it is unset. CI runs them with -benchtime=1x so
// they never rot; compare runs with benchstat.

// contenders lists the proxies of the micro-benchmarks; a nil Path with a
// non-empty skip note means "skip this one".
func contenders() []struct {
	Proxy
	skip string
} {
	type c = struct {
		Proxy
		skip string
	}
	out := []c{{Proxy: Proxy{Name: Direct}}}
	if _, err := os.Stat(SystemdPath); err == nil {
		out = append(out, c{Proxy: Proxy{Name: Systemd, Path: SystemdPath, Args: []string{ConnectionsMax}}})
	} else {
		out = append(out, c{Proxy: Proxy{Name: Systemd}, skip: SystemdPath + " is not installed"})
	}
	bin := os.Getenv("URING_PROXY_BIN")
	for _, e := range []string{"epoll", "io_uring"} {
		p := Proxy{Name: e, Path: bin, Args: []string{"--engine=" + e, ConnectionsMax}}
		switch {
		case bin == "":
			out = append(out, c{Proxy: p, skip: "URING_PROXY_BIN is not set (make test sets it to bin/uring-socket-proxyd)"})
		default:
			out = append(out, c{Proxy: p, skip: Probe(p)})
		}
	}
	return out
}

// benchProxy starts p in front of a fresh backend for one run of f.
func benchProxy(b *testing.B, p Proxy, skip string, f func(*Running, *Backend) error) {
	if skip != "" {
		b.Skip(skip)
	}
	be, err := NewBackend()
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	r, err := Start(p, be.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Stop()
	b.ResetTimer()
	if err := f(r, be); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkBulk(b *testing.B) {
	for _, c := range contenders() {
		for _, size := range []int{64 << 10, 1 << 20} {
			for _, dir := range []string{"up", "down"} {
				b.Run(fmt.Sprintf("proxy=%s/dir=%s/size=%s", c.Name, dir, sizeName(int64(size))), func(b *testing.B) {
					b.SetBytes(int64(size))
					b.ReportAllocs()
					benchProxy(b, c.Proxy, c.skip, func(r *Running, be *Backend) error {
						res, err := Bulk(r, be, BulkParams{Conns: 1, Up: dir == "up", Bytes: int64(b.N) * int64(size), Chunk: size, Timeout: time.Minute})
						if err == nil && r.Pid() != 0 {
							b.ReportMetric(res.CPU.Seconds()/(float64(res.Bytes)/1e9), "cpu-s/GB")
						}
						return err
					})
				})
			}
		}
	}
}

func BenchmarkRR(b *testing.B) {
	for _, c := range contenders() {
		for _, size := range []int{64, 16 << 10} {
			b.Run(fmt.Sprintf("proxy=%s/size=%s", c.Name, sizeName(int64(size))), func(b *testing.B) {
				b.SetBytes(2 * int64(size))
				benchProxy(b, c.Proxy, c.skip, func(r *Running, be *Backend) error {
					res, err := RR(r, be, RRParams{Conns: 1, Size: size, Ops: b.N, Warmup: 10, Pin: -1, Timeout: time.Minute})
					if err == nil {
						b.ReportMetric(float64(res.Latency.Quantile(0.5).Nanoseconds())/1e3, "p50-µs")
						b.ReportMetric(float64(res.Latency.Quantile(0.99).Nanoseconds())/1e3, "p99-µs")
					}
					return err
				})
			})
		}
	}
}

func BenchmarkConnRate(b *testing.B) {
	for _, c := range contenders() {
		b.Run(fmt.Sprintf("proxy=%s/workers=8", c.Name), func(b *testing.B) {
			benchProxy(b, c.Proxy, c.skip, func(r *Running, be *Backend) error {
				per := (b.N + 7) / 8
				res, err := ConnRate(r, be, ConnRateParams{Workers: 8, Size: 64, Conns: per, Timeout: time.Minute})
				if err == nil {
					b.ReportMetric(float64(res.Conns)/res.Elapsed.Seconds(), "conns/s")
					b.ReportMetric(float64(res.Latency.Quantile(0.99).Nanoseconds())/1e3, "p99-µs")
				}
				return err
			})
		})
	}
}
