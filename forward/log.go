package forward

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Level is a syslog priority, as systemd uses them.
type Level int

// The syslog priorities systemd understands in SYSTEMD_LOG_LEVEL.
const (
	LevelEmerg Level = iota
	LevelAlert
	LevelCrit
	LevelErr
	LevelWarning
	LevelNotice
	LevelInfo
	LevelDebug
)

var levelNames = [...]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// ParseLevel parses a SYSTEMD_LOG_LEVEL value: a name or a number 0–7.
func ParseLevel(s string) (Level, error) {
	s = strings.TrimSpace(s)
	for i, n := range levelNames {
		if s == n {
			return Level(i), nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= int(LevelDebug) {
		return Level(n), nil
	}
	return 0, fmt.Errorf("invalid log level %q", s)
}

// Logger writes bare messages, one a line, to stderr, as systemd tools do.
// When stderr is connected to the journal (JOURNAL_STREAM names it), each
// line starts with its priority, "<3>", so the journal files it correctly.
// It is safe for concurrent use.
type Logger struct {
	mu      sync.Mutex
	w       io.Writer
	max     Level
	journal bool
	buf     []byte
}

// NewLogger returns a logger writing to w that drops messages above max.
// journal selects the "<N>" prefixes.
func NewLogger(w io.Writer, max Level, journal bool) *Logger {
	return &Logger{w: w, max: max, journal: journal}
}

// NewStderrLogger returns the process logger: stderr, level from
// SYSTEMD_LOG_LEVEL (default info), prefixes when stderr is the journal.
func NewStderrLogger() *Logger {
	max := LevelInfo
	v, set := os.LookupEnv("SYSTEMD_LOG_LEVEL")
	parsed, err := ParseLevel(v)
	if set && err == nil {
		max = parsed
	}
	l := NewLogger(os.Stderr, max, stderrIsJournal())
	if set && err != nil {
		l.Warnf("Failed to parse log level '%s'. Ignoring.", v) // v252's words
	}
	return l
}

// stderrIsJournal compares JOURNAL_STREAM ("DEV:INODE") with stderr, as
// sd_journal_stream_fd users do: the variable is inherited by children
// whose stderr may point elsewhere.
func stderrIsJournal() bool {
	v := os.Getenv("JOURNAL_STREAM")
	dev, ino, ok := strings.Cut(v, ":")
	if !ok {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		return false
	}
	return strconv.FormatUint(uint64(st.Dev), 10) == dev && strconv.FormatUint(st.Ino, 10) == ino
}

// Enabled reports whether messages at l are written; callers use it to skip
// formatting debug lines on hot paths.
func (g *Logger) Enabled(l Level) bool { return g != nil && l <= g.max }

// Logf writes one message at level l.
func (g *Logger) Logf(l Level, format string, args ...any) {
	if !g.Enabled(l) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.buf[:0]
	if g.journal {
		b = append(b, '<', byte('0'+l), '>')
	}
	b = fmt.Appendf(b, format, args...)
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	_, _ = g.w.Write(b)
	g.buf = b
}

// Errorf logs at err level.
func (g *Logger) Errorf(format string, args ...any) { g.Logf(LevelErr, format, args...) }

// Warnf logs at warning level.
func (g *Logger) Warnf(format string, args ...any) { g.Logf(LevelWarning, format, args...) }

// Infof logs at info level.
func (g *Logger) Infof(format string, args ...any) { g.Logf(LevelInfo, format, args...) }

// Debugf logs at debug level.
func (g *Logger) Debugf(format string, args ...any) { g.Logf(LevelDebug, format, args...) }
