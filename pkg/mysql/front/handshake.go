// Package front is the server side of mysql-proxy's connections: the initial handshake, TLS,
// and the client's login (mysql_native_password and caching_sha2_password, with its fast path,
// its full authentication over TLS or with the server's RSA key, and auth switches), standing
// on go-mysql's password algorithms and error table. The command phase is the session's.
package front

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// Authentication plugins.
const (
	NativePassword      = mysql.AUTH_NATIVE_PASSWORD
	CachingSha2Password = mysql.AUTH_CACHING_SHA2_PASSWORD
)

// Capabilities the proxy offers clients: compression (zlib, and zstd where the client asks)
// between client and proxy; not query attributes. CLIENT_SSL is added when TLS is configured,
// and MariaDB's extended capabilities when the servers have them (Hello).
const Capabilities = mysql.CLIENT_LONG_PASSWORD | mysql.CLIENT_FOUND_ROWS | mysql.CLIENT_LONG_FLAG |
	mysql.CLIENT_CONNECT_WITH_DB | mysql.CLIENT_LOCAL_FILES | mysql.CLIENT_IGNORE_SPACE |
	mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_INTERACTIVE | mysql.CLIENT_TRANSACTIONS |
	mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_MULTI_RESULTS |
	mysql.CLIENT_PS_MULTI_RESULTS | mysql.CLIENT_PLUGIN_AUTH | mysql.CLIENT_CONNECT_ATTRS |
	mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | mysql.CLIENT_SESSION_TRACK | mysql.CLIENT_DEPRECATE_EOF |
	mysql.CLIENT_COMPRESS | mysql.CLIENT_ZSTD_COMPRESSION_ALGORITHM

// clientMySQL is capability bit 0 (CLIENT_LONG_PASSWORD in MySQL): MariaDB 10.2+ servers clear
// it to say that they send extended capabilities, in the handshake's last reserved bytes.
const clientMySQL = mysql.CLIENT_LONG_PASSWORD

// DefaultServerVersion is what the handshake announces until the servers' own version is
// known: MariaDB's form ("5.5.5-" for old clients that expect a 5.x server), marked as the
// proxy.
const DefaultServerVersion = "5.5.5-10.11.99-MariaDB-slardar"

// Hello is what the handshake says of the server behind the proxy: its version (marked as the
// proxy), default collation, and the MariaDB extended capabilities (shifted down 32 bits) the
// proxy offers because the servers have them.
type Hello struct {
	Version   string
	Collation uint8
	ExtCaps   uint32
	// ConnID is the connection id to announce (a server thread id the session will use, see
	// session.Anchor); 0: one of the proxy's own, from 2^31 up (never a server's).
	ConnID uint32
	// Users, when set, finds the users of this connection's listener (configured and learned
	// from its servers), for a client from host; else Server.Users.
	Users func(name, host string) (User, bool)
	// Recheck, when set, finds a Learned user again from its servers' accounts as they are
	// now (read after the call), when the client's answer did not match what was learned
	// before: a password changed a moment ago is checked as the server checks it.
	Recheck func(name, host string) (User, bool)
	// Relay starts the relayed login of a Passthrough user (nil: such users are refused).
	Relay func(cl *Client, resp Response) (Relay, error)
}

// Server is the front's configuration, shared by every client connection.
type Server struct {
	Version string      // default DefaultServerVersion
	TLS     *tls.Config // nil: no TLS
	RSAKey  *rsa.PrivateKey
	Users   func(name string) (User, bool)
	// LocalFiles offers CLIENT_LOCAL_FILES (LOAD DATA LOCAL INFILE).
	LocalFiles bool

	connID   atomic.Uint32
	sha2Once sync.Once
	pubPEM   []byte
	cache    sync.Map // "user\x00password" → true: caching_sha2 fast path is open
}

// Client is a client connection that logged in.
type Client struct {
	*wire.Conn
	User         User
	Schema       string
	Capabilities uint32 // what the client asked for, within what the proxy offered
	ExtCaps      uint32 // MariaDB's extended capabilities the client asked for, within the offer
	Collation    uint8
	Attrs        []wire.Attr // what the client said of itself (connection attributes)
	// Gone, when set, reports whether the client has closed its connection (set by who
	// accepted it: the proxy kills a statement whose client left).
	Gone func() bool
	// Stage1 is SHA1(password) of a learned user (see User.NativeHash).
	Stage1 []byte
	// Relayed is the server connection of a Passthrough user's relayed login (Relay.Finish).
	Relayed any
	ConnID  uint32
	hello   Hello // what it was accepted with (its listener's users)
	TLS     bool
	salt    []byte // the handshake's scramble, for COM_CHANGE_USER
}

