// Package backend is mysql-proxy's side towards the servers: logged-in connections (the
// proxy's own login, with the capability flags the client negotiated, so responses can be
// relayed byte for byte, its attributes and, per upstream, TLS), COM_CHANGE_USER to hand a
// connection to the next session as a fresh login would, and the pool they wait in between.
package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// Framing are the capability flags whose value changes what the server sends or how it reads
// statements: a backend connection must have exactly the client's, so that responses pass
// through unchanged. CLIENT_MULTI_RESULTS and CLIENT_PS_MULTI_RESULTS are always on (CALL
// fails with 1312 without them). Multi-statements are not among them: COM_SET_OPTION turns
// them on and off on a live connection.
const Framing = mysql.CLIENT_DEPRECATE_EOF | mysql.CLIENT_SESSION_TRACK | mysql.CLIENT_LOCAL_FILES |
	mysql.CLIENT_FOUND_ROWS | mysql.CLIENT_IGNORE_SPACE

// ExtFraming are MariaDB's extended capabilities (shifted down 32 bits) a backend connection
// must share with its client: extended column metadata, bulk execution of prepared statements.
const ExtFraming = uint32((MariaDBClientExtendedMetadata | MariaDBClientStmtBulk) >> 32)

// always are the flags every backend connection has.
const always = mysql.CLIENT_MULTI_RESULTS | mysql.CLIENT_PS_MULTI_RESULTS

// Key says which connections are interchangeable: the pool keeps one list per key. Who is
// logged in, in which schema and collation, is not part of it: a connection taken from the
// pool is logged in again (COM_CHANGE_USER) as the session that takes it.
type Key struct {
	Addr    string // host:port
	Caps    uint32 // the Framing flags
	ExtCaps uint32 // the ExtFraming capabilities
	// TLS to the server (nil: none); TLSPreferred: a server that does not offer it is used
	// without.
	TLS          *tls.Config
	TLSPreferred bool
}

// Login is who a connection serves: the user (with what logs it in), the schema, the
// collation, the attributes the server sees, and whether it is a replica's (its session
// read-only).
type Login struct {
	User      string
	Secret    Secret
	Schema    string
	Collation uint8
	Attrs     []Attr
	ReadOnly  bool
	// Shared is the state key of a multiplexed session (user, secret, schema, collation,
	// read-only mode and the session's replayed settings): an idle connection a session of the
	// same key gave back is taken without COM_CHANGE_USER (Conn.Shared). "" for other sessions.
	Shared string
	// DialTimeout bounds a new login or a COM_CHANGE_USER in Pool.Get (0: the context
	// alone), so that the context may also allow the wait for a connection at the limit.
	DialTimeout time.Duration
}

// Conn is a logged-in backend connection in the command phase.
type Conn struct {
	*wire.Conn
	Key   Key
	Login Login // who it is logged in as now
	// Shared is the state key a multiplexed session gave the connection back with: it has that
	// state and no other (no transaction, locks, temporary tables). COM_CHANGE_USER and
	// COM_RESET_CONNECTION clear it.
	Shared   string
	ThreadID uint32
	Version  string
	Status   uint16 // status flags of the last OK or EOF
	Schema   string // the current schema, as the server reported it
	// Dirty marks a connection whose state must be reset before it waits in the pool: a
	// transaction, locks, temporary tables (whatever pinned its session). Reset at the end of
	// a session, closed when that fails.
	Dirty bool
	// Tainted marks a connection whose session changed what neither COM_RESET_CONNECTION nor
	// COM_CHANGE_USER undoes on MariaDB 10.11 (a role set by SET ROLE), or anything the proxy
	// could not follow: it is closed at the end of the session, never pooled.
	Tainted bool
	// Defaults are the session tracking a client of this server has before it changes any
	// (read at login); Untracked: the server refused session tracking.
	Defaults  Tracking
	Untracked bool
	// Multi: multi-statements are on (COM_SET_OPTION changes it).
	Multi bool
	// TLS: the connection is encrypted.
	TLS bool
	// Killed: its running statement was killed (its client left); it is not reused.
	Killed bool
	// SkipState: the last statement was a SET STATEMENT ... FOR, whose variables the server
	// reports restored in the next response: its state change is not the session's.
	SkipState bool
	// Release ends the connection's count in checkups (least_conn, status); Usable says whether
	// checkups would still choose its server. Set by whoever chose the server.
	Release    func()
	Usable     func() bool
	idleAt     time.Time
	openedAt   time.Time
	lastUsed   time.Time // the last command (Arm)
	watch      *watchConn
	noLastGTID bool
	hs         *Handshake
	// maxConnections is the server's @@max_connections, read at login.
	maxConnections int
}

