// Package timespan parses time spans written the way systemd.time(7)
// describes them ("5min 20s", "1.5", "infinity"), accepting and rejecting
// exactly what systemd v252's parse_sec() does, so that an
// --exit-idle-time= written for systemd-socket-proxyd means the same here.
//
// The package owns only the grammar and the arithmetic. It knows nothing of
// command lines or of what a span is used for; callers add their own
// message around the returned error.
//
// # Grammar
//
// A span is "infinity", or one or more components, each a decimal number
// with an optional fraction and an optional unit, with optional whitespace
// (space, tab, newline, carriage return) before, between and after them.
// A number without a unit is in seconds; the values of the components are
// summed. The units are:
//
//	us, usec, µs (U+00B5), μs (U+03BC)  microseconds
//	ms, msec                           milliseconds
//	s, sec, second, seconds            seconds
//	m, min, minute, minutes            minutes
//	h, hr, hour, hours                 hours
//	d, day, days                       days
//	w, week, weeks                     weeks
//	M, month, months                   months of 30.44 days (2629800 s)
//	y, year, years                     years of 365.25 days (31557600 s)
//
// systemd's quirks are kept on purpose, because unit files rely on them:
// a number may begin with '+' (and, after a vertical tab or form feed, with
// "-0"), ".5" is half a second, "12.34 .56" is 12.9 s but "12.34.56" is
// invalid, "1." and "3.sec" are invalid, fraction digits beyond the unit's
// resolution are ignored ("1.5us" is 1 µs), and a unit is a prefix match
// ("5minutes" and "5min" are the same, "5mx" is invalid).
package timespan

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Infinity is what Parse returns for "infinity", and for finite spans too
// long for a time.Duration (about 292 years); systemd's USEC_INFINITY.
const Infinity time.Duration = math.MaxInt64

// InfinityMicros is what ParseMicros returns for "infinity":
// systemd's USEC_INFINITY. Finite spans are always smaller.
const InfinityMicros uint64 = math.MaxUint64

// Error reports a span that systemd would reject. Err is strconv.ErrSyntax
// when systemd says EINVAL and strconv.ErrRange when it says ERANGE
// (a negative number, or a sum that reaches USEC_INFINITY).
type Error struct {
	Span string // the text given to Parse, unchanged
	Err  error  // strconv.ErrSyntax or strconv.ErrRange
}

func (e *Error) Error() string {
	if e.Err == strconv.ErrRange {
		return fmt.Sprintf("time span %q out of range", e.Span)
	}
	return fmt.Sprintf("invalid time span %q", e.Span)
}

func (e *Error) Unwrap() error { return e.Err }

// Parse parses a systemd time span with microsecond resolution. A number
// without a unit is in seconds.
//
// It accepts exactly the strings systemd v252's parse_sec() accepts, with the
// same value. "infinity", and any finite span longer than time.Duration can
// hold (systemd allows up to about 584542 years), return Infinity. A string
// containing a NUL byte, which no C string can, is rejected. On failure
// the error is an *Error naming the span.
func Parse(s string) (time.Duration, error) {
	us, err := ParseMicros(s)
	if err != nil {
		return 0, err
	}
	if us > math.MaxInt64/uint64(time.Microsecond) {
		return Infinity, nil
	}
	return time.Duration(us) * time.Microsecond, nil
}

// usec per unit, as in systemd's time-util.h.
const (
	usecPerMsec   = 1000
	usecPerSec    = 1000 * usecPerMsec
	usecPerMinute = 60 * usecPerSec
	usecPerHour   = 60 * usecPerMinute
	usecPerDay    = 24 * usecPerHour
	usecPerWeek   = 7 * usecPerDay
	usecPerMonth  = 2629800 * usecPerSec
	usecPerYear   = 31557600 * usecPerSec
)

// units is systemd's extract_multiplier() table. It is searched in order and
// the first prefix wins, so longer words come before their own prefixes
// ("msec" and "ms" before "m").
var units = [...]struct {
	suffix string
	usec   uint64
}{
	{"seconds", usecPerSec},
	{"second", usecPerSec},
	{"sec", usecPerSec},
	{"s", usecPerSec},
	{"minutes", usecPerMinute},
	{"minute", usecPerMinute},
	{"min", usecPerMinute},
	{"months", usecPerMonth},
	{"month", usecPerMonth},
	{"M", usecPerMonth},
	{"msec", usecPerMsec},
	{"ms", usecPerMsec},
	{"m", usecPerMinute},
	{"hours", usecPerHour},
	{"hour", usecPerHour},
	{"hr", usecPerHour},
	{"h", usecPerHour},
	{"days", usecPerDay},
	{"day", usecPerDay},
	{"d", usecPerDay},
	{"weeks", usecPerWeek},
	{"week", usecPerWeek},
	{"w", usecPerWeek},
	{"years", usecPerYear},
	{"year", usecPerYear},
	{"y", usecPerYear},
	{"usec", 1},
	{"us", 1},
	{"\u03bcs", 1}, // GREEK SMALL LETTER MU
	{"\u00b5s", 1}, // MICRO SIGN
}

