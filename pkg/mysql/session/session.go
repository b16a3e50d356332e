// Package session is one client's life in mysql-proxy after its login: the command loop, the
// read/write split (routing by statement class, transaction and pin state from the servers'
// status flags), session state replayed on replica connections, prepared statements mapped to
// backend statements, and the backend connections taken from and returned to the pool.
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/digest"
	"github.com/slardar-go/slardar/pkg/mysql/front"
	"github.com/slardar-go/slardar/pkg/mysql/rules"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// ReadSuffix names a listener's read upstream: writes go to N, reads to N_read.
const ReadSuffix = "_read"

// Defaults of a session.
const (
	DefaultMaxStmts    = 1024
	DefaultIdleTimeout = 8 * time.Hour // MySQL's wait_timeout
	DefaultMaxPacket   = 64 << 20      // a command larger than this is refused (max_allowed_packet)
)

// Config is what sessions of one listener share.
type Config struct {
	Registry *checkups.Registry
	Pool     *backend.Pool
	Front    *front.Server
	Log      *slog.Logger // fallbacks to the primary and backend failures; default: discard
	// Backend gives the credentials a user logs in to the servers with; nil: the user's own.
	Backend     func(u front.User) (user, password string)
	MaxStmts    int           // prepared statements per session; default DefaultMaxStmts
	IdleTimeout time.Duration // a client silent this long is closed; default DefaultIdleTimeout
	MaxPacket   int           // largest command; default DefaultMaxPacket
	// ReadTimeout bounds how long a statement waits for its server's next bytes; default
	// backend.DefaultReadTimeout. A server that its health checks find down ends the wait sooner.
	ReadTimeout time.Duration
	// Consistency is the listener's read-after-write mode; Positions is shared by the daemon's
	// sessions (it must not be nil when the mode is Session or Global).
	Consistency Consistency
	Positions   *Positions
	// Counters are the listener's metrics; required (they outlive reloads, see mysqlproxy).
	Counters *Counters
	// Sessions are the daemon's open sessions, for KILL; required.
	Sessions *Sessions
	// ClientHosts is what the servers know a client at an address by for account hosts: the
	// address, and the names it resolves to where they resolve names; nil: the address.
	ClientHosts func(addr string) []string
	// Digests keeps the query digests (digest.go); nil: none are kept.
	Digests *digest.Store
	// Rules are the query rules in force (rules.go); nil: none.
	Rules func() *rules.Set
	// Mirrors runs what rules mirror; nil: nothing is mirrored.
	Mirrors *Mirrors
	// Multiplex gives a session's server connections back to the pool after each statement
	// when nothing ties the session to them (multiplex.go).
	Multiplex bool

	fallback atomic.Bool // reads currently fall back to the primary (logged on change)
	noGTID   atomic.Bool // a primary without last_gtid was logged
}

func (c *Config) logger() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Counters are what the sessions of a listener did, for the metrics.
type Counters struct {
	Reads        atomic.Int64 // statements a replica served
	Writes       atomic.Int64 // statements the primary served that were not reads
	PrimaryReads atomic.Int64 // reads the primary served (no usable replica, consistency, transaction, pin)
	Sessions     atomic.Int64 // sessions open now
	SessionsDone atomic.Int64 // sessions ended
	// ReplicaRefusals counts statements routed to a replica as reads that its read-only
	// session refused as writes: each is a classifier bug.
	ReplicaRefusals atomic.Int64
}

// Stats are what one session did, for its access-log line.
type Stats struct {
	User, Schema           string
	Queries, Reads, Writes int64 // Reads: on a replica; Writes: on the primary, reads excepted
	PrimaryReads           int64 // reads the primary served (Fallbacks, consistency, a transaction, a pin, a hint)
	Fallbacks              int64 // reads served by the primary because no replica was usable
	Retries                int64 // reads re-run on another server after a failure
	GTIDWaits              int64 // reads that waited for the replica to apply the session's writes
	GTIDFallbacks          int64 // reads sent to the primary because the replica had not applied them in time
	WindowReads            int64 // reads sent to the primary inside the window after a write
	Backends               []string
}

