package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
)

// Kind is the shape of a command's response.
type Kind int

// Response shapes.
const (
	// Simple is one packet: OK or ERR (COM_PING, COM_INIT_DB, ...), EOF (COM_SET_OPTION) or a
	// string (COM_STATISTICS).
	Simple Kind = iota
	// Results is COM_QUERY's and COM_STMT_EXECUTE's: OK, ERR, a LOCAL INFILE request or a result
	// set, each maybe followed by more (SERVER_MORE_RESULTS_EXISTS).
	Results
	// Rows is COM_STMT_FETCH's: rows up to an EOF (or OK), or ERR.
	Rows
	// Fields is COM_FIELD_LIST's: column definitions up to an EOF (or OK), or ERR.
	Fields
	// Prepare is COM_STMT_PREPARE's: a prepare OK with parameter and column definitions, or ERR.
	Prepare
)

// Relay copies responses from a server to a client. It reads only framing, headers and status
// flags: rows stream through the client's write buffer and are never held whole.
type Relay struct {
	From *bufio.Reader // the server
	To   *bufio.Writer // the client; nil discards the response (an internal command)
	// DeprecateEOF is CLIENT_DEPRECATE_EOF as negotiated by both sides (they must agree).
	DeprecateEOF bool
	// SessionTrack is CLIENT_SESSION_TRACK of the server connection; StripSessionTrack says the
	// client did not negotiate it (the proxy turned it on for itself): its OK packets are
	// re-encoded without session state and with the info as such a client reads it.
	SessionTrack, StripSessionTrack bool
	// OnState, when set, gets the session state change information of every OK packet that
	// carries some (mysql-proxy learns there what a statement changed in the session), and
	// returns what of it the client gets: nil for nothing; the same bytes keep the packet as
	// the server sent it.
	OnState func(state []byte) []byte
	// LocalInfile relays the client's file after a LOCAL INFILE request was sent to it (the
	// client's packets up to an empty one, to the server). Nil refuses the request.
	LocalInfile func() error
	// PrepareID, for Prepare, replaces the server's statement id with the proxy's.
	PrepareID func(serverID uint32) uint32
	// Cursor: the command asked for a cursor (COM_STMT_EXECUTE with a cursor type): an EOF
	// after the column definitions with SERVER_STATUS_CURSOR_EXISTS ends the response (the rows
	// come with COM_STMT_FETCH). Otherwise the flag means nothing here (a stored program that
	// opened a cursor leaves it set on its result sets).
	Cursor bool
	// SeqShift is added to the sequence number of every packet relayed to the client (see
	// CompressedConn.NextSeq: under the compressed protocol a server's answer is numbered
	// from the compressed packets' count).
	SeqShift byte
}

// Result is how a response ended.
type Result struct {
	Status  uint16     // status flags of the last OK or EOF packet
	Seen    bool       // an OK or EOF packet was read (Status holds)
	Err     *ErrPacket // the ERR packet that ended it, if one did
	Started bool       // a packet was written to the client
	Stmt    Stmt       // for Prepare: what the server said of the statement
	// Rows and Affected are the rows the response's result sets carried and the affected rows
	// its OK packets reported (the query digests' rows sent and changed).
	Rows, Affected uint64
	Warnings       uint16 // of the last OK or EOF packet
	InsertID       uint64 // the last OK packet's last insert id
}

// Stmt is a prepare OK.
type Stmt struct {
	ID      uint32
	Columns int
	Params  int
}

// Relay copies the response of one command of the given kind and returns how it ended.
func (rl *Relay) Relay(kind Kind) (Result, error) {
	var res Result
	switch kind {
	case Simple:
		return res, rl.simple(&res)
	case Prepare:
		return res, rl.prepare(&res)
	case Fields:
		return res, rl.rows(&res)
	case Rows:
		return res, rl.rows(&res)
	}
	return res, rl.results(&res)
}

func (rl *Relay) copy(p *Packet, res *Result) error {
	if rl.To == nil {
		return p.Skip(rl.From)
	}
	res.Started = true
	return p.Copy(rl.To, rl.From, p.Seq+rl.SeqShift)
}

