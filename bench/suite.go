package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Metric is one figure a workload reports.
type Metric struct {
	Name         string `json:"name"`
	HigherBetter bool   `json:"higher_better"`
	// ProxyOnly figures (CPU, fds, memory of the proxy process) do not
	// exist for the direct connection.
	ProxyOnly bool `json:"proxy_only,omitempty"`
}

var (
	mGBps     = Metric{Name: "GB/s", HigherBetter: true}
	mCPUPerGB = Metric{Name: "CPU s/GB", ProxyOnly: true}
	mOps      = Metric{Name: "ops/s", HigherBetter: true}
	mP50      = Metric{Name: "p50 µs"}
	mP99      = Metric{Name: "p99 µs"}
	mP999     = Metric{Name: "p99.9 µs"}
	mCPUPerOp = Metric{Name: "CPU µs/op", ProxyOnly: true}
	mConns    = Metric{Name: "conns/s", HigherBetter: true}
	mCPUConn  = Metric{Name: "CPU µs/conn", ProxyOnly: true}
	mFDs      = Metric{Name: "fds/conn", ProxyOnly: true}
	mRSS      = Metric{Name: "RSS B/conn", ProxyOnly: true}
	mCeiling  = Metric{Name: "max conns", HigherBetter: true, ProxyOnly: true}
	mThreads  = Metric{Name: "threads", ProxyOnly: true}
	mIOWrk    = Metric{Name: "iou-wrk", ProxyOnly: true}
	mIdleCPU  = Metric{Name: "idle CPU ms/s", ProxyOnly: true}
	mActP50   = Metric{Name: "active p50 µs"}
	mActP99   = Metric{Name: "active p99 µs"}
)

// Variant is one workload with its parameters: the unit that is repeated
// and interleaved across proxies.
type Variant struct {
	Name     string // e.g. "rr/conns=32/size=64B"; targets match it with globMatch
	Workload string // bulk, rr, connrate, idle
	Params   string // for people
	Metrics  []Metric
	// Chart lists the metrics drawn in the SVG.
	Chart []string
	run   func(*Running, *Backend) (map[string]float64, error)
	pin   int // ≥ 0: pin the proxy to this CPU (done inside run)
}

// Config is what a run measures.
type Config struct {
	Quick     bool
	Reps      int
	Pin       int      // CPU for the pinned variant; < 0 leaves it out
	Workloads []string // prefixes or patterns (see globMatch) of variant names; empty: all
	Proxies   []Proxy  // in interleaving order; include Direct and Systemd for ratios
	Progress  io.Writer

	sizes *sizes // tests: overrides fullSizes and quickSizes
}

// Sizes of a full run and of a quick one.
type sizes struct {
	bulkBytes   int64
	rrFor       time.Duration
	connFor     time.Duration
	idleConns   int
	idleSettle  time.Duration
	idleFor     time.Duration
	idleOps     int
	timeout     time.Duration
	defaultReps int
}

var (
	fullSizes  = sizes{1 << 30, time.Second, time.Second, 3000, 300 * time.Millisecond, time.Second, 2000, 60 * time.Second, 5}
	quickSizes = sizes{256 << 20, 250 * time.Millisecond, 250 * time.Millisecond, 500, 100 * time.Millisecond, 300 * time.Millisecond, 300, 30 * time.Second, 3}
)

// DefaultReps is the number of repetitions when Config.Reps is 0.
func DefaultReps(quick bool) int {
	if quick {
		return quickSizes.defaultReps
	}
	return fullSizes.defaultReps
}