// Session is one logged-in client.
type Session struct {
	cfg   *Config
	cl    *front.Client
	ctx   context.Context
	write string // upstream of the primary (the listener's name)
	// seqShift numbers the current command's answer as a server would (front.Client.SeqShift).
	seqShift byte
	read     string // upstream of the replicas (name_read)
	key      string // client address, for hash balancing

	primary, replica *backend.Conn
	last             *backend.Conn // ran the previous statement
	tx               *backend.Conn // holds the open transaction
	pinned           bool
	st               state // what a connection must have before it runs a statement
	retrack          bool  // the client changed its own session tracking settings
	stmts            map[uint32]*stmt
	nextStmt         uint32
	draining         atomic.Bool
	inTx             atomic.Bool                  // tx != nil, for the drain's goroutine
	armedAt          time.Time                    // when the idle deadline was last set (armIdle)
	clientIdle       time.Duration                // the client's own wait_timeout, when it set one
	lost             atomic.Bool                  // the server closed a connection the session could not move
	running          atomic.Pointer[backend.Conn] // runs the client's statement now (KILL QUERY)
	anchor           *Anchor                      // the connection whose thread id the handshake announced, until used
	relayedLogin     bool                         // the client logged in through its server connection (relay.go)
	ended            atomic.Bool                  // another session killed this one
	userMu           sync.Mutex                   // cl.User, read by other sessions' KILL
	written          gtidSet                      // GTIDs of the session's writes (Session consistency)
	lastWrite        time.Time                    // the session's last write (Window consistency)
	stats            Stats
	now              atomic.Pointer[activity] // what it does now, for the processlist (process.go)
	warnings         bool                     // the last statement left warnings (multiplexing keeps its connection)
	holdAfterInsert  int                      // statements multiplexing keeps the connections for after an insert id
	loginAttrs       []backend.Attr           // attrs(), until the client logs in again
}

// Serve runs the command phase of a logged-in client until it quits, fails, or the daemon
// drains (ctx done: an idle session not in a transaction ends at once, a busy one after its
// statement, one in a transaction when the transaction ends). upstream is the listener's
// upstream (writes); reads go to upstream+"_read" when it has a usable server. It returns what
// the session did and why it ended (nil: the client quit).
func Serve(ctx context.Context, cfg *Config, cl *front.Client, upstream, key string, anchor *Anchor) (Stats, error) {
	s := &Session{cfg: cfg, cl: cl, ctx: ctx, write: upstream, read: upstream + ReadSuffix, key: key,
		stmts: make(map[uint32]*stmt), anchor: anchor}
	s.st.schema, s.st.applied, s.st.multi = cl.Schema, make(map[*backend.Conn]int), cl.Has(mysql.CLIENT_MULTI_STATEMENTS)
	s.useRelayed()
	if key, _ := s.key0(false); anchor != nil && (s.relayedLogin || !anchor.fits(key)) {
		// Another kind of client than the listener's last: the idle connection cannot serve it
		// (the announced id is then answered where the session runs).
		anchor.Return(cfg.Pool)
		s.anchor = nil
	}
	s.stats.User, s.stats.Schema = cl.User.Name, cl.Schema
	cfg.Counters.Sessions.Add(1)
	defer func() { cfg.Counters.Sessions.Add(-1); cfg.Counters.SessionsDone.Add(1) }()
	s.publish(nil)
	cfg.Sessions.add(s)
	defer cfg.Sessions.remove(s)
	stop := context.AfterFunc(ctx, func() {
		s.draining.Store(true)
		if !s.inTx.Load() {
			cl.SetReadDeadline(time.Unix(1, 0)) // wake an idle read
		}
	})
	defer stop()
	err := s.loop()
	s.release()
	s.anchor.Return(cfg.Pool) // never used
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return s.stats, err
}

// errQuit ends the loop after COM_QUIT.
var errQuit = errors.New("quit")

