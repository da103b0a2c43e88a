package forward

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestParseLevel(t *testing.T) {
	good := map[string]Level{
		"emerg": LevelEmerg, "alert": LevelAlert, "crit": LevelCrit, "err": LevelErr,
		"warning": LevelWarning, "notice": LevelNotice, "info": LevelInfo, "debug": LevelDebug,
		"0": LevelEmerg, "3": LevelErr, "4": LevelWarning, "6": LevelInfo, "7": LevelDebug,
		" debug ": LevelDebug, "debug\n": LevelDebug,
	}
	for s, want := range good {
		got, err := ParseLevel(s)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	// As systemd's log_level_from_string: exact names, numbers 0-7.
	for _, s := range []string{"", "8", "-1", "DEBUG", "Info", "warn", "error", "debug1", "3x", "0x3", "info debug"} {
		if got, err := ParseLevel(s); err == nil {
			t.Errorf("ParseLevel(%q) = %v, want an error", s, got)
		}
	}
}

func TestLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	g := NewLogger(&buf, LevelWarning, false)
	g.Debugf("debug %d", 1)
	g.Infof("info %d", 2)
	g.Logf(LevelNotice, "notice")
	g.Warnf("warning %d", 3)
	g.Errorf("error %s", "four")
	g.Logf(LevelEmerg, "emerg")
	if got, want := buf.String(), "warning 3\nerror four\nemerg\n"; got != want {
		t.Errorf("logged %q, want %q", got, want)
	}
	for l := LevelEmerg; l <= LevelDebug; l++ {
		if g.Enabled(l) != (l <= LevelWarning) {
			t.Errorf("Enabled(%d) = %v with max warning", l, g.Enabled(l))
		}
	}
	var nilLogger *Logger
	if nilLogger.Enabled(LevelEmerg) {
		t.Error("a nil Logger is enabled")
	}
	nilLogger.Errorf("dropped") // must not panic
}

func TestLoggerJournalPrefixes(t *testing.T) {
	var buf bytes.Buffer
	g := NewLogger(&buf, LevelDebug, true)
	g.Logf(LevelEmerg, "emerg")
	g.Errorf("Failed to connect to remote host: %s", "Connection refused")
	g.Warnf("Hit connection limit, refusing connection.")
	g.Logf(LevelNotice, "notice")
	g.Infof("info\n") // one newline, not two
	g.Debugf("New connection from %s", "127.0.0.1:1234")
	want := "<0>emerg\n" +
		"<3>Failed to connect to remote host: Connection refused\n" +
		"<4>Hit connection limit, refusing connection.\n" +
		"<5>notice\n" +
		"<6>info\n" +
		"<7>New connection from 127.0.0.1:1234\n"
	if got := buf.String(); got != want {
		t.Errorf("logged\n%s\nwant\n%s", got, want)
	}

	buf.Reset()
	NewLogger(&buf, LevelDebug, false).Errorf("bare")
	if got := buf.String(); got != "bare\n" {
		t.Errorf("without the journal logged %q, want %q", got, "bare\n")
	}
}

// writeRecorder records each Write separately.
type writeRecorder struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

// TestLoggerConcurrent checks that lines from many goroutines are never
// mixed: each line is one write, whole.
func TestLoggerConcurrent(t *testing.T) {
	w := &writeRecorder{}
	g := NewLogger(w, LevelDebug, true)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				g.Infof("goroutine %d line %d %s", i, j, strings.Repeat("x", j))
			}
		}()
	}
	wg.Wait()
	if len(w.writes) != 16*200 {
		t.Fatalf("%d writes, want %d", len(w.writes), 16*200)
	}
	seen := map[string]bool{}
	for _, s := range w.writes {
		var i, j int
		if _, err := fmt.Sscanf(s, "<6>goroutine %d line %d", &i, &j); err != nil {
			t.Fatalf("mangled line %q: %v", s, err)
		}
		if want := fmt.Sprintf("<6>goroutine %d line %d %s\n", i, j, strings.Repeat("x", j)); s != want {
			t.Fatalf("line %q, want %q", s, want)
		}
		seen[s] = true
	}
	if len(seen) != 16*200 {
		t.Errorf("%d distinct lines, want %d", len(seen), 16*200)
	}
}
