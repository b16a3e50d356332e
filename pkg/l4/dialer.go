package l4

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/slardar-go/slardar/pkg/checkups"
)

// DefaultDialTimeout bounds dialling a hook's direct Target.
const DefaultDialTimeout = 5 * time.Second

// connect makes the backend side of a connection (traefik's dialer.go): it dials cx's direct
// Target, or a peer of cx.Upstream chosen by checkups with retry, records the server in cx,
// then writes the PROXY protocol header the hooks asked for and the client bytes they peeked
// at. It returns the backend connection, the number of attempts and the function that ends the
// peer's connection count.
func (p *Proxy) connect(ctx context.Context, cx *Conn) (net.Conn, int, func(), error) {
	up, attempts, release, err := p.dial(ctx, cx)
	if err != nil {
		return nil, attempts, nil, err
	}
	if p.own.has(up.RemoteAddr()) {
		up.Close()
		release()
		cx.Status = StatusLoop
		return nil, attempts, nil, fmt.Errorf("%w: %s is this proxy's own listener", ErrLoop, up.RemoteAddr())
	}
	if err := writePrelude(up, cx); err != nil {
		up.Close()
		release()
		return nil, attempts, nil, err
	}
	return up, attempts, release, nil
}

func (p *Proxy) dial(ctx context.Context, cx *Conn) (net.Conn, int, func(), error) {
	if cx.Target != "" {
		d := net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: -1}
		conn, err := d.DialContext(ctx, "tcp", cx.Target)
		if err != nil {
			return nil, 1, nil, fmt.Errorf("dialing target %s: %w", cx.Target, err)
		}
		cx.Server = cx.Target
		return conn, 1, func() {}, nil
	}
	var up net.Conn
	peer, attempts, err := p.Registry.Try(ctx, cx.Upstream, cx.HashKey, func(ctx context.Context, pe checkups.Peer) error {
		d := net.Dialer{Timeout: p.Registry.Timeout(cx.Upstream), KeepAlive: -1}
		conn, err := d.DialContext(ctx, "tcp", pe.Addr())
		if err != nil {
			return fmt.Errorf("dialing upstream %s: %w", pe.Addr(), err)
		}
		up = conn
		return nil
	})
	if err != nil {
		return nil, attempts, nil, err
	}
	cx.Server = peer.Addr()
	return up, attempts, peer.Acquire(), nil
}

// writePrelude sends what goes to the backend before the client's stream: the PROXY protocol
// header, then the bytes hooks peeked at (counted as client bytes).
func writePrelude(up net.Conn, cx *Conn) error {
	if cx.ProxyProtocol != 0 {
		hdr, err := ProxyHeader(cx.ProxyProtocol, cx.Client.RemoteAddr(), cx.Client.LocalAddr())
		if err == nil {
			_, err = up.Write(hdr)
		}
		if err != nil {
			return fmt.Errorf("writing PROXY protocol header: %w", err)
		}
	}
	if cx.Reader != nil && cx.Reader.Buffered() > 0 {
		peeked, _ := cx.Reader.Peek(cx.Reader.Buffered())
		n, err := up.Write(peeked)
		cx.BytesIn += int64(n)
		if err != nil {
			return fmt.Errorf("writing peeked bytes upstream: %w", err)
		}
	}
	return nil
}
