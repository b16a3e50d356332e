// Command minproxy is the floor reference of l4bench: the least a Go TCP proxy does — accept,
// dial, two io.Copy, half-close, close — with TCP keepalive off as slardar-proxy has it. If
// slardar-proxy matches it, a gap to nginx and HAProxy is the Go runtime's, not the proxy's code.
//
//	minproxy 127.0.0.1:8001=127.0.0.1:9001 [LISTEN=BACKEND ...]
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: minproxy LISTEN=BACKEND ...")
		os.Exit(2)
	}
	lc := net.ListenConfig{KeepAlive: -1}
	d := net.Dialer{KeepAlive: -1}
	for _, m := range os.Args[1:] {
		listen, backend, ok := strings.Cut(m, "=")
		if !ok {
			fmt.Fprintln(os.Stderr, "minproxy: want LISTEN=BACKEND, got", m)
			os.Exit(2)
		}
		ln, err := lc.Listen(context.Background(), "tcp", listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "minproxy:", err)
			os.Exit(1)
		}
		go serve(ln, &d, backend)
	}
	select {}
}

func serve(ln net.Listener, d *net.Dialer, backend string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go proxy(c, d, backend)
	}
}

func proxy(c net.Conn, d *net.Dialer, backend string) {
	defer c.Close()
	b, err := d.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer b.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(b, c)
		b.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, b)
	c.(*net.TCPConn).CloseWrite()
	<-done
}
