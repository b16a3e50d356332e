package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Packet headers of responses.
const (
	HeaderOK          = 0x00
	HeaderLocalInfile = 0xFB
	HeaderEOF         = 0xFE
	HeaderErr         = 0xFF
)

// Server status flags the proxy reads.
const (
	StatusInTrans         = mysql.SERVER_STATUS_IN_TRANS
	StatusAutocommit      = mysql.SERVER_STATUS_AUTOCOMMIT
	StatusMoreResults     = mysql.SERVER_MORE_RESULTS_EXISTS
	StatusCursorExists    = mysql.SERVER_STATUS_CURSOR_EXISTS
	StatusInTransReadOnly = mysql.SERVER_STATUS_IN_TRANS_READONLY
	StatusStateChanged    = mysql.SERVER_SESSION_STATE_CHANGED
)

// OK is the part of an OK packet the proxy reads.
type OK struct {
	AffectedRows uint64
	LastInsertID uint64
	Status       uint16
	Warnings     uint16
	Info         []byte // human-readable, may be empty
	SessionState []byte // session state change information (CLIENT_SESSION_TRACK), may be nil
}

// ParseOK reads an OK packet's payload (header 0x00, or 0xFE for the OK that ends a result set
// under CLIENT_DEPRECATE_EOF). sessionTrack says whether CLIENT_SESSION_TRACK was negotiated,
// which changes how the info is encoded. A short payload (a head) yields what it holds.
func ParseOK(payload []byte, sessionTrack bool) (OK, error) {
	var ok OK
	if len(payload) < 1 || (payload[0] != HeaderOK && payload[0] != HeaderEOF) {
		return ok, fmt.Errorf("not an OK packet")
	}
	pos := 1
	var n int
	var good bool
	if ok.AffectedRows, n, good = LenencInt(payload[pos:]); !good {
		return ok, fmt.Errorf("short OK packet")
	}
	pos += n
	if ok.LastInsertID, n, good = LenencInt(payload[pos:]); !good {
		return ok, fmt.Errorf("short OK packet")
	}
	pos += n
	if pos+4 > len(payload) {
		return ok, fmt.Errorf("short OK packet")
	}
	ok.Status = binary.LittleEndian.Uint16(payload[pos:])
	ok.Warnings = binary.LittleEndian.Uint16(payload[pos+2:])
	pos += 4
	if pos >= len(payload) {
		return ok, nil
	}
	if !sessionTrack {
		ok.Info = payload[pos:]
		return ok, nil
	}
	info, n, good := LenencString(payload[pos:])
	if !good {
		return ok, nil // a head cut inside the info: the status is what callers need
	}
	ok.Info = info
	pos += n
	if ok.Status&StatusStateChanged != 0 && pos < len(payload) {
		if state, _, good := LenencString(payload[pos:]); good {
			ok.SessionState = state
		}
	}
	return ok, nil
}

// AppendOK encodes an OK packet's payload with header hdr (0x00 or 0xFE) for a connection that
// did (sessionTrack) or did not negotiate CLIENT_SESSION_TRACK.
func AppendOK(b []byte, hdr byte, ok OK, sessionTrack bool) []byte {
	b = append(b, hdr)
	b = mysql.AppendLengthEncodedInteger(b, ok.AffectedRows)
	b = mysql.AppendLengthEncodedInteger(b, ok.LastInsertID)
	status := ok.Status
	if !sessionTrack || ok.SessionState == nil {
		status &^= StatusStateChanged
	}
	b = binary.LittleEndian.AppendUint16(b, status)
	b = binary.LittleEndian.AppendUint16(b, ok.Warnings)
	if !sessionTrack {
		return append(b, ok.Info...)
	}
	if len(ok.Info) > 0 || status&StatusStateChanged != 0 {
		b = append(b, mysql.PutLengthEncodedString(ok.Info)...)
	}
	if status&StatusStateChanged != 0 {
		b = append(b, mysql.PutLengthEncodedString(ok.SessionState)...)
	}
	return b
}

// EOFStatus reads the status flags of an EOF packet (header 0xFE, payload shorter than 9).
func EOFStatus(payload []byte) uint16 {
	if len(payload) < 5 {
		return 0
	}
	return binary.LittleEndian.Uint16(payload[3:])
}

// EOFWarnings is an EOF packet's warning count.
func EOFWarnings(payload []byte) uint16 {
	if len(payload) < 5 {
		return 0
	}
	return binary.LittleEndian.Uint16(payload[1:])
}

// IsEOF tells an EOF packet from a row that starts with 0xFE: EOF payloads are under 9 bytes.
func IsEOF(p *Packet) bool { return p.First() == HeaderEOF && p.Len < 9 }

// ErrPacket is a server's ERR packet.
type ErrPacket struct {
	Code    uint16
	State   string
	Message string
}

func (e *ErrPacket) Error() string {
	return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.State, e.Message)
}

