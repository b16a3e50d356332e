package session

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
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

// routeOf is a statement class's route.
func routeOf(c sqlclass.Class) route {
	switch {
	case c.Last:
		return routeLast
	case c.Read || c.ReadOnlyTx:
		return routeRead
	}
	return routePrimary
}

// conn returns the connection a command of route r runs on: the open transaction's, the
// primary while the session is pinned or not in autocommit, else what r asks for. The
// connection has the session's schema and state. A replica that refused the state, or failed
// while the proxy made it consistent, is dropped and the choice made again.
func (s *Session) conn(r route) (*backend.Conn, error) {
	for range 3 {
		c, err := s.choose(r)
		if !errors.Is(err, errRetry) {
			return c, err
		}
	}
	return s.choose(routePrimary)
}

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
		c, err := s.acquire(s.write)
		if err != nil {
			return nil, err
		}
		s.primary = c
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
		s.drop(s.replica, false) // its server lags or failed its checks since: choose again
	}
	if s.replica == nil && s.cfg.Registry.Has(s.read) {
		c, err := s.acquire(s.read)
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
// health, retry): an idle one of the pool or a new login.
func (s *Session) acquire(upstream string) (*backend.Conn, error) {
	user, password := s.cl.User.Name, s.cl.User.Password
	if s.cfg.Backend != nil {
		user, password = s.cfg.Backend(s.cl.User)
	}
	key := backend.Key{User: user, Password: password, Caps: s.cl.Capabilities & backend.Framing,
		Collation: s.cl.Collation, Schema: s.schema}
	if s.cfg.Consistency.tracksGTIDs() {
		key.Caps |= mysql.CLIENT_SESSION_TRACK // writes report their GTID; stripped for a client without it
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.Registry.Timeout(upstream)+time.Second)
	defer cancel()
	var c *backend.Conn
	peer, _, err := s.cfg.Registry.Try(ctx, upstream, s.key, func(ctx context.Context, p checkups.Peer) error {
		k := key
		k.Addr = p.Addr()
		conn, err := s.cfg.Pool.Get(ctx, k, s.schema)
		c = conn
		return err
	})
	if err != nil {
		return nil, err
	}
	c.Release, c.Usable = peer.Acquire(), peer.Usable
	if !slices.Contains(s.stats.Backends, peer.Addr()) {
		s.stats.Backends = append(s.stats.Backends, peer.Addr())
	}
	s.applied[c] = 0
	return c, nil
}

// sync brings c to the session's schema and replays the session state it has not seen.
func (s *Session) sync(c *backend.Conn) error {
	if (s.schema == "" || c.Schema == s.schema) && s.applied[c] == len(s.state) {
		return nil // the common case, checked first: no timer for a context per command
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	if s.schema != "" && c.Schema != s.schema {
		if err := c.Exec(ctx, mysql.COM_INIT_DB, s.schema); err != nil {
			return s.replayFailed(c, err)
		}
		c.Schema = s.schema
	}
	for i := s.applied[c]; i < len(s.state); i++ {
		cmd := s.state[i]
		if err := c.Exec(ctx, cmd[0], string(cmd[1:])); err != nil {
			return s.replayFailed(c, err)
		}
		if cmd[0] == mysql.COM_SET_OPTION {
			c.Dirty = true
		}
		s.applied[c] = i + 1
	}
	return nil
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
	delete(s.applied, c)
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
	c.Key.Schema = c.Schema
	s.cfg.Pool.Put(c)
}

// release ends the session's hold on its connections.
func (s *Session) release() {
	s.drop(s.replica, false)
	s.drop(s.primary, false)
}

// exchange sends one command to c and relays its response to the client (or, with rl.To nil,
// discards it). It records the transaction state and the connection that ran last.
func (s *Session) exchange(c *backend.Conn, payload []byte, seq byte, kind wire.Kind, toClient bool, prepareID func(uint32) uint32) (wire.Result, error) {
	if _, err := c.WritePayload(0, payload); err != nil { // a command starts at 0 (seq is the last packet of the client's)
		return wire.Result{}, err
	}
	if err := c.W.Flush(); err != nil {
		return wire.Result{}, err
	}
	rl := wire.Relay{From: c.R, DeprecateEOF: c.Has(mysql.CLIENT_DEPRECATE_EOF), SessionTrack: c.Has(mysql.CLIENT_SESSION_TRACK),
		StripSessionTrack: !s.cl.Has(mysql.CLIENT_SESSION_TRACK), PrepareID: prepareID}
	if s.cfg.Consistency.tracksGTIDs() {
		rl.OnState = s.track
	}
	if toClient {
		rl.To = s.cl.W
		if s.cl.Has(mysql.CLIENT_LOCAL_FILES) {
			rl.LocalInfile = func() error { return wire.DrainLocalInfile(s.cl.R, c.W) }
		}
	}
	res, err := rl.Relay(kind)
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

// setTx records the connection holding the open transaction (nil: none); the drain reads inTx.
func (s *Session) setTx(c *backend.Conn) {
	s.tx = c
	s.inTx.Store(c != nil)
}

// run sends a client command on the connection of route r and relays the response. A server
// that fails before the response started is dropped; a read outside a transaction is then
// run again on another server, any other command gets MySQL's "lost connection" error. A
// failure after the response started ends the client connection (its framing is lost), and
// so does losing the connection that holds a transaction.
func (s *Session) run(r route, payload []byte, seq byte, kind wire.Kind) (*backend.Conn, wire.Result, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.conn(r)
		if err != nil {
			var ep *wire.ErrPacket
			if errors.As(err, &ep) {
				return nil, wire.Result{Err: ep}, s.reply(seq+1, wire.AppendErr(nil, ep.Code, ep.State, ep.Message))
			}
			return nil, wire.Result{}, s.reply(seq+1, unavailable(err))
		}
		res, err := s.exchange(c, payload, seq, kind, true, nil)
		if err == nil {
			return c, res, nil
		}
		retry, err := s.failed(c, res, err, attempt)
		if err != nil {
			return nil, res, err
		}
		if retry && r == routeRead {
			s.stats.Retries++
			continue
		}
		return nil, res, s.reply(seq+1, lostConnection())
	}
}

// lostConnection is MySQL's client error 2013, sent when a server failed before answering.
func lostConnection() []byte {
	return wire.AppendErr(nil, crServerLost, "HY000", "Lost connection to server during query")
}

const crServerLost = 2013

// unavailable is the client's error when no server could be reached.
func unavailable(err error) []byte {
	return wire.AppendErr(nil, mysql.ER_CON_COUNT_ERROR, "08004", "no backend server available: "+err.Error())
}

// forward runs a command of route r whose response needs nothing else from the session.
func (s *Session) forward(r route, payload []byte, seq byte, kind wire.Kind) error {
	_, _, err := s.run(r, payload, seq, kind)
	return err
}

// query runs a COM_QUERY.
func (s *Session) query(payload []byte, seq byte) error {
	sql := string(payload[1:])
	class := sqlclass.Classify(sql)
	if class.Pin && !s.pinned {
		s.pinned = true
	}
	r := routeOf(class)
	if class.Session {
		r = routePrimary
	}
	c, res, err := s.run(r, payload, seq, wire.Results)
	if err != nil || c == nil {
		return err
	}
	s.count(c, r)
	if r == routePrimary && !class.Session {
		s.lastWrite = time.Now()
	}
	if res.Err != nil {
		return nil
	}
	switch {
	case class.Verb == "USE":
		if db := sqlclass.UseSchema(sql); db != "" {
			s.schema, c.Schema = db, db
		}
	case class.Session:
		s.state = append(s.state, payload)
		s.applied[c] = len(s.state)
	}
	return nil
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

// initDB runs COM_INIT_DB on the primary; the other connections get it before their next use.
func (s *Session) initDB(payload []byte, seq byte) error {
	s.stats.Queries++
	c, res, err := s.run(routePrimary, payload, seq, wire.Simple)
	if err != nil || c == nil {
		return err
	}
	s.count(c, routePrimary)
	if res.Err != nil {
		return nil
	}
	s.schema = string(payload[1:])
	c.Schema = s.schema
	return nil
}

// setOption is COM_SET_OPTION (multi-statements on or off): recorded, applied to the held
// connections now and to later ones when they are first used; answered with EOF as a server does.
func (s *Session) setOption(payload []byte, seq byte) error {
	s.state = append(s.state, payload)
	for _, c := range []*backend.Conn{s.primary, s.replica} {
		if c != nil {
			if err := s.sync(c); err != nil && !errors.Is(err, errRetry) {
				return s.reply(seq+1, lostConnection())
			}
		}
	}
	if s.cl.Has(mysql.CLIENT_DEPRECATE_EOF) {
		return s.reply(seq+1, wire.AppendOK(nil, wire.HeaderEOF, wire.OK{Status: s.status()}, s.cl.Has(mysql.CLIENT_SESSION_TRACK)))
	}
	return s.reply(seq+1, []byte{wire.HeaderEOF, 0, 0, byte(s.status()), byte(s.status() >> 8)})
}

// reset is COM_RESET_CONNECTION: the connections go back to the pool (where they are reset),
// and the session forgets its state, pins and prepared statements.
func (s *Session) reset() {
	s.release()
	s.state, s.pinned, s.tx, s.last = nil, false, nil, nil
	clear(s.stmts)
}

// changeUser is COM_CHANGE_USER: the client logs in again as another user (or the same).
func (s *Session) changeUser(payload []byte, seq byte) error {
	u, schema, err := s.cfg.Front.ChangeUser(s.cl, payload, seq)
	if err != nil {
		return err // the client got the ERR; as MySQL, the connection ends
	}
	s.reset()
	s.cl.User, s.schema = u, schema
	s.stats.User = u.Name
	return nil
}
