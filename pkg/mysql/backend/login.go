package backend

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"filippo.io/edwards25519"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// The proxy's own client side of the connection phase: the server's handshake, TLS, the
// handshake response (with the client's capabilities, collation and attributes) and the
// authentication exchange, for the plugins a server may ask for.

// Authentication plugins a backend login answers.
const (
	pluginNative      = "mysql_native_password"
	pluginCachingSha2 = "caching_sha2_password"
	pluginEd25519     = "client_ed25519"
	pluginClear       = "mysql_clear_password"
)

// MariaDB's capabilities, above the 32 bits MySQL has (sent in the handshake's reserved bytes
// when the server does not set CLIENT_MYSQL, bit 0).
const (
	ClientMySQL                   = 1 // CLIENT_LONG_PASSWORD in MySQL; unset by MariaDB 10.2+
	MariaDBClientStmtBulk         = 1 << 34
	MariaDBClientExtendedMetadata = 1 << 35
)

// Secret is what logs in as a user: the password, or, for mysql_native_password only, the
// SHA1 of it (what a client's scramble and the server's stored hash give the proxy).
type Secret struct {
	Password   string
	NativeHash []byte // SHA1(password), 20 bytes
}

// Handshake is what a server said of itself in its initial handshake.
type Handshake struct {
	Version   string
	ThreadID  uint32
	Caps      uint64 // with MariaDB's extended capabilities above bit 32
	Collation uint8
	Status    uint16
	salt      []byte
	plugin    string
	tls       bool
}

// greeting is a connection that has the server's handshake and has not answered it yet.
type greeting struct {
	nc  net.Conn
	c   *wire.Conn
	hs  *Handshake
	seq byte
}

// greet reads the server's handshake on nc.
func greet(ctx context.Context, nc net.Conn) (*greeting, error) {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
		defer nc.SetDeadline(time.Time{})
	}
	c := wire.NewConn(nc)
	p, seq, err := c.ReadPayload(1 << 16)
	if err != nil {
		return nil, fmt.Errorf("reading the server's handshake: %w", err)
	}
	if len(p) > 0 && p[0] == wire.HeaderErr {
		return nil, serverError(p)
	}
	hs, err := parseHandshake(p)
	if err != nil {
		return nil, err
	}
	return &greeting{nc: nc, c: c, hs: hs, seq: seq}, nil
}

// relayedAuth is a login whose authentication a client answers through the proxy: its first
// auth data for the server's scramble (with plugin), and its answers to what the server asks
// next (an auth switch, more data).
type relayedAuth struct {
	plugin string
	first  []byte
	relay  func(serverPacket []byte) ([]byte, error)
}

func (g *greeting) loginWith(ctx context.Context, key Key, user, schema string, collation uint8, secret Secret, attrs []Attr, ra *relayedAuth) (*Handshake, net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		g.nc.SetDeadline(dl)
		defer g.nc.SetDeadline(time.Time{})
	}
	nc, c, hs, seq := g.nc, g.c, g.hs, g.seq
	var err error
	want := uint64(key.Caps | always | mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_PLUGIN_AUTH |
		mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | mysql.CLIENT_TRANSACTIONS | mysql.CLIENT_LONG_FLAG)
	if schema != "" {
		want |= uint64(mysql.CLIENT_CONNECT_WITH_DB)
	}
	want |= uint64(mysql.CLIENT_CONNECT_ATTRS) // always: a COM_CHANGE_USER carries them only then
	if hs.Caps&ClientMySQL == 0 {
		want |= uint64(key.ExtCaps) << 32 // MariaDB: its extended capabilities count
	} else {
		want |= ClientMySQL // MySQL's CLIENT_LONG_PASSWORD
	}
	if missing := (uint64(key.Caps|always) | uint64(key.ExtCaps)<<32) &^ hs.Caps; missing != 0 {
		return nil, nil, fmt.Errorf("%w (%#x)", ErrFraming, missing)
	}
	caps := want & hs.Caps
	next := seq + 1
	tlsConf := key.TLS
	if tlsConf != nil && hs.Caps&uint64(mysql.CLIENT_SSL) == 0 {
		if !key.TLSPreferred {
			return nil, nil, errors.New("the server does not offer TLS (the upstream's tls.mode is required)")
		}
		tlsConf = nil
	}
	if tlsConf != nil {
		if tlsConf.ServerName == "" && !tlsConf.InsecureSkipVerify {
			host, _, _ := net.SplitHostPort(key.Addr)
			tlsConf = tlsConf.Clone()
			tlsConf.ServerName = host
		}
		caps |= uint64(mysql.CLIENT_SSL)
		if next, err = c.WritePayload(next, responseHead(caps, collation)); err == nil {
			err = c.W.Flush()
		}
		if err != nil {
			return nil, nil, err
		}
		tc := tls.Client(nc, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc, c = tc, wire.NewConn(tc)
	}
	a := &authExchange{c: c, seq: next, secret: secret, tls: tlsConf != nil, hs: hs}
	plugin := hs.plugin
	var data []byte
	if ra != nil {
		plugin, data, a.relay = ra.plugin, ra.first, ra.relay
	} else if data, err = a.scramble(plugin, hs.salt); err != nil {
		return nil, nil, err
	}
	resp := responseHead(caps, collation)
	resp = append(append(resp, user...), 0)
	resp = append(mysql.AppendLengthEncodedInteger(resp, uint64(len(data))), data...)
	if schema != "" {
		resp = append(append(resp, schema...), 0)
	}
	resp = append(append(resp, plugin...), 0)
	if caps&uint64(mysql.CLIENT_CONNECT_ATTRS) != 0 {
		resp = wire.AppendAttrs(resp, attrs)
	}
	if err := a.write(resp); err != nil {
		return nil, nil, err
	}
	if err := a.finish(plugin); err != nil {
		return nil, nil, err
	}
	hs.Caps, hs.tls = caps, tlsConf != nil
	return hs, nc, nil
}

