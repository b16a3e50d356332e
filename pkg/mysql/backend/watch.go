package backend

import (
	"errors"
	"fmt"
	"net"
	"os"
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
type watchConn struct {
	net.Conn
	alive       func() bool   // nil: assume alive
	readTimeout time.Duration // 0: DefaultReadTimeout
	hard        time.Time     // an internal command's deadline (bound); zero: none
	armed       time.Time     // when the read deadline was last moved
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
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
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
