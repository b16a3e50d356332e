// Package testutil holds the helpers the tests of several packages share: waiting for a
// condition, loopback sockets and raw exchanges, greeting backends, and a buffer that a daemon
// may log into while a test reads it. It imports nothing of the project, so every package's
// tests can use it.
package testutil

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond until it holds and returns how long that took; after timeout the test
// fails, naming what it waited for.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
	return 0
}

// Listen is a loopback listener closed when the test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Pair is a connected loopback TCP pair, closed when the test ends.
func Pair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln := Listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// RawExchange writes raw bytes to addr, half-closes and returns everything the server sent
// until it closed.
func RawExchange(t testing.TB, addr string, raw []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(raw)
	c.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SyncBuffer is a bytes.Buffer safe for a daemon writing while a test reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Greeter serves, until the process ends, a TCP backend that writes greeting to every
// connection and closes it; it returns the backend's address.
func Greeter(greeting string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(greeting))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// Greeting is the first byte a new connection to addr reads within a second ("" if none).
func Greeting(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Second))
	b := make([]byte, 1)
	if n, _ := c.Read(b); n == 1 {
		return string(b)
	}
	return ""
}
