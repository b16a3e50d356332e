package script

import (
	"fmt"
	"net"
	"testing"
)

func fmtSscan(s string, v *float64) (int, error) { return fmt.Sscan(s, v) }

// listenT returns one end of a loopback connection for benchmarks.
func listenT(tb testing.TB) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	go func() { c, _ := net.Dial("tcp", ln.Addr().String()); tb.Cleanup(func() { c.Close() }) }()
	c, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
