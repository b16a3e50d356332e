package wire

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/klauspost/compress/zstd"
)

// The compressed protocol (CLIENT_COMPRESS, zlib; CLIENT_ZSTD_COMPRESSION_ALGORITHM, zstd):
// after the login, packets travel inside compressed packets — a 7-byte header (the compressed
// length, a sequence number of its own, the length before compression or 0 when the payload
// is sent as it is) and the payload. The sequence number starts at 0 with each command the
// client sends; the answers go on from the client's last.

// Compression algorithms.
const (
	CompressZlib = iota + 1
	CompressZstd
)

// minCompress is the size under which a payload is sent uncompressed (as MySQL does).
const minCompress = 50

// maxCompressed bounds a compressed packet's payload, before and after compression.
const maxCompressed = 1<<24 - 1

// ErrCompressed is a compressed packet that does not decode.
var ErrCompressed = errors.New("bad compressed packet")

// CompressedConn is a connection that speaks the compressed protocol over c: what is written
// is compressed, what is read decompressed.
type CompressedConn struct {
	net.Conn
	r      io.Reader // c's reader (bytes read before the switch first)
	algo   int
	level  int // zstd's level; zlib's default
	seq    byte
	in     []byte // decompressed, not read yet
	header [7]byte
	zstdR  *zstd.Decoder
	zstdW  *zstd.Encoder
	buf    bytes.Buffer
}

// NewCompressedConn switches c to the compressed protocol with algo (CompressZlib or
// CompressZstd at level, 0 for its default); buffered is what was read from c already.
func NewCompressedConn(c net.Conn, buffered []byte, algo, level int) (*CompressedConn, error) {
	cc := &CompressedConn{Conn: c, r: io.MultiReader(bytes.NewReader(buffered), c), algo: algo, level: level}
	if algo == CompressZstd {
		var err error
		if cc.zstdR, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxCompressed)); err != nil {
			return nil, err
		}
		opts := []zstd.EOption{zstd.WithEncoderConcurrency(1)}
		if level > 0 {
			opts = append(opts, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)))
		}
		if cc.zstdW, err = zstd.NewWriter(nil, opts...); err != nil {
			return nil, err
		}
	}
	return cc, nil
}

// NextSeq is the sequence number of the next compressed packet written: after a command was
// read, the number of the answer's first. A server numbers the packets inside the answer from
// it too (MariaDB and MySQL set the packet number to the compressed one when they flush), which
// differs from the command's last packet number plus one when the command's packets took more
// compressed packets than packets (a command over 16 MiB).
func (c *CompressedConn) NextSeq() byte { return c.seq }

// Read reads decompressed bytes.
func (c *CompressedConn) Read(p []byte) (int, error) {
	for len(c.in) == 0 {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

// fill reads one compressed packet; its sequence number sets the next of the answers.
func (c *CompressedConn) fill() error {
	if _, err := io.ReadFull(c.r, c.header[:]); err != nil {
		return err
	}
	n := int(c.header[0]) | int(c.header[1])<<8 | int(c.header[2])<<16
	raw := int(c.header[4]) | int(c.header[5])<<8 | int(c.header[6])<<16
	c.seq = c.header[3] + 1
	payload := make([]byte, n)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		return unexpected(err)
	}
	if raw == 0 {
		c.in = payload
		return nil
	}
	out, err := c.decompress(payload, raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCompressed, err)
	}
	if len(out) != raw {
		return fmt.Errorf("%w: %d bytes, the header says %d", ErrCompressed, len(out), raw)
	}
	c.in = out
	return nil
}

func (c *CompressedConn) decompress(payload []byte, raw int) ([]byte, error) {
	if c.algo == CompressZstd {
		return c.zstdR.DecodeAll(payload, make([]byte, 0, raw))
	}
	zr, err := zlib.NewReader(bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out := make([]byte, 0, raw)
	b := bytes.NewBuffer(out)
	if _, err := io.Copy(b, io.LimitReader(zr, int64(raw)+1)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Write sends p as compressed packets (each at most 16 MiB before compression).
func (c *CompressedConn) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxCompressed)]
		if err := c.writePacket(chunk); err != nil {
			return done, err
		}
		done += len(chunk)
		p = p[len(chunk):]
	}
	return done, nil
}

func (c *CompressedConn) writePacket(raw []byte) error {
	payload, rawLen := raw, 0
	if len(raw) >= minCompress {
		if z := c.compress(raw); len(z) < len(raw) {
			payload, rawLen = z, len(raw)
		}
	}
	n := len(payload)
	hdr := [7]byte{byte(n), byte(n >> 8), byte(n >> 16), c.seq, byte(rawLen), byte(rawLen >> 8), byte(rawLen >> 16)}
	c.seq++
	if _, err := c.Conn.Write(append(hdr[:], payload...)); err != nil {
		return err
	}
	return nil
}

func (c *CompressedConn) compress(raw []byte) []byte {
	if c.algo == CompressZstd {
		return c.zstdW.EncodeAll(raw, nil)
	}
	c.buf.Reset()
	zw := zlib.NewWriter(&c.buf)
	zw.Write(raw)
	zw.Close()
	return c.buf.Bytes()
}