// Attr is one connection attribute.
type Attr = wire.Attr

// responseHead is the first 32 bytes of a handshake response (or the whole SSLRequest).
func responseHead(caps uint64, collation uint8) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(caps))
	b = binary.LittleEndian.AppendUint32(b, 1<<24)
	b = append(b, collation)
	b = append(b, make([]byte, 19)...)
	return binary.LittleEndian.AppendUint32(b, uint32(caps>>32)) // MariaDB's extended capabilities
}

// parseHandshake reads an initial handshake (protocol 10).
func parseHandshake(p []byte) (*Handshake, error) {
	bad := func(what string) error { return fmt.Errorf("the server's handshake: %s", what) }
	if len(p) < 1 || p[0] != 10 {
		return nil, bad("not protocol 10")
	}
	end := bytes.IndexByte(p[1:], 0)
	if end < 0 {
		return nil, bad("no version")
	}
	hs := &Handshake{Version: string(p[1 : 1+end])}
	p = p[2+end:]
	if len(p) < 4+8+1+2 {
		return nil, bad("too short")
	}
	hs.ThreadID = binary.LittleEndian.Uint32(p)
	hs.salt = append([]byte(nil), p[4:12]...)
	hs.Caps = uint64(binary.LittleEndian.Uint16(p[13:]))
	p = p[15:]
	if len(p) < 16 {
		return hs, nil // an old server: nothing more
	}
	hs.Collation = p[0]
	hs.Status = binary.LittleEndian.Uint16(p[1:])
	hs.Caps |= uint64(binary.LittleEndian.Uint16(p[3:])) << 16
	saltLen := int(p[5])
	if hs.Caps&ClientMySQL == 0 {
		hs.Caps |= uint64(binary.LittleEndian.Uint32(p[12:])) << 32
	}
	p = p[16:]
	if hs.Caps&uint64(mysql.CLIENT_SECURE_CONNECTION) != 0 {
		n := max(13, saltLen-8)
		if len(p) < n {
			return nil, bad("short scramble")
		}
		hs.salt = append(hs.salt, bytes.TrimRight(p[:n], "\x00")...)
		p = p[n:]
	}
	hs.plugin = pluginNative
	if hs.Caps&uint64(mysql.CLIENT_PLUGIN_AUTH) != 0 && len(p) > 0 {
		hs.plugin = string(bytes.TrimRight(p, "\x00"))
	}
	if hs.Caps&uint64(mysql.CLIENT_PROTOCOL_41) == 0 {
		return nil, bad("no protocol 4.1")
	}
	return hs, nil
}

// authExchange is one login's authentication after the handshake response.
type authExchange struct {
	c      *wire.Conn
	seq    byte
	secret Secret
	tls    bool
	hs     *Handshake
	relay  func([]byte) ([]byte, error) // a client answers (see relayedAuth)
}

