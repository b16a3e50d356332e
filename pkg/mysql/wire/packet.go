// Package wire is the MySQL client/server protocol below the proxy's policy: packet framing
// (split and joined payloads, sequence numbers), buffered connections, the OK, ERR and EOF
// packets with their status flags, and the response state machine that relays a command's
// response from a server to a client packet by packet, reading only framing and status.
package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
)

// MaxPacket is the largest payload of one packet; a payload of exactly this size is followed by
// another packet (maybe empty) that continues it.
const MaxPacket = 1<<24 - 1

// BufferSize is the read and write buffer of a Conn: one response of a point select, several
// hundred rows of a small one, goes out in one write.
const BufferSize = 64 << 10

// HeadSize is how many first bytes of a payload a relayed Packet keeps for inspection.
const HeadSize = 64

// ErrPacketTooLarge is a payload over the reader's limit.
var ErrPacketTooLarge = errors.New("packet larger than the limit")

// Conn is one side of a MySQL connection with buffered reads and writes. Writes stay in the
// buffer until Flush: a response is flushed once, when it is complete or the buffer is full.
type Conn struct {
	net.Conn
	R   *bufio.Reader
	W   *bufio.Writer
	out sentCounter
}

// NewConn buffers c.
func NewConn(c net.Conn) *Conn {
	conn := &Conn{Conn: c, R: bufio.NewReaderSize(c, BufferSize)}
	conn.out.w = c
	conn.W = bufio.NewWriterSize(&conn.out, BufferSize)
	return conn
}

// sentCounter counts what the write buffer has handed to the connection.
type sentCounter struct {
	w    io.Writer
	sent int64
}

func (s *sentCounter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.sent += int64(n)
	return n, err
}

// Mark is a point in what was written to the connection, for Unsend.
type Mark struct{ sent, buffered int64 }

// Mark returns the present point of the writes.
func (c *Conn) Mark() Mark { return Mark{c.out.sent, int64(c.W.Buffered())} }

// Unsend drops what was written since m, provided none of it has left the buffer and nothing
// was buffered at m; it reports whether it could.
func (c *Conn) Unsend(m Mark) bool {
	if m.buffered != 0 || c.out.sent != m.sent {
		return false
	}
	c.W.Reset(&c.out)
	return true
}

// ReadPayload reads one logical payload, joining split packets, of at most max bytes; it
// returns the sequence number of its last packet.
func (c *Conn) ReadPayload(max int) ([]byte, byte, error) {
	return ReadPayload(c.R, max)
}

// ReadPayload reads one logical payload from r (see Conn.ReadPayload).
func ReadPayload(r *bufio.Reader, max int) ([]byte, byte, error) {
	var payload []byte
	for {
		n, seq, err := readHeader(r)
		if err != nil {
			return nil, 0, err
		}
		if len(payload)+n > max {
			return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrPacketTooLarge, len(payload)+n, max)
		}
		start := len(payload)
		payload = append(payload, make([]byte, n)...)
		if _, err := io.ReadFull(r, payload[start:]); err != nil {
			return nil, 0, unexpected(err)
		}
		if n < MaxPacket {
			return payload, seq, nil
		}
	}
}

// WritePayload buffers payload as packets numbered from seq (split at MaxPacket) and returns
// the next sequence number.
func (c *Conn) WritePayload(seq byte, payload []byte) (byte, error) {
	return WritePayload(c.W, seq, payload)
}

// WritePayload buffers payload to w (see Conn.WritePayload).
func WritePayload(w *bufio.Writer, seq byte, payload []byte) (byte, error) {
	for {
		n := min(len(payload), MaxPacket)
		hdr := [4]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}
		seq++
		if _, err := w.Write(hdr[:]); err != nil {
			return seq, err
		}
		if _, err := w.Write(payload[:n]); err != nil {
			return seq, err
		}
		payload = payload[n:]
		if n < MaxPacket {
			return seq, nil
		}
	}
}

func readHeader(r *bufio.Reader) (n int, seq byte, err error) {
	h, err := r.Peek(4)
	if err != nil {
		if len(h) > 0 {
			err = unexpected(err)
		}
		return 0, 0, err
	}
	n, seq = int(h[0])|int(h[1])<<8|int(h[2])<<16, h[3]
	r.Discard(4)
	return n, seq, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Packet is one relayed packet: its payload length, sequence number and first bytes.
type Packet struct {
	Len  int
	Seq  byte
	head [HeadSize]byte
	n    int
}

// Head is the packet's first bytes (at most HeadSize).
func (p *Packet) Head() []byte { return p.head[:p.n] }

// First is the first payload byte (0 for an empty payload).
func (p *Packet) First() byte {
	if p.n == 0 {
		return 0
	}
	return p.head[0]
}

// Continued reports a payload of MaxPacket bytes: the next packet continues it.
func (p *Packet) Continued() bool { return p.Len == MaxPacket }

// Next reads the header and first bytes of the next packet of r without consuming its payload;
// Copy or Skip must follow.
func Next(r *bufio.Reader) (Packet, error) {
	var p Packet
	n, seq, err := readHeader(r)
	if err != nil {
		return p, err
	}
	p.Len, p.Seq = n, seq
	head, err := r.Peek(min(n, HeadSize))
	if err != nil {
		return p, unexpected(err)
	}
	p.n = copy(p.head[:], head)
	return p, nil
}

// Copy writes the packet (header and payload, with sequence number seq) to w from r.
func (p *Packet) Copy(w *bufio.Writer, r *bufio.Reader, seq byte) error {
	hdr := [4]byte{byte(p.Len), byte(p.Len >> 8), byte(p.Len >> 16), seq}
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := io.CopyN(w, r, int64(p.Len)); err != nil {
		return unexpected(err)
	}
	return nil
}

// Skip discards the packet's payload.
func (p *Packet) Skip(r *bufio.Reader) error {
	if _, err := r.Discard(p.Len); err != nil {
		return unexpected(err)
	}
	return nil
}

// Payload reads the packet's whole payload (a small packet the caller must change or parse).
func (p *Packet) Payload(r *bufio.Reader) ([]byte, error) {
	b := make([]byte, p.Len)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, unexpected(err)
	}
	return b, nil
}
