package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/slardar-go/slardar/bench/internal/proc"
)

// fitIdle raises the open-file limit for n idle connections (each is two descriptors here,
// the client's and the echo server's, and two in a proxy), which the proxies started later
// inherit; where the hard limit cannot be raised (a container without CAP_SYS_RESOURCE), it
// returns how many fit.
func fitIdle(n int) (int, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	want := uint64(2*n + 2048)
	if l.Cur >= want {
		return n, nil
	}
	if l.Max < want {
		if r := l; r.Max < want {
			r.Cur, r.Max = want, want
			if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r) == nil {
				return n, nil
			}
		}
		fit := int(l.Max-2048) / 2
		fmt.Fprintf(os.Stderr, "l4bench: the open-file limit is %d and cannot be raised: %d idle connections instead of %d\n", l.Max, fit, n)
		n, want = fit, l.Max
	}
	l.Cur = want
	return n, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// idleMemory opens n connections through the path's echo port, 256 at a time, each with one
// 64-byte round trip (so the proxy has dialed its upstream and moved bytes both ways), holds
// them idle for a second and returns the growth of the proxy's resident memory (its process
// and children) per connection, in bytes.
func idleMemory(p path, n int) (float64, error) {
	before, err := proc.RSS(p.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.ping))
	conns := make([]net.Conn, n)
	open := openFiles()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		// The echo server's ends close as the proxy passes the closes on: wait for them,
		// or the next path's connections find this process out of descriptors.
		for start := time.Now(); openFiles() > open+64 && time.Since(start) < 30*time.Second; {
			time.Sleep(100 * time.Millisecond)
		}
	}()
	errs := make([]error, n)
	turn := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for i := range conns {
		turn <- struct{}{}
		wg.Go(func() {
			defer func() { <-turn }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				errs[i] = err
				return
			}
			conns[i] = c
			c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := make([]byte, 64)
			if _, err := c.Write(msg); err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = io.ReadFull(c, msg)
			c.SetDeadline(time.Time{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return 0, fmt.Errorf("idle connection %d of %d: %w", i+1, n, err)
		}
	}
	time.Sleep(time.Second)
	after, err := proc.RSS(p.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(n), nil
}

// openFiles counts this process's open descriptors.
func openFiles() int {
	fds, _ := os.ReadDir("/proc/self/fd")
	return len(fds)
}
