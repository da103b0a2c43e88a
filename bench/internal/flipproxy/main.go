// Command flipproxy is a test-only, socket-activated TCP proxy that can
// corrupt the stream: the benchmark's tests start it like a real proxy and
// expect the run to fail, never to score.
//
//	flipproxy [-flip-up N] [-flip-down N] [-drop-up N] HOST:PORT
//
// -flip-up N inverts byte N (counted from 0) of every connection's
// client→backend stream, -flip-down N the same backend→client, -drop-up N
// leaves byte N out. A negative N (the default) does nothing.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
)

func main() {
	flipUp := flag.Int64("flip-up", -1, "invert this byte of each client→backend stream")
	flipDown := flag.Int64("flip-down", -1, "invert this byte of each backend→client stream")
	dropUp := flag.Int64("drop-up", -1, "drop this byte of each client→backend stream")
	flag.Parse()
	if flag.NArg() != 1 {
		fail("usage: flipproxy [-flip-up N] [-flip-down N] [-drop-up N] HOST:PORT")
	}
	target := flag.Arg(0)
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) || os.Getenv("LISTEN_FDS") != "1" {
		fail("Didn't get any sockets passed in.")
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fail(err.Error())
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fail(err.Error())
		}
		go func() {
			defer c.Close()
			b, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer b.Close()
			done := make(chan struct{}, 2)
			go func() { shovel(b, c, *flipUp, *dropUp); done <- struct{}{} }()
			go func() { shovel(c, b, *flipDown, -1); done <- struct{}{} }()
			<-done // either side ending ends the connection, as in v252
		}()
	}
}

// shovel copies src to dst, inverting byte flip and leaving out byte drop.
func shovel(dst io.Writer, src io.Reader, flip, drop int64) {
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, err := src.Read(buf)
		b := buf[:n]
		if flip >= off && flip < off+int64(n) {
			b[flip-off] ^= 0xFF
		}
		if drop >= off && drop < off+int64(n) {
			i := drop - off
			b = append(b[:i:i], b[i+1:]...)
		}
		off += int64(n)
		if len(b) > 0 {
			if _, werr := dst.Write(b); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
