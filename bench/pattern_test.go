package bench

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestStreamCatchesFlipAndDrop(t *testing.T) {
	w := stream{seed: 12345}
	var sent []byte
	for range 5 {
		sent = append(sent, w.window(300_000)...)
		w.pos += 300_000
	}
	if err := (&stream{seed: 12345}).check(sent); err != nil {
		t.Fatalf("intact stream: %v", err)
	}
	flipped := bytes.Clone(sent)
	flipped[1_000_003] ^= 1
	var ce *CorruptError
	if err := (&stream{seed: 12345}).check(flipped); !errors.As(err, &ce) || ce.Offset != 1_000_003 {
		t.Fatalf("flipped byte: got %v, want a CorruptError at 1000003", err)
	}
	dropped := append(bytes.Clone(sent[:777]), sent[778:]...)
	if err := (&stream{seed: 12345}).check(dropped); !errors.As(err, &ce) || ce.Offset != 777 {
		t.Fatalf("dropped byte: got %v, want a CorruptError at 777", err)
	}
	if err := (&stream{seed: 54321}).check(sent[:100]); err == nil {
		t.Fatal("another connection's seed matched")
	}
}

func TestStreamWindowsAreContiguous(t *testing.T) {
	// Checking in pieces of any size must agree with one check.
	w := stream{seed: patternPeriod - 10}
	data := bytes.Clone(w.window(maxWindow))
	r := stream{seed: patternPeriod - 10}
	for off := 0; off < len(data); {
		n := min(1+off%4097, len(data)-off)
		if err := r.check(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 100_000; i++ {
		h.Record(time.Duration(i) * time.Microsecond / 10) // 0.1 µs … 10 ms
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.001, 10 * time.Microsecond}} {
		got := h.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.035 || d < -0.035 {
			t.Errorf("quantile %v = %v, want %v ± 3.5%%", c.q, got, c.want)
		}
	}
	var a, b Histogram
	a.Record(time.Microsecond)
	b.Record(time.Millisecond)
	a.Merge(&b)
	if a.Count() != 2 || a.Quantile(1) != time.Millisecond {
		t.Errorf("merge: count %d, max quantile %v", a.Count(), a.Quantile(1))
	}
	for v := uint64(0); v < 1<<40; v = v*2 + 1 {
		if i := bucketOf(v); i >= histBuckets || bucketOf(bucketValue(i)) != i {
			t.Fatalf("bucket of %d is %d, whose value %d is in bucket %d", v, i, bucketValue(i), bucketOf(bucketValue(i)))
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := header{mode: modeDownload, size: 65536, total: 1 << 40, seed: 0xDEADBEEF}
	got, err := parseHeader(h.marshal(nil))
	if err != nil || got != h {
		t.Fatalf("got %+v, %v; want %+v", got, err, h)
	}
	if _, err := parseHeader(make([]byte, headerLen)); err == nil {
		t.Fatal("zero header accepted")
	}
}

func TestParseProxy(t *testing.T) {
	p, err := ParseProxy("fast=/usr/bin/fastproxy:--engine=x:-c:10")
	if err != nil || p.Name != "fast" || p.Path != "/usr/bin/fastproxy" || len(p.Args) != 3 || p.Args[2] != "10" {
		t.Fatalf("got %+v, %v", p, err)
	}
	if p, err := ParseProxy("base=direct"); err != nil || p.Path != "" {
		t.Fatalf("direct: got %+v, %v", p, err)
	}
	if _, err := ParseProxy("nope"); err == nil {
		t.Fatal("missing = accepted")
	}
}
