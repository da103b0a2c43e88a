// Package getopt splits a command line the way glibc's getopt_long() does,
// because unit files written for systemd-socket-proxyd rely on its rules:
//
//   - options and operands may be mixed; operands keep their order
//     (glibc's default argument permutation); with POSIXLY_CORRECT in the
//     environment, as glibc, the first operand ends the options instead;
//   - "--" ends the options, and everything after it is an operand;
//     a lone "-", and the empty string, are operands;
//   - short options cluster ("-hc5"); a short option's argument is the rest
//     of its word ("-c5") or else the next word ("-c 5");
//   - a long option's argument follows '=' ("--exit-idle-time=5s") or is
//     the next word ("--exit-idle-time 5s"); the next word is taken even if
//     it looks like an option ("-c --help" sets c to "--help");
//   - a long option may be abbreviated to any unambiguous prefix ("--conn=5"),
//     and an exact name wins over longer names it is a prefix of.
//
// Parse reports options, and errors, as events in command-line order, so
// that the caller can act on them in order and the first one that ends the
// program wins ("--help -c 0 x" prints help, "-c 0 --help x" fails on -c).
// Error messages are glibc 2.36's, byte for byte.
//
// One rule is ours: abbreviations are resolved among the options marked
// Original (those systemd-socket-proxyd v252 has) before the others. New
// long options are additions and never change what a command line that
// worked with v252 means, so "--c" stays --connections-max even once
// --connect-timeout exists.
//
// The package knows nothing of what options mean, of their values, or of
// how many operands a program wants.
package getopt

import (
	"fmt"
	"os"
	"strings"
)

// ArgKind says whether an option takes an argument.
type ArgKind int

const (
	NoArgument       ArgKind = iota // a flag: "-h", "--help"
	RequiredArgument                // "-c5", "-c 5", "--connections-max=5", "--connections-max 5"
)

// Option describes one option, known by a long name, a short letter, or
// both (then both spellings yield the same *Option).
type Option struct {
	// Long is the name without its leading "--"; empty if there is none.
	// It must not contain '='.
	Long string
	// Short is the letter without its leading '-'; 0 if there is none.
	// It must be a printable ASCII character other than '-', ':' and ';'.
	Short byte
	// Arg says whether the option takes an argument.
	Arg ArgKind
	// Original marks options the program had before it grew new ones
	// (for us: systemd-socket-proxyd v252's). Abbreviations are looked
	// for among Original options first, so adding an option never changes
	// what an abbreviation that used to work means. With no option marked
	// Original, abbreviations follow glibc exactly.
	Original bool
}

// Event is one option found on the command line, or one error.
type Event struct {
	// Option points into the slice given to Parse; nil when Err is set.
	Option *Option
	// Value is the option's argument if it takes one, and "" otherwise.
	Value string
	// Err, when not nil, is an *Error: the word could not be understood.
	// Parsing goes on after an error, as getopt_long() would if called
	// again; programs that follow glibc stop at the first one.
	Err error
}

// ErrorKind classifies an Error.
type ErrorKind int

const (
	Unrecognized       ErrorKind = iota // "--foo": no long option has this name or prefix
	Invalid                             // "-x": no option has this letter
	Ambiguous                           // "--co": a prefix of several long options
	MissingArgument                     // "-c" or "--connections-max" as the last word
	UnexpectedArgument                  // "--help=yes"
)

// Error is an option that could not be understood. Its message is the line
// glibc's getopt_long() would print to stderr, without the newline.
type Error struct {
	Kind ErrorKind
	// Option is the option concerned, for MissingArgument and
	// UnexpectedArgument; nil otherwise.
	Option *Option
	// Candidates are the options an Ambiguous prefix matches, in the order
	// they were given to Parse.
	Candidates []*Option
	// Word is the offending text: for long options everything after "--",
	// "=value" included ("foo=bar" for "--foo=bar"); for short options the
	// letter alone ("x" for "-hx").
	Word string

	msg string
}

func (e *Error) Error() string { return e.msg }

// Parse splits args (the command line without the program name) into
// events, in command-line order, and operands, in their own order. prog
// begins error messages as it is given: glibc prints argv[0] whole, not
// its base name.
//
// Any args are acceptable: whatever cannot be understood becomes an error
// event, and parsing goes on. opts is read, never changed; the events'
// Options point into it. Parse panics if opts breaks the rules documented
// on Option or has two options with the same Long or Short.
func Parse(prog string, args []string, opts []Option) (events []Event, operands []string) {
	check(opts)
	p := parser{prog: prog, opts: opts}
	_, posix := os.LookupEnv("POSIXLY_CORRECT")
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return p.events, append(operands, args[i+1:]...)
		case (len(arg) < 2 || arg[0] != '-') && posix:
			return p.events, append(operands, args[i:]...)
		case len(arg) < 2 || arg[0] != '-':
			operands = append(operands, arg)
		case arg[1] == '-':
			i = p.long(args, i)
		default:
			i = p.short(args, i)
		}
	}
	return p.events, operands
}

