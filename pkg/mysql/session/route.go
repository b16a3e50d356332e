package session

import (
	"errors"
	"strings"
	"time"

	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// routeOf is where a statement of class c wants to run (see routeFor).
func (s *Session) routeOf(c sqlclass.Class) route { return routeFor(c, s.vouched) }

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

// choose takes the connection decide names for a command of route r.
func (s *Session) choose(r route) (*backend.Conn, error) {
	w, windowed := decide(s.facts(r))
	switch w {
	case whereTx:
		return s.tx, nil
	case whereLast:
		return s.last, nil
	case whereHeld:
		if s.primary != nil {
			return s.primary, nil
		}
		return s.replica, nil
	case whereReplica:
		return s.readConn()
	}
	if windowed {
		s.countWindowRead()
	}
	return s.primaryConn()
}

// facts are the session's state as decide reads it, for a command of route r.
func (s *Session) facts(r route) facts {
	return facts{route: r, inTx: s.tx != nil, pinned: s.pinned,
		autocommitOff: s.primary != nil && s.primary.Status&wire.StatusAutocommit == 0,
		inWindow:      s.inWindow(), hasLast: s.last != nil, holdsPrimary: s.primary != nil, holdsReplica: s.replica != nil}
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
	if s.replica != nil && s.replica.Usable != nil && !s.replica.Usable() {
		s.drop(s.replica, true) // its server lags or failed its checks since: choose again
	}
	if s.replica == nil && s.cfg.Registry.Has(s.read) {
		c, err := s.acquire(s.read, true)
		if err == nil {
			s.replica = c
			if s.cfg.fallback.Swap(false) {
				s.cfg.logger().Info("reads are back on the replicas", "read_upstream", s.read)
			}
		} else if !s.cfg.fallback.Swap(true) {
			msg := "no usable replica: reads go to the primary"
			var limit *backend.LimitError
			if errors.As(err, &limit) {
				msg = "every connection the pool may open to the replicas is in use: reads go to the primary"
			}
			s.cfg.logger().Warn(msg, "read_upstream", s.read, "err", err)
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
