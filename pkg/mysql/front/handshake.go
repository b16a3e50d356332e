// Package front is the server side of mysql-proxy's connections: the initial handshake, TLS,
// and the client's login (mysql_native_password and caching_sha2_password, with its fast path,
// its full authentication over TLS or with the server's RSA key, and auth switches), standing
// on go-mysql's password algorithms and error table. The command phase is the session's.
package front

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
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

// User is an account clients log in as.
type User struct {
	Name     string
	Password string
	Plugin   string // NativePassword (default) or CachingSha2Password
	Schema   string // default schema when the client names none
	// NativeHash, for a user learned from the servers, is its stored mysql_native_password
	// hash, SHA1(SHA1(password)): the client's scramble is checked against it, and yields
	// SHA1(password) (Client.Stage1), which logs the session in to every server.
	NativeHash []byte
	// Passthrough: a user whose plugin the proxy cannot check (client_ed25519, PAM, ...): its
	// login is relayed to a server (Hello.Relay), and the session stays on that connection.
	Passthrough bool
	// Learned: read from the servers' accounts (Hello.Recheck reads it again).
	Learned bool
}

// Relay is a login relayed to a server, for a Passthrough user.
type Relay interface {
	// Finish logs in to the server with the user's client-side plugin, relays what the server
	// asks (ask sends it to the client and returns the client's answer), and returns the
	// logged-in server connection for the session to take over; a refusal is the server's own
	// *mysql.MyError.
	Finish(plugin string, ask func(request []byte) ([]byte, error)) (any, error)
}

// clientPlugins are the client-side plugins of server authentication plugins that differ.
var clientPlugins = map[string]string{"ed25519": "client_ed25519", "pam": "dialog", "gssapi": "auth_gssapi_client"}

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

// LoginError is a failed login; its ERR packet was sent to the client.
type LoginError struct {
	User string
	Err  error
}

func (e *LoginError) Error() string { return fmt.Sprintf("login of %q: %v", e.User, e.Err) }
func (e *LoginError) Unwrap() error { return e.Err }

