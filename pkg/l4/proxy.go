// Package l4 is the TCP data path: accept, choose a peer through checkups with retry, splice both
// ways, and write one access-log line per connection.
package l4

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/slardar-go/slardar/pkg/accept"
	"github.com/slardar-go/slardar/pkg/checkups"
)

// DefaultIdleTimeout is how long a proxied connection may carry nothing in either direction
// (nginx's proxy_timeout default).
const DefaultIdleTimeout = 10 * time.Minute

// Proxy balances TCP connections over checkups upstreams.
type Proxy struct {
	Registry  *checkups.Registry
	AccessLog *slog.Logger // one line per connection; default: discard
	Logger    *slog.Logger // errors of the listener itself; nil: not logged
	Tracker   *Tracker     // open connections, for graceful shutdown; required
	Hooks     Hooks        // per-connection hooks; nil: none
	// BaseContext is the context of every connection: hooks' waits end when it is done (the
	// daemon drains). Closing a listener does not end it. Default: never done.
	BaseContext context.Context
	// Observe, when set, gets every connection when it has ended, with its listener's bound
	// address and its outcome (the access log's): the daemon's metrics.
	Observe func(listener string, cx *Conn, outcome string)

	idle atomic.Int64 // see SetIdleTimeout
	own  ownAddrs     // the listeners being served, so that a dial back to one is refused
}

// SetIdleTimeout sets how long a connection may carry nothing either way (0: the default,
// DefaultIdleTimeout; negative: no limit). Safe while serving; new connections use it.
func (p *Proxy) SetIdleTimeout(d time.Duration) { p.idle.Store(int64(d)) }

func (p *Proxy) idleTimeout() time.Duration {
	d := time.Duration(p.idle.Load())
	switch {
	case d < 0:
		return 0
	case d == 0:
		return DefaultIdleTimeout
	}
	return d
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

// Upstream is the upstream a listener serves; a reload may change it while it serves.
type Upstream struct{ name atomic.Pointer[string] }

// NewUpstream is an Upstream naming name.
func NewUpstream(name string) *Upstream {
	u := &Upstream{}
	u.Set(name)
	return u
}

// Get is the name new connections use.
func (u *Upstream) Get() string { return *u.name.Load() }

// Set changes it for the connections accepted from now on.
func (u *Upstream) Set(name string) { u.name.Store(&name) }

// Serve accepts on ln and proxies each connection to the upstream until ctx is done, then
// closes ln and returns; connections already accepted go on (see Tracker.Shutdown).
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, upstream *Upstream) {
	base := p.BaseContext
	if base == nil {
		base = context.Background()
	}
	defer p.own.add(ln.Addr())()
	listener := ln.Addr().String()
	accept.Loop(ctx, ln, p.Logger, func(c net.Conn) {
		p.Tracker.Add(c)
		go p.handle(base, c, listener, upstream.Get())
	})
}

// outcome names how a connection ended, for the access log.
// ErrRejected is what a connection a hook refused by design (a Lua ngx.exit with a status)
// ended with: outcome "rejected", not "error".
var ErrRejected = errors.New("rejected by a hook")

func outcome(err error) string {
	var ue *checkups.UnknownUpstreamError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ue), errors.Is(err, checkups.ErrNoServers), errors.Is(err, checkups.ErrTryTimeout):
		return "no_upstream"
	case errors.Is(err, errIdle):
		return "idle_timeout"
	case errors.Is(err, ErrLoop):
		return "loop"
	case errors.Is(err, ErrUpstreamClosed):
		return "upstream_closed"
	case isReset(err):
		return "reset"
	case errors.Is(err, ErrRejected):
		return "rejected"
	}
	return "error"
}

// Status values for the access log and log hooks, as nginx stream's $status.
const (
	StatusOK          = 200
	StatusBadRequest  = 400 // the client's first bytes could not be read or parsed
	StatusForbidden   = 403 // refused by policy (a target outside the allow-list)
	StatusMisdirected = 421 // nothing serves the name the client asked for
	StatusInternalErr = 500
	StatusBadGateway  = 502
	StatusLoop        = 508 // the backend would be this proxy itself
)

func (p *Proxy) handle(ctx context.Context, c net.Conn, listener, upstream string) {
	cx := &Conn{Client: c, Upstream: upstream, Start: time.Now(), Status: StatusOK}
	cx.HashKey = c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(cx.HashKey); err == nil {
		cx.HashKey = host
	}
	if _, port, err := net.SplitHostPort(c.LocalAddr().String()); err == nil {
		cx.Port = port
	}
	p.serve(ctx, cx, func(attempts int) { p.finish(cx, listener, attempts) })
}

// finish ends a connection served: the log hook, the metrics and the access-log line.
func (p *Proxy) finish(cx *Conn, listener string, attempts int) {
	c := cx.Client
	defer p.Tracker.Remove(c)
	defer c.Close()
	if p.Hooks != nil {
		c.Close() // the client does not wait for the log hook
		p.Hooks.Log(cx)
	}
	how := outcome(cx.Err)
	if p.Observe != nil {
		p.Observe(listener, cx, how)
	}
	attrs := []any{
		"listener", listener,
		"upstream", cx.Upstream,
		"client", c.RemoteAddr().String(),
		"attempts", attempts,
		"server", cx.Server, "bytes_in", cx.BytesIn, "bytes_out", cx.BytesOut,
		"duration_ms", time.Since(cx.Start).Milliseconds(),
	}
	if !cx.OwnStatus || cx.Status != StatusOK {
		attrs = append(attrs, "status", cx.Status)
	}
	attrs = append(attrs, "outcome", how)
	attrs = append(attrs, cx.LogAttrs...)
	if cx.Err != nil && !isReset(cx.Err) && !errors.Is(cx.Err, errIdle) {
		attrs = append(attrs, "err", cx.Err.Error())
	}
	discard(p.AccessLog).Info("conn", attrs...)
}

// serve runs the hooks and proxies the connection, recording what happened in cx; then
// gets the number of dial attempts when it is over. The bytes are copied on goroutines of
// their own (SpliceThen): the caller's returns once they started.
func (p *Proxy) serve(ctx context.Context, cx *Conn, then func(attempts int)) {
	if p.Hooks != nil {
		if err := p.Hooks.Preread(ctx, cx); err != nil {
			cx.Err = err
			if cx.Status == StatusOK {
				cx.Status = StatusInternalErr
			}
			then(0)
			return
		}
		served, err := p.Hooks.Content(ctx, cx)
		if served || err != nil {
			cx.Err = err
			then(0)
			return
		}
	}
	up, attempts, release, err := p.connect(ctx, cx)
	if err != nil {
		cx.Status, cx.Err = StatusBadGateway, err
		then(attempts)
		return
	}
	SpliceThen(cx.Client, up, p.idleTimeout(), func(in, out int64, err error) {
		up.Close()
		release()
		cx.BytesIn += in
		cx.BytesOut = out
		cx.Err = err
		then(attempts)
	})
}
