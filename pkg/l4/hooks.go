package l4

import (
	"bufio"
	"context"
	"net"
	"time"
)

// Hooks run around the data path of each connection (Lua scripts, in slardar-proxy). A nil
// Hooks on the Proxy means none.
type Hooks interface {
	// Preread runs before a peer is chosen. It may read from the client through cx.Reader
	// (peeked bytes are forwarded to the upstream), change cx.Upstream and cx.HashKey, or
	// return an error to end the connection unproxied.
	Preread(ctx context.Context, cx *Conn) error
	// Content may serve the connection itself instead of proxying; it reports whether it did.
	Content(ctx context.Context, cx *Conn) (served bool, err error)
	// Log runs after the connection ended, with its facts filled in.
	Log(cx *Conn)
}

// Conn is one client connection as hooks see it.
type Conn struct {
	Client   net.Conn
	Port     string // the listener's port, which names the hooks
	Upstream string // upstream to balance over; a preread hook may change it
	HashKey  string // key for hash modes: the client address unless a hook changes it
	Start    time.Time

	// Target, when a hook sets it, is a host:port dialled directly instead of balancing over
	// Upstream (no checkups: one attempt, DefaultDialTimeout).
	Target string
	// ProxyProtocol, when 1 or 2, makes the proxy send a PROXY protocol header of that version
	// to the backend before any client byte.
	ProxyProtocol int
	// LogAttrs are added to the connection's access-log line (e.g. the server name and route).
	LogAttrs []any

	// Reader buffers what hooks read or peek from the client; nil until a hook needs it.
	Reader *bufio.Reader
	// State belongs to the Hooks implementation (per-connection script state).
	State any

	// Facts for the log hook.
	Server   string // the upstream server that was used, "" if none
	BytesIn  int64  // client → upstream
	BytesOut int64  // upstream → client
	Status   int    // stream-style status: 200 ok, 502 no upstream, a hook's exit code, ...
	Err      error
	// OwnStatus: a protocol served the connection whose own fields in LogAttrs say how it went
	// (mysql-proxy's queries, reads, writes): the access line leaves out nginx stream's
	// status 200, which would read as HTTP there; any other status is still shown.
	OwnStatus bool
}

// ClientReader returns the buffered reader over the client, creating it on first use.
func (cx *Conn) ClientReader() *bufio.Reader {
	if cx.Reader == nil {
		cx.Reader = bufio.NewReaderSize(cx.Client, 4096)
	}
	return cx.Reader
}
