package backend

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// DefaultReadTimeout bounds how long a statement may wait for its server's next bytes (see
// Conn.ReadTimeout).
const DefaultReadTimeout = time.Hour

// watchSlice is how often a read that waits checks that its server is still healthy.
const watchSlice = time.Second

// ErrServerDown is a read given up because the server's health checks failed while it waited.
var ErrServerDown = errors.New("the server stopped answering its health checks")

// ErrReadTimeout is a read given up after the read timeout.
var ErrReadTimeout = errors.New("no answer from the server within the read timeout")

// watchConn is a server connection whose reads never wait without bound: a read that has
// waited watchSlice asks whether the server is still usable (checkups: a frozen server fails
// its heartbeats and is marked down) and gives up when it is not, or when the read timeout has
// passed. A long statement on a healthy server keeps waiting.
//
// It wraps the TCP connection, below TLS: a deadline that fires is waited through here, where
// a retry is harmless, and never reaches crypto/tls, for which a write that timed out leaves
// the connection broken for good (every later write fails at once with the same error).
type watchConn struct {
	net.Conn
	active      bool          // logged in: until then errors pass as they are (the login's own deadlines)
	alive       func() bool   // nil: assume alive
	readTimeout time.Duration // 0: DefaultReadTimeout
	hard        time.Time     // an internal command's deadline (bound); zero: none
	armed       time.Time     // when the read deadline was last moved

	mu          sync.Mutex // WatchIdle's goroutine and its stop
	watching    bool       // a read waits for the server to close an idle connection
	interrupted bool       // its stop was called
}

// arm sets the deadline a slice ahead, at most once per half slice (a deadline is a runtime
// timer change: not one per command).
func (w *watchConn) arm(now time.Time) {
	if now.Sub(w.armed) < watchSlice/2 {
		return
	}
	w.armed = now
	w.Conn.SetDeadline(now.Add(watchSlice))
}

func (w *watchConn) Read(p []byte) (int, error) {
	var start time.Time
	for {
		n, err := w.Conn.Read(p)
		if n > 0 || err == nil {
			return n, err
		}
		if err = w.waited(err, &start); err != nil {
			return 0, err
		}
	}
}

func (w *watchConn) Write(p []byte) (int, error) {
	var start time.Time
	done := 0
	for {
		n, err := w.Conn.Write(p[done:])
		done += n
		if err == nil || done == len(p) {
			return done, err
		}
		if err = w.waited(err, &start); err != nil {
			return done, err
		}
	}
}

// waited decides, after an I/O error, whether to wait on: nil when it was the slice's deadline
// and the server is still usable within the timeout (the deadline is moved on), else the error
// to return. start is when the wait began (set on its first slice).
func (w *watchConn) waited(err error, start *time.Time) error {
	if !w.active || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	w.mu.Lock()
	if w.interrupted {
		w.mu.Unlock()
		return err // the deadline's own error: TLS above takes it as temporary
	}
	if w.watching {
		// An idle connection waits as long as it takes; under the lock, so that a stop cannot
		// come between this and the new deadline.
		w.armed = time.Time{}
		w.arm(time.Now())
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	now := time.Now()
	if !w.hard.IsZero() {
		if !now.Before(w.hard) {
			return err
		}
		w.Conn.SetDeadline(w.hard)
		return nil
	}
	if start.IsZero() {
		*start = now.Add(-watchSlice) // the wait began at most a slice before the deadline fired
		if !w.armed.IsZero() && w.armed.After(*start) {
			*start = w.armed
		}
	}
	limit := w.readTimeout
	if limit <= 0 {
		limit = DefaultReadTimeout
	}
	if now.Sub(*start) >= limit {
		return fmt.Errorf("%w (%v)", ErrReadTimeout, limit)
	}
	if w.alive != nil && !w.alive() {
		return ErrServerDown
	}
	w.armed = time.Time{}
	w.arm(now)
	return nil
}

// bound sets a hard deadline (an internal command's); the zero time lifts it.
func (w *watchConn) bound(dl time.Time) {
	w.hard = dl
	w.armed = time.Time{}
	w.Conn.SetDeadline(dl)
}

// WatchIdle watches a connection while its session is idle: if the server closes it, or
// sends anything unasked (the error of a kill or a timeout), onGone runs. stop ends the watch
// and returns once it has ended; what the server sent stays to be read.
func (c *Conn) WatchIdle(onGone func()) (stop func()) {
	w := c.watch
	w.mu.Lock()
	w.watching = true
	w.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := c.R.Peek(1)
		w.mu.Lock()
		interrupted := w.interrupted
		w.mu.Unlock()
		if err == nil || !interrupted {
			onGone()
		}
	}()
	return func() {
		w.mu.Lock()
		w.interrupted = true
		w.Conn.SetReadDeadline(time.Unix(1, 0))
		w.mu.Unlock()
		<-done
		w.mu.Lock()
		w.watching, w.interrupted = false, false
		w.mu.Unlock()
		w.armed = time.Time{}
	}
}

// Dead reports, for a connection unused for at least idle, whether its server closed it or
// sent something unasked meanwhile: it cannot run a statement. Cheap enough for every command:
// the socket is only looked at after idle.
func (c *Conn) Dead(idle time.Duration) bool {
	if time.Since(c.lastUsed) < idle {
		return false
	}
	nc := c.watch.Conn
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	// The last command's read deadline (see Arm) has passed by now: with it in place the
	// socket is not looked at (the poller refuses the read), and a closed one would pass.
	nc.SetReadDeadline(time.Time{})
	return c.R.Buffered() > 0 || peerGone(sc)
}

// peerGone reports a socket whose peer closed it or sent something (peeked, not read).
func peerGone(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = n > 0 || (n == 0 && err == nil) || (err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR))
		return true // never wait in the poller
	})
	return gone
}
