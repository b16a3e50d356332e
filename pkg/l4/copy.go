package l4

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errIdle ends a connection on which nothing moved in either direction for the idle timeout.
var errIdle = errors.New("idle timeout")

// copyBufSize is the buffer of the small-message phase; a read that fills it switches the
// direction to splice.
const copyBufSize = 16 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// buffersOut counts the pool's buffers taken and not yet given back, while countBuffers is
// set (by tests: the count is a contended cache line on every read).
var (
	countBuffers atomic.Bool
	buffersOut   atomic.Int64
)

func getBuf() *[]byte {
	if countBuffers.Load() {
		buffersOut.Add(1)
	}
	return bufPool.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if countBuffers.Load() {
		buffersOut.Add(-1)
	}
	bufPool.Put(b)
}

// ErrUpstreamClosed ends a connection whose upstream closed first while the client's last bytes
// were unanswered (a backend that died in the middle of a request). A server that closes after
// answering, as HTTP/1.0 and greeting protocols do, is a clean end.
var ErrUpstreamClosed = errors.New("upstream closed with the client's last request unanswered")

// idleWatch decides idleness across both directions. Each direction reads under a deadline of
// one idle period, re-armed only when it expires (not per read); when it expires with nothing
// moved that direction marks itself idle, and the connection is idle once both are.
type idleWatch struct {
	mu   sync.Mutex
	idle [2]bool
	seq  int64    // counts writes in both directions
	last [2]int64 // seq of each direction's last write
	done [2]int64 // seq when each direction ended (0: still running)
}

// moved records a write of direction dir.
func (w *idleWatch) moved(dir int) {
	w.mu.Lock()
	w.seq++
	w.last[dir] = w.seq
	w.mu.Unlock()
}

// ended records that direction dir is over.
func (w *idleWatch) ended(dir int) {
	w.mu.Lock()
	w.seq++
	w.done[dir] = w.seq
	w.mu.Unlock()
}

func (w *idleWatch) set(dir int, idle bool) (both bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.idle[dir] = idle
	return w.idle[0] && w.idle[1]
}

// copier is one direction of a proxied connection.
type copier struct {
	dir      int
	dst, src net.Conn
	idle     time.Duration
	w        *idleWatch
	total    int64
	moved    bool // bytes moved since the deadline was last armed

	// raw reads a TCP source through its descriptor (rawRead), so that a buffer is taken
	// only once bytes are there: an idle connection holds none while it waits.
	raw     syscall.RawConn
	rawRead func(fd uintptr) bool // c.readFD, made once
	bufp    *[]byte               // rawRead's buffer, nil while it waits
	n       int
	rerr    error
}

func (c *copier) arm() {
	if c.idle > 0 {
		dl := time.Now().Add(c.idle)
		c.src.SetReadDeadline(dl)
		c.dst.SetWriteDeadline(dl)
	}
	c.moved = false
}

// expired handles a deadline: it re-arms when bytes moved in the period, and reports errIdle
// when neither direction moved anything.
func (c *copier) expired() error {
	if c.w.set(c.dir, !c.moved) {
		return errIdle
	}
	c.arm()
	return nil
}

// proxyCopy copies src to dst until EOF or an error, then half-closes dst. It is a named
// function so goroutine dumps show it. Small reads are copied through a buffer (one read, one
// write); once a read fills the buffer the flow is bulk and io.Copy takes over, which splices
// in the kernel since both ends are *net.TCPConn. It returns the bytes copied.
func proxyCopy(dir int, dst, src net.Conn, idle time.Duration, w *idleWatch) (int64, error) {
	c := &copier{dir: dir, dst: dst, src: src, idle: idle, w: w}
	// Only a bare *net.TCPConn: a wrapper may hold bytes already read (a preread's) that its
	// descriptor no longer has.
	if tc, ok := src.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			c.raw = raw
			c.rawRead = c.readFD
		}
	}
	c.arm()
	err := c.buffered()
	if err == nil {
		err = c.spliced()
	}
	w.set(dir, true) // a finished direction is idle from now on
	w.ended(dir)
	if errors.Is(err, io.EOF) {
		closeWrite(dst)
		return c.total, nil
	}
	return c.total, err
}