// ParseMicros is Parse in systemd's own terms: the span in microseconds,
// InfinityMicros for "infinity", and no saturation (every finite span systemd
// accepts is below InfinityMicros).
func ParseMicros(s string) (uint64, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return 0, &Error{s, strconv.ErrSyntax}
	}
	us, err := parseTime(s, usecPerSec)
	if err != nil {
		return 0, &Error{s, err}
	}
	return us, nil
}

// parseTime follows systemd's parse_time() step by step; the comments name
// the C it mirrors. Offsets into s stand for C's pointers. It returns
// strconv.ErrSyntax for EINVAL and strconv.ErrRange for ERANGE.
func parseTime(s string, defaultUnit uint64) (uint64, error) {
	p := skipWhitespace(s, 0)
	if rest, ok := strings.CutPrefix(s[p:], "infinity"); ok {
		if skipWhitespace(rest, 0) != len(rest) {
			return 0, strconv.ErrSyntax
		}
		return InfinityMicros, nil
	}

	var usec uint64
	for something := false; ; {
		p = skipWhitespace(s, p)
		if p == len(s) {
			if !something {
				return 0, strconv.ErrSyntax
			}
			return usec, nil
		}
		if s[p] == '-' { // "Don't allow -0"
			return 0, strconv.ErrRange
		}

		l, e, err := strtoll(s, p)
		if err != nil {
			return 0, err
		}
		if l < 0 {
			return 0, strconv.ErrRange
		}

		// p moves past the number and its fraction; e stays at the '.'.
		hasFraction := e < len(s) && s[e] == '.'
		switch {
		case hasFraction:
			p = skipDigits(s, e+1)
		case e == p:
			return 0, strconv.ErrSyntax
		default:
			p = e
		}

		multiplier := defaultUnit
		q := skipWhitespace(s, p)
		next := q
		for _, u := range units {
			if strings.HasPrefix(s[q:], u.suffix) {
				multiplier, next = u.usec, q+len(u.suffix)
				break
			}
		}
		// Neither whitespace nor a unit follows the number:
		// "Don't allow '12.34.56', but accept '12.34 .56' or '12.34s.56'".
		if next == p && p < len(s) {
			return 0, strconv.ErrSyntax
		}
		p = next

		if uint64(l) >= InfinityMicros/multiplier {
			return 0, strconv.ErrRange
		}
		k := uint64(l) * multiplier
		if k >= InfinityMicros-usec {
			return 0, strconv.ErrRange
		}
		usec += k
		something = true

		if hasFraction {
			m := multiplier / 10
			b := e + 1
			for ; b < len(s) && isDigit(s[b]); b, m = b+1, m/10 {
				k = uint64(s[b]-'0') * m
				if k >= InfinityMicros-usec {
					return 0, strconv.ErrRange
				}
				usec += k
			}
			// "Don't allow "0.-0", "3.+1", "3. 1", "3.sec" or "3.hoge"".
			if b == e+1 {
				return 0, strconv.ErrSyntax
			}
		}
	}
}

// strtoll mirrors C's strtoll(s+p, &e, 10) in the C locale: leading
// isspace() characters, an optional sign, then decimal digits. Without
// digits nothing is converted and e is p (not past the skipped space).
// Overflow is strconv.ErrRange, as errno ERANGE makes parse_time fail.
func strtoll(s string, p int) (l int64, e int, err error) {
	i := p
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var n uint64 // magnitude, saturated at math.MaxUint64
	for ; i < len(s) && isDigit(s[i]); i++ {
		if n > (math.MaxUint64-9)/10 {
			n = math.MaxUint64
		} else {
			n = n*10 + uint64(s[i]-'0')
		}
	}
	if i == start {
		return 0, p, nil
	}
	switch {
	case !neg && n > math.MaxInt64, neg && n > math.MaxInt64+1:
		return 0, i, strconv.ErrRange
	case neg:
		return -int64(n-1) - 1, i, nil // no overflow at n = 2^63
	}
	return int64(n), i, nil
}

// skipWhitespace returns the offset of the first byte at or after p that is
// not in systemd's WHITESPACE (" \t\n\r").
func skipWhitespace(s string, p int) int {
	for p < len(s) && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r') {
		p++
	}
	return p
}

func skipDigits(s string, p int) int {
	for p < len(s) && isDigit(s[p]) {
		p++
	}
	return p
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isCSpace is isspace() in the C locale: WHITESPACE plus '\v' and '\f'.
func isCSpace(c byte) bool {
	return c == ' ' || ('\t' <= c && c <= '\r')
}
