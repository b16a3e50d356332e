package admin

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestAppendReplyGolden(t *testing.T) {
	tests := []struct {
		name  string
		reply Reply
		want  string
	}{
		{name: "ok", reply: OK(), want: "00000006000000004f4b"},
		{name: "empty message", reply: Reply{Type: TypeMessage, Data: []byte("{}")}, want: "00000006000000017b7d"},
		{name: "command invalid", reply: Errorf(ErrCommandInvalid), want: "0000001300000002" + hex.EncodeToString([]byte("command invalid"))},
		{name: "topic invalid", reply: Errorf(ErrTopicInvalid), want: "0000001100000002" + hex.EncodeToString([]byte("topic invalid"))},
		{name: "method invalid", reply: Errorf(ErrMethodInvalid), want: "0000001200000002" + hex.EncodeToString([]byte("method invalid"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hex.EncodeToString(AppendReply(nil, tt.reply))
			if got != tt.want {
				t.Fatalf("got %s; want %s", got, tt.want)
			}
			back, err := ReadReply(bytes.NewReader(AppendReply(nil, tt.reply)), 1024)
			if err != nil || back.Type != tt.reply.Type || !bytes.Equal(back.Data, tt.reply.Data) {
				t.Fatalf("round trip: %+v, %v", back, err)
			}
		})
	}
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Command
		ok   bool
	}{
		{name: "plain", line: "PUT upstream 3131", want: Command{"PUT", "upstream", "3131"}, ok: true},
		{name: "case rules", line: "get UpStream Info", want: Command{"GET", "upstream", "Info"}, ok: true},
		{name: "runs of spaces", line: "  GET   upstream    status  ", want: Command{"GET", "upstream", "status"}, ok: true},
		{name: "one CR dropped from name", line: "GET upstream status\r", want: Command{"GET", "upstream", "status"}, ok: true},
		{name: "only one CR dropped", line: "GET upstream status\r\r", want: Command{"GET", "upstream", "status\r"}, ok: true},
		{name: "CR after a space is a fourth token", line: "GET upstream status \r", ok: false},
		{name: "tabs do not separate", line: "GET\tupstream\tstatus", ok: false},
		{name: "two tokens", line: "GET upstream", ok: false},
		{name: "four tokens", line: "GET upstream a b", ok: false},
		{name: "empty", line: "", ok: false},
		{name: "name only CR", line: "GET upstream \r", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseLine(tt.line)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Fatalf("ParseLine(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestReadReplyLimits(t *testing.T) {
	if _, err := ReadReply(bytes.NewReader([]byte{0, 0, 0, 2, 0, 0}), 10); err == nil {
		t.Fatal("size < 4 accepted")
	}
	if _, err := ReadReply(bytes.NewReader([]byte{0x7f, 0, 0, 0, 0, 0, 0, 1}), 10); err == nil {
		t.Fatal("frame over the limit accepted")
	}
	if _, err := ReadReply(bytes.NewReader([]byte{0, 0, 0, 9, 0, 0, 0, 1, 'x'}), 10); err == nil {
		t.Fatal("short frame accepted")
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"PUT upstream 3131", "get upstream info\r", "  a  b  c ", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, ok := ParseLine(line)
		if !ok {
			return
		}
		if cmd.Method == "" || cmd.Topic == "" || cmd.Name == "" {
			t.Fatalf("empty token in %+v from %q", cmd, line)
		}
		// A parsed command re-serialises to a line that parses the same (with the one trailing
		// CR the parser strips from the name, so a name that itself ends in CR survives).
		again, ok := ParseLine(cmd.Method + " " + cmd.Topic + " " + cmd.Name + "\r")
		if !ok || again != cmd {
			t.Fatalf("%q: reparse %+v %v; want %+v", line, again, ok, cmd)
		}
	})
}

func FuzzReadReply(f *testing.F) {
	f.Add(AppendReply(nil, OK()))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadReply(bytes.NewReader(data), 1<<16)
		if err == nil && len(r.Data) > 1<<16 {
			t.Fatalf("reply over limit: %d", len(r.Data))
		}
	})
}

// An HTTP server's answer is not read as a 1 GB admin frame: it is not the admin protocol.
func TestReadReplyNotAdmin(t *testing.T) {
	_, err := ReadReply(strings.NewReader("HTTP/1.1 400 Bad Request\r\n\r\n"), DefaultMaxReply)
	if !errors.Is(err, ErrNotAdmin) || !strings.Contains(err.Error(), `"HTTP/1.1"`) {
		t.Fatalf("got %v; want ErrNotAdmin naming the bytes", err)
	}
	for _, typ := range []uint32{TypeOK, TypeMessage, TypeError} {
		frame := AppendReply(nil, Reply{Type: typ, Data: []byte("x")})
		if _, err := ReadReply(bytes.NewReader(frame), DefaultMaxReply); err != nil {
			t.Errorf("type %d: %v", typ, err)
		}
	}
}