func (a *authExchange) write(p []byte) error {
	var err error
	if a.seq, err = a.c.WritePayload(a.seq, p); err != nil {
		return err
	}
	return a.c.W.Flush()
}

func (a *authExchange) read() ([]byte, error) {
	p, seq, err := a.c.ReadPayload(1 << 16)
	if err != nil {
		return nil, err
	}
	a.seq = seq + 1
	if len(p) == 0 {
		return nil, errors.New("empty packet in the authentication exchange")
	}
	return p, nil
}

// scramble is the first auth data of plugin for salt.
func (a *authExchange) scramble(plugin string, salt []byte) ([]byte, error) {
	pw := []byte(a.secret.Password)
	switch plugin {
	case pluginNative:
		if a.secret.NativeHash != nil {
			return nativeFromHash(salt, a.secret.NativeHash), nil
		}
		return mysql.CalcNativePassword(salt, pw), nil
	case pluginCachingSha2:
		if a.secret.Password == "" && a.secret.NativeHash != nil {
			return nil, errors.New("caching_sha2_password needs the password, which the proxy does not have for this user")
		}
		return mysql.CalcCachingSha2Password(salt, pw), nil
	case pluginEd25519:
		if a.secret.Password == "" && a.secret.NativeHash != nil {
			return nil, errors.New("client_ed25519 needs the password, which the proxy does not have for this user")
		}
		return ed25519Sign(salt, pw)
	case pluginClear:
		if !a.tls {
			return nil, errors.New("mysql_clear_password without TLS")
		}
		return append(pw, 0), nil
	}
	return nil, fmt.Errorf("the server asks for auth plugin %q, which the proxy does not speak", plugin)
}

// finish reads the server's answers until OK or ERR: auth switches and caching_sha2's steps.
func (a *authExchange) finish(plugin string) error {
	for {
		p, err := a.read()
		if err != nil {
			return fmt.Errorf("reading the login's answer: %w", err)
		}
		switch {
		case p[0] == wire.HeaderOK:
			return nil
		case p[0] == wire.HeaderErr:
			return serverError(p)
		case a.relay != nil:
			reply, err := a.relay(p)
			if err != nil {
				return err
			}
			if err := a.write(reply); err != nil {
				return err
			}
			continue
		}
		switch p[0] {
		case wire.HeaderEOF: // auth switch: plugin NUL salt
			name, salt, _ := bytes.Cut(p[1:], []byte{0})
			plugin = string(name)
			data, err := a.scramble(plugin, bytes.TrimRight(salt, "\x00"))
			if err != nil {
				return err
			}
			a.hs.salt = bytes.TrimRight(salt, "\x00")
			if err := a.write(data); err != nil {
				return err
			}
		case 1: // more data
			if plugin != pluginCachingSha2 || len(p) < 2 {
				return fmt.Errorf("unexpected auth data for %s", plugin)
			}
			if err := a.sha2(p[1]); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected packet %#x in the login", p[0])
		}
	}
}

// sha2 answers caching_sha2_password's step: fast auth succeeded (3: the OK follows), or the
// server wants the password: in the clear over TLS, else encrypted with its RSA key.
func (a *authExchange) sha2(step byte) error {
	switch step {
	case 3:
		return nil
	case 4:
	default:
		return fmt.Errorf("caching_sha2_password step %d", step)
	}
	pw := append([]byte(a.secret.Password), 0)
	if a.tls {
		return a.write(pw)
	}
	if err := a.write([]byte{2}); err != nil { // the server's public key, please
		return err
	}
	p, err := a.read()
	if err != nil {
		return err
	}
	if p[0] != 1 {
		return fmt.Errorf("caching_sha2_password: no public key (%#x)", p[0])
	}
	block, _ := pem.Decode(p[1:])
	if block == nil {
		return errors.New("caching_sha2_password: a public key that does not decode")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return err
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return errors.New("caching_sha2_password: not an RSA key")
	}
	enc, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, rsaPub, mysql.Xor(pw, a.hs.salt), nil)
	if err != nil {
		return err
	}
	return a.write(enc)
}

// nativeFromHash is mysql_native_password's scramble from SHA1(password):
// SHA1(password) XOR SHA1(salt + SHA1(SHA1(password))).
func nativeFromHash(salt, stage1 []byte) []byte {
	stage2 := sha1.Sum(stage1)
	h := sha1.New()
	h.Write(salt)
	h.Write(stage2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= stage1[i]
	}
	return out
}

