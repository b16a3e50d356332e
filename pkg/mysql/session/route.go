package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/front"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// route is where a command wants to run, before the session's state decides.
type route int

const (
	routePrimary route = iota // the primary
	routeRead                 // a replica (the primary when none is usable)
	routeAny                  // the connection held, or a replica
	routeLast                 // where the previous statement ran
)

// routeOf is where a statement of class c wants to run: a read goes to a replica only when
// every function it calls that is not built in is known not to modify data.
func (s *Session) routeOf(c sqlclass.Class) route {
	switch {
	case c.Last:
		return routeLast
	case c.ReadOnlyTx, c.Read && s.vouched(c.Funcs):
		return routeRead
	}
	return routePrimary
}

// vouched reports whether every stored function in funcs is declared NO SQL or READS SQL DATA
// in the read upstream's catalog (information_schema.ROUTINES, read by the checkups heartbeat).
// A function the catalog does not know (new, a UDF, not visible to the checkup's user) is not.
func (s *Session) vouched(funcs []string) bool {
	for _, f := range funcs {
		if !strings.Contains(f, ".") {
			if s.st.schema == "" {
				return false
			}
			f = strings.ToLower(s.st.schema) + "." + f
		}
		switch s.cfg.Registry.RoutineAccess(s.read, f) {
		case "NO SQL", "READS SQL DATA":
		default:
			return false
		}
	}
	return true
}

// conn returns the connection a command of route r runs on: the open transaction's, the
// primary while the session is pinned or not in autocommit, else what r asks for. The
// connection has the session's schema and state. A replica that refused the state, or failed
// while the proxy made it consistent, is dropped and the choice made again.
//
// A held connection unused for a while is first checked: one its server closed meanwhile (a
// wait_timeout, a restart) is replaced when the session's state can move to another; when it
// cannot (a transaction, locks, temporary tables), the session ends (errLost).
func (s *Session) conn(r route) (*backend.Conn, error) {
	for range 3 {
		c, err := s.choose(r)
		if err == nil && c.Dead(deadCheckAfter) {
			if c == s.tx || (s.pinned && c == s.primary) {
				s.drop(c, true)
				return nil, errLost
			}
			s.cfg.logger().Info("a held server connection was closed while idle: the session moves to another", "server", c.Key.Addr)
			s.drop(c, true)
			err = errRetry
		}
		if !errors.Is(err, errRetry) {
			return c, err
		}
	}
	return s.choose(routePrimary)
}

// deadCheckAfter is how long a held connection stays unused before conn checks it.
const deadCheckAfter = time.Second

// errLost is a session whose server connection was closed with state that cannot move.
var errLost = errors.New("the server closed the connection of a session that cannot move to another " +
	"(a transaction, locks or temporary tables)")

func (s *Session) choose(r route) (*backend.Conn, error) {
	switch {
	case s.tx != nil:
		return s.tx, nil
	case s.pinned || (s.primary != nil && s.primary.Status&wire.StatusAutocommit == 0):
		r = routePrimary
	}
	switch r {
	case routeLast:
		if s.last != nil {
			return s.last, nil
		}
	case routeAny:
		if s.primary != nil {
			return s.primary, nil
		}
		if s.replica != nil {
			return s.replica, nil
		}
		return s.readConn()
	case routeRead:
		return s.readConn()
	}
	return s.primaryConn()
}

func (s *Session) primaryConn() (*backend.Conn, error) {
	if s.primary == nil {
		if !s.useAnchor() {
			c, err := s.acquire(s.write, false)
			if err != nil {
				return nil, err
			}
			s.primary = c
		}
		c := s.primary
		if c.Untracked && !s.pinned {
			s.pinned = true // what the session changes cannot be followed: it stays on the primary
			s.cfg.logger().Warn("the server refused session tracking: sessions stay on the primary", "server", c.Key.Addr)
		}
		if s.cfg.Consistency.tracksGTIDs() && !c.LastGTID() && !s.cfg.noGTID.Swap(true) {
			s.cfg.logger().Warn("the server does not report last_gtid (not MariaDB?): consistency session and global "+
				"cannot follow writes on it; use consistency: window or none", "server", c.Key.Addr)
		}
	}
	return s.primary, s.sync(s.primary)
}

