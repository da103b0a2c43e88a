package timespan

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The oracles are systemd v252's own parse_sec(), reached three ways, each
// test skipped where its way is missing:
//
//   - systemd-analyze timespan SPAN... prints "μs: N" for each span it
//     accepts and stops at the first it rejects, naming the errno;
//   - systemd-socket-proxyd --exit-idle-time=SPAN, without a target,
//     says "Not enough parameters." if it accepted SPAN and
//     "Failed to parse --exit-idle-time= argument: SPAN" if not;
//   - with gcc, a small C program (testdata/parse_sec.c) calls parse_sec()
//     in libsystemd-shared-252.so directly, fast enough for many thousand
//     random spans.
const (
	analyzePath = "/usr/bin/systemd-analyze"
	proxydPath  = "/lib/systemd/systemd-socket-proxyd"
)

// oracleEnv keeps the programs' messages in English, on stderr, uncoloured.
var oracleEnv = []string{"LC_ALL=C", "PATH=/usr/bin:/bin", "SYSTEMD_COLORS=0", "SYSTEMD_LOG_TARGET=console"}

// needOracle skips the test unless path is systemd v252's.
func needOracle(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("oracle %s not installed (%v); skipping comparison with systemd", path, err)
	}
	cmd := exec.Command(path, "--version")
	cmd.Env = oracleEnv
	out, _ := cmd.Output()
	if !bytes.HasPrefix(out, []byte("systemd 252 ")) {
		t.Skipf("oracle %s is not systemd v252 (%.40q); skipping comparison", path, out)
	}
}

// verdict is a parse result in comparable form: a value, or an errno name.
type verdict struct {
	us  uint64
	err string // "", "EINVAL" or "ERANGE"
}

func (v verdict) String() string {
	if v.err != "" {
		return v.err
	}
	return strconv.FormatUint(v.us, 10) + "µs"
}

func ours(s string) verdict {
	us, err := ParseMicros(s)
	switch {
	case err == nil:
		return verdict{us: us}
	case errors.Is(err, strconv.ErrRange):
		return verdict{err: "ERANGE"}
	default:
		return verdict{err: "EINVAL"}
	}
}

var usecLine = regexp.MustCompile(`(?m)^ *(?:μs|us): (\d+)$`) // "us" outside UTF-8 locales

// analyze runs spans through systemd-analyze, as few times as it can: one
// run goes on until the first rejected span, the next starts after it.
func analyze(spans []string) ([]verdict, error) {
	var out []verdict
	for len(spans) > 0 {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(analyzePath, append([]string{"--no-pager", "timespan", "--"}, spans...)...)
		cmd.Env, cmd.Stdout, cmd.Stderr = oracleEnv, &stdout, &stderr
		runErr := cmd.Run()
		m := usecLine.FindAllStringSubmatch(stdout.String(), -1)
		if len(m) > len(spans) || (runErr == nil) != (len(m) == len(spans)) {
			return nil, fmt.Errorf("systemd-analyze %q: %v, %d values\nstdout:\n%s\nstderr:\n%s", spans, runErr, len(m), &stdout, &stderr)
		}
		for _, v := range m {
			us, err := strconv.ParseUint(v[1], 10, 64)
			if err != nil {
				return nil, err
			}
			out = append(out, verdict{us: us})
		}
		if runErr == nil {
			break
		}
		var v verdict
		switch e := stderr.String(); {
		case strings.Contains(e, ": Invalid argument"):
			v.err = "EINVAL"
		case strings.Contains(e, ": Numerical result out of range"):
			v.err = "ERANGE"
		default:
			return nil, fmt.Errorf("systemd-analyze timespan %q: %v\n%s", spans[len(m)], runErr, e)
		}
		out = append(out, v)
		spans = spans[len(m)+1:]
	}
	return out, nil
}

