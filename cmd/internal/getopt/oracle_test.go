package getopt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/cmd/internal/timespan"
)

// Two oracles: systemd-socket-proxyd v252 itself, which calls glibc's
// getopt_long() with our v252 table and tells us what it made of the command
// line; and, where a C compiler is installed, glibc's getopt_long() called
// directly, which shows every result, not only the first that stops
// socket-proxyd.

const proxydPath = "/lib/systemd/systemd-socket-proxyd"

// oracleEnv keeps glibc's messages untranslated and its permutation on
// (POSIXLY_CORRECT unset), and socket-proxyd's log on stderr, plain, with
// no sockets passed in.
var oracleEnv = []string{"LC_ALL=C", "PATH=/usr/bin:/bin", "SYSTEMD_LOG_TARGET=console",
	"SYSTEMD_LOG_COLOR=0", "SYSTEMD_LOG_LOCATION=0", "SYSTEMD_LOG_TIME=0"}

// proxydOutcome is what systemd-socket-proxyd v252's parse_argv() does with
// our events: it acts on options in order and stops at the first error
// (printing glibc's message), at --help or --version, or at a value it
// cannot use; then it counts operands. The result is "HELP", "VERSION", or
// the line it writes to stderr.
func proxydOutcome(prog string, args []string) string {
	events, operands := Parse(prog, args, v252)
	for _, e := range events {
		if e.Err != nil {
			return e.Err.Error()
		}
		switch e.Option.Long {
		case "help":
			return "HELP"
		case "version":
			return "VERSION"
		case "connections-max":
			// safe_atou(): strtoul() with base 0; close enough for the
			// values in the table (no signs, spaces or underscores).
			n, err := strconv.ParseUint(e.Value, 0, 32)
			if err != nil {
				return "Failed to parse --connections-max= argument: " + e.Value
			}
			if n == 0 {
				return "Connection limit is too low."
			}
		case "exit-idle-time":
			if _, err := timespan.Parse(e.Value); err != nil {
				return "Failed to parse --exit-idle-time= argument: " + e.Value
			}
		}
	}
	switch len(operands) {
	case 0:
		return "Not enough parameters."
	case 1:
		return "Didn't get any sockets passed in."
	default:
		return "Too many parameters."
	}
}

// runProxyd runs the real thing with argv[0] set to argv0, and reduces its
// output to the form of proxydOutcome.
func runProxyd(argv0 string, args []string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := &exec.Cmd{Path: proxydPath, Args: append([]string{argv0}, args...),
		Env: oracleEnv, Stdout: &stdout, Stderr: &stderr}
	err := cmd.Run()
	out, serr := stdout.String(), stderr.String()
	switch {
	case err == nil && strings.HasPrefix(out, filepath.Base(argv0)+" [HOST:PORT]\n") && serr == "":
		return "HELP", nil
	case err == nil && strings.HasPrefix(out, "systemd 252 ") && serr == "":
		return "VERSION", nil
	case err != nil && out == "" && strings.Count(serr, "\n") == 1 && strings.HasSuffix(serr, "\n"):
		return strings.TrimSuffix(serr, "\n"), nil
	}
	return "", fmt.Errorf("%s %q: %v\nstdout: %q\nstderr: %q", proxydPath, args, err, out, serr)
}

var proxydCases = [][]string{
	{}, {"x"}, {"x", "y"}, {""}, {"-"}, {"-", "x"}, {"--"}, {"x", "--"},
	{"--help"}, {"-h"}, {"--version"}, {"--h"}, {"--hel", "x"}, {"--v"}, {"--version=1"},
	{"--foo"}, {"--foo=bar"}, {"---"}, {"--Help"}, {"-x"}, {"-hx"}, {"-xh"}, {"-\xc3\xa9"},
	{"--help=3"}, {"--he=3"}, {"--he="},
	{"--c=5", "x"}, {"--conn", "5", "x"}, {"--co", "5", "x"}, {"--connect=5", "x"},
	{"-c5", "x"}, {"-c", "5", "x"}, {"x", "-c", "5"}, {"x", "-c5", "y"},
	{"x", "-c"}, {"-c"}, {"--connections-max"}, {"--co"}, {"--e"}, {"x", "--exit-idle-time"},
	{"--exit=3s", "x"}, {"--exit", "3s", "x"}, {"x", "--ex", "5min 20s"}, {"--exit-idle-time=", "x"},
	{"--exit-idle-time=1e3", "x"}, {"--exit-idle-time=infinity", "x"}, {"--exit-idle-time==5", "x"},
	{"--=5"}, {"--=", "x"}, {"--", "--help"}, {"--", "-c", "5"}, {"x", "--", "-h"},
	{"-c0", "x"}, {"-c", "0", "--help", "x"}, {"--help", "-c", "0", "x"}, {"--foo", "--help"},
	{"--help", "--foo"}, {"-c", "--help"}, {"--exit-idle-time", "--help", "x"}, {"-hc5"}, {"-c5h", "x"},
	{"--connections-max=0x10", "x"}, {"-c010", "x"}, {"-c", "", "x"}, {"-c", "--", "x"},
	{"--connections-max=5", "--connections-max=x", "x"}, {"--exit-idle-time=5s", "--exit-idle-time"},
	{"-:"}, {"-;"}, {"-W", "help"}, {"--connections-max", "1", "--", "--", "x"},
}

