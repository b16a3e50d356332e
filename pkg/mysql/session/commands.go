package session

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// query runs a COM_QUERY. CONNECTION_ID() answers the id the proxy announced; a KILL of a
// session's id is the proxy's to run.
func (s *Session) query(payload []byte, seq byte) error {
	payload = s.ownConnectionID(payload)
	if k, ok := sqlclass.ParseKill(string(payload[1:]), s.mode()); ok {
		return s.kill(k, seq)
	}
	class := sqlclass.Classify(string(payload[1:]), s.mode())
	if class.Pin && !s.pinned {
		s.pinned = true
	}
	r := s.routeOf(class)
	c, _, err := s.run(r, command{payload: payload, seq: seq, kind: wire.Results, class: class, explained: class.Session})
	if err != nil || c == nil {
		return err
	}
	s.count(c, r)
	if r == routePrimary && !class.Session {
		s.lastWrite = time.Now()
	}
	return nil
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
	s.count(c, routePrimary)
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
	c.Multi, c.Dirty = s.st.multi, true
	return nil
}

// reset is COM_RESET_CONNECTION: the connections go back to the pool (where they are reset),
// and the session forgets its variables, pins and prepared statements (the schema and the
// multi-statement option stay, as on a server).
func (s *Session) reset() {
	if s.relayedLogin {
		s.resetRelayed()
		return
	}
	s.release()
	s.pinned, s.tx, s.last = false, nil, nil
	s.st.vars, s.st.gen, s.st.modeGen = nil, 0, 0
	clear(s.st.applied)
	clear(s.stmts)
}

// resetRelayed is COM_RESET_CONNECTION of a session that logged in through its server
// connection: reset there (the proxy could not log in again).
func (s *Session) resetRelayed() {
	c := s.primary
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	err := c.Exec(ctx, mysql.COM_RESET_CONNECTION, "")
	if err == nil {
		err = c.Retrack(ctx)
	}
	if err != nil {
		s.drop(c, true) // the next statement cannot log in again: it gets the error
	}
	s.tx, s.last = nil, nil
	s.st.vars, s.st.gen, s.st.modeGen = nil, 0, 0
	s.st.applied[c] = 0
	clear(s.stmts)
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
	s.reset()
	s.userMu.Lock()
	s.cl.User = *u
	s.userMu.Unlock()
	s.st.schema = schema
	if collation != 0 {
		s.cl.Collation, s.st.charset, s.st.modeGen = collation, "", 0
	}
	s.stats.User = u.Name
	return nil
}