func (s *Session) loop() error {
	for {
		if s.draining.Load() && s.tx == nil {
			return nil
		}
		s.armIdle()
		if s.draining.Load() && s.tx == nil { // the drain began after the check above: its wake-up may be overwritten
			return nil
		}
		stop := s.watchIdle()
		payload, seq, err := s.cl.ReadPayload(s.maxPacket())
		stop()
		if err != nil {
			if s.ended.Load() {
				return errors.New("killed (KILL CONNECTION from another session)")
			}
			if s.lost.Load() {
				return errors.New("the server closed the connection of a session that cannot move to another " +
					"(a transaction, locks or temporary tables): the client connection is closed with it")
			}
			if s.draining.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			if errors.Is(err, wire.ErrPacketTooLarge) {
				s.reply(seq+1, wire.NewError(mysql.ER_NET_PACKET_TOO_LARGE))
				s.cl.W.Flush()
			}
			return err
		}
		if first := seq - byte(len(payload)/wire.MaxPacket); first != 0 {
			// A command starts a sequence at 0: as the server, refuse and end the connection.
			s.reply(seq+1, wire.NewError(mysql.ER_NET_PACKETS_OUT_OF_ORDER))
			s.cl.W.Flush()
			return fmt.Errorf("command packet with sequence number %d", first)
		}
		s.seqShift = s.cl.SeqShift(seq)
		s.publish(payload)
		if s.cfg.Multiplex && s.anchor != nil {
			s.settleAnchor()
		}
		err = s.command(payload, seq)
		if s.cfg.Multiplex && err == nil {
			s.multiplexRelease()
		}
		s.publish(nil)
		if ferr := s.cl.W.Flush(); err == nil {
			err = ferr
		}
		if errors.Is(err, errQuit) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// armIdle sets the client's read deadline to the idle timeout from now. The deadline stays
// while a command runs (it is hours away; a client read inside a command, LOAD DATA LOCAL,
// is bounded by it too), and is moved at most once a second (an eighth of the timeout, if that
// is less): a deadline is a runtime timer change, and this runs for every command. During a drain it is always set again, as the
// drain's wake-up may have moved it.
func (s *Session) armIdle() {
	now, idle := time.Now(), s.idleTimeout()
	if !s.draining.Load() && now.Sub(s.armedAt) < min(time.Second, idle/8) {
		return
	}
	s.armedAt = now
	s.cl.SetReadDeadline(now.Add(idle))
}

func (s *Session) idleTimeout() time.Duration {
	switch {
	case s.clientIdle > 0:
		return s.clientIdle
	case s.cfg.IdleTimeout > 0:
		return s.cfg.IdleTimeout
	}
	return DefaultIdleTimeout
}

// watchIdle, while the session waits for its client, watches the connection it could not
// move to another server (a transaction, or state pinned to it) and closes the client's
// connection at once if the server closes it, as the server would close the client's own
// (drivers check a connection before they reuse it). Other connections are replaced at their
// next use (see conn). It returns what ends the watch.
func (s *Session) watchIdle() (stop func()) {
	c := s.tx
	if c == nil && s.pinned {
		c = s.primary
	}
	if c == nil {
		return func() {}
	}
	return c.WatchIdle(func() {
		s.lost.Store(true)
		s.cl.Close()
	})
}

func (s *Session) maxPacket() int {
	if s.cfg.MaxPacket > 0 {
		return s.cfg.MaxPacket
	}
	return DefaultMaxPacket
}

// reply buffers one packet to the client.
func (s *Session) reply(seq byte, payload []byte) error {
	_, err := s.cl.WritePayload(seq+s.seqShift, payload)
	return err
}

// ok answers a command the proxy handles itself.
func (s *Session) ok(seq byte) error {
	return s.reply(seq, wire.AppendOK(nil, wire.HeaderOK, wire.OK{Status: s.status()}, s.cl.Has(mysql.CLIENT_SESSION_TRACK)))
}

// status is the server status the client sees: the transaction's, else autocommit.
func (s *Session) status() uint16 {
	if s.tx != nil {
		return s.tx.Status &^ wire.StatusMoreResults
	}
	if s.primary != nil {
		return s.primary.Status & (wire.StatusAutocommit | wire.StatusInTrans)
	}
	return wire.StatusAutocommit
}

// command runs one client command.
func (s *Session) command(payload []byte, seq byte) error {
	next := seq + 1
	if len(payload) == 0 {
		return s.reply(next, wire.NewError(mysql.ER_UNKNOWN_COM_ERROR)) // as a server does
	}
	switch cmd := payload[0]; cmd {
	case mysql.COM_QUIT:
		return errQuit
	case mysql.COM_PING:
		return s.ok(next)
	case mysql.COM_QUERY:
		s.stats.Queries++
		return s.query(payload, seq)
	case mysql.COM_INIT_DB:
		return s.initDB(payload, seq)
	case mysql.COM_FIELD_LIST:
		return s.forward(routeRead, payload, seq, wire.Fields, sqlclass.Class{Read: true})
	case mysql.COM_STATISTICS:
		return s.forward(routeAny, payload, seq, wire.Simple, sqlclass.Class{Read: true})
	case mysql.COM_SET_OPTION:
		return s.setOption(payload, seq)
	case mysql.COM_RESET_CONNECTION:
		s.reset()
		return s.ok(next)
	case mysql.COM_CHANGE_USER:
		return s.changeUser(payload, seq)
	case mysql.COM_STMT_PREPARE:
		s.stats.Queries++
		return s.prepare(payload, seq)
	case mysql.COM_STMT_EXECUTE:
		s.stats.Queries++
		return s.execute(payload, seq)
	case comStmtBulkExecute:
		s.stats.Queries++
		return s.bulkExecute(payload, seq)
	case mysql.COM_STMT_SEND_LONG_DATA:
		return s.longData(payload)
	case mysql.COM_STMT_CLOSE:
		return s.closeStmt(payload)
	case mysql.COM_STMT_RESET:
		return s.resetStmt(payload, seq)
	case mysql.COM_STMT_FETCH:
		return s.fetch(payload, seq)
	case mysql.COM_PROCESS_KILL:
		return s.processKill(payload, seq)
	case mysql.COM_DEBUG, mysql.COM_REFRESH:
		return s.forward(routePrimary, payload, seq, wire.Simple, sqlclass.Class{})
	default:
		return s.reply(next, wire.NewError(mysql.ER_UNKNOWN_COM_ERROR))
	}
}
