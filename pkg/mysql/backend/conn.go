// Package backend is mysql-proxy's side towards the servers: logged-in connections (login by
// go-mysql's client, with the capability flags the client negotiated, so responses can be
// relayed byte for byte), their reset, and the pool they return to between client sessions.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/charset"

	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// Framing are the capability flags whose value changes what the server sends or how it reads
// statements: a backend connection must have exactly the client's, so that responses pass
// through unchanged. CLIENT_MULTI_RESULTS and CLIENT_PS_MULTI_RESULTS are always on (CALL
// fails with 1312 without them).
const Framing = mysql.CLIENT_DEPRECATE_EOF | mysql.CLIENT_SESSION_TRACK | mysql.CLIENT_MULTI_STATEMENTS |
	mysql.CLIENT_LOCAL_FILES | mysql.CLIENT_FOUND_ROWS | mysql.CLIENT_IGNORE_SPACE

// always are the flags every backend connection has.
const always = mysql.CLIENT_MULTI_RESULTS | mysql.CLIENT_PS_MULTI_RESULTS

// Key says which connections are interchangeable: the pool keeps one list per key.
type Key struct {
	Addr      string // host:port
	User      string
	Password  string
	Caps      uint32 // the Framing flags
	Collation uint8
	Schema    string // the current schema (a reset keeps it)
	// ReadOnly: a connection used on a replica; its session is read-only (tx_read_only), set
	// again after every reset.
	ReadOnly bool
}

// Conn is a logged-in backend connection in the command phase.
type Conn struct {
	*wire.Conn
	Key      Key
	ThreadID uint32
	Version  string
	Status   uint16 // status flags of the last OK or EOF
	Schema   string // the current schema, as the server reported it
	// Dirty marks a connection whose state a reset may not restore (COM_SET_OPTION changed the
	// multi-statement option; a statement changed the session in a way the proxy cannot
	// follow, such as SET ROLE, which COM_RESET_CONNECTION keeps): it is closed instead of pooled.
	Dirty bool
	// Defaults are the session tracking a client of this server has before it changes any
	// (read at login); Untracked: the server refused session tracking.
	Defaults  Tracking
	Untracked bool
	// Multi: multi-statements are on (COM_SET_OPTION changes it).
	Multi bool
	// SkipState: the last statement was a SET STATEMENT ... FOR, whose variables the server
	// reports restored in the next response: its state change is not the session's.
	SkipState bool
	// Release ends the connection's count in checkups (least_conn, status); Usable says whether
	// checkups would still choose its server. Set by whoever chose the server.
	Release    func()
	Usable     func() bool
	idleAt     time.Time
	watch      *watchConn
	noLastGTID bool
}

// Has reports a capability of the connection.
func (c *Conn) Has(flag uint32) bool { return c.Key.Caps&flag != 0 }

// InTransaction reports the server's transaction flag.
func (c *Conn) InTransaction() bool { return c.Status&wire.StatusInTrans != 0 }

// ErrFraming is a server that does not support a flag the client negotiated.
var ErrFraming = errors.New("the server does not support a capability the client negotiated")

// Dial connects and logs in to key.Addr as key.User, with key.Caps; schema, when not empty, is
// the default schema. The dial is bounded by ctx. The connection reads its session tracking
// defaults and turns on the tracking the proxy reads (see track).
func Dial(ctx context.Context, key Key, schema string) (*Conn, error) {
	c, err := dial(ctx, key, schema)
	if err != nil {
		return nil, err
	}
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

func dial(ctx context.Context, key Key, schema string) (*Conn, error) {
	d := net.Dialer{KeepAlive: -1}
	opts := []client.Option{func(c *client.Conn) error {
		for _, flag := range []uint32{mysql.CLIENT_MULTI_STATEMENTS, mysql.CLIENT_LOCAL_FILES, mysql.CLIENT_FOUND_ROWS,
			mysql.CLIENT_IGNORE_SPACE, mysql.CLIENT_SESSION_TRACK} {
			if key.Caps&flag != 0 {
				if err := c.SetCapability(flag); err != nil {
					return err
				}
			} else {
				c.UnsetCapability(flag)
			}
		}
		if key.Caps&mysql.CLIENT_DEPRECATE_EOF == 0 {
			c.UnsetCapability(mysql.CLIENT_DEPRECATE_EOF)
		}
		c.UnsetCapability(mysql.CLIENT_QUERY_ATTRIBUTES)
		c.SetCapability(mysql.CLIENT_MULTI_RESULTS)
		c.SetCapability(mysql.CLIENT_PS_MULTI_RESULTS)
		if coll, err := charset.GetCollationByID(int(key.Collation)); err == nil {
			c.SetCollation(coll.Name)
		}
		c.SetAttributes(map[string]string{"program_name": "slardar mysql-proxy"})
		return nil
	}}
	gc, err := client.ConnectWithDialer(ctx, "tcp", key.Addr, key.User, key.Password, schema, d.DialContext, opts...)
	if err != nil {
		return nil, fmt.Errorf("logging in to %s as %s: %w", key.Addr, key.User, err)
	}
	nc := gc.Conn.Conn
	sent := key.Caps | always
	if got := serverCaps(gc); got&(Framing|always)&sent != (Framing|always)&sent {
		nc.Close()
		return nil, fmt.Errorf("%s: %w (%#x of %#x)", key.Addr, ErrFraming, got&sent, sent)
	}
	w := &watchConn{Conn: nc}
	return &Conn{Conn: wire.NewConn(w), Key: key, ThreadID: gc.GetConnectionID(), Version: gc.GetServerVersion(),
		Status: wire.StatusAutocommit, Schema: schema, watch: w, Multi: key.Caps&mysql.CLIENT_MULTI_STATEMENTS != 0}, nil
}

// Arm readies the connection for a command: its reads give up when the server stops being
// usable (Usable) or after readTimeout (0: DefaultReadTimeout) without an answer.
func (c *Conn) Arm(readTimeout time.Duration) {
	c.watch.alive, c.watch.readTimeout = c.Usable, readTimeout
	c.watch.arm(time.Now())
}

// serverCaps are the capabilities in effect on a go-mysql connection (what it sent and the
// server has). go-mysql keeps them unexported; CapabilityString names them.
func serverCaps(gc *client.Conn) uint32 {
	byName := make(map[string]uint32, len(mysql.CapNames))
	for flag, name := range mysql.CapNames {
		byName[name] = flag
	}
	var caps uint32
	for _, name := range strings.Split(gc.CapabilityString(), "|") {
		caps |= byName[name]
	}
	return caps
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
	var row []*string
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
			if row == nil {
				row = textRow(p, int(cols))
			}
			continue
		}
		if row == nil {
			return nil, fmt.Errorf("%q returned no row", query)
		}
		return row, nil
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