// readConn is the session's replica connection; with no usable server in the read upstream
// (or none at all), reads go to the primary, and the change is logged once per listener.
func (s *Session) readConn() (*backend.Conn, error) {
	if s.inWindow() {
		return s.primaryConn()
	}
	if s.replica != nil && s.replica.Usable != nil && !s.replica.Usable() {
		s.drop(s.replica, true) // its server lags or failed its checks since: choose again
	}
	if s.replica == nil && s.cfg.Registry.Has(s.read) {
		c, err := s.acquire(s.read, true)
		if err == nil {
			s.replica = c
			if s.cfg.fallback.Swap(false) {
				s.cfg.logger().Info("reads are back on the replicas", "upstream", s.read)
			}
		} else if !s.cfg.fallback.Swap(true) {
			s.cfg.logger().Warn("no usable replica: reads go to the primary", "upstream", s.read, "err", err)
		}
	}
	if s.replica == nil {
		s.stats.Fallbacks++
		return s.primaryConn()
	}
	c := s.replica
	if err := s.sync(c); err != nil {
		return nil, err
	}
	ok, err := s.consistent(c)
	if err != nil {
		s.drop(c, true)
		return nil, errRetry
	}
	if !ok {
		return s.primaryConn()
	}
	return c, nil
}

// acquire takes a connection to a server of upstream, chosen by checkups (levels, balancer,
// health, retry): an idle one of the pool, logged in again as this session, or a new login.
// A replica's (readOnly) session is read-only.
func (s *Session) acquire(upstream string, readOnly bool) (*backend.Conn, error) {
	key, login := s.key0(readOnly)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.Registry.Timeout(upstream)+time.Second)
	defer cancel()
	var c *backend.Conn
	peer, _, err := s.cfg.Registry.Try(ctx, upstream, s.key, func(ctx context.Context, p checkups.Peer) error {
		k := key
		k.Addr = p.Addr()
		k.TLS, k.TLSPreferred = p.TLS()
		conn, err := s.cfg.Pool.Get(ctx, k, login, p.Server.MaxConns)
		c = conn
		return err
	})
	if err != nil {
		return nil, err
	}
	c.Release, c.Usable = peer.Acquire(), peer.Usable
	s.noteBackend(peer.Addr())
	s.st.applied[c] = 0
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
	return append(slices.Clip(s.cl.Attrs), proxyAttrs(s.cl)...)
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

// exchange sends one command to c and relays its response to the client (or, with toClient
// false, discards it). It records the transaction state and the connection that ran last;
// with ch, what the response reported of the session's changes.
func (s *Session) exchange(c *backend.Conn, payload []byte, cmd command, toClient bool, ch *changes) (wire.Result, error) {
	c.Arm(s.cfg.ReadTimeout, s.waiting(c))
	if _, err := c.WritePayload(0, payload); err != nil { // a command starts at 0
		return wire.Result{}, err
	}
	if err := c.W.Flush(); err != nil {
		return wire.Result{}, err
	}
	rl := wire.Relay{From: c.R, DeprecateEOF: c.Has(mysql.CLIENT_DEPRECATE_EOF), SessionTrack: c.Has(mysql.CLIENT_SESSION_TRACK),
		StripSessionTrack: !s.cl.Has(mysql.CLIENT_SESSION_TRACK), PrepareID: cmd.prepareID, Cursor: cmd.cursor}
	if ch != nil {
		rl.OnState = s.onState(ch)
	}
	if toClient {
		rl.To = s.cl.W
		if s.cl.Has(mysql.CLIENT_LOCAL_FILES) {
			rl.LocalInfile = func() error { return wire.DrainLocalInfile(s.cl.R, c.W) }
		}
		s.running.Store(c)
		defer s.running.Store(nil)
	}
	res, err := rl.Relay(cmd.kind)
	if err != nil {
		return res, err
	}
	if res.Seen {
		c.Status = res.Status
	}
	if toClient {
		s.last = c
	}
	switch {
	case c.Status&wire.StatusInTrans != 0:
		s.setTx(c)
	case s.tx == c:
		s.setTx(nil)
	}
	return res, nil
}

// waiting is what a statement on c does while it waits for its server, every second: it gives
// up when checkups mark the server down; and when the client has gone meanwhile, the statement
// is killed on the server (KILL QUERY, over another connection), so that no orphan runs on
// holding its locks.
func (s *Session) waiting(c *backend.Conn) func() bool {
	return func() bool {
		if c.Usable != nil && !c.Usable() {
			return false
		}
		if s.cl.Gone != nil && !c.Killed && s.cl.Gone() {
			c.Killed = true
			s.cfg.logger().Info("the client left during a statement: it is killed on the server", "server", c.Key.Addr, "thread", c.ThreadID)
			go func() {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
				defer cancel()
				if err := s.cfg.Pool.Kill(ctx, c, false); err != nil {
					s.cfg.logger().Warn("killing the statement of a client that left", "server", c.Key.Addr, "err", err)
				}
			}()
		}
		return true
	}
}

