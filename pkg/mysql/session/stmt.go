package session

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/rules"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// stmt is a prepared statement as the client knows it: the proxy's id, mapped to the
// statement's id on every backend connection it was prepared on (lazily, the first time it
// runs there).
type stmt struct {
	id       uint32
	sql      []byte // the COM_STMT_PREPARE payload
	digest   string // its query digest and the digest's id, computed once (when digests are kept)
	digestID uint64
	rule     rules.Decision // what the query rules said at prepare (destination and timeout apply to executions)
	class    sqlclass.Class
	params   int
	ids      map[*backend.Conn]uint32 // the statement's id on each connection it is prepared on
	types    []byte                   // the parameter types the client last sent
	typesOn  map[*backend.Conn]bool   // connections that have seen those types
	exec     *backend.Conn            // where it last ran (COM_STMT_FETCH goes there)
	long     *backend.Conn            // where long data waits for the next execution
	cursor   bool                     // an execution asked for a cursor (multiplexing keeps the connection)
}

// forget drops what the statement knows of a connection the session let go of.
func (st *stmt) forget(c *backend.Conn) {
	delete(st.ids, c)
	delete(st.typesOn, c)
	if st.exec == c {
		st.exec = nil
	}
	if st.long == c {
		st.long = nil
	}
}

func (s *Session) maxStmts() int {
	if s.cfg.MaxStmts > 0 {
		return s.cfg.MaxStmts
	}
	return DefaultMaxStmts
}

// prepare is COM_STMT_PREPARE: prepared where the statement would run; the client gets the
// proxy's statement id.
func (s *Session) prepare(payload []byte, seq byte) error {
	if len(s.stmts) >= s.maxStmts() {
		return s.reply(seq+1, wire.NewError(mysql.ER_MAX_PREPARED_STMT_COUNT_REACHED, s.maxStmts()))
	}
	written := payload
	payload = s.ownConnectionID(payload)
	d := s.rulesFor(string(payload[1:]))
	if d.Reject != nil {
		return s.reject(d, seq)
	}
	if d.Rewritten {
		payload = append([]byte{payload[0]}, d.Text...)
	}
	class := s.classify(written, payload, d)
	if class.Pin {
		s.pinned = true
	}
	s.nextStmt++
	if s.nextStmt == 0 {
		s.nextStmt++
	}
	id := s.nextStmt
	c, res, err := s.run(s.routeOf(class), command{payload: payload, seq: seq, kind: wire.Prepare, class: class,
		explained: true, prepareID: func(uint32) uint32 { return id }})
	if err != nil || c == nil || res.Err != nil {
		return err
	}
	s.stmts[id] = &stmt{id: id, sql: payload, class: class, params: res.Stmt.Params, rule: d,
		ids: map[*backend.Conn]uint32{c: res.Stmt.ID}, typesOn: map[*backend.Conn]bool{}}
	return nil
}

// serverFailed handles a server connection that failed during a statement: it is dropped; the
// statement is run again elsewhere when retryable and nothing of its response had reached the
// client, outside a transaction; or the client connection must end (an error is returned).
func (s *Session) serverFailed(c *backend.Conn, res wire.Result, err error, retryable bool) (retry bool, _ error) {
	inTx := s.tx == c
	s.cfg.logger().Warn("backend connection failed", "server", c.Key.Addr, "err", err)
	s.drop(c, true)
	if res.Started || inTx {
		return false, fmt.Errorf("backend %s failed: %w", c.Key.Addr, err)
	}
	return retryable, nil
}

// lookup finds the statement of a command's id (bytes 1..4 of the payload).
func (s *Session) lookup(payload []byte, seq byte, what string) (*stmt, error) {
	if len(payload) < 5 {
		return nil, s.reply(seq+1, wire.NewError(mysql.ER_MALFORMED_PACKET))
	}
	id := binary.LittleEndian.Uint32(payload[1:])
	st := s.stmts[id]
	if st == nil {
		idText := strconv.FormatUint(uint64(id), 10)
		return nil, s.reply(seq+1, wire.NewError(mysql.ER_UNKNOWN_STMT_HANDLER, len(idText), idText, what))
	}
	return st, nil
}

