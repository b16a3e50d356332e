package session

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// Transaction-level multiplexing (a listener's multiplex: true, ProxySQL's multiplexing,
// pgbouncer's transaction mode): after each statement, a session that nothing ties to its server
// connections gives them back to the pool, and takes one again for its next statement. A
// connection given back this way is marked with the session's state key (user, secret, schema,
// collation, read-only mode, multi-statements, tracking and every setting it replays): the next
// session of the same key takes it as it is, any other logs it in again (COM_CHANGE_USER) as
// between sessions, and replays its own settings. What ties a session to its connection, so
// that it keeps it as without multiplexing: a transaction (or autocommit off), state pinned to
// the primary (temporary tables, locks, user variables set in a query, ...), a cursor or long
// data of a prepared statement, warnings of the last statement (SHOW WARNINGS must see them),
// the five statements after one that generated an insert id (LAST_INSERT_ID()), and settings
// not yet applied to the connection. ROW_COUNT() and FOUND_ROWS() after a statement that left
// no warnings may run on another connection (as with ProxySQL). Prepared statements are prepared again on
// the connection an execution lands on (the proxy's statement ids do not change).

// holdAfterInsert is how many statements after one that generated an insert id a session keeps
// its connections, so that SELECT LAST_INSERT_ID() runs where the insert did (ProxySQL's
// auto_increment_delay_multiplex).
const holdAfterInsert = 5

// sharedKey is the state key of the session's connections logged in as login.
func (s *Session) sharedKey(login backend.Login) string {
	secret := login.Secret.Password
	if login.Secret.NativeHash != nil {
		secret = hex.EncodeToString(login.Secret.NativeHash)
	}
	return strings.Join([]string{login.User, secret, login.Schema, strconv.Itoa(int(login.Collation)), strconv.FormatBool(login.ReadOnly),
		strconv.FormatBool(s.st.multi), s.st.track.Key(), s.st.replay(0)}, "\x00")
}

// multiplexRelease gives the session's connections back to the pool when nothing ties the
// session to them.
func (s *Session) multiplexRelease() {
	if s.tx != nil || s.pinned || s.retrack || s.warnings || s.draining.Load() {
		return
	}
	if s.holdAfterInsert > 0 {
		s.holdAfterInsert--
		return
	}
	for _, st := range s.stmts {
		if st.long != nil || st.cursor {
			return
		}
	}
	for _, c := range []*backend.Conn{s.primary, s.replica} {
		if c == nil || c.Dirty || c.Tainted || c.Status&wire.StatusAutocommit == 0 || c.InTransaction() ||
			s.st.applied[c] != s.st.gen || s.st.schema != "" && c.Schema != s.st.schema || c.Multi != s.st.multi {
			continue
		}
		key, login := s.key0(c.Login.ReadOnly)
		if key.Caps != c.Key.Caps || key.ExtCaps != c.Key.ExtCaps {
			continue
		}
		c.Shared = login.Shared
		s.closeStmtsOn(c)
		s.drop(c, false)
	}
}

// closeStmtsOn closes on c the session's statements prepared there (COM_STMT_CLOSE has no
// answer): a connection that changes hands after every statement would otherwise collect a
// server-side statement per execution until max_prepared_stmt_count.
func (s *Session) closeStmtsOn(c *backend.Conn) {
	sent := false
	for _, st := range s.stmts {
		if sid, ok := st.ids[c]; ok {
			if _, err := c.WritePayload(0, binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_CLOSE}, sid)); err == nil {
				sent = true
			}
		}
	}
	if sent {
		c.W.Flush()
	}
}