// ParseErr reads an ERR packet's payload (or its head).
func ParseErr(payload []byte) *ErrPacket {
	e := &ErrPacket{State: "HY000"}
	if len(payload) < 3 {
		return e
	}
	e.Code = binary.LittleEndian.Uint16(payload[1:])
	rest := payload[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State, rest = string(rest[1:6]), rest[6:]
	}
	e.Message = string(rest)
	return e
}

// AppendErr encodes an ERR packet's payload.
func AppendErr(b []byte, code uint16, state, message string) []byte {
	b = append(b, HeaderErr)
	b = binary.LittleEndian.AppendUint16(b, code)
	b = append(b, '#')
	b = append(b, (state + "HY000")[:5]...)
	return append(b, message...)
}

// NewError is the ERR payload of a MySQL error code with its standard message, as go-mysql's
// table formats it (e.g. 1045: "Access denied for user '%s'@'%s' (using password: %s)").
func NewError(code uint16, args ...any) []byte {
	e := mysql.NewDefaultError(code, args...)
	return AppendErr(nil, e.Code, e.State, e.Message)
}

// LenencInt reads a length-encoded integer at the start of b; ok is false when b is too short
// (go-mysql's own reader indexes past the end of a short buffer).
func LenencInt(b []byte) (n uint64, size int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch b[0] {
	case 0xfb:
		return 0, 1, true // NULL
	case 0xfc:
		size = 3
	case 0xfd:
		size = 4
	case 0xfe:
		size = 9
	default:
		return uint64(b[0]), 1, true
	}
	if len(b) < size {
		return 0, 0, false
	}
	for i := size - 1; i >= 1; i-- {
		n = n<<8 | uint64(b[i])
	}
	return n, size, true
}

// LenencString reads a length-encoded string; ok is false when b is too short.
func LenencString(b []byte) (s []byte, size int, ok bool) {
	n, k, ok := LenencInt(b)
	if !ok || uint64(len(b)-k) < n {
		return nil, 0, false
	}
	return b[k : k+int(n)], k + int(n), true
}

// Types of session state change information (CLIENT_SESSION_TRACK).
const (
	TrackSystemVariables   = 0 // a system variable's new value: name, value
	TrackSchema            = 1 // the new default schema
	TrackStateChange       = 2 // "1": the session's state changed (a user variable, a temporary table, ...)
	TrackGTIDs             = 3
	TrackTxCharacteristics = 4
	TrackTxState           = 5
)

// StateEntries calls fn for each entry of session state change information (its type and
// data) and reports whether all of it was well formed.
func StateEntries(state []byte, fn func(typ byte, data []byte)) bool {
	for len(state) > 0 {
		data, n, ok := LenencString(state[1:])
		if !ok {
			return false
		}
		fn(state[0], data)
		state = state[1+n:]
	}
	return true
}

// StateVariable reads a TrackSystemVariables entry's name and value.
func StateVariable(data []byte) (name, value string, ok bool) {
	n, k, ok := LenencString(data)
	if !ok {
		return "", "", false
	}
	v, _, ok := LenencString(data[k:])
	return string(n), string(v), ok
}

// StateSchema reads a TrackSchema entry's schema.
func StateSchema(data []byte) (string, bool) {
	s, _, ok := LenencString(data)
	return string(s), ok
}

// AppendStateEntry appends one entry of session state change information.
func AppendStateEntry(b []byte, typ byte, data []byte) []byte {
	return append(append(b, typ), mysql.PutLengthEncodedString(data)...)
}

// Attr is one connection attribute (CLIENT_CONNECT_ATTRS): what a client says of itself in its
// handshake response or COM_CHANGE_USER, which the server shows in
// performance_schema.session_connect_attrs.
type Attr struct{ Name, Value string }

// AppendAttrs appends attributes as a handshake response carries them: their length, then
// each name and value, length-encoded.
func AppendAttrs(b []byte, attrs []Attr) []byte {
	var kv []byte
	for _, a := range attrs {
		kv = append(kv, mysql.PutLengthEncodedString([]byte(a.Name))...)
		kv = append(kv, mysql.PutLengthEncodedString([]byte(a.Value))...)
	}
	return append(mysql.AppendLengthEncodedInteger(b, uint64(len(kv))), kv...)
}

// ParseAttrs reads attributes at the start of b (see AppendAttrs) and returns what follows them.
func ParseAttrs(b []byte) ([]Attr, []byte, bool) {
	n, k, ok := LenencInt(b)
	if !ok || uint64(len(b)-k) < n {
		return nil, b, false
	}
	kv, rest := b[k:k+int(n)], b[k+int(n):]
	var attrs []Attr
	for len(kv) > 0 {
		name, i, ok := LenencString(kv)
		if !ok {
			return attrs, rest, false
		}
		value, j, ok := LenencString(kv[i:])
		if !ok {
			return attrs, rest, false
		}
		attrs = append(attrs, Attr{string(name), string(value)})
		kv = kv[i+j:]
	}
	return attrs, rest, true
}
