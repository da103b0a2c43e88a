package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Chart geometry: a diverging bar per proxy and charted metric, on a log
// scale centred on 1× (systemd-socket-proxyd), oriented so that longer to
// the right is always better.
const (
	svgWidth   = 960
	svgLabelW  = 300
	svgPlotW   = 560
	svgBarH    = 13
	svgGroupGp = 9
	svgTop     = 62
	svgMinLog  = -3 // 1/8×
	svgMaxLog  = 3  // 8×
)

var svgColors = map[string]string{Direct: "#9e9e9e", "epoll": "#1f77b4", "io_uring": "#ff7f0e"}
var svgPalette = []string{"#2ca02c", "#9467bd", "#8c564b", "#e377c2"}

// WriteSVG draws the ratios to systemd-socket-proxyd of each variant's
// charted metrics, one bar per other proxy, with target markers.
func (r *Results) WriteSVG(w io.Writer) error {
	type bar struct {
		proxy string
		ratio float64 // oriented: > 1 is better than systemd
		mark  float64 // oriented target ratio, 0 if none
		miss  bool
	}
	type group struct {
		label string
		bars  []bar
	}
	var groups []group
	var proxies []string
	seen := map[string]bool{}
	for _, vr := range r.Variants {
		sys := vr.Lookup(Systemd)
		for _, name := range vr.Chart {
			s, ok := sys.median(name)
			if !ok || s == 0 {
				continue
			}
			m := metricByName(vr.Metrics, name)
			g := group{label: vr.Name + " · " + name}
			for _, p := range vr.Proxies {
				if p.Proxy == Systemd {
					continue
				}
				v, ok := p.median(name)
				if !ok || v == 0 {
					continue
				}
				b := bar{proxy: p.Proxy, ratio: v / s}
				if !m.HigherBetter {
					b.ratio = s / v
				}
				for _, t := range r.targetsFor(vr.Name, p.Proxy, name) {
					if t.Ref == VsSystemd && t.Want > 0 {
						b.mark = t.Want
						if !m.HigherBetter {
							b.mark = 1 / t.Want
						}
					}
					if t.Missing == "" && !t.OK {
						b.miss = true
					}
				}
				g.bars = append(g.bars, b)
				if !seen[p.Proxy] {
					seen[p.Proxy] = true
					proxies = append(proxies, p.Proxy)
				}
			}
			if len(g.bars) > 0 {
				groups = append(groups, g)
			}
		}
	}
	color := func(p string) string {
		if c, ok := svgColors[p]; ok {
			return c
		}
		for i, q := range proxies {
			if q == p {
				return svgPalette[i%len(svgPalette)]
			}
		}
		return "#000"
	}
	x := func(ratio float64) float64 {
		l := math.Log2(ratio)
		l = max(min(l, svgMaxLog), svgMinLog)
		return svgLabelW + (l-svgMinLog)/(svgMaxLog-svgMinLog)*svgPlotW
	}

	h := svgTop + 30
	for _, g := range groups {
		h += len(g.bars)*svgBarH + svgGroupGp
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, h, svgWidth, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	mode := "full"
	if r.Meta.Quick {
		mode = "quick"
	}
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">Ratio to systemd-socket-proxyd (log scale; right of 1× is better)</text>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="34" fill="#555">%s run, %s, %d CPUs, Linux %s, medians of %d repetitions; | marks a target, red labels a missed one</text>`+"\n",
		mode, r.Meta.Time.Format("2006-01-02 15:04 UTC"), r.Meta.CPUs, esc(r.Meta.Kernel), r.Meta.Reps)
	lx := 10.0
	for _, p := range proxies {
		fmt.Fprintf(&b, `<rect x="%.0f" y="42" width="10" height="10" fill="%s"/><text x="%.0f" y="51">%s</text>`+"\n", lx, color(p), lx+14, esc(p))
		lx += 24 + 7*float64(len(p))
	}
	// grid
	for l := svgMinLog; l <= svgMaxLog; l++ {
		gx := x(math.Pow(2, float64(l)))
		stroke := "#ddd"
		if l == 0 {
			stroke = "#333"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", gx, svgTop-4, gx, h-24, stroke)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s×</text>`+"\n", gx, h-10, ratioLabel(math.Pow(2, float64(l))))
	}
	y := svgTop
	for _, g := range groups {
		gh := len(g.bars) * svgBarH
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLabelW-8, float64(y)+float64(gh)/2+4, esc(g.label))
		for _, br := range g.bars {
			x0, x1 := x(1), x(br.ratio)
			if x1 < x0 {
				x0, x1 = x1, x0
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %.2f×</title></rect>`+"\n",
				x0, y+1, max(x1-x0, 1), svgBarH-2, color(br.proxy), esc(br.proxy), br.ratio)
			if br.mark > 0 {
				mx := x(br.mark)
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000" stroke-width="2"/>`+"\n", mx, y, mx, y+svgBarH)
			}
			fill, label := "#333", fmt.Sprintf("%.2f×", br.ratio)
			if br.miss {
				fill, label = "#d62728", label+" MISS"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="%s" font-size="10">%s</text>`+"\n", max(x(br.ratio), x(1))+4, y+svgBarH-3, fill, label)
			y += svgBarH
		}
		y += svgGroupGp
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func metricByName(ms []Metric, name string) Metric {
	for _, m := range ms {
		if m.Name == name {
			return m
		}
	}
	return Metric{Name: name}
}

func ratioLabel(r float64) string {
	if r < 1 {
		return fmt.Sprintf("1/%.0f", 1/r)
	}
	return fmt.Sprintf("%.0f", r)
}

var esc = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace
