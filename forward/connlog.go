package forward

import (
	"time"

	"golang.org/x/sys/unix"
)

// End says how a connection ended, for --log-connections.
type End uint8

// How connections end.
const (
	EndClosed        End = iota // both directions finished
	EndClientFailed             // the client's socket failed (a reset): the backend was reset
	EndBackendFailed            // the backend's socket failed: the client was reset
	EndConnectFailed            // no backend connection within the connect timeout
	EndClientGone               // the client left while its backend was being connected
	EndIdle                     // --idle-timeout
	EndStopped                  // the proxy stopped (or the drain time ran out)
	EndRefused                  // an error before forwarding (e.g. the PROXY header)
)

var endText = [...]string{
	EndClosed:        "closed",
	EndClientFailed:  "client failed",
	EndBackendFailed: "backend failed",
	EndConnectFailed: "connect failed",
	EndClientGone:    "client left while connecting",
	EndIdle:          "idle timeout",
	EndStopped:       "proxy stopped",
	EndRefused:       "refused",
}

func (e End) String() string {
	if int(e) < len(endText) {
		return endText[e]
	}
	return "unknown"
}

// ConnRecord is what an engine keeps about a connection for its log line.
// It is filled only when --log-connections is on: naming the client costs
// an allocation, and nothing else needs it.
type ConnRecord struct {
	Client   string
	Listener int
	Start    time.Time
}

// Arrived logs a client socket fd just accepted, at debug level, before
// it is admitted or refused at the connection limit, as v252 does.
func (s *Server) Arrived(fd int) {
	if s.Log.Enabled(LevelDebug) {
		s.Log.Debugf("New connection from %s", PeerName(fd))
	}
}

// Opened accounts for a client socket fd accepted on listener ln and
// admitted, in the loop's counters ctr: what every engine does for each
// new connection.
func (s *Server) Opened(ctr *Counters, r *ConnRecord, fd, ln int) {
	s.clientNoDelay(ln, fd)
	s.begin(r, fd, ln)
	lc := &ctr.listeners[ln]
	lc.Accepted.Add(1)
	lc.Open.Add(1)
}

// Closed accounts for the end of a connection opened with Opened, and
// logs it with --log-connections: up and down are the bytes delivered each
// way, end and errno how it ended.
func (s *Server) Closed(ctr *Counters, r *ConnRecord, ln int, up, down uint64, end End, errno unix.Errno) {
	s.logEnd(r, up, down, end, errnoErr(errno))
	ctr.listeners[ln].Open.Add(-1)
}

// begin starts the record of a connection accepted on listener ln, if the
// server logs connections.
func (s *Server) begin(r *ConnRecord, clientFD, ln int) {
	if !s.LogConnections {
		return
	}
	r.Client, r.Listener, r.Start = PeerName(clientFD), ln, time.Now()
}

// logEnd logs the one line --log-connections asks for: client, target,
// bytes each way, duration and how it ended. err, if not nil, is the
// error behind end.
func (s *Server) logEnd(r *ConnRecord, up, down uint64, end End, err error) {
	if !s.LogConnections {
		return
	}
	how := end.String()
	if err != nil {
		how += ": " + ErrnoText(err)
	}
	s.Log.Infof("Connection from %s to %s: %s up, %s down, %v, %s.",
		r.Client, s.TargetOf(r.Listener), FormatBytes(up), FormatBytes(down),
		time.Since(r.Start).Round(time.Millisecond), how)
	r.Client = ""
}

// errnoErr turns an errno into an error for logEnd; 0 is none.
func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// IdleSweepPeriod is how often an engine looks for connections idle for
// longer than timeout: an eighth of it, between 10 ms and a second, so a
// connection is closed at most that much after its time.
func IdleSweepPeriod(timeout time.Duration) time.Duration {
	return min(max(timeout/8, 10*time.Millisecond), time.Second)
}