// ErrAccessDenied is a wrong password or an unknown user.
var ErrAccessDenied = errors.New("access denied")

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
	seq, err := c.WritePayload(0, s.initialHandshake(cl.ConnID, salt, hello))
	if err == nil {
		err = c.W.Flush()
	}
	if err != nil {
		return nil, err
	}
	payload, seq, err := c.ReadPayload(1 << 16)
	if err != nil {
		return nil, fmt.Errorf("reading the handshake response: %w", err)
	}
	resp, err := ParseResponse(payload)
	if err != nil {
		s.fail(c, seq+1, mysql.NewDefaultError(mysql.ER_HANDSHAKE_ERROR))
		return nil, err
	}
	if resp.SSLRequest {
		if s.TLS == nil || resp.Capabilities&mysql.CLIENT_SSL == 0 {
			return nil, errors.New("SSL requested but not offered")
		}
		tc := tls.Server(ReadThrough(nc, c.R), s.TLS) // a client sends its TLS hello right after the SSL request: the buffer may hold part of it
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		c = wire.NewConn(tc)
		cl.Conn, cl.TLS = c, true
		if payload, seq, err = c.ReadPayload(1 << 16); err != nil {
			return nil, fmt.Errorf("reading the handshake response: %w", err)
		}
		if resp, err = ParseResponse(payload); err != nil || resp.SSLRequest {
			s.fail(c, seq+1, mysql.NewDefaultError(mysql.ER_HANDSHAKE_ERROR))
			return nil, fmt.Errorf("handshake response after TLS: %v", err)
		}
	}
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
	cl.User, cl.salt, cl.Stage1 = u, salt, a.stage1
	if cl.Schema == "" {
		cl.Schema = u.Schema
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

func unguessable() string {
	b := make([]byte, 24)
	rand.Read(b)
	return string(b)
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

// Response is a client's handshake response.
type Response struct {
	Capabilities uint32
	Collation    uint8
	User         string
	AuthData     []byte
	Schema       string
	Plugin       string
	Attrs        []wire.Attr // CLIENT_CONNECT_ATTRS
	ExtCaps      uint32      // MariaDB's extended capabilities (when bit 0 is clear)
	ZstdLevel    byte        // CLIENT_ZSTD_COMPRESSION_ALGORITHM's level
	SSLRequest   bool        // only the first 32 bytes: the client asks for TLS first
}

// ParseResponse reads a HandshakeResponse41 (or the SSLRequest that precedes it under TLS).
func ParseResponse(p []byte) (Response, error) {
	var r Response
	if len(p) < 32 {
		return r, fmt.Errorf("handshake response of %d bytes", len(p))
	}
	r.Capabilities = binary.LittleEndian.Uint32(p)
	if r.Capabilities&mysql.CLIENT_PROTOCOL_41 == 0 {
		return r, errors.New("the client does not speak protocol 4.1")
	}
	r.Collation = p[8]
	if r.Capabilities&clientMySQL == 0 {
		r.ExtCaps = binary.LittleEndian.Uint32(p[28:])
	}
	if len(p) == 32 {
		r.SSLRequest = true
		return r, nil
	}
	rest := p[32:]
	user, rest, ok := cString(rest)
	if !ok {
		return r, errors.New("handshake response: no user")
	}
	r.User = user
	switch {
	case r.Capabilities&mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		data, n, ok := wire.LenencString(rest)
		if !ok {
			return r, errors.New("handshake response: bad auth data")
		}
		r.AuthData, rest = data, rest[n:]
	case r.Capabilities&mysql.CLIENT_SECURE_CONNECTION != 0:
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return r, errors.New("handshake response: bad auth data")
		}
		r.AuthData, rest = rest[1:1+int(rest[0])], rest[1+int(rest[0]):]
	default:
		data, after, ok := cString(rest)
		if !ok {
			return r, errors.New("handshake response: bad auth data")
		}
		r.AuthData, rest = []byte(data), after
	}
	if r.Capabilities&mysql.CLIENT_CONNECT_WITH_DB != 0 && len(rest) > 0 {
		db, after, ok := cString(rest)
		if !ok {
			return r, errors.New("handshake response: bad schema")
		}
		r.Schema, rest = db, after
	}
	r.Plugin = NativePassword
	if r.Capabilities&mysql.CLIENT_PLUGIN_AUTH != 0 && len(rest) > 0 {
		name, after, ok := cString(rest)
		if !ok {
			return r, errors.New("handshake response: bad plugin name")
		}
		r.Plugin, rest = name, after
	}
	if r.Capabilities&mysql.CLIENT_CONNECT_ATTRS != 0 && len(rest) > 0 {
		attrs, after, ok := wire.ParseAttrs(rest)
		if !ok {
			return r, errors.New("handshake response: bad connection attributes")
		}
		r.Attrs, rest = attrs, after
	}
	if r.Capabilities&mysql.CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0 && len(rest) > 0 {
		r.ZstdLevel = rest[0]
	}
	return r, nil
}

func cString(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

// lookup finds a user for the connection (its listener's users, or the server's).
func (s *Server) lookup(hello Hello, name, host string) (User, bool) {
	if hello.Users != nil {
		return hello.Users(name, host)
	}
	if s.Users == nil {
		return User{}, false
	}
	return s.Users(name)
}

// auth is one login's exchange after the handshake response.
type auth struct {
	s      *Server
	c      *wire.Conn
	seq    byte
	salt   []byte
	user   User
	tls    bool
	host   string
	cl     *Client
	hello  Hello
	resp   Response
	stage1 []byte // SHA1(password) of a learned user, from its scramble
}

func (a *auth) denied(usedPassword bool) error {
	yes := mysql.MySQLErrName[mysql.ER_NO]
	if usedPassword {
		yes = mysql.MySQLErrName[mysql.ER_YES]
	}
	return mysql.NewDefaultError(mysql.ER_ACCESS_DENIED_ERROR, a.user.Name, a.host, yes)
}

func (a *auth) write(payload []byte) error {
	var err error
	if a.seq, err = a.c.WritePayload(a.seq, payload); err != nil {
		return err
	}
	return a.c.W.Flush()
}

func (a *auth) read() ([]byte, error) {
	p, seq, err := a.c.ReadPayload(1 << 16)
	if err != nil {
		return nil, fmt.Errorf("reading auth data: %w", err)
	}
	a.seq = seq + 1
	return p, nil
}

func (a *auth) run(resp Response) error {
	if a.user.Passthrough {
		return a.relay()
	}
	data := resp.AuthData
	if resp.Plugin != a.user.Plugin {
		// Auth switch: the user's plugin, with the same scramble.
		req := append([]byte{wire.HeaderEOF}, a.user.Plugin...)
		req = append(append(append(req, 0), a.salt...), 0)
		if err := a.write(req); err != nil {
			return err
		}
		var err error
		if data, err = a.read(); err != nil {
			return err
		}
	}
	switch a.user.Plugin {
	case NativePassword:
		ok := a.native(data)
		if !ok && a.user.Learned && a.hello.Recheck != nil {
			if u, found := a.hello.Recheck(a.user.Name, a.host); found && u.Plugin == NativePassword && !u.Passthrough {
				a.user = u
				ok = a.native(data)
			}
		}
		if !ok {
			return a.denied(len(data) > 0)
		}
		return nil
	case CachingSha2Password:
		return a.sha2(data)
	}
	return fmt.Errorf("user %q: unknown auth plugin %q", a.user.Name, a.user.Plugin)
}

// native checks a mysql_native_password answer (against a learned user's stored hash, whose
// SHA1(password) it then keeps, or the configured password).
func (a *auth) native(data []byte) bool {
	if a.user.NativeHash != nil {
		stage1, ok := nativeStage1(a.salt, data, a.user.NativeHash)
		if ok {
			a.stage1 = stage1
		}
		return ok
	}
	want := mysql.CalcNativePassword(a.salt, []byte(a.user.Password))
	return subtle.ConstantTimeCompare(data, want) == 1
}

// relay runs a Passthrough user's login through a server: the client is switched to the
// server's plugin and scramble, and its answers go to the server until it accepts or refuses.
func (a *auth) relay() error {
	if a.hello.Relay == nil {
		return a.denied(len(a.resp.AuthData) > 0)
	}
	r, err := a.hello.Relay(a.cl, a.resp)
	if err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			return me
		}
		return mysql.NewError(mysql.ER_ACCESS_DENIED_ERROR, "the servers cannot be reached to check the login: "+err.Error())
	}
	plugin := a.user.Plugin
	if p, ok := clientPlugins[plugin]; ok {
		plugin = p
	}
	// The client gets one auth switch: to the plugin, with the server's first request (a
	// second switch is more than some drivers accept); what follows passes as it is.
	first := true
	conn, err := r.Finish(plugin, func(request []byte) ([]byte, error) {
		if first && len(request) > 0 && request[0] == 1 {
			request = append(append(append([]byte{wire.HeaderEOF}, plugin...), 0), request[1:]...)
		}
		first = false
		if err := a.write(request); err != nil {
			return nil, err
		}
		return a.read()
	})
	if err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			return me // the server's refusal, as it is
		}
		return err
	}
	a.cl.Relayed = conn
	return nil
}

