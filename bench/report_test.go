package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// synthetic builds results as a run would, without running anything.
func synthetic() *Results {
	r := newResults(Config{Reps: 3, Proxies: []Proxy{{Name: Direct}, {Name: Systemd, Path: "x"}, {Name: "epoll", Path: "y"}}})
	bulk := r.addVariant(Variant{Name: "bulk/up/conns=1", Workload: "bulk", Params: "p", Metrics: []Metric{mGBps, mCPUPerGB}, Chart: []string{mGBps.Name, mCPUPerGB.Name}})
	bulk.proxy(Direct).add(map[string]float64{"GB/s": 4})
	for _, x := range []float64{1.9, 2.0, 2.1} {
		bulk.proxy(Systemd).add(map[string]float64{"GB/s": x, "CPU s/GB": 0.5})
		bulk.proxy("epoll").add(map[string]float64{"GB/s": x * 1.5, "CPU s/GB": 0.6})
	}
	rr := r.addVariant(Variant{Name: "rr/conns=32/size=64B", Workload: "rr", Params: "p", Metrics: []Metric{mOps, mP50}, Chart: []string{mOps.Name}})
	rr.proxy(Direct).add(map[string]float64{"ops/s": 100000, "p50 µs": 10})
	rr.proxy(Systemd).add(map[string]float64{"ops/s": 20000, "p50 µs": 50})
	rr.proxy("epoll").Error = "epoll: content corrupted at byte 7"
	idle := r.addVariant(Variant{Name: "idle/conns=10", Workload: "idle", Params: "p", Metrics: []Metric{mFDs, mRSS}, Chart: []string{mRSS.Name}})
	idle.proxy(Systemd).add(map[string]float64{"fds/conn": 6, "RSS B/conn": 900})
	idle.proxy("epoll").add(map[string]float64{"fds/conn": 2, "RSS B/conn": 400})
	r.finish()
	return r
}

func TestTargets(t *testing.T) {
	r := synthetic()
	got := map[string]TargetResult{}
	for _, tr := range r.Targets {
		got[tr.VariantName+" "+tr.Metric] = tr
	}
	check := func(key string, ok bool, value float64) {
		t.Helper()
		tr, found := got[key]
		if !found {
			t.Fatalf("no target %q among %v", key, r.Targets)
		}
		if tr.OK != ok || (value != 0 && (tr.Got < value*0.999 || tr.Got > value*1.001)) {
			t.Errorf("%s: ok=%v got=%v (%s), want ok=%v got=%v", key, tr.OK, tr.Got, tr.Missing, ok, value)
		}
	}
	check("bulk/up/conns=1 GB/s", true, 1.5)
	check("bulk/up/conns=1 CPU s/GB", false, 1.2)
	check("rr/conns=32/size=64B ops/s", false, 0) // epoll failed: not met
	check("idle/conns=10 fds/conn", true, 2)
	check("idle/conns=10 RSS B/conn", true, 400)
	for _, tr := range r.Targets {
		if tr.Proxy == "io_uring" {
			t.Errorf("target of an absent proxy checked: %+v", tr)
		}
	}
}

func TestAddedVsSystemd(t *testing.T) {
	r := newResults(Config{})
	v := r.addVariant(Variant{Name: "rr/pinned/conns=1/size=64B", Metrics: []Metric{mP50}})
	v.proxy(Direct).add(map[string]float64{"p50 µs": 10})
	v.proxy(Systemd).add(map[string]float64{"p50 µs": 30})
	v.proxy("io_uring").add(map[string]float64{"p50 µs": 18})
	r.finish()
	for _, tr := range r.Targets {
		if tr.Metric == "p50 µs" {
			if !tr.OK || tr.Got != 0.4 {
				t.Fatalf("added over direct: got %+v, want 0.4 and ok", tr)
			}
			return
		}
	}
	t.Fatal("pinned latency target not checked")
}

func TestReports(t *testing.T) {
	r := synthetic()
	var text bytes.Buffer
	r.WriteText(&text)
	for _, want := range []string{"== bulk ==", "bulk/up/conns=1", "≥1.00× ok", "MISS ≤1.00×", "FAIL", "content corrupted", "1.50"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var md bytes.Buffer
	r.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "| metric | proxy |") {
		t.Errorf("markdown report:\n%s", md.String())
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Variants) != 3 || back.Variants[0].Lookup("epoll").Stats["GB/s"].Median != 3 {
		t.Errorf("JSON round trip lost figures: %s", js.String())
	}

	var svg bytes.Buffer
	if err := r.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(svg.Bytes()))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	s := svg.String()
	if !strings.Contains(s, "1.50×") || !strings.Contains(s, "MISS") {
		t.Errorf("SVG lacks the bulk ratio or the miss:\n%s", s)
	}
}

func TestStats(t *testing.T) {
	s := stats([]float64{3, 1, 2, 10})
	if s.Median != 2.5 || s.Min != 1 || s.Max != 10 || s.Spread != 9.0/2/2.5 {
		t.Fatalf("got %+v", s)
	}
}