// Variants lists every variant of a run with cfg's sizes, filtered by
// cfg.Workloads.
func Variants(cfg Config) []Variant {
	z := fullSizes
	if cfg.Quick {
		z = quickSizes
	}
	if cfg.sizes != nil {
		z = *cfg.sizes
	}
	var vs []Variant
	for _, up := range []bool{true, false} {
		for _, conns := range []int{1, 8} {
			dir, arrow := "down", "backend→client"
			if up {
				dir, arrow = "up", "client→backend"
			}
			p := BulkParams{Conns: conns, Up: up, Bytes: z.bulkBytes, Timeout: z.timeout}
			vs = append(vs, Variant{
				Name:     fmt.Sprintf("bulk/%s/conns=%d", dir, conns),
				Workload: "bulk",
				Params: fmt.Sprintf("%s, %d connection(s), %s in total per repetition, %s writes, every byte checked",
					arrow, conns, sizeName(z.bulkBytes), sizeName(bulkChunk)),
				Metrics: []Metric{mGBps, mCPUPerGB},
				Chart:   []string{mGBps.Name, mCPUPerGB.Name},
				run: func(r *Running, be *Backend) (map[string]float64, error) {
					res, err := Bulk(r, be, p)
					if err != nil {
						return nil, err
					}
					gb := float64(res.Bytes) / 1e9
					m := map[string]float64{mGBps.Name: gb / res.Elapsed.Seconds()}
					if r.Pid() != 0 {
						m[mCPUPerGB.Name] = res.CPU.Seconds() / gb
					}
					return m, nil
				},
			})
		}
	}
	rr := func(name string, p RRParams, params string) Variant {
		chart := []string{mOps.Name}
		if p.Pin >= 0 {
			chart = []string{mP50.Name}
		}
		return Variant{
			Name: name, Workload: "rr", Params: params,
			Metrics: []Metric{mOps, mP50, mP99, mP999, mCPUPerOp},
			Chart:   chart,
			pin:     p.Pin,
			run: func(r *Running, be *Backend) (map[string]float64, error) {
				res, err := RR(r, be, p)
				if err != nil {
					return nil, err
				}
				m := latencies(&res.Latency, mP50, mP99, mP999)
				m[mOps.Name] = float64(res.Ops) / res.Elapsed.Seconds()
				if r.Pid() != 0 && res.Ops > 0 {
					m[mCPUPerOp.Name] = float64(res.CPU.Microseconds()) / float64(res.Ops)
				}
				return m, nil
			},
		}
	}
	for _, c := range []struct{ conns, size int }{{1, 64}, {32, 64}, {1000, 64}, {1, 16 << 10}} {
		p := RRParams{Conns: c.conns, Size: c.size, Duration: z.rrFor, Warmup: 50, Pin: -1, Timeout: z.timeout}
		vs = append(vs, rr(fmt.Sprintf("rr/conns=%d/size=%s", c.conns, sizeName(int64(c.size))), p,
			fmt.Sprintf("%d connection(s) ping-ponging %s messages for %v, every reply checked",
				c.conns, sizeName(int64(c.size)), z.rrFor)))
	}
	if cfg.Pin >= 0 {
		p := RRParams{Conns: 1, Size: 64, Duration: z.rrFor, Warmup: 50, Pin: cfg.Pin, Timeout: z.timeout}
		vs = append(vs, rr("rr/pinned/conns=1/size=64B", p,
			fmt.Sprintf("1 connection ping-ponging 64 B messages for %v; client and backend threads (blocking syscalls) and every proxy thread pinned to CPU %d",
				z.rrFor, cfg.Pin)))
	}
	cp := ConnRateParams{Workers: 8, Size: 64, Duration: z.connFor, Timeout: z.timeout}
	vs = append(vs, Variant{
		Name: "connrate/workers=8", Workload: "connrate",
		Params:  fmt.Sprintf("8 workers each looping connect, one 64 B exchange, close, for %v", z.connFor),
		Metrics: []Metric{mConns, mP50, mP99, mCPUConn},
		Chart:   []string{mConns.Name},
		run: func(r *Running, be *Backend) (map[string]float64, error) {
			res, err := ConnRate(r, be, cp)
			if err != nil {
				return nil, err
			}
			m := latencies(&res.Latency, mP50, mP99)
			m[mConns.Name] = float64(res.Conns) / res.Elapsed.Seconds()
			if r.Pid() != 0 && res.Conns > 0 {
				m[mCPUConn.Name] = float64(res.CPU.Microseconds()) / float64(res.Conns)
			}
			return m, nil
		},
	})
	ip := IdleParams{Conns: z.idleConns, Settle: z.idleSettle, IdleFor: z.idleFor, ActiveOps: z.idleOps, ActiveSize: 64, Timeout: z.timeout}
	vs = append(vs, Variant{
		Name: fmt.Sprintf("idle/conns=%d", ip.Conns), Workload: "idle",
		Params: fmt.Sprintf("%d idle connections held open, CPU measured over %v idle, then %d round trips of 64 B on one active connection; max conns = (fd limit %d − fds before) ÷ fds/conn",
			ip.Conns, ip.IdleFor, ip.ActiveOps, FDLimit()),
		Metrics: []Metric{mFDs, mRSS, mCeiling, mThreads, mIOWrk, mIdleCPU, mActP50, mActP99},
		Chart:   []string{mCeiling.Name, mRSS.Name},
		run: func(r *Running, be *Backend) (map[string]float64, error) {
			res, err := Idle(r, be, ip)
			if err != nil {
				return nil, err
			}
			m := latencies(&res.Latency, mActP50, mActP99)
			if r.Pid() != 0 {
				n := float64(res.Conns)
				fds := math.Round(float64(res.After.FDs-res.Before.FDs)/n*100) / 100
				m[mFDs.Name] = fds
				m[mRSS.Name] = float64(res.After.RSSBytes-res.Before.RSSBytes) / n
				if fds > 0 {
					m[mCeiling.Name] = math.Floor(float64(FDLimit()-res.Before.FDs) / fds)
				}
				m[mThreads.Name] = float64(res.After.Threads)
				m[mIOWrk.Name] = float64(res.After.IOWorkers)
				m[mIdleCPU.Name] = float64(res.IdleCPU.Microseconds()) / 1e3 / res.IdleFor.Seconds()
			}
			return m, nil
		},
	})
	if len(cfg.Workloads) == 0 {
		return vs
	}
	var out []Variant
	for _, v := range vs {
		for _, w := range cfg.Workloads {
			if globMatch(w, v.Name) || strings.HasPrefix(v.Name, w) {
				out = append(out, v)
				break
			}
		}
	}
	return out
}

