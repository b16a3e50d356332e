// Package accept is the accept loop every listener of the daemons runs (data ports, the admin
// port): it keeps accepting through errors such as EMFILE, as nginx and HAProxy do, instead of
// returning on the first failed accept and leaving the port dead.
package accept

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// Backoff bounds of the pause after a failed accept.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Loop accepts on ln until ctx is done or ln is closed, then closes ln and returns. Each
// connection is given to handle on the accepting goroutine: handle registers it and starts the
// goroutine that serves it. A failed accept (out of file descriptors, say) is logged at Error
// and followed by a pause that doubles from 5 ms up to 1 s and resets after a success.
func Loop(ctx context.Context, ln net.Listener, log *slog.Logger, handle func(net.Conn)) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	backoff := minBackoff
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if log != nil {
				log.Error("accepting connection", "listener", ln.Addr().String(), "err", err, "retry_in", backoff.String())
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = minBackoff
		handle(c)
	}
}
