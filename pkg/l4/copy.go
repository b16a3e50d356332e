package l4

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// errIdle ends a connection on which nothing moved in either direction for the idle timeout.
var errIdle = errors.New("idle timeout")

// idleWatch decides idleness across both directions. Each direction copies under a deadline of
// one idle period (so the kernel can keep splicing whole runs of data); when its deadline expires
// with nothing moved it marks itself idle, and the connection is idle only once both are.
type idleWatch struct {
	mu   sync.Mutex
	idle [2]bool
}

func (w *idleWatch) set(dir int, idle bool) (both bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.idle[dir] = idle
	return w.idle[0] && w.idle[1]
}

// proxyCopy copies src to dst until EOF or an error, then half-closes dst. It is a named
// function so goroutine dumps show it. With *net.TCPConn on both sides io.Copy splices in the
// kernel. It returns the bytes copied.
func proxyCopy(dir int, dst, src net.Conn, idle time.Duration, w *idleWatch) (int64, error) {
	var total int64
	for {
		if idle > 0 {
			dl := time.Now().Add(idle)
			src.SetReadDeadline(dl)
			dst.SetWriteDeadline(dl)
		}
		n, err := io.Copy(dst, src)
		total += n
		if err == nil {
			w.set(dir, true) // a finished direction is idle from now on
			closeWrite(dst)
			return total, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			w.set(dir, true)
			return total, err
		}
		if w.set(dir, n == 0) {
			return total, errIdle
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
	var w idleWatch
	var wg sync.WaitGroup
	var errs [2]error
	var counts [2]int64
	copyDir := func(dir int, dst, src net.Conn) {
		defer wg.Done()
		counts[dir], errs[dir] = proxyCopy(dir, dst, src, idle, &w)
		if errs[dir] != nil {
			// Unblock the other direction.
			client.Close()
			upstream.Close()
		}
	}
	wg.Add(2)
	go copyDir(0, upstream, client)
	go copyDir(1, client, upstream)
	wg.Wait()
	switch {
	case errors.Is(errs[0], errIdle) || errors.Is(errs[1], errIdle):
		err = errIdle
	case errs[0] != nil:
		err = errs[0]
	default:
		err = errs[1]
	}
	return counts[0], counts[1], err
}