// preparedOn makes sure st is prepared on c and returns its id there.
func (s *Session) preparedOn(st *stmt, c *backend.Conn) (uint32, error) {
	if id, ok := st.ids[c]; ok {
		return id, nil
	}
	res, err := s.exchange(c, st.sql, command{kind: wire.Prepare}, toNobody, nil)
	if err != nil {
		return 0, err
	}
	if res.Err != nil {
		return 0, res.Err
	}
	st.ids[c] = res.Stmt.ID
	return res.Stmt.ID, nil
}

// target is the connection a statement's execution (or long data) goes to.
func (s *Session) target(st *stmt) (*backend.Conn, error) {
	if st.long != nil && s.tx == nil {
		return st.long, nil
	}
	return s.conn(ruleRoute(s.routeOf(st.class), st.rule))
}

// execute is COM_STMT_EXECUTE: on the connection its class and the session's state choose,
// prepared there first if needed, with the proxy's id replaced and the parameter types sent
// again to a connection that has not seen them.
func (s *Session) execute(payload []byte, seq byte) error {
	st, err := s.lookup(payload, seq, "mysqld_stmt_execute")
	if st == nil {
		return err
	}
	r := ruleRoute(s.routeOf(st.class), st.rule)
	start := time.Now()
	st.cursor = st.cursor || len(payload) > 5 && payload[5] != 0
	stop := s.ruleTimeout(st.rule)
	defer stop()
	c, res, err := s.run(r, command{payload: payload, seq: seq, kind: wire.Results, class: st.class, explained: st.class.Session,
		cursor: len(payload) > 5 && payload[5] != 0,
		target: func() (*backend.Conn, error) { return s.target(st) },
		forConn: func(c *backend.Conn) ([]byte, error) {
			id, err := s.preparedOn(st, c)
			if err != nil {
				return nil, err
			}
			cmd, err := st.rewrite(payload, id, c)
			if err != nil {
				return nil, errMalformed
			}
			st.long = nil
			return cmd, nil
		}})
	s.recordStmtDigest(st, c, r, start, res, err)
	if err != nil || c == nil {
		return err
	}
	st.exec = c
	s.count(c, r, st.class)
	if r == routePrimary && !st.class.HintedRead {
		s.lastWrite = time.Now()
	}
	return nil
}

// comStmtBulkExecute is MariaDB's COM_STMT_BULK_EXECUTE (MARIADB_CLIENT_STMT_BULK_OPERATIONS):
// a prepared statement run for many rows of parameters at once.
const comStmtBulkExecute = 0xFA

// bulkExecute is COM_STMT_BULK_EXECUTE: as execute, on the connection the statement's class
// chooses, prepared there first, with the proxy's id replaced (the parameter types travel with
// the command when the client sends them).
func (s *Session) bulkExecute(payload []byte, seq byte) error {
	st, err := s.lookup(payload, seq, "mysqld_stmt_bulk_execute")
	if st == nil {
		return err
	}
	r := s.routeOf(st.class)
	start := time.Now()
	c, res, err := s.run(r, command{payload: payload, seq: seq, kind: wire.Results, class: st.class, explained: st.class.Session,
		target: func() (*backend.Conn, error) { return s.target(st) },
		forConn: func(c *backend.Conn) ([]byte, error) {
			id, err := s.preparedOn(st, c)
			if err != nil {
				return nil, err
			}
			cmd := append([]byte(nil), payload...)
			binary.LittleEndian.PutUint32(cmd[1:], id)
			return cmd, nil
		}})
	s.recordStmtDigest(st, c, r, start, res, err)
	if err != nil || c == nil {
		return err
	}
	st.exec = c
	s.count(c, r, st.class)
	if r == routePrimary && !st.class.HintedRead {
		s.lastWrite = time.Now()
	}
	return nil
}

