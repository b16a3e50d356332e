package session

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/rules"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// query runs a COM_QUERY. CONNECTION_ID() answers the id the proxy announced; a KILL of a
// session's id or user is the proxy's to run (KILL QUERY ID names the server's own query ids:
// it goes to the server, as a statement of the session).
func (s *Session) query(payload []byte, seq byte) error {
	written := payload
	payload = s.ownConnectionID(payload)
	if k, ok := sqlclass.ParseKill(string(payload[1:]), s.mode()); ok && !k.QueryID {
		return s.kill(k, seq)
	}
	start := time.Now()
	d := s.rulesFor(string(payload[1:]))
	if d.Reject != nil {
		if s.cfg.Digests != nil {
			text, id := sqlclass.Digest(string(payload[1:]), s.mode())
			s.recordDigest(nil, routePrimary, sqlclass.Class{}, start, wire.Result{}, errRejected, text, id)
		}
		return s.reject(d, seq)
	}
	if d.Rewritten {
		payload = append([]byte{payload[0]}, d.Text...)
	}
	class := s.classify(written, payload, d)
	if class.Pin && !s.pinned {
		s.pinned = true
	}
	r := ruleRoute(s.routeOf(class), d)
	target, done := s.ruleTarget(d, class)
	stop := s.ruleTimeout(d)
	c, res, err := s.run(r, command{payload: payload, seq: seq, kind: wire.Results, class: class, explained: class.Session, target: target})
	stop()
	s.mirror(d, string(payload[1:]))
	if s.cfg.Digests != nil {
		text, id := sqlclass.Digest(string(payload[1:]), s.mode())
		s.recordDigest(c, r, class, start, res, err, text, id)
	}
	if target != nil {
		if err == nil && c != nil {
			s.count(c, r, class)
		}
		done()
		return err
	}
	if err != nil || c == nil {
		return err
	}
	s.count(c, r, class)
	if r == routePrimary && !class.Session && !class.HintedRead {
		s.lastWrite = time.Now()
	}
	return nil
}

// classify classifies a statement as the client wrote it (written), unless a rule rewrote it:
// CONNECTION_ID() replaced by the announced id (payload) is still a statement for the primary,
// where the thread of that id is.
func (s *Session) classify(written, payload []byte, d rules.Decision) sqlclass.Class {
	if d.Rewritten {
		return sqlclass.Classify(string(payload[1:]), s.mode())
	}
	return sqlclass.Classify(string(written[1:]), s.mode())
}

// ownConnectionID is a COM_QUERY or COM_STMT_PREPARE payload with CONNECTION_ID() replaced by
// the id the client was told, unless the statement will run on the connection whose thread id
// that is (its anchor: a statement with CONNECTION_ID() goes to the primary).
func (s *Session) ownConnectionID(payload []byte) []byte {
	if s.idIsThread() {
		return payload
	}
	sql, ok := sqlclass.ReplaceConnectionID(string(payload[1:]), s.mode(), s.cl.ConnID)
	if !ok {
		return payload
	}
	return append([]byte{payload[0]}, sql...)
}

// idIsThread reports whether a statement for the primary runs on the connection whose thread
// id the handshake announced.
func (s *Session) idIsThread() bool {
	switch {
	case s.tx != nil:
		return s.tx.ThreadID == s.cl.ConnID
	case s.primary != nil:
		return s.primary.ThreadID == s.cl.ConnID
	}
	return s.anchor != nil && s.anchor.ThreadID() == s.cl.ConnID
}

// initDB runs COM_INIT_DB on the primary; the other connections get it before their next use.
func (s *Session) initDB(payload []byte, seq byte) error {
	s.stats.Queries++
	c, _, err := s.run(routePrimary, command{payload: payload, seq: seq, kind: wire.Simple, explained: true})
	if err != nil || c == nil {
		return err
	}
	s.count(c, routePrimary, sqlclass.Class{})
	return nil
}

// setOption is COM_SET_OPTION (multi-statements on or off): run on the primary, whose answer
// the client gets; recorded only when the server accepted it, and then set on the other
// connections before their next use.
func (s *Session) setOption(payload []byte, seq byte) error {
	if len(payload) < 3 {
		return s.reply(seq+1, wire.NewError(mysql.ER_MALFORMED_PACKET))
	}
	c, res, err := s.run(routePrimary, command{payload: payload, seq: seq, kind: wire.Simple, explained: true})
	if err != nil || c == nil || res.Err != nil {
		return err
	}
	s.st.multi = binary.LittleEndian.Uint16(payload[1:]) == mysql.MYSQL_OPTION_MULTI_STATEMENTS_ON
	c.Multi = s.st.multi // the next session's sync sets its own option
	return nil
}

// reset is COM_RESET_CONNECTION. As on a server, the session keeps its thread: its primary
// connection is reset in place (so CONNECTION_ID() and the processlist still agree), the
// replica's goes back to the pool, and the session forgets its variables, pins and prepared
// statements (the schema and the multi-statement option stay). A connection the reset fails
// on is closed; the next statement takes another (a relayed login cannot: it gets the error).
func (s *Session) reset() {
	c := s.forget()
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	if err := c.Reset(ctx); err != nil {
		s.cfg.logger().Info("resetting the session's server connection", "server", c.Key.Addr, "err", err)
		s.drop(c, true)
	}
}

// forget gives the replica's connection back to the pool and forgets what the session set:
// its transaction, pins (but a relayed login's), variables and prepared statements. It keeps
// the primary connection, which it returns (nil when it has none), for the caller to reset.
func (s *Session) forget() *backend.Conn {
	c := s.primary
	s.primary = nil
	s.release()
	s.pinned, s.tx, s.last = s.relayedLogin, nil, nil
	s.st.vars, s.st.gen, s.st.modeGen = nil, 0, 0
	clear(s.st.applied)
	clear(s.stmts)
	if c != nil {
		s.primary = c
		s.st.applied[c] = 0
	}
	return c
}

// changeUser is COM_CHANGE_USER: the client logs in again as another user (or the same). A
// failed login leaves the session as it was, as on a server.
func (s *Session) changeUser(payload []byte, seq byte) error {
	u, schema, collation, err := s.cfg.Front.ChangeUser(s.cl, payload, seq)
	if err != nil {
		return err
	}
	if u == nil {
		return nil // refused: the client got the ERR and keeps its session
	}
	c := s.forget()
	s.userMu.Lock()
	s.cl.User = *u
	s.userMu.Unlock()
	s.loginAttrs = nil // the client's attributes are those of its new login
	s.st.schema = schema
	if collation != 0 {
		s.cl.Collation, s.st.charset, s.st.modeGen = collation, "", 0
	}
	s.stats.User = u.Name
	s.relayedLogin, s.pinned = false, false // the new user is one the proxy logs in itself
	if c == nil {
		return nil
	}
	// As on a server, the session keeps its thread: the primary connection changes user.
	_, login := s.key0(false)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 2*s.cfg.Registry.Timeout(s.write))
	defer cancel()
	if err := c.ChangeUser(ctx, login); err != nil {
		s.cfg.logger().Info("changing the user of the session's server connection", "server", c.Key.Addr, "err", err)
		s.drop(c, true) // the next statement logs in anew, and gets the servers' answer
	}
	return nil
}
