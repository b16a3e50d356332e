package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// exchange sends one command to c and relays its response to the client (to toClient) or
// discards it (toNobody: a command of the proxy's own). It records the transaction state and the connection that ran last;
// with ch, what the response reported of the session's changes.
func (s *Session) exchange(c *backend.Conn, payload []byte, cmd command, to replyTo, ch *changes) (wire.Result, error) {
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
	if to == toClient {
		rl.To, rl.SeqShift = s.cl.W, s.seqShift
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
	if to == toClient {
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

// replyTo is where exchange sends a response.
type replyTo bool

const (
	toClient replyTo = true  // the client's command: the client gets the response
	toNobody replyTo = false // the proxy's own (a prepare on another connection): discarded
)

// maxAttempts bounds how often a statement runs on a server after servers failed it.
const maxAttempts = 3

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
				if retry, err := s.serverFailed(c, wire.Result{}, err, attempt < maxAttempts-1); err != nil {
					return nil, wire.Result{}, err
				} else if retry {
					continue
				}
				return nil, wire.Result{}, s.reply(cmd.seq+1, lostConnection(cause))
			}
		}
		var ch changes
		res, err := s.exchange(c, payload, cmd, toClient, &ch)
		s.warnings = res.Warnings > 0 || res.Err != nil // SHOW WARNINGS / SHOW ERRORS must find them where they are
		if res.InsertID != 0 {
			s.holdAfterInsert = holdAfterInsert // SELECT LAST_INSERT_ID() must find it where it is
		}
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
		retry, err := s.serverFailed(c, res, err, attempt < maxAttempts-1)
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

// count records where a statement of route r and class ran, for the access log and the
// metrics: a read on a replica, a write (anything on the primary that is not a read), or a read
// the primary served (no usable replica, consistency, a transaction, a pin or a /*master*/ hint).
func (s *Session) count(c *backend.Conn, r route, class sqlclass.Class) {
	switch {
	case c == s.replica:
		s.stats.Reads++
		s.cfg.Counters.Reads.Add(1)
	case r == routeRead || r == routeLast || class.HintedRead:
		s.stats.PrimaryReads++
		s.cfg.Counters.PrimaryReads.Add(1)
	default:
		s.stats.Writes++
		s.cfg.Counters.Writes.Add(1)
	}
}

// Client-library error codes the proxy answers with, as a driver would see them.
const (
	crServerGone     = 2006
	crServerLost     = 2013
	crConnHostError  = 2003
	errNoBackendText = "no backend server available"
)
