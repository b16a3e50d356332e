package snirouter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slardar-go/slardar/pkg/l4"
	"github.com/slardar-go/slardar/pkg/sni"
)

// DefaultHelloTimeout bounds the wait for a ClientHello.
const DefaultHelloTimeout = 5 * time.Second

// Router is the l4.Hooks of sni-router: its preread peeks the ClientHello and routes.
type Router struct {
	Routes *sni.Table
	// Routed, when set, counts each connection's routing: the route's pattern ("" when none
	// matched) and the result: routed, no_route, bad_hello (not TLS, or no readable hello),
	// forbidden (a target outside the allow-list).
	Routed func(route, result string)

	limits atomic.Pointer[Limits]
	bufs   sync.Pool // *bufio.Reader of sni.BufferSize(MaxHello), reused across connections
}

// Limits of the hello read.
type Limits struct {
	MaxHello     int           // default sni.DefaultMaxHello
	HelloTimeout time.Duration // default DefaultHelloTimeout
}

// SetLimits changes the limits for new connections (safe while serving).
func (rt *Router) SetLimits(l Limits) { rt.limits.Store(&l) }

func (rt *Router) currentLimits() Limits {
	var l Limits
	if p := rt.limits.Load(); p != nil {
		l = *p
	}
	if l.MaxHello <= 0 {
		l.MaxHello = sni.DefaultMaxHello
	}
	if l.HelloTimeout <= 0 {
		l.HelloTimeout = DefaultHelloTimeout
	}
	return l
}

var _ l4.Hooks = (*Router)(nil)

// unrecognizedName is a fatal TLS alert unrecognized_name(112), sent when no route matches.
var unrecognizedName = []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70}

// ErrNoRoute is a server name no route matches (the client got an unrecognized_name alert).
var ErrNoRoute = errors.New("no route")

// Preread reads the ClientHello under a deadline without consuming it and routes the
// connection. A hello that cannot be read goes to the default route if there is one; otherwise
// the connection is closed. An unmatched name gets an unrecognized_name alert.
func (rt *Router) Preread(_ context.Context, cx *l4.Conn) error {
	lim := rt.currentLimits()
	c := cx.Client
	cx.Reader = rt.reader(c, sni.BufferSize(lim.MaxHello))
	c.SetReadDeadline(time.Now().Add(lim.HelloTimeout))
	h, herr := sni.ReadHello(cx.Reader, lim.MaxHello)
	c.SetReadDeadline(time.Time{})
	if herr != nil {
		h = sni.Hello{}
	}
	m, ok := rt.Routes.Lookup(h, cx.Port)
	cx.LogAttrs = append(cx.LogAttrs, "sni", h.ServerName)
	count := func(route, result string) {
		if rt.Routed != nil {
			rt.Routed(route, result)
		}
	}
	if herr != nil && (!ok || m.Pattern != sni.DefaultPattern) {
		cx.Status = l4.StatusBadRequest
		count("", "bad_hello")
		return fmt.Errorf("reading ClientHello: %w", herr)
	}
	if !ok {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(unrecognizedName)
		cx.Status = l4.StatusMisdirected
		count("", "no_route")
		return fmt.Errorf("%w for %q", ErrNoRoute, h.ServerName)
	}
	cx.LogAttrs = append(cx.LogAttrs, "route", m.Pattern)
	if m.Target != "" {
		if !rt.Routes.Allows(m.Target) {
			cx.Status = l4.StatusForbidden
			count(m.Pattern, "forbidden")
			return fmt.Errorf("target %s not in the allow-list", m.Target)
		}
		cx.Target = m.Target
	} else {
		cx.Upstream = m.Route.Upstream
	}
	cx.ProxyProtocol = m.Route.ProxyProtocol
	count(m.Pattern, "routed")
	return nil
}

// Content never serves: the router only routes.
func (rt *Router) Content(context.Context, *l4.Conn) (bool, error) { return false, nil }

// Log returns the connection's hello buffer to the pool (the access log carries the name and
// route); the connection is over, so nothing reads the buffer any more.
func (rt *Router) Log(cx *l4.Conn) {
	if cx.Reader != nil {
		cx.Reader.Reset(nil)
		rt.bufs.Put(cx.Reader)
		cx.Reader = nil
	}
}

// reader returns a pooled reader of the given size over c.
func (rt *Router) reader(c io.Reader, size int) *bufio.Reader {
	if r, ok := rt.bufs.Get().(*bufio.Reader); ok && r.Size() == size {
		r.Reset(c)
		return r
	}
	return bufio.NewReaderSize(c, size)
}