// nativeStage1 recovers SHA1(password) from a client's mysql_native_password scramble for salt
// and the stored hash SHA1(SHA1(password)), and checks it against the hash.
func nativeStage1(salt, scramble, stored []byte) ([]byte, bool) {
	if len(scramble) != sha1.Size || len(stored) != sha1.Size {
		return nil, false
	}
	h := sha1.New()
	h.Write(salt)
	h.Write(stored)
	stage1 := h.Sum(nil)
	for i := range stage1 {
		stage1[i] ^= scramble[i]
	}
	check := sha1.Sum(stage1)
	return stage1, subtle.ConstantTimeCompare(check[:], stored) == 1
}

// caching_sha2_password signals.
const (
	sha2FastOK       = 3
	sha2FullAuth     = 4
	sha2PublicKeyReq = 2
)

// sha2 is caching_sha2_password: the scramble is checked at once when the fast path is open for
// this user (a full authentication succeeded before); otherwise the client must send the
// password itself, in the clear over TLS or encrypted with the proxy's RSA public key.
func (a *auth) sha2(scramble []byte) error {
	pw := []byte(a.user.Password)
	if len(pw) == 0 {
		if len(scramble) == 0 || (len(scramble) == 1 && scramble[0] == 0) {
			return nil
		}
		return a.denied(true)
	}
	if len(scramble) == 0 {
		return a.denied(false)
	}
	key := a.user.Name + "\x00" + a.user.Password
	if _, open := a.s.cache.Load(key); open {
		if subtle.ConstantTimeCompare(scramble, mysql.CalcCachingSha2Password(a.salt, pw)) != 1 {
			return a.denied(true)
		}
		return a.write([]byte{1, sha2FastOK})
	}
	if err := a.write([]byte{1, sha2FullAuth}); err != nil {
		return err
	}
	data, err := a.read()
	if err != nil {
		return err
	}
	var clear []byte
	switch {
	case a.tls:
		clear = bytes.TrimRight(data, "\x00")
	case len(data) == 1 && data[0] == sha2PublicKeyReq:
		pub, err := a.s.publicKeyPEM()
		if err != nil {
			return err
		}
		if err := a.write(append([]byte{1}, pub...)); err != nil {
			return err
		}
		if data, err = a.read(); err != nil {
			return err
		}
		fallthrough
	default:
		if a.s.RSAKey == nil {
			return a.denied(true)
		}
		plain, err := rsa.DecryptOAEP(sha1.New(), rand.Reader, a.s.RSAKey, data, nil)
		if err != nil {
			return a.denied(true)
		}
		clear = bytes.TrimRight(mysql.Xor(plain, a.salt), "\x00")
	}
	if subtle.ConstantTimeCompare(clear, pw) != 1 {
		return a.denied(true)
	}
	a.s.cache.Store(key, true)
	return nil
}

