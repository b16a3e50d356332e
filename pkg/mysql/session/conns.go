package session

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/front"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// acquire takes a connection to a server of upstream, chosen by checkups (levels, balancer,
// health, retry): an idle one of the pool, logged in again as this session, or a new login.
// A replica's (readOnly) session is read-only.
func (s *Session) acquire(upstream string, readOnly bool) (*backend.Conn, error) {
	key, login := s.key0(readOnly)
	// A login (or change of user) gets the upstream's timeout and a second; a wait for a
	// connection at the pool's limit gets mysql.pool.wait_timeout on top, and ends with the
	// error that names the limit (not "did not answer in time").
	login.DialTimeout = s.cfg.Registry.Timeout(upstream) + time.Second
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), login.DialTimeout+s.cfg.Pool.MaxWait())
	defer cancel()
	var c *backend.Conn
	peer, _, err := s.cfg.Registry.Try(ctx, upstream, s.key, func(ctx context.Context, p checkups.Peer) error {
		k := key
		k.Addr = p.Addr()
		k.TLS, k.TLSPreferred = p.TLS()
		conn, err := s.cfg.Pool.Get(ctx, k, login, p.Server.MaxConns)
		c = conn
		var limit *backend.LimitError
		if errors.As(err, &limit) {
			return checkups.Busy(err) // the proxy's own limit: the server is not at fault
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c.Release, c.Usable = peer.Acquire(), peer.Usable
	s.noteBackend(peer.Addr())
	s.st.applied[c] = 0
	if c.Shared != "" && c.Shared == login.Shared {
		s.st.applied[c] = s.st.gen // it has the session's state: a multiplexed session of that state gave it back
	}
	c.Shared = ""
	return c, nil
}

// key0 is the pool key (without the server) and the login of the session's connections.
func (s *Session) key0(readOnly bool) (backend.Key, backend.Login) {
	user, password := s.cl.User.Name, s.cl.User.Password
	if s.cfg.Backend != nil {
		user, password = s.cfg.Backend(s.cl.User)
	}
	secret := backend.Secret{Password: password}
	if s.cl.Stage1 != nil {
		secret = backend.Secret{NativeHash: s.cl.Stage1} // a user learned from the servers
	}
	// Session tracking is always on: what a statement changed in the session is read from
	// it (and stripped for a client without it).
	key := backend.Key{Caps: s.cl.Capabilities&backend.Framing | mysql.CLIENT_SESSION_TRACK, ExtCaps: s.cl.ExtCaps & backend.ExtFraming}
	login := backend.Login{User: user, Secret: secret, Schema: s.st.schema,
		Collation: s.cl.Collation, ReadOnly: readOnly, Attrs: s.attrs()}
	if s.cfg.Multiplex {
		login.Shared = s.sharedKey(login)
	}
	return key, login
}

// noteBackend adds a server to the session's access-log line.
func (s *Session) noteBackend(addr string) {
	if !slices.Contains(s.stats.Backends, addr) {
		s.stats.Backends = append(s.stats.Backends, addr)
	}
}

// attrs are the connection attributes the servers see: the client's own, then the proxy's
// name and the client's address (performance_schema.session_connect_attrs shows which
// application holds a connection, as without the proxy).
func (s *Session) attrs() []backend.Attr {
	if s.loginAttrs == nil { // made once per login: every statement of a multiplexed session needs a login
		s.loginAttrs = slices.Clip(append(slices.Clip(s.cl.Attrs), proxyAttrs(s.cl)...))
	}
	return s.loginAttrs
}

func proxyAttrs(cl *front.Client) []backend.Attr {
	return []backend.Attr{{Name: "_proxy", Value: "slardar mysql-proxy"}, {Name: "_proxy_client_addr", Value: cl.RemoteAddr().String()}}
}

// replayFailed handles a connection that refused the session's schema or state: a replica
// is dropped and the session pinned to the primary; on the primary it is the client's error.
func (s *Session) replayFailed(c *backend.Conn, err error) error {
	var ep *wire.ErrPacket
	if c == s.replica && errors.As(err, &ep) {
		s.cfg.logger().Warn("replica refused the session state: session pinned to the primary", "server", c.Key.Addr, "err", err)
		s.drop(c, false)
		s.pinned = true
		return errRetry
	}
	if !errors.As(err, &ep) {
		s.drop(c, true)
	}
	return err
}

// errRetry asks the caller to pick a connection again.
var errRetry = errors.New("route again")

// drop lets go of a connection: back to the pool (reset) or, when broken, closed.
func (s *Session) drop(c *backend.Conn, broken bool) {
	if c == nil {
		return
	}
	for _, st := range s.stmts {
		st.forget(c)
	}
	delete(s.st.applied, c)
	switch c {
	case s.primary:
		s.primary = nil
	case s.replica:
		s.replica = nil
	}
	if s.last == c {
		s.last = nil
	}
	if s.tx == c {
		s.setTx(nil)
	}
	if c.Release != nil {
		c.Release()
		c.Release, c.Usable = nil, nil
	}
	if broken {
		s.cfg.Pool.Discard(c)
		return
	}
	c.Dirty = c.Dirty || s.pinned // it may hold locks or temporary tables: reset before it waits
	s.cfg.Pool.Put(c)
}

// release ends the session's hold on its connections.
func (s *Session) release() {
	s.drop(s.replica, false)
	s.drop(s.primary, false)
}