// Has reports a capability of the connection.
func (c *Conn) Has(flag uint32) bool { return c.Key.Caps&flag != 0 }

// InTransaction reports the server's transaction flag.
func (c *Conn) InTransaction() bool { return c.Status&wire.StatusInTrans != 0 }

// ErrFraming is a server that does not support a flag the client negotiated.
var ErrFraming = errors.New("the server does not support a capability the client negotiated")

// Dial connects and logs in to key.Addr as l. The dial is bounded by ctx. The connection
// reads its session tracking defaults and turns on the tracking the proxy reads (see track).
func Dial(ctx context.Context, key Key, l Login) (*Conn, error) {
	g, err := dialGreet(ctx, key.Addr)
	if err != nil {
		return nil, err
	}
	return g.finish(ctx, key, l)
}

// dialGreet connects to addr and reads the server's handshake.
func dialGreet(ctx context.Context, addr string) (*greeting, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetKeepAlive(false)
	}
	g, err := greet(ctx, &watchConn{Conn: nc}) // below TLS (see watchConn)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	return g, nil
}

// finish completes the login of a greeted connection as l, with key's capabilities.
func (g *greeting) finish(ctx context.Context, key Key, l Login) (*Conn, error) {
	return g.finishWith(ctx, key, l, nil)
}

func (g *greeting) finishWith(ctx context.Context, key Key, l Login, ra *relayedAuth) (*Conn, error) {
	caps := key.Caps | mysql.CLIENT_MULTI_STATEMENTS
	hs, conn, err := g.loginWith(ctx, Key{Addr: key.Addr, Caps: caps, ExtCaps: key.ExtCaps, TLS: key.TLS, TLSPreferred: key.TLSPreferred},
		l.User, l.Schema, l.Collation, l.Secret, l.Attrs, ra)
	if err != nil {
		g.nc.Close()
		return nil, fmt.Errorf("logging in to %s as %s: %w", key.Addr, l.User, err)
	}
	w, below := g.nc.(*watchConn)
	if !below { // greeted over a connection of the caller's
		w = &watchConn{Conn: conn}
	}
	w.active = true
	if !below {
		conn = w
	}
	c := &Conn{Conn: wire.NewConn(conn), Key: key, Login: l, ThreadID: hs.ThreadID, Version: hs.Version, hs: hs, TLS: hs.tls,
		Status: wire.StatusAutocommit, Schema: l.Schema, watch: w, Multi: true, openedAt: time.Now()}
	if err := c.readDefaults(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: reading session defaults: %w", key.Addr, err)
	}
	if err := c.track(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: setting up the session: %w", key.Addr, err)
	}
	return c, nil
}

// Arm readies the connection for a command: its reads give up after readTimeout (0:
// DefaultReadTimeout) without an answer, or when waiting, called every second of a wait,
// returns false (the server is down).
func (c *Conn) Arm(readTimeout time.Duration, waiting func() bool) {
	now := time.Now()
	c.watch.alive, c.watch.readTimeout, c.lastUsed = waiting, readTimeout, now
	c.watch.arm(now)
}

// bound puts ctx's deadline on the connection for an internal command; the returned func
// lifts it.
func (c *Conn) bound(ctx context.Context) func() {
	dl, ok := ctx.Deadline()
	if !ok {
		return func() {}
	}
	c.watch.bound(dl)
	return func() { c.watch.bound(time.Time{}) }
}