// setTx records the connection holding the open transaction (nil: none); the drain reads inTx.
func (s *Session) setTx(c *backend.Conn) {
	s.tx = c
	s.inTx.Store(c != nil)
}

// command is one client command to run on a server.
type command struct {
	payload []byte
	seq     byte // the client's last sequence number
	kind    wire.Kind
	// class is the statement's (the zero Class for commands without one); explained says the
	// session changes it makes are all reported or replayable (see learn).
	class     sqlclass.Class
	explained bool
	// target, when set, chooses the connection instead of the route (a prepared statement's
	// long data waits on one); forConn, when set, is the payload for a connection (a prepared
	// statement is prepared there first and given its id there).
	target    func() (*backend.Conn, error)
	forConn   func(c *backend.Conn) ([]byte, error)
	prepareID func(uint32) uint32
	cursor    bool // COM_STMT_EXECUTE that asks for a cursor
}

// run sends a client command on the connection of route r and relays the response.
//
// A server that fails before the response started is dropped; the command is then run again
// on another server when that cannot run anything twice: it ran on a replica (whose session is
// read-only) or it is a read that calls no stored function; otherwise the client gets MySQL's
// "lost connection" error. A failure after the response started ends the client connection
// (its framing is lost), and so does losing the connection that holds a transaction.
//
// A replica that refuses a statement as a write (1792: its session is read-only) means the
// classifier let a write through: it is logged and counted, and the statement runs on the
// primary if nothing of the replica's answer reached the client yet.
func (s *Session) run(r route, cmd command) (*backend.Conn, wire.Result, error) {
	mark := s.cl.Mark()
	target := cmd.target
	for attempt := 0; ; attempt++ {
		var c *backend.Conn
		var err error
		if target != nil {
			c, err = target()
		} else {
			c, err = s.conn(r)
		}
		if errors.Is(err, errLost) {
			s.reply(cmd.seq+1, wire.AppendErr(nil, crServerGone, "HY000", "MySQL server has gone away"))
			s.cl.W.Flush()
			return nil, wire.Result{}, err
		}
		if err != nil {
			return nil, wire.Result{}, s.replyErr(cmd.seq, err)
		}
		payload := cmd.payload
		if cmd.forConn != nil {
			if payload, err = cmd.forConn(c); err != nil {
				var ep *wire.ErrPacket
				if errors.As(err, &ep) || errors.Is(err, errMalformed) {
					return nil, wire.Result{}, s.replyErr(cmd.seq, err)
				}
				cause := err
				if retry, err := s.failed(c, wire.Result{}, err, attempt); err != nil {
					return nil, wire.Result{}, err
				} else if retry {
					continue
				}
				return nil, wire.Result{}, s.reply(cmd.seq+1, lostConnection(cause))
			}
		}
		var ch changes
		res, err := s.exchange(c, payload, cmd, true, &ch)
		if err == nil {
			if res.Err != nil && res.Err.Code == mysql.ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION && c.Login.ReadOnly && s.tx == nil {
				s.refused(c, cmd.payload)
				if s.cl.Unsend(mark) {
					r, target = routePrimary, nil
					continue
				}
			}
			s.learn(c, &ch, cmd.class, cmd.explained, res.Err == nil)
			return c, res, nil
		}
		onReplica := c.Login.ReadOnly && s.tx != c
		cause := err
		retry, err := s.failed(c, res, err, attempt)
		if err != nil {
			return nil, res, err
		}
		if retry && (onReplica || cmd.class.Read && len(cmd.class.Funcs) == 0) {
			s.stats.Retries++
			continue
		}
		return nil, res, s.reply(cmd.seq+1, lostConnection(cause))
	}
}

// errMalformed is a client command the proxy cannot read.
var errMalformed = errors.New("malformed packet")

// replyErr answers a command with err: a server's ERR as it is, a malformed command as the
// server would, anything else as no server being available.
func (s *Session) replyErr(seq byte, err error) error {
	var ep *wire.ErrPacket
	switch {
	case errors.As(err, &ep):
		return s.reply(seq+1, wire.AppendErr(nil, ep.Code, ep.State, ep.Message))
	case errors.Is(err, errMalformed):
		return s.reply(seq+1, wire.NewError(mysql.ER_MALFORMED_PACKET))
	}
	return s.reply(seq+1, s.unavailable(err))
}