func TestOracleSocketProxyd(t *testing.T) {
	if _, err := os.Stat(proxydPath); err != nil {
		t.Skipf("%s not installed (%v); skipping comparison with systemd-socket-proxyd v252", proxydPath, err)
	}
	if v, _ := runProxyd("PROG", []string{"--version"}); v != "VERSION" {
		t.Skipf("%s is not systemd v252's; skipping comparison", proxydPath)
	}
	t.Parallel()
	type run struct {
		argv0 string
		args  []string
	}
	var runs []run
	for _, args := range proxydCases {
		runs = append(runs, run{"PROG", args})
	}
	// glibc names argv[0] as given, path and all.
	runs = append(runs, run{"/usr/bin/PROG", []string{"--foo"}}, run{"./PROG", []string{"x", "-c"}})

	results := make([]string, len(runs))
	errs := make([]error, len(runs))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = runProxyd(r.argv0, r.args)
		})
	}
	wg.Wait()
	for i, r := range runs {
		if errs[i] != nil {
			t.Error(errs[i])
			continue
		}
		if got, want := proxydOutcome(r.argv0, r.args), results[i]; got != want {
			t.Errorf("%s %q:\n ours: %q\n v252: %q", r.argv0, r.args, got, want)
		}
	}
}

// TestOracleGlibc compares every event and the operands with glibc's
// getopt_long(), on a table of command lines and on random ones, for v252's
// options (all Original, so our abbreviation rule is glibc's) and for an
// extended table with no option marked Original (plain glibc).
func TestOracleGlibc(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to build the glibc getopt_long() oracle; skipping")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "getopt_long")
	if out, err := exec.Command(gcc, "-O", "-o", bin, "testdata/getopt_long.c").CombinedOutput(); err != nil {
		t.Fatalf("building the oracle: %v\n%s", err, out)
	}

	plain := slices.Clone(extended)
	for i := range plain {
		plain[i].Original = false
	}

	tokens := []string{
		"-c", "-c5", "-h", "-hc", "-x", "-hx", "-ch", "-", "--", "", "x", "y", "5",
		"--c", "--co=1", "--conn", "--connect", "--connect-t=2", "--connect-", "--e", "--exit=3s",
		"--help", "--help=1", "--h", "--v", "--ve", "--verb", "--p", "--proxy-p", "--proxy=v1",
		"--=1", "--", "--foo", "---", "-vb", "-b", "-b3", "-vvx", "--version", "-\xc3\xa9",
		"--connections-max", "--exit-idle-time=", "-:",
	}
	r := rand.New(rand.NewPCG(2, 36))
	lines := slices.Clone(proxydCases)
	for range 2000 {
		args := make([]string, r.IntN(7))
		for j := range args {
			args[j] = tokens[r.IntN(len(tokens))]
		}
		lines = append(lines, args)
	}

	for _, set := range []struct {
		name string
		opts []Option
	}{{"v252", v252}, {"plain", plain}} {
		var spec []string
		for _, o := range set.opts {
			short := ""
			if o.Short != 0 {
				short = string(o.Short)
			}
			spec = append(spec, fmt.Sprintf("%s/%s/%d", o.Long, short, o.Arg))
		}
		// One run for all command lines; see testdata/getopt_long.c.
		var in, out bytes.Buffer
		var want []string
		for _, args := range lines {
			in.WriteString(strings.Join(append([]string{"P"}, args...), "\x1f") + "\n")
			want = append(want, glibcStyle(args, set.opts))
		}
		cmd := exec.Command(bin)
		cmd.Env = append(slices.Clone(oracleEnv), "GETOPT_SPEC="+strings.Join(spec, ","))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = &in, &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", bin, err, &out)
		}
		got := strings.SplitAfter(out.String(), "\x1e\n")
		if len(got) != len(lines)+1 || got[len(lines)] != "" {
			t.Fatalf("%s: %d results for %d command lines:\n%.2000s", bin, len(got)-1, len(lines), &out)
		}
		for i, args := range lines {
			if want[i] != got[i] {
				t.Errorf("%s %q:\n ours:\n%s glibc:\n%s", set.name, args, want[i], got[i])
			}
		}
	}
}

// glibcStyle renders Parse's result in the oracle program's output format.
func glibcStyle(args []string, opts []Option) string {
	var b strings.Builder
	events, operands := Parse("P", args, opts)
	for _, e := range events {
		if e.Err != nil {
			fmt.Fprintf(&b, "%s\n?\n", e.Err)
			continue
		}
		fmt.Fprintf(&b, "o %d %s\n", slices.IndexFunc(opts, func(o Option) bool { return o.Long == e.Option.Long && o.Short == e.Option.Short }), e.Value)
	}
	for _, o := range operands {
		fmt.Fprintf(&b, "= %s\n", o)
	}
	b.WriteString("\x1e\n")
	return b.String()
}
