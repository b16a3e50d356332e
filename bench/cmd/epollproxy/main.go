// Command epollproxy is a design probe for l4bench (issue 14): a TCP proxy in Go without the
// net package's goroutine-per-connection model — one epoll loop per core (SO_REUSEPORT
// listeners, edge-triggered), non-blocking accept4 and connect, read/write from the loop. It has
// no hooks, retries, health or logs: it answers one question, whether an event loop in Go gets
// the connection rate and small-message rate of nginx and HAProxy on this machine.
//
//	epollproxy 127.0.0.1:8001=127.0.0.1:9001 [LISTEN=BACKEND ...]
package main

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/slardar-go/slardar/bench/internal/probe"
)

const bufSize = 16 << 10

// conn is one side of a proxied pair.
type conn struct {
	fd         int
	peer       *conn
	pending    []byte // bytes read from peer not yet written to fd
	connecting bool   // a backend whose connect is in progress
	readEOF    bool   // fd's input is over (its peer was sent FIN once pending drained)
	wroteFIN   bool
	closed     bool
	blocked    bool // fd has unread input held back because peer.pending is full
}

type mapping struct {
	listen  string
	backend unix.Sockaddr
}

type loop struct {
	ep        int
	listeners map[int]*mapping
	conns     map[int]*conn
	buf       []byte
}

func main() {
	var maps []*mapping
	for _, m := range probe.Args("epollproxy") {
		maps = append(maps, &mapping{listen: m.Listen, backend: &unix.SockaddrInet4{Port: int(m.Backend.Port()), Addr: m.Backend.Addr().As4()}})
	}
	n := runtime.GOMAXPROCS(0)
	for i := 0; i < n; i++ {
		lp, err := newLoop(maps)
		if err != nil {
			fmt.Fprintln(os.Stderr, "epollproxy:", err)
			os.Exit(1)
		}
		go lp.run()
	}
	select {}
}

func newLoop(maps []*mapping) (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	lp := &loop{ep: ep, listeners: map[int]*mapping{}, conns: map[int]*conn{}, buf: make([]byte, bufSize)}
	for _, m := range maps {
		fd, err := probe.ListenReusePort(m.listen, unix.SOCK_NONBLOCK)
		if err != nil {
			return nil, err
		}
		lp.listeners[fd] = m
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return nil, err
		}
	}
	return lp, nil
}

func (lp *loop) run() {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(lp.ep, events, -1)
		if err != nil {
			continue // EINTR
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if m, ok := lp.listeners[fd]; ok {
				lp.accept(fd, m)
				continue
			}
			c := lp.conns[fd]
			if c == nil || c.closed {
				continue
			}
			ev := events[i].Events
			if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
				lp.writable(c)
			}
			if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 && !c.closed {
				lp.readable(c)
			}
		}
	}
}

func (lp *loop) accept(lfd int, m *mapping) {
	for {
		cfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or out of descriptors: the next event retries
		}
		bfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			unix.Close(cfd)
			continue
		}
		unix.SetsockoptInt(bfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if err := unix.Connect(bfd, m.backend); err != nil && err != unix.EINPROGRESS {
			unix.Close(cfd)
			unix.Close(bfd)
			continue
		}
		client, backend := &conn{fd: cfd}, &conn{fd: bfd, connecting: true}
		client.peer, backend.peer = backend, client
		lp.conns[cfd], lp.conns[bfd] = client, backend
		et := uint32(unix.EPOLLET) | unix.EPOLLRDHUP
		unix.EpollCtl(lp.ep, unix.EPOLL_CTL_ADD, cfd, &unix.EpollEvent{Events: et | unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(cfd)})
		unix.EpollCtl(lp.ep, unix.EPOLL_CTL_ADD, bfd, &unix.EpollEvent{Events: et | unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(bfd)})
	}
}

// readable reads c until EAGAIN, passing the bytes to its peer.
func (lp *loop) readable(c *conn) {
	if c.connecting || c.readEOF {
		return
	}
	p := c.peer
	for {
		if len(p.pending) > 0 || p.connecting {
			c.blocked = true // resumed when p drains
			return
		}
		n, err := unix.Read(c.fd, lp.buf)
		switch {
		case n > 0:
			lp.send(p, lp.buf[:n])
			if p.closed {
				return
			}
		case n == 0:
			c.readEOF = true
			lp.finish(p)
			return
		case err == unix.EAGAIN:
			return
		default:
			lp.closePair(c)
			return
		}
	}
}

// send writes b to c, keeping what does not fit.
func (lp *loop) send(c *conn, b []byte) {
	for len(b) > 0 {
		n, err := unix.Write(c.fd, b)
		if n > 0 {
			b = b[n:]
			continue
		}
		if err == unix.EAGAIN {
			c.pending = append(c.pending[:0], b...)
			return
		}
		lp.closePair(c)
		return
	}
}

// finish sends FIN to c once its pending bytes are written, and closes the pair when both
// directions are over.
func (lp *loop) finish(c *conn) {
	if len(c.pending) > 0 || c.wroteFIN {
		return
	}
	if c.peer.readEOF {
		unix.Shutdown(c.fd, unix.SHUT_WR)
		c.wroteFIN = true
	}
	if c.readEOF && c.peer.readEOF {
		lp.closePair(c)
	}
}

// writable completes a connect and flushes pending bytes.
func (lp *loop) writable(c *conn) {
	if c.connecting {
		if e, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
			lp.closePair(c)
			return
		}
		c.connecting = false
		if c.peer.blocked {
			c.peer.blocked = false
			lp.readable(c.peer)
		}
		lp.readable(c) // input may have arrived with the connect
		return
	}
	if len(c.pending) > 0 {
		b := c.pending
		c.pending = nil
		lp.send(c, b)
		if c.closed || len(c.pending) > 0 {
			return
		}
	}
	lp.finish(c)
	if c.peer.blocked && !c.closed {
		c.peer.blocked = false
		lp.readable(c.peer)
	}
}

func (lp *loop) closePair(c *conn) {
	for _, x := range []*conn{c, c.peer} {
		if !x.closed {
			x.closed = true
			delete(lp.conns, x.fd)
			unix.Close(x.fd) // close removes it from the epoll set
		}
	}
}
