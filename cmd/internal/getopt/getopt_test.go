package getopt

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// v252 is systemd-socket-proxyd v252's option table, in its order (which
// shows in ambiguity messages).
var v252 = []Option{
	{Long: "connections-max", Short: 'c', Arg: RequiredArgument, Original: true},
	{Long: "exit-idle-time", Arg: RequiredArgument, Original: true},
	{Long: "help", Short: 'h', Original: true},
	{Long: "version", Original: true},
}

// extended is v252 plus options it does not have: one that shares a prefix
// with an original ("connect"), and two that share one with each other.
var extended = append(slices.Clone(v252),
	Option{Long: "connect-timeout", Arg: RequiredArgument},
	Option{Long: "proxy-protocol", Arg: RequiredArgument},
	Option{Long: "proxy-buffer", Short: 'b', Arg: RequiredArgument},
	Option{Long: "verbose", Short: 'v'},
)

// render writes events as "name=value", "name" or "!message", and operands
// as "[a b]", for compact expectations.
func render(events []Event, operands []string) string {
	var parts []string
	for _, e := range events {
		switch {
		case e.Err != nil:
			parts = append(parts, "!"+e.Err.Error())
		case e.Option.Arg == RequiredArgument:
			parts = append(parts, e.Option.Long+"="+e.Value)
		default:
			parts = append(parts, e.Option.Long)
		}
	}
	return strings.Join(parts, " ") + " [" + strings.Join(operands, " ") + "]"
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		opts []Option
		args []string
		want string
	}{
		// Spellings of options and arguments.
		{v252, nil, " []"},
		{v252, []string{"x"}, " [x]"},
		{v252, []string{"-c5", "x"}, "connections-max=5 [x]"},
		{v252, []string{"-c", "5", "x"}, "connections-max=5 [x]"},
		{v252, []string{"--connections-max=5", "x"}, "connections-max=5 [x]"},
		{v252, []string{"--connections-max", "5", "x"}, "connections-max=5 [x]"},
		{v252, []string{"--exit-idle-time=", "x"}, "exit-idle-time= [x]"},
		{v252, []string{"--exit-idle-time==5", "x"}, "exit-idle-time==5 [x]"},
		{v252, []string{"--exit-idle-time=a=b"}, "exit-idle-time=a=b []"},
		{v252, []string{"-c", "", "x"}, "connections-max= [x]"},
		{v252, []string{"-c", "--help"}, "connections-max=--help []"},
		{v252, []string{"-c", "--"}, "connections-max=-- []"},
		{v252, []string{"--exit-idle-time", "-h", "x"}, "exit-idle-time=-h [x]"},
		{v252, []string{"-hc5"}, "help connections-max=5 []"},
		{v252, []string{"-hhc", "5"}, "help help connections-max=5 []"},
		{v252, []string{"-ch"}, "connections-max=h []"},
		{v252, []string{"--version"}, "version []"},

		// Permutation: operands anywhere, in order; "--"; "-" and "".
		{v252, []string{"a", "-h", "b", "-c", "1", "c"}, "help connections-max=1 [a b c]"},
		{v252, []string{"a", "--", "-h", "--", "b"}, " [a -h -- b]"},
		{v252, []string{"--"}, " []"},
		{v252, []string{"-", "", "-h"}, "help [- ]"},
		{v252, []string{"-c", "1", "--", "-c", "2"}, "connections-max=1 [-c 2]"},

		// Abbreviations, v252 alone.
		{v252, []string{"--conn=5"}, "connections-max=5 []"},
		{v252, []string{"--c", "5"}, "connections-max=5 []"},
		{v252, []string{"--exit=3s"}, "exit-idle-time=3s []"},
		{v252, []string{"--h", "--v"}, "help version []"},

		// Abbreviations with new options: v252's meaning is kept.
		{extended, []string{"--conn=5"}, "connections-max=5 []"},
		{extended, []string{"--co=5"}, "connections-max=5 []"},
		{extended, []string{"--c=5"}, "connections-max=5 []"},
		{extended, []string{"--connect=5"}, "connections-max=5 []"},
		{extended, []string{"--connect-=1s"}, "connect-timeout=1s []"},
		{extended, []string{"--connect-t=1s"}, "connect-timeout=1s []"},
		{extended, []string{"--v"}, "version []"},
		{extended, []string{"--ve"}, "version []"},
		{extended, []string{"--verb"}, "verbose []"},
		{extended, []string{"--proxy-p=v1"}, "proxy-protocol=v1 []"},
		{extended, []string{"-vb", "4"}, "verbose proxy-buffer=4 []"},
		{extended, []string{"--proxy=v1"}, "!P: option '--proxy=v1' is ambiguous; possibilities: '--proxy-protocol' '--proxy-buffer' []"},
		{extended, []string{"--p", "x"}, "!P: option '--p' is ambiguous; possibilities: '--proxy-protocol' '--proxy-buffer' [x]"},
		// The empty prefix matches every original, and only them.
		{extended, []string{"--=5"}, "!P: option '--=5' is ambiguous; possibilities: '--connections-max' '--exit-idle-time' '--help' '--version' []"},

		// Errors, in place among the options, and parsing goes on.
		{v252, []string{"--foo"}, "!P: unrecognized option '--foo' []"},
		{v252, []string{"--foo=bar"}, "!P: unrecognized option '--foo=bar' []"},
		{v252, []string{"---"}, "!P: unrecognized option '---' []"},
		{v252, []string{"--Help"}, "!P: unrecognized option '--Help' []"},
		{v252, []string{"-x"}, "!P: invalid option -- 'x' []"},
		{v252, []string{"-\xc3\xa9"}, "!P: invalid option -- '\xc3' !P: invalid option -- '\xa9' []"},
		{v252, []string{"-:", "-;", "--"}, "!P: invalid option -- ':' !P: invalid option -- ';' []"},
		{v252, []string{"--=5"}, "!P: option '--=5' is ambiguous; possibilities: '--connections-max' '--exit-idle-time' '--help' '--version' []"},
		{v252, []string{"--help=yes"}, "!P: option '--help' doesn't allow an argument []"},
		{v252, []string{"--he=", "x"}, "!P: option '--help' doesn't allow an argument [x]"},
		{v252, []string{"-c"}, "!P: option requires an argument -- 'c' []"},
		{v252, []string{"x", "-hc"}, "help !P: option requires an argument -- 'c' [x]"},
		{v252, []string{"--connections-max"}, "!P: option '--connections-max' requires an argument []"},
		{v252, []string{"--e"}, "!P: option '--exit-idle-time' requires an argument []"},
		{v252, []string{"-xc5", "--foo", "a", "--help", "-y"}, "!P: invalid option -- 'x' connections-max=5 !P: unrecognized option '--foo' help !P: invalid option -- 'y' [a]"},
		{v252, []string{"-c", "0", "--help", "x"}, "connections-max=0 help [x]"},
		{v252, []string{"--help", "-c", "0", "x"}, "help connections-max=0 [x]"},

		// Exact names win over longer names they are a prefix of.
		{[]Option{{Long: "timeout", Arg: RequiredArgument}, {Long: "time", Arg: RequiredArgument}},
			[]string{"--time=1", "--timeo=2", "--tim=3"},
			"time=1 timeout=2 !P: option '--tim=3' is ambiguous; possibilities: '--timeout' '--time' []"},

		// With nothing marked Original, abbreviations are plain glibc.
		{[]Option{{Long: "connections-max", Arg: RequiredArgument}, {Long: "connect-timeout", Arg: RequiredArgument}},
			[]string{"--co", "1", "--connecti=2", "--connect-=3"},
			"!P: option '--co' is ambiguous; possibilities: '--connections-max' '--connect-timeout' connections-max=2 connect-timeout=3 [1]"},
	} {
		events, operands := Parse("P", c.args, c.opts)
		if got := render(events, operands); got != c.want {
			t.Errorf("Parse(%q)\n got %s\nwant %s", c.args, got, c.want)
		}
	}
}

