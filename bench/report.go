package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// WriteText writes one table per workload: for every variant, a row per
// metric and proxy with the median over the repetitions, its spread, the
// ratios to direct and to systemd-socket-proxyd, and the targets.
func (r *Results) WriteText(w io.Writer) error {
	return r.write(w, false)
}

// WriteMarkdown writes the same tables as Markdown.
func (r *Results) WriteMarkdown(w io.Writer) error {
	return r.write(w, true)
}

func (r *Results) write(w io.Writer, md bool) error {
	workload := ""
	for _, vr := range r.Variants {
		if vr.Workload != workload {
			workload = vr.Workload
			if md {
				fmt.Fprintf(w, "\n### %s\n", workload)
			} else {
				fmt.Fprintf(w, "\n== %s ==\n", workload)
			}
		}
		if md {
			fmt.Fprintf(w, "\n**%s**: %s\n\n", vr.Name, vr.Params)
		} else {
			fmt.Fprintf(w, "\n%s: %s\n", vr.Name, vr.Params)
		}
		rows := [][]string{{"metric", "proxy", "median", "spread", "×direct", "×systemd", "target"}}
		for _, m := range vr.Metrics {
			for _, p := range vr.Proxies {
				if p.Error != "" {
					if m.Name == vr.Metrics[0].Name {
						rows = append(rows, []string{m.Name, p.Proxy, "FAIL", "", "", "", firstLine(p.Error)})
					}
					continue
				}
				s, ok := p.Stats[m.Name]
				if !ok {
					continue
				}
				var ts []string
				for _, t := range r.targetsFor(vr.Name, p.Proxy, m.Name) {
					ts = append(ts, t.String())
				}
				rows = append(rows, []string{
					m.Name, p.Proxy, fmtVal(s.Median), fmt.Sprintf("±%.1f%%", 100*s.Spread),
					fmtRatio(s.VsDirect), fmtRatio(s.VsSystemd), strings.Join(ts, ", "),
				})
			}
		}
		writeTable(w, rows, md)
		for _, p := range vr.Proxies {
			if len(p.Failed) > 0 && p.Error == "" {
				if md {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "%s failed %d of %d repetitions, left out of its figures; %s\n",
					p.Proxy, len(p.Failed), r.Meta.Reps, firstLine(p.Failed[0]))
			}
		}
	}
	if len(r.Meta.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.Meta.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}
	miss := 0
	for _, t := range r.Targets {
		if !t.OK {
			miss++
		}
	}
	fmt.Fprintf(w, "\ntargets: %d checked, %d met, %d missed\n", len(r.Targets), len(r.Targets)-miss, miss)
	return nil
}

func writeTable(w io.Writer, rows [][]string, md bool) {
	if md {
		for i, row := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
			if i == 0 {
				fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(row)))
			}
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range rows {
		// right-aligned numbers, left-aligned names and targets
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t  %s\n",
			pad(row[0], 14), pad(row[1], 9), row[2], row[3], row[4], row[5], row[6])
	}
	tw.Flush()
}

func pad(s string, n int) string {
	if k := len([]rune(s)); k < n {
		return s + strings.Repeat(" ", n-k)
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func fmtRatio(x *float64) string {
	if x == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *x)
}

// fmtVal prints a figure with three or four significant digits.
func fmtVal(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	case a >= 1:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