// send writes an internal command (it starts at sequence 0) and flushes it.
func (c *Conn) send(cmd byte, arg string) error {
	if _, err := c.WritePayload(0, append([]byte{cmd}, arg...)); err != nil {
		return err
	}
	return c.W.Flush()
}

// Exec runs one internal statement (a reset, a replayed SET) and discards its response.
func (c *Conn) Exec(ctx context.Context, cmd byte, arg string) error {
	defer c.bound(ctx)()
	if err := c.send(cmd, arg); err != nil {
		return err
	}
	kind := wire.Simple
	if cmd == mysql.COM_QUERY {
		kind = wire.Results
	}
	rl := wire.Relay{From: c.R, DeprecateEOF: c.Has(mysql.CLIENT_DEPRECATE_EOF), SessionTrack: c.Has(mysql.CLIENT_SESSION_TRACK)}
	res, err := rl.Relay(kind)
	if err != nil {
		return err
	}
	c.Status = res.Status
	if res.Err != nil {
		return res.Err
	}
	return nil
}

// maxValue bounds each packet Value reads.
const maxValue = 1 << 20

// Row runs an internal query (MASTER_GTID_WAIT, @@variables) and returns its first row, a nil
// for each SQL NULL. A query that returns no result set, or no row, is an error; an ERR packet
// is returned as *wire.ErrPacket.
func (c *Conn) Row(ctx context.Context, query string) ([]*string, error) {
	rows, err := c.rows(ctx, query, 1)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%q returned no row", query)
	}
	return rows[0], nil
}

// Rows runs an internal query and returns its rows (at most max; every row is read).
func (c *Conn) Rows(ctx context.Context, query string, max int) ([][]*string, error) {
	return c.rows(ctx, query, max)
}

func (c *Conn) rows(ctx context.Context, query string, max int) ([][]*string, error) {
	defer c.bound(ctx)()
	if err := c.send(mysql.COM_QUERY, query); err != nil {
		return nil, err
	}
	p, _, err := c.ReadPayload(maxValue)
	if err != nil {
		return nil, err
	}
	switch p[0] {
	case wire.HeaderErr:
		return nil, wire.ParseErr(p)
	case wire.HeaderOK:
		return nil, fmt.Errorf("%q returned no result set", query)
	}
	cols, _, _ := wire.LenencInt(p)
	defs := int(cols)
	if !c.Has(mysql.CLIENT_DEPRECATE_EOF) {
		defs++ // the EOF after the column definitions
	}
	for range defs {
		if _, _, err := c.ReadPayload(maxValue); err != nil {
			return nil, err
		}
	}
	var rows [][]*string
	for {
		p, _, err := c.ReadPayload(maxValue)
		if err != nil {
			return nil, err
		}
		switch {
		case p[0] == wire.HeaderErr:
			return nil, wire.ParseErr(p)
		case p[0] == wire.HeaderEOF && len(p) < 9 && !c.Has(mysql.CLIENT_DEPRECATE_EOF):
			c.Status = wire.EOFStatus(p)
		case p[0] == wire.HeaderEOF && len(p) < 0xFFFFFF && c.Has(mysql.CLIENT_DEPRECATE_EOF):
			ok, _ := wire.ParseOK(p, c.Has(mysql.CLIENT_SESSION_TRACK))
			c.Status = ok.Status
		default:
			if len(rows) < max {
				rows = append(rows, textRow(p, int(cols)))
			}
			continue
		}
		return rows, nil
	}
}

// textRow reads the values of a text-protocol row.
func textRow(p []byte, cols int) []*string {
	row := make([]*string, 0, cols)
	for range cols {
		if len(p) > 0 && p[0] == 0xFB {
			row = append(row, nil)
			p = p[1:]
			continue
		}
		v, n, ok := wire.LenencString(p)
		if !ok {
			break
		}
		s := string(v)
		row = append(row, &s)
		p = p[n:]
	}
	for len(row) < cols {
		row = append(row, nil)
	}
	return row
}
