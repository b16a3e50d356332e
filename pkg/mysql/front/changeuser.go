package front

import (
	"errors"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

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
	if err := cl.W.Flush(); err != nil {
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
