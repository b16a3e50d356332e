// Package l4 is the TCP data path: accept, choose a peer through checkups with retry, splice both
// ways, and write one access-log line per connection.
package l4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/slardar-go/slardar/pkg/checkups"
)

// DefaultIdleTimeout is how long a proxied connection may carry nothing in either direction
// (nginx's proxy_timeout default).
const DefaultIdleTimeout = 10 * time.Minute

// Proxy balances TCP connections over checkups upstreams.
type Proxy struct {
	Registry    *checkups.Registry
	AccessLog   *slog.Logger  // one line per connection; default: discard
	Logger      *slog.Logger  // errors of the listener itself; default: discard
	IdleTimeout time.Duration // default DefaultIdleTimeout; negative: none
	Tracker     *Tracker      // open connections, for graceful shutdown; required
}

func (p *Proxy) idleTimeout() time.Duration {
	switch {
	case p.IdleTimeout < 0:
		return 0
	case p.IdleTimeout == 0:
		return DefaultIdleTimeout
	}
	return p.IdleTimeout
}

func discard(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// Listen opens a data listener the way the proxy wants it: TCP keepalive off (as nginx and
// HAProxy default; the idle timeout ends dead connections), which saves four setsockopt calls
// per accepted connection.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp", addr)
}

// Serve accepts on ln and proxies each connection to the upstream until ctx is done, then
// closes ln and returns; connections already accepted go on (see Tracker.Shutdown).
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, upstream string) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off, bounded, and keep serving.
			discard(p.Logger).Error("accepting connection", "listener", ln.Addr().String(), "err", err)
			time.Sleep(backoff)
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		p.Tracker.Add(c)
		go p.handle(context.WithoutCancel(ctx), c, upstream)
	}
}

// outcome names how a connection ended, for the access log.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errIdle):
		return "idle_timeout"
	case isReset(err):
		return "reset"
	}
	return "error"
}

func (p *Proxy) handle(ctx context.Context, c net.Conn, upstream string) {
	defer p.Tracker.Remove(c)
	defer c.Close()
	start := time.Now()
	clientIP := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(clientIP); err == nil {
		clientIP = host
	}
	var up net.Conn
	peer, attempts, err := p.Registry.Try(ctx, upstream, clientIP, func(ctx context.Context, pe checkups.Peer) error {
		d := net.Dialer{Timeout: p.Registry.Timeout(upstream), KeepAlive: -1}
		conn, err := d.DialContext(ctx, "tcp", pe.Addr())
		if err != nil {
			return fmt.Errorf("dialing upstream %s: %w", pe.Addr(), err)
		}
		up = conn
		return nil
	})
	attrs := []any{
		"listener", c.LocalAddr().String(),
		"upstream", upstream,
		"client", c.RemoteAddr().String(),
		"attempts", attempts,
	}
	if err != nil {
		discard(p.AccessLog).Info("conn", append(attrs,
			"server", "", "bytes_in", 0, "bytes_out", 0,
			"duration_ms", time.Since(start).Milliseconds(),
			"status", "no_upstream", "err", err.Error())...)
		return
	}
	release := peer.Acquire()
	defer release()
	defer up.Close()
	in, out, err := Splice(c, up, p.idleTimeout())
	attrs = append(attrs,
		"server", peer.Addr(), "bytes_in", in, "bytes_out", out,
		"duration_ms", time.Since(start).Milliseconds(),
		"status", outcome(err))
	if err != nil && !isReset(err) && !errors.Is(err, errIdle) {
		attrs = append(attrs, "err", err.Error())
	}
	discard(p.AccessLog).Info("conn", attrs...)
}