// SeqShift is what to add to a command's last sequence number plus one to number its answer
// as a server does: 0, except under the compressed protocol after a command that took more
// compressed packets than packets (see wire.CompressedConn.NextSeq).
func (c *Client) SeqShift(seq byte) byte {
	if cc, ok := c.Conn.Conn.(*wire.CompressedConn); ok {
		return cc.NextSeq() - (seq + 1)
	}
	return 0
}

// Has reports a negotiated capability.
func (c *Client) Has(flag uint32) bool { return c.Capabilities&flag != 0 }

func (s *Server) offered() uint32 {
	caps := Capabilities
	if !s.LocalFiles {
		caps &^= mysql.CLIENT_LOCAL_FILES
	}
	if s.TLS != nil {
		caps |= mysql.CLIENT_SSL
	}
	return caps
}

// Accept runs the connection phase on nc, announcing hello, and returns the logged-in client.
// On a failed login the client got MySQL's ERR packet (1045 for a wrong password or an
// unknown user) and the error is a *LoginError. When the client asked for compression, the
// returned client's connection speaks the compressed protocol.
func (s *Server) Accept(nc net.Conn, hello Hello) (*Client, error) {
	c := wire.NewConn(nc)
	salt, err := newSalt()
	if err != nil {
		return nil, err
	}
	cl := &Client{Conn: c, ConnID: hello.ConnID, hello: hello}
	if cl.ConnID == 0 {
		cl.ConnID = 1<<31 + s.connID.Add(1)&(1<<31-1)
	}
	_, err = c.WritePayload(0, s.initialHandshake(cl.ConnID, salt, hello))
	if err == nil {
		err = c.W.Flush()
	}
	if err != nil {
		return nil, err
	}
	resp, seq, err := s.readResponse(cl, nc)
	if err != nil {
		return nil, err
	}
	c = cl.Conn
	cl.Capabilities = resp.Capabilities & s.offered()
	if hello.ExtCaps != 0 && resp.Capabilities&clientMySQL == 0 {
		cl.ExtCaps = resp.ExtCaps & hello.ExtCaps
	}
	cl.Collation, cl.Attrs = resp.Collation, resp.Attrs
	u, known := s.lookup(hello, resp.User, HostOf(nc))
	if !known {
		u = User{Name: resp.User, Password: unguessable(), Plugin: NativePassword}
	}
	if u.Plugin == "" {
		u.Plugin = NativePassword
	}
	cl.Schema = resp.Schema
	a := &auth{s: s, c: c, seq: seq + 1, salt: salt, user: u, tls: cl.TLS, host: HostOf(nc), cl: cl, hello: hello, resp: resp}
	if err := a.run(resp); err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			s.fail(c, a.seq, me)
			return nil, &LoginError{User: resp.User, Err: err}
		}
		return nil, err
	}
	cl.User, cl.salt, cl.Stage1 = a.user, salt, a.stage1 // a.user: as rechecked, if it was
	if cl.Schema == "" {
		cl.Schema = cl.User.Schema
	}
	ok := wire.AppendOK(nil, wire.HeaderOK, wire.OK{Status: wire.StatusAutocommit}, cl.Has(mysql.CLIENT_SESSION_TRACK))
	if _, err := c.WritePayload(a.seq, ok); err != nil {
		return nil, err
	}
	if err := c.W.Flush(); err != nil {
		return nil, err
	}
	if algo := cl.compression(); algo != 0 {
		buffered, _ := c.R.Peek(c.R.Buffered())
		cc, err := wire.NewCompressedConn(c.Conn, buffered, algo, int(resp.ZstdLevel))
		if err != nil {
			return nil, err
		}
		cl.Conn = wire.NewConn(cc)
	}
	return cl, nil
}

