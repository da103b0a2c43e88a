package proxytest

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Usage is a snapshot of a process's resource use, read from /proc.
type Usage struct {
	FDs       int    // open file descriptors
	Threads   int    // threads of the process, kernel io-wq workers excluded
	IOWorkers int    // iou-wrk-* kernel threads attached to the process
	RSSBytes  int64  // resident set size
	CPUTicks  uint64 // utime+stime in clock ticks (USER_HZ, 100 on Linux)
}

// ReadUsage reads pid's resource use from /proc.
func ReadUsage(pid int) (Usage, error) {
	var u Usage
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return u, err
	}
	u.FDs = len(fds)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return u, err
	}
	for _, t := range tasks {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/comm", pid, t.Name()))
		if err != nil {
			continue // the thread exited meanwhile
		}
		if bytes.HasPrefix(comm, []byte("iou-wrk")) {
			u.IOWorkers++
		} else {
			u.Threads++
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return u, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, rss 24.
	if len(f) < 22 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	u.CPUTicks = ut + st
	u.RSSBytes = rss * int64(os.Getpagesize())
	return u, nil
}

// SocketsWithPeer counts pid's open IPv4 TCP sockets whose remote address
// is peer ("127.0.0.1:1234"): the proxy's side of one client, told apart
// from descriptors the runtime or sd_notify open and close meanwhile.
func SocketsWithPeer(pid int, peer string) (int, error) {
	ap, err := netip.ParseAddrPort(peer)
	if err != nil || !ap.Addr().Is4() {
		return 0, fmt.Errorf("not an IPv4 address with port: %q", peer)
	}
	// /proc/net/tcp prints the address as the 32-bit value in host order.
	ip := ap.Addr().As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())
	table, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return 0, err
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[2] == want {
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(dir + "/" + fd.Name()); err == nil && inodes[target] {
			n++
		}
	}
	return n, nil
}