func TestEventPointsIntoOpts(t *testing.T) {
	opts := slices.Clone(v252)
	events, _ := Parse("P", []string{"-c1", "--connections-max=2", "--conn", "3", "-h"}, opts)
	for i, want := range []*Option{&opts[0], &opts[0], &opts[0], &opts[2]} {
		if events[i].Option != want {
			t.Errorf("event %d: Option = %p (%v), want %p", i, events[i].Option, events[i].Option, want)
		}
	}
}

func TestErrorFields(t *testing.T) {
	opts := slices.Clone(extended)
	events, _ := Parse("/usr/bin/prog", []string{"--foo=1", "-hx", "--proxy", "--help=1", "-c"}, opts)
	want := []Error{
		{Kind: Unrecognized, Word: "foo=1", msg: "/usr/bin/prog: unrecognized option '--foo=1'"},
		{}, // -h
		{Kind: Invalid, Word: "x", msg: "/usr/bin/prog: invalid option -- 'x'"},
		{Kind: Ambiguous, Word: "proxy", Candidates: []*Option{&opts[5], &opts[6]},
			msg: "/usr/bin/prog: option '--proxy' is ambiguous; possibilities: '--proxy-protocol' '--proxy-buffer'"},
		{Kind: UnexpectedArgument, Word: "help=1", Option: &opts[2], msg: "/usr/bin/prog: option '--help' doesn't allow an argument"},
		{Kind: MissingArgument, Word: "c", Option: &opts[0], msg: "/usr/bin/prog: option requires an argument -- 'c'"},
	}
	if len(events) != len(want) {
		t.Fatalf("got %d events, want %d: %s", len(events), len(want), render(events, nil))
	}
	for i, w := range want {
		if w.msg == "" {
			continue
		}
		var e *Error
		if !errors.As(events[i].Err, &e) || events[i].Option != nil {
			t.Fatalf("event %d = %+v, want an *Error and no Option", i, events[i])
		}
		if e.Kind != w.Kind || e.Word != w.Word || e.Option != w.Option || !slices.Equal(e.Candidates, w.Candidates) || e.Error() != w.msg {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, *e, w)
		}
	}
}