type parser struct {
	prog   string
	opts   []Option
	events []Event
}

func (p *parser) option(o *Option, value string) {
	p.events = append(p.events, Event{Option: o, Value: value})
}

func (p *parser) fail(e *Error, format string, a ...any) {
	e.msg = p.prog + ": " + fmt.Sprintf(format, a...)
	p.events = append(p.events, Event{Err: e})
}

// long handles args[i], which starts with "--" and is not "--" itself, as
// glibc's process_long_option() does. It returns the index of the last word
// it used: i, or i+1 if it took the next word as the argument.
func (p *parser) long(args []string, i int) int {
	word := args[i][2:]
	name, value, hasValue := strings.Cut(word, "=")

	o, ambiguous := p.lookup(name)
	switch {
	case ambiguous != nil:
		var b strings.Builder
		for _, c := range ambiguous {
			fmt.Fprintf(&b, " '--%s'", c.Long)
		}
		p.fail(&Error{Kind: Ambiguous, Candidates: ambiguous, Word: word},
			"option '--%s' is ambiguous; possibilities:%s", word, b.String())
	case o == nil:
		p.fail(&Error{Kind: Unrecognized, Word: word}, "unrecognized option '--%s'", word)
	case hasValue && o.Arg == NoArgument:
		p.fail(&Error{Kind: UnexpectedArgument, Option: o, Word: word},
			"option '--%s' doesn't allow an argument", o.Long)
	case hasValue:
		p.option(o, value)
	case o.Arg == NoArgument:
		p.option(o, "")
	case i+1 < len(args):
		i++
		p.option(o, args[i])
	default:
		p.fail(&Error{Kind: MissingArgument, Option: o, Word: word},
			"option '--%s' requires an argument", o.Long)
	}
	return i
}

// lookup finds the long option called name, or abbreviated to it: an exact
// match first, then the only Original option name abbreviates, then the only
// option at all. When several match at the first level that has any, it
// returns them all as ambiguous.
func (p *parser) lookup(name string) (found *Option, ambiguous []*Option) {
	for i := range p.opts {
		if o := &p.opts[i]; o.Long != "" && o.Long == name {
			return o, nil
		}
	}
	for _, originalOnly := range []bool{true, false} {
		var matches []*Option
		for i := range p.opts {
			o := &p.opts[i]
			if o.Long != "" && strings.HasPrefix(o.Long, name) && (o.Original || !originalOnly) {
				matches = append(matches, o)
			}
		}
		switch len(matches) {
		case 0:
			continue
		case 1:
			return matches[0], nil
		default:
			return nil, matches
		}
	}
	return nil, nil
}

// short handles args[i], a cluster of short options after a '-', as glibc's
// getopt_long() does a letter at a time. It returns the index of the last
// word it used: i, or i+1 if it took the next word as an argument.
func (p *parser) short(args []string, i int) int {
	word := args[i]
	for j := 1; j < len(word); j++ {
		c := word[j]
		o := p.byShort(c)
		switch {
		case o == nil:
			// %s of a one-byte string, not %c: glibc prints the byte,
			// even one that is not a character by itself.
			p.fail(&Error{Kind: Invalid, Word: word[j : j+1]}, "invalid option -- '%s'", word[j:j+1])
		case o.Arg == NoArgument:
			p.option(o, "")
		case j+1 < len(word):
			p.option(o, word[j+1:])
			return i
		case i+1 < len(args):
			p.option(o, args[i+1])
			return i + 1
		default:
			p.fail(&Error{Kind: MissingArgument, Option: o, Word: word[j : j+1]},
				"option requires an argument -- '%s'", word[j:j+1])
		}
	}
	return i
}

func (p *parser) byShort(c byte) *Option {
	for i := range p.opts {
		if c != 0 && p.opts[i].Short == c {
			return &p.opts[i]
		}
	}
	return nil
}

// check panics if opts cannot be told apart on a command line.
func check(opts []Option) {
	for i, o := range opts {
		if o.Long == "" && o.Short == 0 {
			panic(fmt.Sprintf("getopt: option %d has neither a long nor a short name", i))
		}
		if strings.Contains(o.Long, "=") {
			panic(fmt.Sprintf("getopt: long option %q contains '='", o.Long))
		}
		if o.Short != 0 && (o.Short <= ' ' || o.Short >= 0x7f || strings.IndexByte("-:;", o.Short) >= 0) {
			panic(fmt.Sprintf("getopt: invalid short option %q", o.Short))
		}
		if o.Arg != NoArgument && o.Arg != RequiredArgument {
			panic(fmt.Sprintf("getopt: option %d has an unknown ArgKind %d", i, o.Arg))
		}
		for _, q := range opts[:i] {
			if o.Long != "" && o.Long == q.Long || o.Short != 0 && o.Short == q.Short {
				panic(fmt.Sprintf("getopt: options %q/%q and %q/%q clash", q.Long, q.Short, o.Long, o.Short))
			}
		}
	}
}