// rewrite is an execute payload for connection c: its statement id, and the parameter types
// included when the client left them out (it sent them before, to another connection).
func (st *stmt) rewrite(payload []byte, id uint32, c *backend.Conn) ([]byte, error) {
	out := append([]byte(nil), payload...)
	binary.LittleEndian.PutUint32(out[1:], id)
	if st.params == 0 {
		return out, nil
	}
	nullBitmap := (st.params + 7) / 8
	flagAt := 10 + nullBitmap
	if len(out) <= flagAt {
		return nil, fmt.Errorf("short execute packet")
	}
	if out[flagAt] == 1 {
		end := flagAt + 1 + 2*st.params
		if len(out) < end {
			return nil, fmt.Errorf("short execute packet")
		}
		st.types = append(st.types[:0], out[flagAt+1:end]...)
		st.typesOn = map[*backend.Conn]bool{c: true}
		return out, nil
	}
	if st.typesOn[c] || st.types == nil {
		return out, nil
	}
	st.typesOn[c] = true
	withTypes := append(append(append([]byte(nil), out[:flagAt]...), 1), st.types...)
	return append(withTypes, out[flagAt+1:]...), nil
}

// longData is COM_STMT_SEND_LONG_DATA (no response): to where the next execution will run.
func (s *Session) longData(payload []byte) error {
	if len(payload) < 7 {
		return nil
	}
	st := s.stmts[binary.LittleEndian.Uint32(payload[1:])]
	if st == nil {
		return nil // as a server: no answer, the execution will fail
	}
	c, err := s.target(st)
	if err != nil {
		return nil
	}
	id, err := s.preparedOn(st, c)
	if err != nil {
		return nil
	}
	cmd := append([]byte(nil), payload...)
	binary.LittleEndian.PutUint32(cmd[1:], id)
	if _, err := c.WritePayload(0, cmd); err != nil {
		s.drop(c, true)
		return nil
	}
	if err := c.W.Flush(); err != nil {
		s.drop(c, true)
		return nil
	}
	st.long = c
	return nil
}

// closeStmt is COM_STMT_CLOSE (no response): closed on every connection it was prepared on.
func (s *Session) closeStmt(payload []byte) error {
	if len(payload) < 5 {
		return nil
	}
	id := binary.LittleEndian.Uint32(payload[1:])
	st := s.stmts[id]
	if st == nil {
		return nil
	}
	delete(s.stmts, id)
	for c, sid := range st.ids {
		cmd := binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_CLOSE}, sid)
		if _, err := c.WritePayload(0, cmd); err == nil {
			c.W.Flush()
		}
	}
	return nil
}

// resetStmt is COM_STMT_RESET: on the connection the statement last ran on (or where long
// data waits); a statement that never ran has nothing to reset.
func (s *Session) resetStmt(payload []byte, seq byte) error {
	st, err := s.lookup(payload, seq, "mysqld_stmt_reset")
	if st == nil {
		return err
	}
	c := st.long
	if c == nil {
		c = st.exec
	}
	if c == nil {
		return s.ok(seq + 1)
	}
	st.long = nil
	return s.onStmtConn(c, st, payload, seq, wire.Simple)
}

// onStmtConn relays a command about st to the one connection that has its state (a cursor,
// long data): no other server can answer it, so a failure is not retried.
func (s *Session) onStmtConn(c *backend.Conn, st *stmt, payload []byte, seq byte, kind wire.Kind) error {
	cmd := append([]byte(nil), payload...)
	binary.LittleEndian.PutUint32(cmd[1:], st.ids[c])
	var ch changes
	res, err := s.exchange(c, cmd, command{kind: kind}, toClient, &ch)
	if err != nil {
		cause := err
		if _, err = s.serverFailed(c, res, err, false); err != nil {
			return err
		}
		return s.reply(seq+1, lostConnection(cause))
	}
	s.learn(c, &ch, st.class, false, res.Err == nil)
	return nil
}

// fetch is COM_STMT_FETCH: rows of the cursor of the connection the statement ran on.
func (s *Session) fetch(payload []byte, seq byte) error {
	st, err := s.lookup(payload, seq, "mysqld_stmt_fetch")
	if st == nil {
		return err
	}
	c := st.exec
	if c == nil {
		return s.reply(seq+1, wire.AppendErr(nil, mysql.ER_STMT_HAS_NO_OPEN_CURSOR, "HY000", "The statement has no open cursor."))
	}
	return s.onStmtConn(c, st, payload, seq, wire.Rows)
}
