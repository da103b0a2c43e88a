package timespan

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// A span and what systemd v252's parse_sec() makes of it: a value in µs, or
// an error (errSyntax for EINVAL, errRange for ERANGE). The same table seeds
// FuzzParse and is checked against systemd-analyze in oracle_test.go.
type spanCase struct {
	in  string
	us  uint64
	err error
}

const (
	sec  = 1000000
	inf  = InfinityMicros
	maxI = math.MaxInt64
)

var (
	errSyntax = strconv.ErrSyntax
	errRange  = strconv.ErrRange
)

var spanCases = []spanCase{
	// The examples of the command-line contract.
	{"0", 0, nil},
	{"2", 2 * sec, nil},
	{"2s", 2 * sec, nil},
	{"1500ms", 1500000, nil},
	{"0.5", sec / 2, nil},
	{"1min", 60 * sec, nil},
	{"5min 20s", 320 * sec, nil},
	{"1h30m", 5400 * sec, nil},
	{"1 s", sec, nil},
	{"infinity", inf, nil},
	{" \t infinity \n\r", inf, nil},
	{"5us", 5, nil},
	{"", 0, errSyntax},
	{"-1", 0, errRange},
	{"abc", 0, errSyntax},
	{"1e3", 0, errSyntax},

	// Every unit word.
	{"7us", 7, nil},
	{"7usec", 7, nil},
	{"7\u00b5s", 7, nil},
	{"7\u03bcs", 7, nil},
	{"7ms", 7000, nil},
	{"7msec", 7000, nil},
	{"7s", 7 * sec, nil},
	{"7sec", 7 * sec, nil},
	{"7second", 7 * sec, nil},
	{"7seconds", 7 * sec, nil},
	{"7m", 420 * sec, nil},
	{"7min", 420 * sec, nil},
	{"7minute", 420 * sec, nil},
	{"7minutes", 420 * sec, nil},
	{"7h", 7 * 3600 * sec, nil},
	{"7hr", 7 * 3600 * sec, nil},
	{"7hour", 7 * 3600 * sec, nil},
	{"7hours", 7 * 3600 * sec, nil},
	{"7d", 7 * 86400 * sec, nil},
	{"7day", 7 * 86400 * sec, nil},
	{"7days", 7 * 86400 * sec, nil},
	{"7w", 7 * 604800 * sec, nil},
	{"7week", 7 * 604800 * sec, nil},
	{"7weeks", 7 * 604800 * sec, nil},
	{"7M", 7 * 2629800 * sec, nil},
	{"7month", 7 * 2629800 * sec, nil},
	{"7months", 7 * 2629800 * sec, nil},
	{"7y", 7 * 31557600 * sec, nil},
	{"7year", 7 * 31557600 * sec, nil},
	{"7years", 7 * 31557600 * sec, nil},

	// Units are case-sensitive prefixes, first match in systemd's order.
	{"1S", 0, errSyntax},
	{"1Min", 0, errSyntax},
	{"1mx", 0, errSyntax},
	{"1secs", 0, errSyntax},    // "sec", then "s" is no number
	{"1ss", 0, errSyntax},      // same
	{"1s1", 2 * sec, nil},      // a unit ends a component
	{"1ms5", 5001000, nil},     // "ms", then 5 s
	{"1mins", 0, errSyntax},    // "min", then "s"
	{"1hrs", 0, errSyntax},     // "hr", then "s"
	{"1 min 2", 62 * sec, nil}, // whitespace before a unit
	{"2\u00b5", 0, errSyntax},  // half a unit

	// Numbers: strtoll's sign and space, fractions, systemd's rules on them.
	{"+5", 5 * sec, nil},
	{"+-5", 0, errSyntax},
	{"++5", 0, errSyntax},
	{"-0", 0, errRange},
	{"- 5", 0, errRange},
	{"\v5", 5 * sec, nil},   // strtoll skips \v, systemd's WHITESPACE does not
	{"\f+5s", 5 * sec, nil}, // likewise \f
	{"\v-0", 0, nil},        // "-0" slips past the '-' check this way
	{"\v-1", 0, errRange},   // but a negative value does not
	{"\vs", 0, errSyntax},   // no digits: strtoll's end is before the \v
	{"\v", 0, errSyntax},    //
	{"5\v", 0, errSyntax},   // \v is not systemd whitespace after a number
	{"1.5", 1500000, nil},   //
	{".5", sec / 2, nil},    // no integer part is fine
	{" .5s", sec / 2, nil},  //
	{"+.5", 0, errSyntax},   // but a sign needs digits
	{"1.", 0, errSyntax},    // a '.' needs digits after it
	{".", 0, errSyntax},     //
	{"3.sec", 0, errSyntax}, //
	{"3. 1", 0, errSyntax},  //
	{"3.+1", 0, errSyntax},  //
	{"0.-0", 0, errSyntax},  //
	{"12.34.56", 0, errSyntax},
	{"12.34 .56", 12900000, nil},
	{"12.34s.56", 12900000, nil},
	{"1.5us", 1, nil}, // digits beyond the unit's resolution vanish
	{"1.999999999", 1999999, nil},
	{"0.0000009", 0, nil},
	{"1.5h", 5400 * sec, nil},
	{"1.25M", 3287250 * sec, nil},
	{"0x10", 0, errSyntax},
	{"010", 10 * sec, nil},
	{"1,5", 0, errSyntax},
	{"1_000", 0, errSyntax},
	{"5 5", 10 * sec, nil},
	{"1s 1s 1s", 3 * sec, nil},
	{"1s1s1s", 3 * sec, nil},
	{" 2s ", 2 * sec, nil},
	{"\t\n\r2\r\n\t", 2 * sec, nil},
	{" ", 0, errSyntax},
	{"s", 0, errSyntax},
	{"1 s s", 0, errSyntax},

	// "infinity" stands alone.
	{"infinityx", 0, errSyntax},
	{"infinity 5", 0, errSyntax},
	{"5 infinity", 0, errSyntax},
	{"Infinity", 0, errSyntax},
	{"infinit", 0, errSyntax},
	{"inf", 0, errSyntax},
	{"\vinfinity", 0, errSyntax},

	// Range: everything finite stays below USEC_INFINITY (2^64-1 µs).
	{"9223372036854775807us", maxI, nil},
	{"9223372036854775808us", 0, errRange}, // strtoll overflows
	{"99999999999999999999", 0, errRange},
	{"-99999999999999999999", 0, errRange},
	{"18446744073709551us", 18446744073709551, nil},
	{"18446744073708s", 18446744073708 * sec, nil},
	{"18446744073709s", 0, errRange}, // l >= USEC_INFINITY / multiplier, rounded down
	{"584541y", 584541 * 31557600 * sec, nil},
	{"584542y", 0, errRange},
	{"9223372036854775807us 9223372036854775807us", 2 * maxI, nil},
	{"9223372036854775807us 9223372036854775807us 1us", 0, errRange}, // would be USEC_INFINITY
	{"584541y 0.9y", 584541*31557600*sec + 9*3155760*sec, nil},
	{"584541y 1.1y", 0, errRange}, // in the fraction
	{"584541y 0.5y", 584541*31557600*sec + 31557600*sec/2, nil},
	{"292y", 292 * 31557600 * sec, nil},
	{"293y", 293 * 31557600 * sec, nil}, // finite for systemd, Infinity as a Duration
}