func (rl *Relay) write(seq byte, payload []byte, res *Result) error {
	if rl.To == nil {
		return nil
	}
	res.Started = true
	_, err := WritePayload(rl.To, seq+rl.SeqShift, payload)
	return err
}

func (rl *Relay) simple(res *Result) error {
	p, err := Next(rl.From)
	if err != nil {
		return err
	}
	switch {
	case p.First() == HeaderOK:
		return rl.ok(&p, res)
	case p.First() == HeaderErr:
		res.Err = ParseErr(p.Head())
	case IsEOF(&p):
		res.Status, res.Seen = EOFStatus(p.Head()), true
	}
	if err := rl.copy(&p, res); err != nil {
		return err
	}
	return rl.continuation(&p, res)
}

// ok relays an OK packet: as it is, unless its session state is wanted (OnState) or must be
// stripped for the client (StripSessionTrack).
func (rl *Relay) ok(p *Packet, res *Result) error {
	head, _ := ParseOK(p.Head(), rl.SessionTrack)
	res.Status, res.Seen = head.Status, true
	res.Affected += head.AffectedRows
	res.Warnings, res.InsertID = head.Warnings, head.LastInsertID
	state := rl.OnState != nil && rl.SessionTrack && head.Status&StatusStateChanged != 0
	strip := rl.StripSessionTrack && rl.SessionTrack && rl.To != nil
	if p.Continued() || !(state || strip) {
		return rl.copy(p, res)
	}
	payload, err := p.Payload(rl.From)
	if err != nil {
		return err
	}
	ok, err := ParseOK(payload, true)
	if err != nil {
		return rl.write(p.Seq, payload, res)
	}
	changed := strip
	if state && ok.SessionState != nil {
		forClient := rl.OnState(ok.SessionState)
		if !bytes.Equal(forClient, ok.SessionState) {
			ok.SessionState, changed = forClient, true
		}
		if len(ok.SessionState) == 0 {
			ok.SessionState = nil
		}
	}
	if changed {
		payload = AppendOK(payload[:0:0], payload[0], ok, !strip)
	}
	return rl.write(p.Seq, payload, res)
}

// continuation copies the packets that continue a payload of MaxPacket bytes.
func (rl *Relay) continuation(p *Packet, res *Result) error {
	for p.Continued() {
		next, err := Next(rl.From)
		if err != nil {
			return err
		}
		if err := rl.copy(&next, res); err != nil {
			return err
		}
		*p = next
	}
	return nil
}

// results relays COM_QUERY / COM_STMT_EXECUTE responses, each result maybe followed by more.
func (rl *Relay) results(res *Result) error {
	for {
		p, err := Next(rl.From)
		if err != nil {
			return err
		}
		switch p.First() {
		case HeaderOK:
			if err := rl.ok(&p, res); err != nil {
				return err
			}
		case HeaderErr:
			res.Err = ParseErr(p.Head())
			if err := rl.copy(&p, res); err != nil {
				return err
			}
			return rl.continuation(&p, res)
		case HeaderLocalInfile:
			if err := rl.localInfile(&p, res); err != nil {
				return err
			}
			continue // the server's OK or ERR follows
		default:
			cursor, err := rl.resultSet(&p, res)
			if err != nil || cursor || res.Err != nil {
				// An error ends the response, even after a result's columns whose EOF said
				// more results follow (a CALL whose SELECT fails midway): nothing follows it.
				return err
			}
		}
		if res.Status&StatusMoreResults == 0 {
			return nil
		}
	}
}

// localInfile relays a LOCAL INFILE request and the client's file.
func (rl *Relay) localInfile(p *Packet, res *Result) error {
	if rl.LocalInfile == nil || rl.To == nil {
		// Refused: an empty file (the server answers with its OK or ERR).
		if err := p.Skip(rl.From); err != nil {
			return err
		}
		return fmt.Errorf("LOCAL INFILE request the client did not allow")
	}
	if err := rl.copy(p, res); err != nil {
		return err
	}
	if err := rl.To.Flush(); err != nil {
		return err
	}
	return rl.LocalInfile()
}

