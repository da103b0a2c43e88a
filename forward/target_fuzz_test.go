package forward

import "testing"

// FuzzParseTarget: no target text, however odd, panics the parser, and an
// accepted target always has an address to try or a host to resolve.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:8080", "::1:8080", "localhost:http", "/run/x.sock",
		"@abstract", "@", "", ":", "[", "[]:1", "host", "host:0", "host:65536", "a:b:c", "[::1%lo]:22", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		if tg.Static() == nil && tg.host == "" {
			t.Fatalf("ParseTarget(%q) accepted a target with nothing to connect to", s)
		}
	})
}