// buffered copies until EOF (returned as io.EOF), an error, or a full read (nil: go bulk).
// The buffer is the pool's from a read to the write of what it read.
func (c *copier) buffered() error {
	for {
		bufp, n, err := c.read()
		if n > 0 {
			werr := c.write((*bufp)[:n])
			full := n == len(*bufp)
			putBuf(bufp)
			if werr != nil {
				return werr
			}
			if full {
				return nil
			}
		} else if bufp != nil {
			putBuf(bufp)
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := c.expired(); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// read reads what the source has into a buffer of the pool (nil with n 0 when it read
// nothing). A TCP source is read through its descriptor and waited for without a buffer;
// another holds one while it waits.
func (c *copier) read() (bufp *[]byte, n int, err error) {
	if c.raw == nil {
		bufp = getBuf()
		n, err = c.src.Read(*bufp)
		return bufp, n, err
	}
	c.n, c.rerr = 0, nil
	err = c.raw.Read(c.rawRead)
	bufp, c.bufp = c.bufp, nil
	switch {
	case err != nil: // a deadline, or closed
	case c.rerr != nil:
		err = os.NewSyscallError("read", c.rerr)
	case c.n == 0:
		err = io.EOF
	}
	return bufp, c.n, err
}

// readFD is c.raw's read: a non-blocking read into a buffer taken for it, given back when
// nothing was there (false: wait for the descriptor to be readable, then again).
func (c *copier) readFD(fd uintptr) bool {
	if c.bufp == nil {
		c.bufp = getBuf()
	}
	for {
		n, err := syscall.Read(int(fd), *c.bufp)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			putBuf(c.bufp)
			c.bufp = nil
			return false
		case nil:
			c.n = n
		default:
			c.rerr = err
		}
		return true
	}
}

// write writes all of p, re-arming the deadline while the peer makes progress.
func (c *copier) write(p []byte) error {
	for len(p) > 0 {
		// Recorded before the bytes can reach the peer: an answer to them, copied the other
		// way, is always recorded after (recorded after the write, a descheduled goroutine
		// made an answered request look unanswered: ErrUpstreamClosed for a clean end).
		c.w.moved(c.dir)
		n, err := c.dst.Write(p)
		p = p[n:]
		c.total += int64(n)
		if n > 0 {
			c.moved = true
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if err := c.expired(); err != nil {
			return err
		}
	}
	return nil
}

// spliced copies with io.Copy until EOF (returned as io.EOF) or an error.
func (c *copier) spliced() error {
	for {
		n, err := io.Copy(c.dst, c.src)
		c.total += n
		if n > 0 {
			c.moved = true
			c.w.moved(c.dir)
		}
		if err == nil {
			return io.EOF
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if err := c.expired(); err != nil {
			return err
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		// ENOTCONN when the peer is already gone is expected and ignored.
		cw.CloseWrite()
		return
	}
	c.Close()
}

// isReset reports a peer reset or abort, which is logged at Debug rather than as an error.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// Splice copies client↔upstream both ways with half-close until both directions are done, one
// fails, or nothing moves for idle (0: no idle limit). It returns bytes client→upstream and
// upstream→client and what ended the connection (nil for a clean end on both sides).
func Splice(client, upstream net.Conn, idle time.Duration) (in, out int64, err error) {
	done := make(chan struct{})
	SpliceThen(client, upstream, idle, func(i, o int64, e error) {
		in, out, err = i, o, e
		close(done)
	})
	<-done
	return in, out, err
}

// SpliceThen is Splice on two goroutines of its own: it returns at once, and the last
// direction to finish calls then with Splice's results. The caller's goroutine, whose stack
// grew with everything that came before (hooks, the dial, the access log), need not wait: an
// idle connection holds two shallow stacks rather than that one and another.
func SpliceThen(client, upstream net.Conn, idle time.Duration, then func(in, out int64, err error)) {
	s := &splice{client: client, upstream: upstream, idle: idle, then: then}
	s.left.Store(2)
	go s.copy(1, client, upstream)
	go s.copy(0, upstream, client)
}

// splice is one SpliceThen.
type splice struct {
	client, upstream net.Conn
	idle             time.Duration
	then             func(in, out int64, err error)
	w                idleWatch
	errs             [2]error
	counts           [2]int64
	left             atomic.Int32 // directions still copying
}

func (s *splice) copy(dir int, dst, src net.Conn) {
	s.counts[dir], s.errs[dir] = proxyCopy(dir, dst, src, s.idle, &s.w)
	if s.errs[dir] != nil {
		// Unblock the other direction.
		s.client.Close()
		s.upstream.Close()
	}
	if s.left.Add(-1) == 0 {
		s.then(s.counts[0], s.counts[1], s.result())
	}
}

// result is what ended the connection, once both directions are done.
func (s *splice) result() error {
	errs, w := s.errs, &s.w
	switch {
	case errors.Is(errs[0], errIdle) || errors.Is(errs[1], errIdle):
		return errIdle
	case errs[0] != nil:
		return errs[0]
	case errs[1] != nil:
		return errs[1]
	case w.done[1] < w.done[0] && w.last[0] > w.last[1]:
		return ErrUpstreamClosed // the upstream ended first, after the client's last bytes
	}
	return nil
}