// resultSet relays one result set from its column count packet; it reports an open cursor
// (COM_STMT_EXECUTE with a cursor: the rows come with COM_STMT_FETCH).
func (rl *Relay) resultSet(p *Packet, res *Result) (cursor bool, err error) {
	cols, _, _ := LenencInt(p.Head())
	if err := rl.copy(p, res); err != nil {
		return false, err
	}
	if err := rl.packets(int(cols), res); err != nil {
		return false, err
	}
	if !rl.DeprecateEOF {
		eof, err := Next(rl.From)
		if err != nil {
			return false, err
		}
		res.Status, res.Seen, res.Warnings = EOFStatus(eof.Head()), true, EOFWarnings(eof.Head())
		if err := rl.copy(&eof, res); err != nil {
			return false, err
		}
		if rl.Cursor && res.Status&StatusCursorExists != 0 {
			return true, nil
		}
	}
	return false, rl.rows(res)
}

// packets relays n packets as they are (column definitions).
func (rl *Relay) packets(n int, res *Result) error {
	for range n {
		p, err := Next(rl.From)
		if err != nil {
			return err
		}
		if err := rl.copy(&p, res); err != nil {
			return err
		}
		if err := rl.continuation(&p, res); err != nil {
			return err
		}
	}
	return nil
}

// rows relays rows up to the terminator: an EOF packet, or under CLIENT_DEPRECATE_EOF an OK
// packet with the 0xFE header; or an ERR packet.
func (rl *Relay) rows(res *Result) error {
	for {
		p, err := Next(rl.From)
		if err != nil {
			return err
		}
		switch {
		case p.First() == HeaderErr && !p.Continued():
			res.Err = ParseErr(p.Head())
			return rl.copy(&p, res)
		case rl.DeprecateEOF && p.First() == HeaderEOF && !p.Continued():
			return rl.ok(&p, res)
		case !rl.DeprecateEOF && IsEOF(&p):
			res.Status, res.Seen, res.Warnings = EOFStatus(p.Head()), true, EOFWarnings(p.Head())
			return rl.copy(&p, res)
		}
		res.Rows++
		if err := rl.copy(&p, res); err != nil {
			return err
		}
		if err := rl.continuation(&p, res); err != nil {
			return err
		}
	}
}

// prepare relays a COM_STMT_PREPARE response, giving the client the proxy's statement id.
func (rl *Relay) prepare(res *Result) error {
	p, err := Next(rl.From)
	if err != nil {
		return err
	}
	switch p.First() {
	case HeaderErr:
		res.Err = ParseErr(p.Head())
		return rl.copy(&p, res)
	case HeaderOK:
	default:
		return fmt.Errorf("a prepare response starting with %#x (neither OK nor ERR)", p.First())
	}
	payload, err := p.Payload(rl.From)
	if err != nil {
		return err
	}
	if len(payload) < 9 {
		return fmt.Errorf("short prepare OK (%d bytes)", len(payload))
	}
	res.Stmt = Stmt{
		ID:      binary.LittleEndian.Uint32(payload[1:]),
		Columns: int(binary.LittleEndian.Uint16(payload[5:])),
		Params:  int(binary.LittleEndian.Uint16(payload[7:])),
	}
	if rl.PrepareID != nil {
		binary.LittleEndian.PutUint32(payload[1:], rl.PrepareID(res.Stmt.ID))
	}
	if err := rl.write(p.Seq, payload, res); err != nil {
		return err
	}
	for _, n := range []int{res.Stmt.Params, res.Stmt.Columns} {
		if n == 0 {
			continue
		}
		if err := rl.packets(n, res); err != nil {
			return err
		}
		if !rl.DeprecateEOF {
			if err := rl.packets(1, res); err != nil {
				return err
			}
		}
	}
	return nil
}

// DrainLocalInfile reads a client's LOCAL INFILE packets up to the empty one, sending them to w
// (nil: dropped). It returns the sequence number after the last.
func DrainLocalInfile(r *bufio.Reader, w *bufio.Writer) error {
	for {
		p, err := Next(r)
		if err != nil {
			return err
		}
		if w == nil {
			err = p.Skip(r)
		} else {
			err = p.Copy(w, r, p.Seq)
		}
		if err != nil {
			return err
		}
		if p.Len == 0 {
			if w != nil {
				return w.Flush()
			}
			return nil
		}
	}
}
