package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

func packet(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// Split and joined: a payload of exactly MaxPacket bytes is followed by an empty packet.
func TestPayloadSplitAndJoin(t *testing.T) {
	for _, size := range []int{0, 1, MaxPacket - 1, MaxPacket, MaxPacket + 1, 2*MaxPacket + 5} {
		payload := bytes.Repeat([]byte{'x'}, size)
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		next, err := WritePayload(w, 3, payload)
		w.Flush()
		if err != nil {
			t.Fatal(err)
		}
		packets := size/MaxPacket + 1
		if int(next-3) != packets {
			t.Fatalf("size %d: %d packets, want %d", size, next-3, packets)
		}
		got, seq, err := ReadPayload(bufio.NewReader(&buf), 64<<20)
		if err != nil || len(got) != size || seq != next-1 {
			t.Fatalf("size %d: read %d bytes, seq %d, %v", size, len(got), seq, err)
		}
	}
	_, _, err := ReadPayload(bufio.NewReader(bytes.NewReader(packet(0, []byte("12345")))), 4)
	if !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
}

// A text result set with EOF framing, then a second result (MORE_RESULTS), relayed whole;
// the final status is read from the terminator.
func TestRelayResults(t *testing.T) {
	var in bytes.Buffer
	in.Write(packet(1, []byte{1}))                              // one column
	in.Write(packet(2, []byte("\x03def\x00\x00\x00\x01a\x00"))) // its definition
	in.Write(packet(3, []byte{0xFE, 0, 0, 0x0A, 0}))            // EOF, status 0x000A (MORE_RESULTS)
	in.Write(packet(4, []byte{1, 'x'}))                         // a row
	in.Write(packet(5, []byte{0xFE, 0, 0, 0x0A, 0}))            // EOF: more results follow
	in.Write(packet(6, []byte{0x00, 0, 0, 0x03, 0, 0, 0}))      // OK, status IN_TRANS|AUTOCOMMIT
	raw := append([]byte(nil), in.Bytes()...)
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	rl := Relay{From: bufio.NewReader(&in), To: w}
	res, err := rl.Relay(Results)
	w.Flush()
	if err != nil || res.Status != 0x0003 || !res.Seen || !bytes.Equal(out.Bytes(), raw) {
		t.Fatalf("relay: status %#x, %v; out equal %v", res.Status, err, bytes.Equal(out.Bytes(), raw))
	}
}

// TestRelayErrorAfterColumns: a procedure's SELECT that fails after its columns were sent (the
// EOF after them saying more results follow) ends the response at the ERR packet: the relay
// returns without waiting for a result that never comes.
func TestRelayErrorAfterColumns(t *testing.T) {
	for _, deprecate := range []bool{false, true} {
		var in bytes.Buffer
		in.Write(packet(1, []byte{1}))                              // one column
		in.Write(packet(2, []byte("\x03def\x00\x00\x00\x01a\x00"))) // its definition
		if !deprecate {
			in.Write(packet(3, []byte{0xFE, 0, 0, 0x0A, 0})) // EOF, status MORE_RESULTS|AUTOCOMMIT
		}
		in.Write(packet(4, append([]byte{0xFF, 0x26, 0x04, '#'}, "23000Duplicate entry"...)))
		want := append([]byte(nil), in.Bytes()...)
		in.Write(packet(1, []byte{0, 0, 0, 2, 0, 0, 0})) // the next command's answer: not this one's
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		rl := Relay{From: bufio.NewReader(&in), To: w, DeprecateEOF: deprecate}
		res, err := rl.Relay(Results)
		w.Flush()
		if err != nil || res.Err == nil || res.Err.Code != 1062 || !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("deprecate %v: %+v %v; relayed %q", deprecate, res.Err, err, out.Bytes())
		}
	}
}

// lastPacket is the payload of the last whole packet in b.
func lastPacket(b []byte) []byte {
	var last []byte
	for len(b) >= 4 {
		n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		if len(b) < 4+n {
			break
		}
		last, b = b[4:4+n], b[4+n:]
	}
	return last
}

// FuzzReadPayload: the packet reader never panics and never returns more than its limit.
func FuzzReadPayload(f *testing.F) {
	f.Add(packet(0, []byte("\x03select 1")))
	f.Add([]byte{0xff, 0xff, 0xff, 0, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, _, err := ReadPayload(bufio.NewReader(bytes.NewReader(data)), 1<<16)
		if err == nil && len(p) > 1<<16 {
			t.Fatalf("%d bytes over the limit", len(p))
		}
	})
}

// FuzzRelay: any server byte stream is relayed or refused without a panic, in every shape and
// framing, and what reaches the client is a prefix of what the server sent (the relay copies,
// except the statement id a prepare OK gets).
func FuzzRelay(f *testing.F) {
	f.Add([]byte{1, 0, 0, 1, 1, 5, 0, 0, 2, 0xFE, 0, 0, 2, 0}, uint8(1), true)
	f.Add([]byte{7, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0}, uint8(0), false)
	f.Fuzz(func(t *testing.T, data []byte, kind uint8, deprecate bool) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		strip := kind&0x80 != 0 // a client without session tracking: OK packets are re-encoded
		rl := Relay{From: bufio.NewReader(bytes.NewReader(data)), To: w, DeprecateEOF: deprecate, SessionTrack: deprecate,
			StripSessionTrack: strip, OnState: func(s []byte) []byte { return s }}
		k := Kind(kind % 5)
		res, err := rl.Relay(k)
		w.Flush()
		if k != Prepare && !strip && err == nil && !bytes.HasPrefix(data, out.Bytes()) {
			t.Fatalf("relayed bytes are not the server's")
		}
		// An error ends a response: the relay stops at it.
		if err == nil && res.Err != nil && !strip {
			if last := lastPacket(out.Bytes()); len(last) == 0 || last[0] != HeaderErr {
				t.Fatalf("the relay went on after an error: last packet %q", last)
			}
		}
		_ = io.EOF
	})
}