// ed25519Sign is MariaDB's client_ed25519: an Ed25519 signature of the scramble with the key
// whose expanded secret is SHA512(password) (the password in place of the 32-byte seed).
func ed25519Sign(msg, password []byte) ([]byte, error) {
	h := sha512.Sum512(password)
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		return nil, err
	}
	A := (&edwards25519.Point{}).ScalarBaseMult(s).Bytes()
	rh := sha512.New()
	rh.Write(h[32:])
	rh.Write(msg)
	r, err := edwards25519.NewScalar().SetUniformBytes(rh.Sum(nil))
	if err != nil {
		return nil, err
	}
	R := (&edwards25519.Point{}).ScalarBaseMult(r).Bytes()
	kh := sha512.New()
	kh.Write(R)
	kh.Write(A)
	kh.Write(msg)
	k, err := edwards25519.NewScalar().SetUniformBytes(kh.Sum(nil))
	if err != nil {
		return nil, err
	}
	S := edwards25519.NewScalar().MultiplyAdd(k, s, r)
	return slices.Concat(R, S.Bytes()), nil
}

// serverError is an ERR packet as the MySQL error it carries.
func serverError(p []byte) error {
	e := wire.ParseErr(p)
	return &mysql.MyError{Code: e.Code, State: e.State, Message: e.Message}
}

// ChangeUser logs the connection in again as l (COM_CHANGE_USER): the server starts a new
// session as a fresh login would (the user's default role, session variables from the globals
// as they are now, the schema selected again with its character set as it is now, temporary
// tables and locks gone) and sees l's attributes; then the proxy's session tracking and, for a
// replica, the read-only mode are set again.
func (c *Conn) ChangeUser(ctx context.Context, l Login) error {
	defer c.bound(ctx)()
	a := &authExchange{c: c.Conn, seq: 0, secret: l.Secret, tls: c.TLS, hs: c.hs}
	data, err := a.scramble(c.hs.plugin, c.hs.salt)
	if err != nil {
		return err
	}
	p := append([]byte{mysql.COM_CHANGE_USER}, l.User...)
	p = append(append(p, 0, byte(len(data))), data...)
	p = append(append(p, l.Schema...), 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(l.Collation))
	p = append(append(p, c.hs.plugin...), 0)
	if c.hs.Caps&uint64(mysql.CLIENT_CONNECT_ATTRS) != 0 {
		p = wire.AppendAttrs(p, l.Attrs)
	}
	if err := a.write(p); err != nil {
		return err
	}
	if err := a.finish(c.hs.plugin); err != nil {
		return err
	}
	c.Login, c.Schema, c.Status, c.SkipState, c.Dirty, c.Shared = l, l.Schema, wire.StatusAutocommit, false, false, ""
	return c.track(ctx)
}

// Reset ends the connection's session as COM_RESET_CONNECTION does (its transaction, locks,
// temporary tables, variables and prepared statements; the user, the schema and the thread
// stay), then sets the proxy's session tracking again.
func (c *Conn) Reset(ctx context.Context) error {
	if err := c.Exec(ctx, mysql.COM_RESET_CONNECTION, ""); err != nil {
		return err
	}
	c.Status, c.SkipState, c.Dirty, c.Shared = wire.StatusAutocommit, false, false, ""
	return c.track(ctx)
}

// ReadHandshake connects to addr and reads the server's initial handshake, without logging in.
func ReadHandshake(ctx context.Context, addr string) (*Handshake, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	p, _, err := wire.NewConn(nc).ReadPayload(1 << 16)
	if err != nil {
		return nil, err
	}
	if len(p) > 0 && p[0] == wire.HeaderErr {
		return nil, serverError(p)
	}
	return parseHandshake(p)
}

// ExtCaps are MariaDB's extended capabilities of the server (shifted down 32 bits; 0 for
// MySQL).
func (hs *Handshake) ExtCaps() uint32 {
	if hs.Caps&ClientMySQL != 0 {
		return 0
	}
	return uint32(hs.Caps >> 32)
}

// LoginRelayed completes the login as user with the client's own authentication: the
// handshake response names plugin (the client side of the user's) with first as its auth data
// (none: the server asks first), and relay answers, through the client, what the server asks.
// A refusal is the server's own error.
func (pd *Pending) LoginRelayed(ctx context.Context, key Key, l Login, plugin string, first []byte, relay func([]byte) ([]byte, error)) (*Conn, error) {
	return pd.complete(ctx, key, l, &relayedAuth{plugin: plugin, first: first, relay: relay})
}