func (s *Server) publicKeyPEM() ([]byte, error) {
	if s.RSAKey == nil {
		return nil, errors.New("no RSA key for caching_sha2_password without TLS")
	}
	s.sha2Once.Do(func() {
		der, err := x509.MarshalPKIXPublicKey(&s.RSAKey.PublicKey)
		if err == nil {
			s.pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		}
	})
	if s.pubPEM == nil {
		return nil, errors.New("encoding the RSA public key")
	}
	return s.pubPEM, nil
}

// ChangeUser runs COM_CHANGE_USER's login (payload is the command, seq its sequence number):
// the client authenticates again against the handshake's scramble, maybe after an auth switch.
// It returns the new user, schema and collation (0: unchanged) after the OK was sent. A
// refused login returns a nil user and no error: the client got the ERR and, as on a server,
// keeps its session. An error is a connection that cannot go on.
func (s *Server) ChangeUser(cl *Client, payload []byte, seq byte) (*User, string, uint8, error) {
	r, err := parseChangeUser(payload, cl.Capabilities)
	if err != nil {
		s.fail(cl.Conn, seq+1, mysql.NewDefaultError(mysql.ER_MALFORMED_PACKET))
		return nil, "", 0, nil
	}
	u, known := s.lookup(cl.hello, r.User, HostOf(cl.Conn))
	if !known || u.Passthrough { // a relayed login cannot change: it is refused as a server refuses
		u = User{Name: r.User, Password: unguessable(), Plugin: NativePassword}
	}
	if u.Plugin == "" {
		u.Plugin = NativePassword
	}
	a := &auth{s: s, c: cl.Conn, seq: seq + 1, salt: cl.salt, user: u, tls: cl.TLS, host: HostOf(cl.Conn), cl: cl, resp: r}
	if err := a.run(r); err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			s.fail(cl.Conn, a.seq, me)
			return nil, "", 0, nil
		}
		return nil, "", 0, err
	}
	if r.Schema == "" {
		r.Schema = u.Schema
	}
	ok := wire.AppendOK(nil, wire.HeaderOK, wire.OK{Status: wire.StatusAutocommit}, cl.Has(mysql.CLIENT_SESSION_TRACK))
	if _, err := cl.WritePayload(a.seq, ok); err != nil {
		return nil, "", 0, err
	}
	cl.Attrs, cl.Stage1 = r.Attrs, a.stage1
	return &u, r.Schema, r.Collation, nil
}

// parseChangeUser reads COM_CHANGE_USER: user, auth data, schema, collation, plugin name.
func parseChangeUser(p []byte, caps uint32) (Response, error) {
	r := Response{Capabilities: caps, Plugin: NativePassword}
	user, rest, ok := cString(p[1:])
	if !ok {
		return r, errors.New("change user: no user")
	}
	r.User = user
	if caps&mysql.CLIENT_SECURE_CONNECTION != 0 {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return r, errors.New("change user: bad auth data")
		}
		r.AuthData, rest = rest[1:1+int(rest[0])], rest[1+int(rest[0]):]
	} else {
		data, after, ok := cString(rest)
		if !ok {
			return r, errors.New("change user: bad auth data")
		}
		r.AuthData, rest = []byte(data), after
	}
	db, rest, ok := cString(rest)
	if !ok {
		return r, nil // nothing more: the old form
	}
	r.Schema = db
	if len(rest) >= 2 {
		r.Collation, rest = rest[0], rest[2:]
	}
	if caps&mysql.CLIENT_PLUGIN_AUTH != 0 && len(rest) > 0 {
		if name, after, ok := cString(rest); ok {
			r.Plugin, rest = name, after
		}
	}
	if caps&mysql.CLIENT_CONNECT_ATTRS != 0 && len(rest) > 0 {
		if attrs, _, ok := wire.ParseAttrs(rest); ok {
			r.Attrs = attrs
		}
	}
	return r, nil
}
