// Package sni routes raw TLS connections by the server name (and ALPN) of their ClientHello,
// without terminating TLS: the hello is peeked, never consumed, so the backend sees the whole
// handshake.
package sni

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// DefaultMaxHello bounds a ClientHello (handshake message bytes). Post-quantum key shares make
// hellos of 1.5–2 KiB common and larger ones possible; 16 KiB leaves room.
const DefaultMaxHello = 16 << 10

// Errors of ReadHello.
var (
	ErrNotTLS      = errors.New("not a TLS handshake")
	ErrHelloTooBig = errors.New("ClientHello larger than the limit")
	ErrBadHello    = errors.New("malformed ClientHello")
)

// Hello is what routing needs from a ClientHello.
type Hello struct {
	ServerName string   // lower-cased; "" when the client sent none
	ALPN       []string // protocols offered, in order
	Version    uint16   // legacy_version of the hello
}

const (
	recordHeaderLen    = 5
	contentHandshake   = 0x16
	handshakeClientHi  = 0x01
	extServerName      = 0x0000
	extALPN            = 0x0010
	maxTLSRecordLength = 16384 + 2048
)

// maxHelloRecords is how many TLS records one ClientHello may span (clients use one or two;
// each TCP segment of a record is fine, however small).
const maxHelloRecords = 64

// BufferSize is the bufio.Reader size ReadHello needs for hellos up to max bytes: the message,
// plus a header per record it may span.
func BufferSize(max int) int { return max + 4 + maxHelloRecords*recordHeaderLen }

// ReadHello peeks at the ClientHello at the start of r without consuming it: it reassembles
// the handshake message from as many TLS records as it spans (each record may itself arrive in
// many TCP segments; Peek waits for them), up to max message bytes. r must have been created
// with at least BufferSize(max) bytes. Read deadlines are the caller's.
func ReadHello(r *bufio.Reader, max int) (Hello, error) {
	var msg []byte
	need := 4 // handshake header, then the full message
	off := 0  // bytes of the stream peeked so far (record headers included)
	for len(msg) < need {
		hdr, err := r.Peek(off + recordHeaderLen)
		if err != nil {
			return Hello{}, peekErr(err, off == 0 && len(hdr) == 0)
		}
		rec := hdr[off:]
		if rec[0] != contentHandshake {
			if off == 0 {
				return Hello{}, ErrNotTLS
			}
			return Hello{}, fmt.Errorf("%w: record type %d inside the hello", ErrBadHello, rec[0])
		}
		if off == 0 && rec[1] != 3 {
			return Hello{}, ErrNotTLS
		}
		n := int(binary.BigEndian.Uint16(rec[3:5]))
		if n == 0 || n > maxTLSRecordLength {
			return Hello{}, fmt.Errorf("%w: record length %d", ErrBadHello, n)
		}
		if off+recordHeaderLen+n > r.Size() {
			return Hello{}, ErrHelloTooBig
		}
		full, err := r.Peek(off + recordHeaderLen + n)
		if err != nil {
			return Hello{}, peekErr(err, false)
		}
		msg = append(msg, full[off+recordHeaderLen:]...)
		off += recordHeaderLen + n
		if len(msg) >= 4 && need == 4 {
			if msg[0] != handshakeClientHi {
				return Hello{}, fmt.Errorf("%w: handshake type %d", ErrBadHello, msg[0])
			}
			need = 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if need-4 > max {
				return Hello{}, ErrHelloTooBig
			}
		}
	}
	return parseHello(msg[4:need])
}

func peekErr(err error, empty bool) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return ErrHelloTooBig
	}
	if empty {
		return fmt.Errorf("%w: %v", ErrNotTLS, err)
	}
	return fmt.Errorf("%w: %v", ErrBadHello, err)
}

// cursor reads big-endian fields, failing softly.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) take(n int) []byte {
	if c.bad || n < 0 || n > len(c.b) {
		c.bad = true
		return nil
	}
	out := c.b[:n]
	c.b = c.b[n:]
	return out
}

func (c *cursor) u8() int {
	b := c.take(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (c *cursor) u16() int {
	b := c.take(2)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

// parseHello reads a ClientHello body: version, random, session id, cipher suites,
// compression methods, extensions (server_name and ALPN are kept).
func parseHello(body []byte) (Hello, error) {
	c := &cursor{b: body}
	var h Hello
	h.Version = uint16(c.u16())
	c.take(32)      // random
	c.take(c.u8())  // session id
	c.take(c.u16()) // cipher suites
	c.take(c.u8())  // compression methods
	if c.bad {
		return Hello{}, fmt.Errorf("%w: truncated before extensions", ErrBadHello)
	}
	if len(c.b) == 0 {
		return h, nil // no extensions (SSLv3-style hello)
	}
	exts := &cursor{b: c.take(c.u16())}
	if c.bad {
		return Hello{}, fmt.Errorf("%w: extensions length", ErrBadHello)
	}
	for len(exts.b) > 0 {
		typ := exts.u16()
		data := &cursor{b: exts.take(exts.u16())}
		if exts.bad {
			return Hello{}, fmt.Errorf("%w: extension length", ErrBadHello)
		}
		switch typ {
		case extServerName:
			list := &cursor{b: data.take(data.u16())}
			for len(list.b) > 0 && !list.bad {
				nameType := list.u8()
				name := list.take(list.u16())
				if nameType == 0 && !list.bad {
					h.ServerName = strings.ToLower(strings.TrimSuffix(string(name), "."))
				}
			}
			if data.bad || list.bad {
				return Hello{}, fmt.Errorf("%w: server_name extension", ErrBadHello)
			}
		case extALPN:
			list := &cursor{b: data.take(data.u16())}
			for len(list.b) > 0 && !list.bad {
				if p := list.take(list.u8()); !list.bad {
					h.ALPN = append(h.ALPN, string(p))
				}
			}
			if data.bad || list.bad {
				return Hello{}, fmt.Errorf("%w: ALPN extension", ErrBadHello)
			}
		}
	}
	if !validName(h.ServerName) {
		return Hello{}, fmt.Errorf("%w: server name %q", ErrBadHello, h.ServerName)
	}
	return h, nil
}

// validName accepts host names of letters, digits, '-', '_' and dots (no ports, no spaces);
// the name ends up in routing patterns and target addresses.
func validName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_') {
			return false
		}
	}
	return true
}