func latencies(h *Histogram, p50, p99 Metric, rest ...Metric) map[string]float64 {
	m := map[string]float64{
		p50.Name: float64(h.Quantile(0.50).Nanoseconds()) / 1e3,
		p99.Name: float64(h.Quantile(0.99).Nanoseconds()) / 1e3,
	}
	if len(rest) > 0 {
		m[rest[0].Name] = float64(h.Quantile(0.999).Nanoseconds()) / 1e3
	}
	return m
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// Run measures every variant of cfg on every proxy, interleaved: for each
// variant, each repetition runs every proxy in order (A B C A B C …), each
// time with a fresh backend and a freshly started proxy. A proxy that fails
// a measurement (corrupted content, a crash, an error) is marked failed
// for that variant and not measured again there; Run then returns the
// results and an error naming every failure. A Reference proxy's failed
// repetition is only recorded (ProxyResult.Failed) and its others go on;
// it is marked failed if none succeeds, and never fails the run.
func Run(cfg Config) (*Results, error) {
	if cfg.Reps <= 0 {
		cfg.Reps = DefaultReps(cfg.Quick)
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	res := newResults(cfg)
	var failures []error
	for _, v := range Variants(cfg) {
		vr := res.addVariant(v)
		fmt.Fprintf(progress, "%s: %s\n", v.Name, v.Params)
		for rep := 1; rep <= cfg.Reps; rep++ {
			for _, p := range cfg.Proxies {
				pr := vr.proxy(p.Name)
				if pr.Error != "" {
					continue
				}
				t := time.Now()
				m, err := measure(v, p)
				if err != nil && p.Reference {
					pr.Failed = append(pr.Failed, fmt.Sprintf("repetition %d: %v", rep, err))
					fmt.Fprintf(progress, "  rep %d %-10s FAIL (a reference: recorded, not counted): %v\n", rep, p.Name, err)
					if len(pr.Failed) == cfg.Reps {
						pr.Error = "every repetition failed; the first: " + pr.Failed[0]
					}
					continue
				}
				if err != nil {
					pr.Error = err.Error()
					failures = append(failures, fmt.Errorf("%s, repetition %d: %w", v.Name, rep, err))
					fmt.Fprintf(progress, "  rep %d %-10s FAIL: %v\n", rep, p.Name, err)
					continue
				}
				pr.add(m)
				fmt.Fprintf(progress, "  rep %d %-10s %s  (%.1fs)\n", rep, p.Name, summary(v, m), time.Since(t).Seconds())
			}
		}
	}
	res.finish()
	return res, errors.Join(failures...)
}

// measure runs v once on a fresh backend and a fresh p.
func measure(v Variant, p Proxy) (map[string]float64, error) {
	be, err := NewBackend()
	if err != nil {
		return nil, err
	}
	defer be.Close()
	r, err := Start(p, be.Addr())
	if err != nil {
		return nil, err
	}
	m, err := v.run(r, be)
	if serr := r.Stop(); err == nil {
		err = serr
	}
	return m, err
}

func summary(v Variant, m map[string]float64) string {
	var b strings.Builder
	for _, mt := range v.Metrics {
		if x, ok := m[mt.Name]; ok {
			fmt.Fprintf(&b, "%s %s  ", fmtVal(x), mt.Name)
		}
	}
	return strings.TrimSpace(b.String())
}
