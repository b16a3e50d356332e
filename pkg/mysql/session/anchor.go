package session

import (
	"context"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
)

// Anchor is a server connection taken for a client before it logs in: the handshake announces
// its thread id, and it becomes the session's primary connection once the client is known, so
// that CONNECTION_ID(), the server's processlist and performance_schema, and KILL with the
// announced id all agree, as on the server itself. It is an idle connection of the pool (logged
// in again as the client; a thread's id, once its session ended, may so serve the next), or a
// new one that has the server's handshake and completes its login with the client's
// capabilities. Where the session runs a statement on another connection, CONNECTION_ID() is
// answered with the announced id.
type Anchor struct {
	conn    *backend.Conn    // an idle connection, or
	pending *backend.Pending // a login to complete
	peer    checkups.Peer
}

// ThreadID is the id the handshake announces.
func (a *Anchor) ThreadID() uint32 {
	if a.conn != nil {
		return a.conn.ThreadID
	}
	return a.pending.ThreadID()
}

// TakeAnchor takes an anchor on a server of upstream (the listener's primary) for a client of
// addr; key is what the listener's last client negotiated, for an idle connection. nil when
// none is had at once (the handshake then announces an id of the proxy's own).
func TakeAnchor(ctx context.Context, cfg *Config, upstream, addr string, key backend.Key) *Anchor {
	var a *Anchor
	cfg.Registry.Try(ctx, upstream, addr, func(ctx context.Context, p checkups.Peer) error {
		k := key
		k.Addr = p.Addr()
		k.TLS, k.TLSPreferred = p.TLS()
		if c, pd := cfg.Pool.Anchor(ctx, k, p.Server.MaxConns, cfg.Multiplex); c != nil || pd != nil {
			a = &Anchor{conn: c, pending: pd, peer: p}
		}
		return nil // no second try: without an anchor the session does without
	})
	return a
}

// Return gives back an anchor no session used.
func (a *Anchor) Return(pool *backend.Pool) {
	switch {
	case a == nil:
	case a.conn != nil:
		pool.Put(a.conn)
	default:
		a.pending.Abandon()
	}
}

// fits reports whether the anchor can serve a client of key (an idle connection of other
// capabilities cannot).
func (a *Anchor) fits(key backend.Key) bool {
	if a.conn == nil {
		return true
	}
	k := a.conn.Key
	return k.Caps == key.Caps && k.ExtCaps == key.ExtCaps
}

// settleAnchor is a multiplexed session's first step: its anchor, logged in as the client and
// brought to its settings, goes to the pool as the session's own idle connection (taken again
// without a new login by its next statement for the primary, as every connection it gives
// back), so that the session never holds it while it waits for another. The thread keeps the
// announced id and the client's connection attributes until another session logs in on it.
func (s *Session) settleAnchor() {
	if !s.useAnchor() {
		return
	}
	if err := s.sync(s.primary); err != nil {
		if s.primary != nil {
			s.drop(s.primary, true)
			s.primary = nil
		}
		return
	}
	s.multiplexRelease()
}

// useAnchor makes the anchor the session's primary connection, logged in as the client; false
// when it cannot be (the session acquires one as usual).
func (s *Session) useAnchor() bool {
	a := s.anchor
	if a == nil {
		return false
	}
	s.anchor = nil
	key, login := s.key0(false)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 2*s.cfg.Registry.Timeout(s.write))
	defer cancel()
	c := a.conn
	if c != nil {
		if err := c.ChangeUser(ctx, login); err != nil {
			s.cfg.Pool.Discard(c)
			return false
		}
	} else {
		key.Addr = a.peer.Addr()
		key.TLS, key.TLSPreferred = a.peer.TLS()
		var err error
		if c, err = a.pending.Login(ctx, key, login); err != nil {
			s.cfg.logger().Warn("completing the login of the session's first connection", "err", err)
			return false
		}
	}
	c.Release, c.Usable = a.peer.Acquire(), a.peer.Usable
	s.noteBackend(a.peer.Addr())
	s.st.applied[c] = 0
	s.primary = c
	return true
}
