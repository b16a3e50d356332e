package session

import (
	"context"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/front"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// A user whose authentication plugin the proxy cannot check (client_ed25519, PAM, ...) logs
// in through a server: the client is switched to that server's plugin and scramble, and its
// answers are relayed to the server until it accepts or refuses (a refusal is the server's own
// error). The session then stays on that connection: the proxy has nothing to log in anywhere
// else with, so the session is pinned to the primary.

// relayed is a relayed login's server connection, for the session.
type relayed struct {
	conn *backend.Conn
	peer checkups.Peer
}

// relayLogin is a login being relayed to a server of the primary upstream.
type relayLogin struct {
	ctx   context.Context
	pd    *backend.Pending
	peer  checkups.Peer
	key   backend.Key
	login backend.Login
}

func (r *relayLogin) Finish(plugin string, ask func([]byte) ([]byte, error)) (any, error) {
	c, err := r.pd.LoginRelayed(r.ctx, r.key, r.login, plugin, nil, ask)
	if err != nil {
		return nil, err
	}
	return &relayed{conn: c, peer: r.peer}, nil
}

// RelayLogin starts the relayed login of cl (resp is its handshake response) on a server of
// upstream, for a client of addr.
func RelayLogin(ctx context.Context, cfg *Config, upstream, addr string, cl *front.Client, resp front.Response) (front.Relay, error) {
	r := &relayLogin{ctx: ctx,
		key: backend.Key{Caps: cl.Capabilities&backend.Framing | mysql.CLIENT_SESSION_TRACK, ExtCaps: cl.ExtCaps & backend.ExtFraming},
		login: backend.Login{User: resp.User, Schema: resp.Schema, Collation: resp.Collation,
			Attrs: append(append([]wire.Attr(nil), resp.Attrs...), proxyAttrs(cl)...)}}
	_, _, err := cfg.Registry.Try(ctx, upstream, addr, func(ctx context.Context, p checkups.Peer) error {
		k := r.key
		k.Addr = p.Addr()
		k.TLS, k.TLSPreferred = p.TLS()
		pd, err := cfg.Pool.Greet(ctx, k, p.Server.MaxConns)
		if err != nil {
			return err
		}
		r.pd, r.peer, r.key = pd, p, k
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// useRelayed makes a relayed login's connection the session's primary, for good.
func (s *Session) useRelayed() {
	r, ok := s.cl.Relayed.(*relayed)
	if !ok {
		return
	}
	c := r.conn
	c.Release, c.Usable = r.peer.Acquire(), r.peer.Usable
	s.noteBackend(r.peer.Addr())
	s.st.applied[c] = 0
	s.primary, s.pinned, s.relayedLogin = c, true, true
}
