package script

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/slardar-go/slardar/pkg/l4"
)

// ErrClientClosed ends a script's wait (a sleep, a socket read or write) when its client has
// gone: nothing would read what the script does next, and the connection must not linger.
var ErrClientClosed = errors.New("client closed the connection")

// clientPoll is how often a waiting script's client is checked.
const clientPoll = 100 * time.Millisecond

// wait runs fn, a wait of the invocation, with its time budget paused. The wait ends early
// (the invocation's context is cancelled) when the daemon drains, or, before the log phase,
// when the client closes its side: fn must return when the invocation's context is done.
func (inv *invocation) wait(fn func()) {
	inv.budget.pause()
	defer inv.budget.resume()
	if inv.sess.phase != PhaseLog {
		if tc, ok := inv.sess.cx.Client.(syscall.Conn); ok {
			stop := make(chan struct{})
			defer close(stop)
			go watchClient(tc, inv.ctx, stop, func() { inv.cancel(ErrClientClosed) })
		}
	}
	fn()
}

// watchClient calls gone when the peer of c closed its side, checking every clientPoll until
// stop is closed or ctx is done. It never consumes data: it peeks.
func watchClient(c syscall.Conn, ctx context.Context, stop <-chan struct{}, gone func()) {
	t := time.NewTicker(clientPoll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			if l4.PeerClosed(c) {
				gone()
				return
			}
		}
	}
}

// deadlineOnDone makes a blocked read or write on c return when ctx is done; call the returned
// stop when the operation is over.
func deadlineOnDone(ctx context.Context, c net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
}
