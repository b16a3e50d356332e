package front

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

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