func TestCheckPanics(t *testing.T) {
	for name, opts := range map[string][]Option{
		"nameless":    {{Arg: NoArgument}},
		"equals":      {{Long: "a=b"}},
		"colon":       {{Short: ':'}},
		"dash":        {{Short: '-'}},
		"space":       {{Short: ' '}},
		"high":        {{Short: 0xb5}},
		"kind":        {{Long: "a", Arg: 7}},
		"same long":   {{Long: "a"}, {Long: "a", Short: 'a'}},
		"same short":  {{Long: "a", Short: 'x'}, {Long: "b", Short: 'x'}},
		"short twice": {{Short: 'x'}, {Short: 'x'}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Parse did not panic", name)
				}
			}()
			Parse("P", nil, opts)
		}()
	}
	// Long-only and short-only options are fine together.
	Parse("P", []string{"-a", "--b"}, []Option{{Short: 'a'}, {Long: "b"}, {Long: "c"}})
}

var fuzzSeeds = [][]string{
	{}, {"x"}, {"-c5", "x"}, {"--conn", "5"}, {"-hc"}, {"--=5"}, {"--", "-h"}, {"-"}, {""},
	{"--exit-idle-time"}, {"--he=1"}, {"-\xff"}, {"---"}, {"--proxy", "x"}, {"-c", "--"},
	{"a", "--", "b", "--", "c"}, {"-vvvb"}, {"-\x00"}, {"--\x00=1"},
}

// FuzzParse takes the arguments as one string, split at newlines.
func FuzzParse(f *testing.F) {
	for _, args := range fuzzSeeds {
		f.Add(strings.Join(args, "\n"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\n")
		opts := slices.Clone(extended)
		events, operands := Parse("P", args, opts)

		for _, e := range events {
			if (e.Option == nil) == (e.Err == nil) {
				t.Fatalf("%q: event %+v has both or neither of Option and Err", args, e)
			}
			if e.Err != nil {
				var ge *Error
				if !errors.As(e.Err, &ge) || !strings.HasPrefix(ge.Error(), "P: ") {
					t.Fatalf("%q: error %#v", args, e.Err)
				}
				continue
			}
			if !pointsInto(e.Option, opts) {
				t.Fatalf("%q: event Option %p not in opts", args, e.Option)
			}
			if e.Option.Arg == NoArgument && e.Value != "" {
				t.Fatalf("%q: flag %s has value %q", args, e.Option.Long, e.Value)
			}
		}
		// Operands are a subsequence of args; every word before "--" that
		// is not an option is one.
		j := 0
		for _, op := range operands {
			for j < len(args) && args[j] != op {
				j++
			}
			if j == len(args) {
				t.Fatalf("%q: operands %q are not a subsequence", args, operands)
			}
			j++
		}
		if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "-") && a != "-" }) &&
			!slices.Equal(operands, args) {
			t.Fatalf("%q: no options, yet operands %q", args, operands)
		}
	})
}

func pointsInto(o *Option, opts []Option) bool {
	for i := range opts {
		if o == &opts[i] {
			return true
		}
	}
	return false
}

// TestPOSIXLYCorrect: with POSIXLY_CORRECT set (to anything, even empty),
// the first operand ends the options, as in glibc.
func TestPOSIXLYCorrect(t *testing.T) {
	t.Setenv("POSIXLY_CORRECT", "")
	events, operands := Parse("P", []string{"-c", "5", "x", "-c", "0", "--help"}, v252)
	if len(events) != 1 || events[0].Option.Long != "connections-max" || events[0].Value != "5" {
		t.Errorf("events %+v, want only -c 5", events)
	}
	if want := []string{"x", "-c", "0", "--help"}; !slices.Equal(operands, want) {
		t.Errorf("operands %q, want %q", operands, want)
	}
	if _, operands := Parse("P", []string{"-", "-h"}, v252); !slices.Equal(operands, []string{"-", "-h"}) {
		t.Errorf("a lone '-' did not end the options: operands %q", operands)
	}
}