func TestOracleSystemdAnalyze(t *testing.T) {
	needOracle(t, analyzePath)
	t.Parallel()
	spans := make([]string, len(spanCases))
	for i, c := range spanCases {
		spans[i] = c.in
	}
	// Two runners at once: each rejected span costs a run of
	// systemd-analyze, and most of a run is starting it.
	half := len(spans) / 2
	var results [2][]verdict
	var errs [2]error
	var wg sync.WaitGroup
	for i, part := range [][]string{spans[:half], spans[half:]} {
		wg.Go(func() { results[i], errs[i] = analyze(part) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	for i, want := range append(results[0], results[1]...) {
		if got := ours(spans[i]); got != want {
			t.Errorf("%q: ParseMicros says %v, systemd-analyze says %v", spans[i], got, want)
		}
	}
}

// sharedLibs are where systemd v252 may keep the library its programs
// share, which exports parse_sec().
var sharedLibs = []string{
	"/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so",
	"/usr/lib/aarch64-linux-gnu/systemd/libsystemd-shared-252.so",
	"/usr/lib/systemd/libsystemd-shared-252.so",
	"/lib/systemd/libsystemd-shared-252.so",
}

// TestOracleRandom calls systemd v252's parse_sec() itself, through a small
// C program (testdata/parse_sec.c), on many random sentences of numbers,
// units, whitespace and the odd piece of junk, most of them near the edges
// of the grammar.
func TestOracleRandom(t *testing.T) {
	lib := ""
	for _, l := range sharedLibs {
		if _, err := os.Stat(l); err == nil {
			lib = l
			break
		}
	}
	gcc, err := exec.LookPath("gcc")
	if lib == "" || err != nil {
		t.Skip("needs gcc and libsystemd-shared-252.so to call parse_sec(); skipping")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "parse_sec")
	if out, err := exec.Command(gcc, "-O", "-o", bin, "testdata/parse_sec.c", "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("building the oracle: %v\n%s", err, out)
	}

	numbers := []string{"0", "1", "5", "12", "007", "+3", "-0", "-2", ".5", "1.25", "5.", ".",
		"0.000001", "0.999999999", "9223372036854775807", "9223372036854775808",
		"18446744073709551616", "584541", "18446744073708", "18446744073709"}
	units := []string{"", "", "", "s", "sec", "second", "seconds", "ms", "msec", "m", "min",
		"minute", "minutes", "M", "month", "months", "h", "hr", "hour", "hours", "d", "day", "days",
		"w", "week", "weeks", "y", "year", "years", "us", "usec", "µs", "μs", "µ", "x", "e", "S"}
	spaces := []string{"", "", "", " ", "  ", "\t", "\n", "\v", "\f", "\r"}
	junk := []string{".", "-", "+", "infinity", "0x", "1e3", ",", "\xb5", "\xce"}
	pick := func(r *rand.Rand, from []string) string { return from[r.IntN(len(from))] }
	r := rand.New(rand.NewPCG(252, 36))
	spans := make([]string, 20000)
	for i := range spans {
		var b strings.Builder
		if i%10 == 0 {
			b.WriteString(pick(r, spaces) + "infinity" + pick(r, spaces))
		}
		clean := i%2 == 0 // systemd's whitespace and units only, no junk
		for range 1 + r.IntN(3) {
			if clean {
				b.WriteString(pick(r, []string{"", " ", "\t"}))
				b.WriteString(pick(r, numbers))
				b.WriteString(pick(r, []string{"", "", " "}))
				b.WriteString(pick(r, units[:len(units)-4]))
				continue
			}
			b.WriteString(pick(r, spaces))
			b.WriteString(pick(r, numbers))
			b.WriteString(pick(r, spaces))
			b.WriteString(pick(r, units))
			if r.IntN(6) == 0 {
				b.WriteString(pick(r, junk))
			}
		}
		spans[i] = b.String()
	}

	var in, out bytes.Buffer
	for _, s := range spans {
		in.WriteString(s + "\x1e")
	}
	cmd := exec.Command(bin, lib)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &in, &out, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(spans) {
		t.Fatalf("%s: %d results for %d spans", bin, len(lines), len(spans))
	}
	valid := 0
	for i, line := range lines {
		var want verdict
		switch line {
		case "E22":
			want.err = "EINVAL"
		case "E34":
			want.err = "ERANGE"
		default:
			if want.us, err = strconv.ParseUint(line, 10, 64); err != nil {
				t.Fatalf("%s: %q for %q", bin, line, spans[i])
			}
			valid++
		}
		if got := ours(spans[i]); got != want {
			t.Errorf("%q: ParseMicros says %v, parse_sec() says %v", spans[i], got, want)
		}
	}
	t.Logf("%d random spans, %d valid, all agree with parse_sec() in %s", len(spans), valid, lib)
}

// TestOracleSocketProxyd asks the program we replace: only accept/reject,
// but through the very call (parse_sec) its --exit-idle-time= makes.
func TestOracleSocketProxyd(t *testing.T) {
	needOracle(t, proxydPath)
	t.Parallel()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, c := range spanCases {
		// The values are systemd-analyze's business; here the contract's
		// examples (the table's first 16) and a sample of the rest will do.
		if i >= 16 && i%3 != 0 {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var stderr bytes.Buffer
			cmd := exec.Command(proxydPath, "--exit-idle-time="+c.in)
			cmd.Env, cmd.Stderr = oracleEnv, &stderr
			_ = cmd.Run() // exits 1 either way
			var accepted bool
			switch e := stderr.String(); {
			case e == "Not enough parameters.\n":
				accepted = true
			case e == fmt.Sprintf("Failed to parse --exit-idle-time= argument: %s\n", c.in):
			default:
				t.Errorf("--exit-idle-time=%q: unexpected stderr %q", c.in, e)
				return
			}
			if _, err := Parse(c.in); (err == nil) != accepted {
				t.Errorf("--exit-idle-time=%q: systemd-socket-proxyd accepted=%v, Parse error %v", c.in, accepted, err)
			}
		})
	}
	wg.Wait()
}