// readResponse reads the client's handshake response, first upgrading cl's connection to TLS
// when the client asks for it; it returns the response and its sequence number.
func (s *Server) readResponse(cl *Client, nc net.Conn) (Response, byte, error) {
	c := cl.Conn
	payload, seq, err := c.ReadPayload(1 << 16)
	if err != nil {
		return Response{}, 0, fmt.Errorf("reading the handshake response: %w", err)
	}
	resp, err := ParseResponse(payload)
	if err != nil {
		s.fail(c, seq+1, mysql.NewDefaultError(mysql.ER_HANDSHAKE_ERROR))
		return Response{}, 0, err
	}
	if !resp.SSLRequest {
		return resp, seq, nil
	}
	if s.TLS == nil || resp.Capabilities&mysql.CLIENT_SSL == 0 {
		return Response{}, 0, errors.New("SSL requested but not offered")
	}
	tc := tls.Server(ReadThrough(nc, c.R), s.TLS) // a client sends its TLS hello right after the SSL request: the buffer may hold part of it
	if err := tc.Handshake(); err != nil {
		return Response{}, 0, fmt.Errorf("TLS handshake: %w", err)
	}
	c = wire.NewConn(tc)
	cl.Conn, cl.TLS = c, true
	if payload, seq, err = c.ReadPayload(1 << 16); err != nil {
		return Response{}, 0, fmt.Errorf("reading the handshake response: %w", err)
	}
	if resp, err = ParseResponse(payload); err != nil || resp.SSLRequest {
		s.fail(c, seq+1, mysql.NewDefaultError(mysql.ER_HANDSHAKE_ERROR))
		return Response{}, 0, fmt.Errorf("handshake response after TLS: %v", err)
	}
	return resp, seq, nil
}

// compression is the compressed protocol the client negotiated (0: none); zstd wins.
func (cl *Client) compression() int {
	switch {
	case cl.Has(mysql.CLIENT_ZSTD_COMPRESSION_ALGORITHM):
		return wire.CompressZstd
	case cl.Has(mysql.CLIENT_COMPRESS):
		return wire.CompressZlib
	}
	return 0
}

// fail sends an ERR packet (the connection then ends).
func (s *Server) fail(c *wire.Conn, seq byte, e *mysql.MyError) {
	c.WritePayload(seq, wire.AppendErr(nil, e.Code, e.State, e.Message))
	c.W.Flush()
}

func (s *Server) initialHandshake(connID uint32, salt []byte, hello Hello) []byte {
	caps := s.offered()
	version, collation := hello.Version, hello.Collation
	if s.Version != "" {
		version = s.Version
	}
	if version == "" {
		version = DefaultServerVersion
	}
	if collation == 0 {
		collation = 45 // utf8mb4_general_ci, MariaDB's
	}
	if hello.ExtCaps != 0 {
		caps &^= clientMySQL
	}
	b := []byte{10}
	b = append(b, version...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, connID)
	b = append(b, salt[:8]...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(caps))
	b = append(b, collation)
	b = binary.LittleEndian.AppendUint16(b, wire.StatusAutocommit)
	b = binary.LittleEndian.AppendUint16(b, uint16(caps>>16))
	b = append(b, byte(len(salt)+1))
	b = append(b, make([]byte, 6)...)
	b = binary.LittleEndian.AppendUint32(b, hello.ExtCaps) // MariaDB's extended capabilities
	b = append(b, salt[8:]...)
	b = append(b, 0)
	b = append(b, NativePassword...)
	return append(b, 0)
}

// newSalt is a 20-byte scramble from crypto/rand with no NUL (a NUL ends the salt for clients
// that read it as a C string: the original's lua-resty-mysql failed ~7.5 % of logins so) and
// no '$', as MySQL's own.
func newSalt() ([]byte, error) {
	salt := make([]byte, 20)
	var b [1]byte
	for i := 0; i < len(salt); {
		if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
			return nil, err
		}
		if c := b[0] & 0x7f; c != 0 && c != '$' {
			salt[i] = c
			i++
		}
	}
	return salt, nil
}

// HostOf is the address of the client on c, without its port.
func HostOf(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// ReadThrough is c read through r (a buffer over c, or bytes already taken from c and then c):
// writes, deadlines and the rest go to c.
func ReadThrough(c net.Conn, r io.Reader) net.Conn { return readThrough{c, r} }

type readThrough struct {
	net.Conn
	r io.Reader
}

func (c readThrough) Read(p []byte) (int, error) { return c.r.Read(p) }
