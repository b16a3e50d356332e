package front

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

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

// LoginError is a failed login; its ERR packet was sent to the client.
type LoginError struct {
	User string
	Err  error
}

func (e *LoginError) Error() string { return fmt.Sprintf("login of %q: %v", e.User, e.Err) }

func (e *LoginError) Unwrap() error { return e.Err }

// ErrAccessDenied is a wrong password or an unknown user.
var ErrAccessDenied = errors.New("access denied")

func unguessable() string {
	b := make([]byte, 24)
	rand.Read(b)
	return string(b)
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
		if err := a.write(authSwitchRequest(a.user.Plugin, a.salt)); err != nil {
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

// authSwitchRequest asks the client to answer for plugin instead, with the same scramble
// (0xfe, the plugin's name and the scramble, each ended by a NUL, as a server sends it).
func authSwitchRequest(plugin string, salt []byte) []byte {
	req := append([]byte{wire.HeaderEOF}, plugin...)
	return append(append(append(req, 0), salt...), 0)
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

// caching_sha2_password signals.
const (
	sha2FastOK       = 3
	sha2FullAuth     = 4
	sha2PublicKeyReq = 2
)