// refused logs and counts a statement a replica's read-only session refused.
func (s *Session) refused(c *backend.Conn, payload []byte) {
	s.cfg.Counters.ReplicaRefusals.Add(1)
	text := payload[1:]
	if payload[0] != mysql.COM_QUERY {
		text = nil
	}
	if len(text) > 512 {
		text = text[:512]
	}
	s.cfg.logger().Warn("a replica refused a statement routed to it as a read (its session is read-only): "+
		"a classifier bug, please report it; the statement runs on the primary if the client got nothing yet",
		"server", c.Key.Addr, "command", payload[0], "statement", string(text))
}

// lostConnection is MySQL's client error 2013, sent when a server failed before answering;
// the message says why when the proxy gave up on it.
func lostConnection(err error) []byte {
	msg := "Lost connection to server during query"
	switch {
	case errors.Is(err, backend.ErrServerDown):
		msg += ": the server stopped answering its health checks"
	case errors.Is(err, backend.ErrReadTimeout):
		msg += ": no answer within mysql.read_timeout"
	}
	return wire.AppendErr(nil, crServerLost, "HY000", msg)
}

const (
	crServerGone     = 2006
	crServerLost     = 2013
	crConnHostError  = 2003
	errNoBackendText = "no backend server available"
)

// unavailable is the client's error when no server could be had. A server's refusal of the
// login (a MySQL error) is passed on by code; the rest names the upstream, never a server's
// address (that is logged).
func (s *Session) unavailable(err error) []byte {
	s.cfg.logger().Warn("no backend connection", "err", err)
	var me *mysql.MyError
	if errors.As(err, &me) && me.Code != mysql.ER_ACCESS_DENIED_ERROR && me.Code != mysql.ER_HOST_NOT_PRIVILEGED {
		return wire.AppendErr(nil, me.Code, me.State, me.Message)
	}
	if me != nil {
		return wire.AppendErr(nil, me.Code, me.State, fmt.Sprintf("%s: the servers refused the login of %q", errNoBackendText, s.cl.User.Name))
	}
	var unknown *checkups.UnknownUpstreamError
	var limit *backend.LimitError
	switch {
	case errors.As(err, &limit) && limit.Queue:
		return wire.AppendErr(nil, mysql.ER_CON_COUNT_ERROR, "08004", fmt.Sprintf(
			"Too many connections: the queue of sessions waiting for a connection to a server of %q is full (limit %d connections)", s.write, limit.Limit))
	case errors.As(err, &limit):
		return wire.AppendErr(nil, mysql.ER_CON_COUNT_ERROR, "08004", fmt.Sprintf(
			"Too many connections: all %d connections mysql-proxy may open to a server of %q are in use (waited %v; mysql.pool.max_conns, max_conns)",
			limit.Limit, s.write, limit.Waited))
	case errors.As(err, &unknown):
		return wire.AppendErr(nil, crConnHostError, "HY000", fmt.Sprintf("%s: no upstream %q", errNoBackendText, unknown.Name))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, checkups.ErrTryTimeout):
		return wire.AppendErr(nil, crConnHostError, "HY000", errNoBackendText+": the servers did not answer in time")
	}
	return wire.AppendErr(nil, crConnHostError, "HY000", errNoBackendText+": no server of the upstream could be reached")
}

// forward runs a command of route r whose response needs nothing else from the session.
func (s *Session) forward(r route, payload []byte, seq byte, kind wire.Kind, class sqlclass.Class) error {
	_, _, err := s.run(r, command{payload: payload, seq: seq, kind: kind, class: class})
	return err
}

// count records where a statement of route r ran, for the access log and the metrics: a read
// on a replica, a write (anything on the primary that is not a read), or a read the primary
// served (no usable replica, consistency, a transaction or a pin).
func (s *Session) count(c *backend.Conn, r route) {
	switch {
	case c == s.replica:
		s.stats.Reads++
		s.cfg.Counters.Reads.Add(1)
	case r == routeRead || r == routeLast:
		s.stats.Writes++
		s.cfg.Counters.PrimaryReads.Add(1)
	default:
		s.stats.Writes++
		s.cfg.Counters.Writes.Add(1)
	}
}
