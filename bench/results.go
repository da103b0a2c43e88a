package bench

import (
	"encoding/json"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Results is everything a run measured; it is what the JSON file holds.
type Results struct {
	Meta     Meta             `json:"meta"`
	Variants []*VariantResult `json:"variants"`
	Targets  []TargetResult   `json:"targets"`
}

// Meta describes the run and the machine.
type Meta struct {
	Time    time.Time    `json:"time"`
	Quick   bool         `json:"quick"`
	Reps    int          `json:"reps"`
	CPUs    int          `json:"cpus"`
	Kernel  string       `json:"kernel"`
	Go      string       `json:"go"`
	FDLimit int          `json:"fd_limit"`
	Proxies []ProxyInfo  `json:"proxies"`
	Notes   []string     `json:"notes,omitempty"`
	Elapsed JSONDuration `json:"elapsed"`
}

// ProxyInfo names a contender and its command line.
type ProxyInfo struct {
	Name    string `json:"name"`
	Command string `json:"command"`
}

// JSONDuration marshals as seconds.
type JSONDuration time.Duration

func (d JSONDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).Seconds())
}

func (d *JSONDuration) UnmarshalJSON(b []byte) error {
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*d = JSONDuration(s * float64(time.Second))
	return nil
}

// VariantResult holds one variant's figures for every proxy.
type VariantResult struct {
	Name     string         `json:"name"`
	Workload string         `json:"workload"`
	Params   string         `json:"params"`
	Metrics  []Metric       `json:"metrics"`
	Chart    []string       `json:"chart"`
	Proxies  []*ProxyResult `json:"proxies"`
}

// ProxyResult is one proxy's figures in one variant.
type ProxyResult struct {
	Proxy string `json:"proxy"`
	Error string `json:"error,omitempty"`
	// Failed lists the repetitions a Reference proxy failed, left out of
	// its figures.
	Failed  []string                `json:"failed,omitempty"`
	Samples map[string][]float64    `json:"samples"`
	Stats   map[string]*MetricStats `json:"stats"`
}

// MetricStats summarises a metric's samples over the repetitions.
type MetricStats struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// Spread is half the range, relative to the median (0.05 = ±5 %).
	Spread float64 `json:"spread"`
	// Ratios of the median to direct's and systemd's medians (absent
	// where that figure does not exist).
	VsDirect  *float64 `json:"vs_direct,omitempty"`
	VsSystemd *float64 `json:"vs_systemd,omitempty"`
}

func newResults(cfg Config) *Results {
	r := &Results{Meta: Meta{
		Time:    time.Now().UTC().Truncate(time.Second),
		Quick:   cfg.Quick,
		Reps:    cfg.Reps,
		CPUs:    runtime.NumCPU(),
		Kernel:  kernel(),
		Go:      runtime.Version(),
		FDLimit: FDLimit(),
	}}
	for _, p := range cfg.Proxies {
		r.Meta.Proxies = append(r.Meta.Proxies, ProxyInfo{Name: p.Name, Command: p.String()})
	}
	return r
}

func (r *Results) addVariant(v Variant) *VariantResult {
	vr := &VariantResult{Name: v.Name, Workload: v.Workload, Params: v.Params, Metrics: v.Metrics, Chart: v.Chart}
	r.Variants = append(r.Variants, vr)
	return vr
}

func (vr *VariantResult) proxy(name string) *ProxyResult {
	for _, p := range vr.Proxies {
		if p.Proxy == name {
			return p
		}
	}
	p := &ProxyResult{Proxy: name, Samples: map[string][]float64{}, Stats: map[string]*MetricStats{}}
	vr.Proxies = append(vr.Proxies, p)
	return p
}

// Lookup returns proxy's result, or nil.
func (vr *VariantResult) Lookup(proxy string) *ProxyResult {
	for _, p := range vr.Proxies {
		if p.Proxy == proxy {
			return p
		}
	}
	return nil
}

func (p *ProxyResult) add(m map[string]float64) {
	for k, v := range m {
		p.Samples[k] = append(p.Samples[k], v)
	}
}

// median returns p's median of metric, and whether there is one.
func (p *ProxyResult) median(metric string) (float64, bool) {
	if p == nil || p.Error != "" {
		return 0, false
	}
	s, ok := p.Stats[metric]
	if !ok {
		return 0, false
	}
	return s.Median, true
}

// finish computes the statistics, the ratios and the targets.
func (r *Results) finish() {
	for _, vr := range r.Variants {
		for _, p := range vr.Proxies {
			for k, xs := range p.Samples {
				p.Stats[k] = stats(xs)
			}
		}
		for _, p := range vr.Proxies {
			for k, s := range p.Stats {
				if d, ok := vr.Lookup(Direct).median(k); ok && d != 0 {
					x := s.Median / d
					s.VsDirect = &x
				}
				if d, ok := vr.Lookup(Systemd).median(k); ok && d != 0 {
					x := s.Median / d
					s.VsSystemd = &x
				}
			}
		}
	}
	r.Targets = EvaluateTargets(r, DefaultTargets)
}

func stats(xs []float64) *MetricStats {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return &MetricStats{}
	}
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	st := &MetricStats{Median: med, Min: s[0], Max: s[n-1]}
	if med != 0 {
		st.Spread = (s[n-1] - s[0]) / 2 / med
		if st.Spread < 0 {
			st.Spread = -st.Spread
		}
	}
	return st
}

// WriteJSON writes r as indented JSON.
func (r *Results) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// FDLimit is the hard RLIMIT_NOFILE that the proxies inherit.
func FDLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return int(l.Max)
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
