package bench

import (
	"fmt"
	"strings"
)

// Target is one promise the project makes about a figure of one proxy.
// The table is data: a new engine's promises are new rows.
type Target struct {
	Proxy   string  `json:"proxy"`
	Variant string  `json:"variant"` // pattern of variant names; * matches any text, / included
	Metric  string  `json:"metric"`
	Ref     RefKind `json:"ref"`
	AtLeast bool    `json:"at_least"` // ≥ Want, else ≤ Want
	Want    float64 `json:"want"`
}

// RefKind says what a target's figure is compared with.
type RefKind string

const (
	// VsSystemd compares the ratio of medians proxy ÷ systemd.
	VsSystemd RefKind = "vs-systemd"
	// Absolute compares the proxy's median itself.
	Absolute RefKind = "absolute"
	// AddedVsSystemd compares what the proxy adds over direct with what
	// systemd adds: (proxy − direct) ÷ (systemd − direct), for latencies.
	AddedVsSystemd RefKind = "added-vs-systemd"
)

// DefaultTargets are the targets of issue 3, for a 2-core machine.
var DefaultTargets = []Target{
	{"epoll", "bulk/*", "GB/s", VsSystemd, true, 1.0},
	{"epoll", "bulk/*", "CPU s/GB", VsSystemd, false, 1.0},
	{"epoll", "rr/conns=32/*", "ops/s", VsSystemd, true, 1.3},
	{"epoll", "connrate/*", "conns/s", VsSystemd, true, 1.3},
	{"epoll", "idle/*", "fds/conn", Absolute, false, 2},
	{"epoll", "idle/*", "RSS B/conn", Absolute, false, 1024},

	{"io_uring", "bulk/*", "GB/s", VsSystemd, true, 1.2},
	{"io_uring", "bulk/*", "CPU s/GB", VsSystemd, false, 0.55},
	{"io_uring", "rr/conns=32/*", "ops/s", VsSystemd, true, 2.25},
	{"io_uring", "connrate/*", "conns/s", VsSystemd, true, 2},
	{"io_uring", "rr/pinned/*", "p50 µs", AddedVsSystemd, false, 0.5},
	{"io_uring", "idle/*", "RSS B/conn", Absolute, false, 1024},
}

// TargetResult is a target checked against a run.
type TargetResult struct {
	Target
	VariantName string  `json:"variant_name"`
	Got         float64 `json:"got"`
	OK          bool    `json:"ok"`
	// Missing says why the target could not be checked (a figure absent
	// or failed); such a target is not OK.
	Missing string `json:"missing,omitempty"`
}

// String is the short form used in tables: "≥1.30× ok", "MISS ≤1024".
func (t TargetResult) String() string {
	s := t.want()
	switch {
	case t.Missing != "":
		return "n/a " + s
	case t.OK:
		return s + " ok"
	}
	return "MISS " + s
}

func (t Target) want() string {
	op := "≤"
	if t.AtLeast {
		op = "≥"
	}
	switch t.Ref {
	case VsSystemd:
		return fmt.Sprintf("%s%.2f×", op, t.Want)
	case AddedVsSystemd:
		return fmt.Sprintf("added %s%.2f×", op, t.Want)
	}
	return op + fmtVal(t.Want)
}

// EvaluateTargets checks every target whose proxy took part in r.
func EvaluateTargets(r *Results, targets []Target) []TargetResult {
	var out []TargetResult
	for _, t := range targets {
		for _, vr := range r.Variants {
			if !globMatch(t.Variant, vr.Name) {
				continue
			}
			p := vr.Lookup(t.Proxy)
			if p == nil {
				continue
			}
			tr := TargetResult{Target: t, VariantName: vr.Name}
			got, why := targetFigure(vr, t)
			tr.Got = got
			tr.Missing = why
			if why == "" {
				if t.AtLeast {
					tr.OK = got >= t.Want
				} else {
					tr.OK = got <= t.Want
				}
			}
			out = append(out, tr)
		}
	}
	return out
}

func targetFigure(vr *VariantResult, t Target) (float64, string) {
	v, ok := vr.Lookup(t.Proxy).median(t.Metric)
	if !ok {
		return 0, t.Proxy + " has no " + t.Metric
	}
	if t.Ref == Absolute {
		return v, ""
	}
	s, ok := vr.Lookup(Systemd).median(t.Metric)
	if !ok || s == 0 {
		return 0, "no " + Systemd + " figure"
	}
	if t.Ref == VsSystemd {
		return v / s, ""
	}
	d, ok := vr.Lookup(Direct).median(t.Metric)
	if !ok {
		return 0, "no " + Direct + " figure"
	}
	if s-d <= 0 {
		return 0, Systemd + " adds nothing over " + Direct
	}
	return (v - d) / (s - d), ""
}

// targetsFor returns the evaluated targets of one row.
func (r *Results) targetsFor(variant, proxy, metric string) []TargetResult {
	var out []TargetResult
	for _, t := range r.Targets {
		if t.VariantName == variant && t.Proxy == proxy && t.Metric == metric {
			out = append(out, t)
		}
	}
	return out
}

// globMatch reports whether name matches pattern, in which * stands for
// any text (slashes included) and everything else for itself.
func globMatch(pattern, name string) bool {
	lit, rest, star := strings.Cut(pattern, "*")
	if !star {
		return pattern == name
	}
	if !strings.HasPrefix(name, lit) {
		return false
	}
	name = name[len(lit):]
	for i := 0; i <= len(name); i++ {
		if globMatch(rest, name[i:]) {
			return true
		}
	}
	return false
}