// TestSessionTrackStripped: a server connection with session tracking and a client without it:
// the OK packets the client gets have no session state and their info as a plain string, the
// state goes to OnState, and an OK without either passes unchanged.
func TestSessionTrackStripped(t *testing.T) {
	state := []byte{0, 17, 9, 'l', 'a', 's', 't', '_', 'g', 't', 'i', 'd', 7, '0', '-', '1', '-', '4', '2'}
	withState := AppendOK(nil, HeaderOK, OK{AffectedRows: 1, Status: StatusAutocommit | StatusStateChanged,
		Info: []byte("Rows matched: 1"), SessionState: state}, true)
	plain := AppendOK(nil, HeaderOK, OK{Status: StatusAutocommit}, true)
	for _, tt := range []struct {
		name       string
		server     []byte
		wantClient OK
	}{
		{"with state", withState, OK{AffectedRows: 1, Status: StatusAutocommit, Info: []byte("Rows matched: 1")}},
		{"plain", plain, OK{Status: StatusAutocommit}},
	} {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		var got [][]byte
		rl := Relay{From: bufio.NewReader(bytes.NewReader(packet(1, tt.server))), To: w, SessionTrack: true, StripSessionTrack: true,
			OnState: func(s []byte) []byte { got = append(got, append([]byte(nil), s...)); return s }}
		res, err := rl.Relay(Results)
		w.Flush()
		if err != nil || res.Status&StatusAutocommit == 0 {
			t.Fatalf("%s: %+v %v", tt.name, res, err)
		}
		want := packet(1, AppendOK(nil, HeaderOK, tt.wantClient, false))
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("%s: client got %x, want %x", tt.name, out.Bytes(), want)
		}
		if tt.name == "with state" && (len(got) != 1 || !bytes.Equal(got[0], state)) {
			t.Fatalf("OnState got %x", got)
		}
	}
}

// FuzzStateEntries: session state change information from a server reads without a panic, and
// what reads, encoded again, reads back the same.
func FuzzStateEntries(f *testing.F) {
	f.Add(AppendStateEntry(AppendStateEntry(nil, TrackSystemVariables, append(mysql.PutLengthEncodedString([]byte("sql_mode")),
		mysql.PutLengthEncodedString([]byte("ANSI_QUOTES"))...)), TrackStateChange, []byte("1")))
	f.Add([]byte{1, 4, 3, 'a', 'b', 'c'})
	f.Add([]byte{0, 0xfc, 0xff})
	f.Fuzz(func(t *testing.T, state []byte) {
		read := func(b []byte) (entries []string, again []byte) {
			StateEntries(b, func(typ byte, data []byte) {
				switch typ {
				case TrackSystemVariables:
					StateVariable(data)
				case TrackSchema:
					StateSchema(data)
				}
				entries = append(entries, fmt.Sprintf("%d:%x", typ, data))
				again = AppendStateEntry(again, typ, data)
			})
			return entries, again
		}
		first, again := read(state)
		if second, _ := read(again); !slices.Equal(first, second) {
			t.Fatalf("%x reads %v, encoded again %v", state, first, second)
		}
	})
}

// TestCompressedConn: packets written through one end of the compressed protocol are read
// whole through the other, small ones sent as they are and large ones compressed, with zlib
// and zstd, and the answers' sequence numbers go on from the client's.
func TestCompressedConn(t *testing.T) {
	for _, algo := range []int{CompressZlib, CompressZstd} {
		a, b := net.Pipe()
		client, err := NewCompressedConn(a, nil, algo, 3)
		if err != nil {
			t.Fatal(err)
		}
		server, err := NewCompressedConn(b, nil, algo, 0)
		if err != nil {
			t.Fatal(err)
		}
		big := bytes.Repeat([]byte("slardar "), 100000)
		go func() {
			w := bufio.NewWriter(client)
			WritePayload(w, 0, []byte("select 1"))
			w.Flush()
			WritePayload(w, 0, big)
			w.Flush()
		}()
		r := bufio.NewReader(server)
		for _, want := range [][]byte{[]byte("select 1"), big} {
			got, _, err := ReadPayload(r, 1<<24)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("algo %d: got %d bytes, %v; want %d", algo, len(got), err, len(want))
			}
		}
		if server.seq == 0 {
			t.Fatalf("algo %d: the answers' sequence does not go on from the client's", algo)
		}
		a.Close()
		b.Close()
	}
}

// FuzzCompressed: any byte stream read as the compressed protocol fails or decodes, never
// panics, and what decodes stays within the header's length.
func FuzzCompressed(f *testing.F) {
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3, 'a', 'b', 'c'}, true)
	f.Add([]byte{5, 0, 0, 0, 100, 0, 0, 1, 2, 3, 4, 5}, false)
	f.Fuzz(func(t *testing.T, data []byte, zlibAlgo bool) {
		algo := CompressZstd
		if zlibAlgo {
			algo = CompressZlib
		}
		a, b := net.Pipe()
		defer a.Close()
		c, err := NewCompressedConn(b, data, algo, 0)
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		buf := make([]byte, 1<<16)
		for range 64 {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
}