func TestParseMicros(t *testing.T) {
	for _, c := range spanCases {
		got, err := ParseMicros(c.in)
		if c.err != nil {
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, c.err) || e.Span != c.in {
				t.Errorf("ParseMicros(%q) = %d, %v; want error %v", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.us {
			t.Errorf("ParseMicros(%q) = %d, %v; want %d", c.in, got, err, c.us)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"2", 2 * time.Second},
		{"1500ms", 1500 * time.Millisecond},
		{"5min 20s", 5*time.Minute + 20*time.Second},
		{"1h30m", 90 * time.Minute},
		{"5us", 5 * time.Microsecond},
		{" infinity ", Infinity},
		{"9223372036854775us", 9223372036854775 * time.Microsecond}, // the largest that fits
		{"9223372036854776us", Infinity},                            // saturates
		{"293y", Infinity},
		{"584541y", Infinity},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	for in, want := range map[string]string{
		"abc":   `invalid time span "abc"`,
		"":      `invalid time span ""`,
		"-1":    `time span "-1" out of range`,
		"1\x00": `invalid time span "1\x00"`,
	} {
		_, err := Parse(in)
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q) error = %v; want %s", in, err, want)
		}
	}
}

// A NUL cannot reach systemd (argv is C strings); rather than cut the span
// there, as C would see it, Parse refuses it.
func TestNUL(t *testing.T) {
	for _, in := range []string{"\x00", "5\x00", "5s\x00 garbage", "\x005"} {
		if _, err := Parse(in); !errors.Is(err, strconv.ErrSyntax) {
			t.Errorf("Parse(%q) error = %v; want syntax error", in, err)
		}
	}
}

// Any count of microseconds below USEC_INFINITY spells itself, and in every
// unit whose product stays in range.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		n := r.Uint64N(math.MaxInt64)
		if n%3 == 0 {
			n >>= r.UintN(63) // small values too
		}
		s := strconv.FormatUint(n, 10)
		got, err := ParseMicros(s + "us")
		if err != nil || got != n {
			t.Fatalf("ParseMicros(%q) = %d, %v; want %d", s+"us", got, err, n)
		}
		d, err := Parse(s + " usec")
		want := time.Duration(n) * time.Microsecond
		if n > math.MaxInt64/1000 {
			want = Infinity
		}
		if err != nil || d != want {
			t.Fatalf("Parse(%q) = %v, %v; want %v", s+" usec", d, err, want)
		}
		for _, u := range units {
			if n >= InfinityMicros/u.usec {
				continue
			}
			got, err := ParseMicros(s + u.suffix)
			if err != nil || got != n*u.usec {
				t.Fatalf("ParseMicros(%q) = %d, %v; want %d", s+u.suffix, got, err, n*u.usec)
			}
		}
		// A fraction of seconds, written with exactly six digits, is exact.
		frac := strconv.FormatUint(n/sec, 10) + "." + strconv.FormatUint(sec+n%sec, 10)[1:]
		got, err = ParseMicros(frac)
		if err != nil || got != n {
			t.Fatalf("ParseMicros(%q) = %d, %v; want %d", frac, got, err, n)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range spanCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		us, err := ParseMicros(s)
		d, derr := Parse(s)
		if (err == nil) != (derr == nil) {
			t.Fatalf("ParseMicros(%q) error %v, Parse error %v", s, err, derr)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Span != s ||
				!(errors.Is(err, strconv.ErrSyntax) || errors.Is(err, strconv.ErrRange)) {
				t.Fatalf("ParseMicros(%q) error = %#v", s, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("Parse(%q) = %v < 0", s, d)
		}
		want := Infinity
		if us <= math.MaxInt64/1000 {
			want = time.Duration(us) * time.Microsecond
		}
		if d != want {
			t.Fatalf("Parse(%q) = %v but ParseMicros = %d", s, d, us)
		}
		// Whitespace around a valid span changes nothing; a second copy of
		// a finite span, after a space, adds itself.
		if got, err := ParseMicros(" \t" + s + "\r\n"); err != nil || got != us {
			t.Fatalf("ParseMicros(padded %q) = %d, %v; want %d", s, got, err, us)
		}
		if us < InfinityMicros/2 {
			if got, err := ParseMicros(s + " " + s); err != nil || got != 2*us {
				t.Fatalf("ParseMicros(%q twice) = %d, %v; want %d", s, got, err, 2*us)
			}
		}
	})
}
