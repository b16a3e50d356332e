package l4

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/slardar-go/slardar/pkg/checkups"
)

// benchProxy starts a Proxy for upstream "b" over backend and returns its address.
func benchProxy(b *testing.B, backend string) string {
	b.Helper()
	host, port, _ := net.SplitHostPort(backend)
	reg := &checkups.Registry{DisableHeartbeatDefault: true}
	if err := reg.PutJSON("b", fmt.Appendf(nil, `{"servers":[{"host":%q,"port":%s}]}`, host, port)); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := &Proxy{Registry: reg, Tracker: &Tracker{}}
	go p.Serve(ctx, ln, NewUpstream("b"))
	b.Cleanup(cancel)
	return ln.Addr().String()
}

func listen(b *testing.B, serve func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// BenchmarkNewConnections: connect through the proxy, read one byte, close.
func BenchmarkNewConnections(b *testing.B) {
	backend := listen(b, func(c net.Conn) {
		defer c.Close()
		c.Write([]byte("x"))
		c.Read(make([]byte, 1))
	})
	addr := benchProxy(b, backend)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 1)
		for pb.Next() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	})
}

// BenchmarkRoundTrip: small request/response exchanges on one proxied connection per client,
// the shape of a point-select workload.
func BenchmarkRoundTrip(b *testing.B) {
	backend := listen(b, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	})
	addr := benchProxy(b, backend)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		msg := make([]byte, 100)
		for pb.Next() {
			c.Write(msg)
			if _, err := io.ReadFull(c, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBulk: one-way bulk copy through the proxy.
func BenchmarkBulk(b *testing.B) {
	backend := listen(b, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	addr := benchProxy(b, backend)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 256<<10)
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}
