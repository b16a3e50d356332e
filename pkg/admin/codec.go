// Package admin implements the Slardar admin protocol spoken on port 1895 (and 1896, 1897 by the
// other daemons), byte for byte as the original OpenResty implementation spoke it.
//
// A request is a command line, "METHOD SP topic SP name LF", followed for the methods that carry
// one by a body: a 4-byte big-endian length and that many bytes. Tokens are separated by runs of
// spaces (only spaces); there must be exactly three; the method is upper-cased, the topic
// lower-cased and the name used as sent, less one trailing '\r'.
//
// A reply is uint32be(4+len(data)) | uint32be(type) | data, with type 0 OK (data "OK"),
// 1 MESSAGE (data is JSON) or 2 ERROR (data is the message).
package admin

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// EnvToken is the environment variable that carries the admin token for every binary (their
// --token flag), so it need not appear on a command line.
const EnvToken = "SLARDAR_TOKEN"

// DefaultAddr is where slardar-proxy speaks the protocol, as the original did (mysql-proxy
// and sni-router take the next ports, 1896 and 1897).
const DefaultAddr = "127.0.0.1:1895"

// Reply types on the wire.
const (
	TypeOK      uint32 = 0
	TypeMessage uint32 = 1
	TypeError   uint32 = 2
)

// Error strings of the original implementation that clients match on.
const (
	ErrCommandInvalid = "command invalid"
	ErrTopicInvalid   = "topic invalid"
	ErrMethodInvalid  = "method invalid"
	ErrNotAllowed     = "not allowed"
)

// Reply is one answer frame.
type Reply struct {
	Type uint32
	Data []byte
}

// OK is the reply to a command that succeeded without data.
func OK() Reply { return Reply{Type: TypeOK, Data: []byte("OK")} }

// Errorf is an ERROR reply.
func Errorf(format string, args ...any) Reply {
	return Reply{Type: TypeError, Data: fmt.Appendf(nil, format, args...)}
}

// Message is a MESSAGE reply carrying v encoded as JSON.
func Message(v any) Reply {
	data, err := json.Marshal(v)
	if err != nil {
		return Errorf("encoding reply: %v", err)
	}
	return Reply{Type: TypeMessage, Data: data}
}

// Result is the reply to a command that succeeded (OK) or failed with err (ERROR, with err's
// message: the original's strings come from the errors of the engines).
func Result(err error) Reply {
	if err == nil {
		return OK()
	}
	return Errorf("%s", err)
}

// Err returns the reply's message as an error when it is an ERROR reply, nil otherwise.
func (r Reply) Err() error {
	if r.Type == TypeError {
		return &ReplyError{Msg: string(r.Data)}
	}
	return nil
}

// ReplyError is an ERROR reply seen by a client.
type ReplyError struct{ Msg string }

func (e *ReplyError) Error() string { return e.Msg }

// AppendReply appends the wire form of a reply to dst.
func AppendReply(dst []byte, r Reply) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(r.Data)))
	dst = binary.BigEndian.AppendUint32(dst, r.Type)
	return append(dst, r.Data...)
}

// ErrFrameTooLarge is returned by ReadReply for a frame larger than the caller's limit.
var ErrFrameTooLarge = errors.New("admin reply larger than the limit")

// ErrNotAdmin is returned by ReadReply when the peer's answer is not an admin reply frame (an
// HTTP server, say): its type field is none of the three the protocol has.
var ErrNotAdmin = errors.New("the peer does not speak the admin protocol")

// ReadReply reads one reply frame of at most max data bytes.
func ReadReply(r io.Reader, max int) (Reply, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Reply{}, err
	}
	if typ := binary.BigEndian.Uint32(hdr[4:8]); typ > TypeError {
		return Reply{}, fmt.Errorf("%w (its answer starts with %q)", ErrNotAdmin, hdr[:])
	}
	size := binary.BigEndian.Uint32(hdr[0:4])
	if size < 4 {
		return Reply{}, fmt.Errorf("admin reply size %d is shorter than its type field", size)
	}
	if int64(size)-4 > int64(max) {
		return Reply{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size-4, max)
	}
	data := make([]byte, size-4)
	if _, err := io.ReadFull(r, data); err != nil {
		return Reply{}, fmt.Errorf("reading admin reply data: %w", io.ErrUnexpectedEOF)
	}
	return Reply{Type: binary.BigEndian.Uint32(hdr[4:8]), Data: data}, nil
}

// Command is a parsed command line (its body, if any, is read separately).
type Command struct {
	Method string // upper-cased
	Topic  string // lower-cased
	Name   string // as sent, less one trailing '\r'
}

// ParseLine splits a command line (without its '\n') the way the original did: on runs of
// spaces, exactly three tokens. It returns false when the line is not a command.
func ParseLine(line string) (Command, bool) {
	var toks [3]string
	n := 0
	for tok := range strings.SplitSeq(line, " ") {
		if tok == "" {
			continue
		}
		if n == 3 {
			return Command{}, false
		}
		toks[n] = tok
		n++
	}
	if n != 3 {
		return Command{}, false
	}
	name, _ := strings.CutSuffix(toks[2], "\r")
	if name == "" {
		return Command{}, false
	}
	return Command{Method: strings.ToUpper(toks[0]), Topic: strings.ToLower(toks[1]), Name: name}, true
}

// AppendRequest appends the wire form of a request to dst. A nil body sends none; a non-nil
// body (even empty) sends its length prefix.
func AppendRequest(dst []byte, method, topic, name string, body []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, topic...)
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, '\n')
	if body != nil {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
		dst = append(dst, body...)
	}
	return dst
}
