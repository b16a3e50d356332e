package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testutil"
)

// echoMux answers PUT thing (with body) with the body as MESSAGE and GET thing with OK.
func echoMux() *Mux {
	m := &Mux{}
	m.Handle("PUT", "thing", true, func(_ context.Context, name string, body []byte) Reply {
		return Reply{Type: TypeMessage, Data: append([]byte(name+"="), body...)}
	})
	m.Handle("GET", "thing", false, func(context.Context, string, []byte) Reply { return OK() })
	return m
}

func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// exchange writes raw bytes, half-closes, and reads every reply until the server closes.
func exchange(t *testing.T, addr string, raw []byte) []Reply {
	t.Helper()
	r := bytes.NewReader(testutil.RawExchange(t, addr, raw))
	var out []Reply
	for {
		rep, err := ReadReply(r, 1<<20)
		if err != nil {
			if err != io.EOF {
				t.Fatalf("reading reply: %v", err)
			}
			return out
		}
		out = append(out, rep)
	}
}

func body(s string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func replyStrings(rs []Reply) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(rune('0'+r.Type))+":"+string(r.Data))
	}
	return out
}

func TestServerSequences(t *testing.T) {
	addr := startServer(t, &Server{Mux: echoMux(), MaxBody: 64, MaxLine: 64})
	tests := []struct {
		name string
		raw  []byte
		want []string
	}{
		{name: "pipelined", raw: cat([]byte("PUT thing a\n"), body("x"), []byte("get THING b\nPUT thing c\r\n"), body("yz")),
			want: []string{"1:a=x", "0:OK", "1:c=yz"}},
		{name: "error strings in order token count, topic, method",
			raw:  []byte("GET thing\nGET nope x\nLOAD thing x\nGET thing x y\n"),
			want: []string{"2:command invalid", "2:topic invalid", "2:method invalid", "2:command invalid"}},
		{name: "body after a rejected line is skipped, not read as a command",
			raw:  cat([]byte("PUT nope x\n"), body("GET thing y\n"), []byte("GET thing z\n")),
			want: []string{"2:topic invalid", "0:OK"}},
		{name: "zero length body", raw: cat([]byte("PUT thing a\n"), []byte{0, 0, 0, 0}, []byte("GET thing b\n")),
			want: []string{"2:body invalid: length 0"}},
		{name: "negative length body", raw: cat([]byte("PUT thing a\n"), []byte{0xff, 0xff, 0xff, 0xff}),
			want: []string{"2:body invalid: length -1"}},
		{name: "huge length body", raw: cat([]byte("PUT thing a\n"), []byte{0x7f, 0xff, 0xff, 0xff}),
			want: []string{"2:body too large: 2147483647 bytes, limit 64"}},
		{name: "short body", raw: cat([]byte("PUT thing a\n"), []byte{0, 0, 0, 9}, []byte("abc")),
			want: []string{"2:body invalid: 3 of 9 bytes arrived"}},
		{name: "line with no newline closes silently", raw: []byte("GET thing a"), want: nil},
		{name: "overlong line", raw: []byte(strings.Repeat("A", 200) + "\nGET thing a\n"),
			want: []string{"2:command line longer than 64 bytes"}},
		{name: "binary garbage", raw: []byte("\x01\x02\xff\xfe garbage\n\x01 \xff \x00\nGET thing a\n"),
			want: []string{"2:command invalid", "2:topic invalid", "0:OK"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := replyStrings(exchange(t, addr, tt.raw))
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestServerToken(t *testing.T) {
	addr := startServer(t, &Server{Mux: echoMux(), Token: "s3cret"})
	got := replyStrings(exchange(t, addr, []byte("GET thing a\n")))
	if len(got) != 1 || !strings.HasPrefix(got[0], "2:authentication required") {
		t.Fatalf("unauthenticated: %q", got)
	}
	got = replyStrings(exchange(t, addr, []byte("AUTH token wrong\nGET thing a\n")))
	if strings.Join(got, "|") != "2:authentication failed" {
		t.Fatalf("wrong token: %q", got)
	}
	got = replyStrings(exchange(t, addr, []byte("AUTH token s3cret\nGET thing a\n")))
	if strings.Join(got, "|") != "0:OK|0:OK" {
		t.Fatalf("right token: %q", got)
	}
	c, err := Dial(context.Background(), addr, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(context.Background(), "GET", "thing", "x", nil); err != nil {
		t.Fatal(err)
	}
}

// A slow or idle client is cut off after the idle timeout while others are served.
func TestServerSlowClient(t *testing.T) {
	addr := startServer(t, &Server{Mux: echoMux(), IdleTimeout: 300 * time.Millisecond})
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("GET th")) // never finishes the line
	start := time.Now()
	if got := replyStrings(exchange(t, addr, []byte("GET thing a\n"))); strings.Join(got, "|") != "0:OK" {
		t.Fatalf("other client: %q", got)
	}
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := slow.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("slow client got %d bytes, %v; want close", n, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("slow client closed after %v", d)
	}
}

// FuzzServer drives the request reader with arbitrary bytes, as serveConn does: every input
// ends in replies and a close, never a panic, a hang or an over-limit allocation.
func FuzzServer(f *testing.F) {
	f.Add(cat([]byte("PUT thing a\n"), body("x"), []byte("GET thing b\n")))
	f.Add([]byte("PUT nope x\n\x00\x00\x00\x01zGET thing y\n"))
	f.Add([]byte("AUTH token t\nGET thing a\n"))
	f.Add([]byte("\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := &Server{Mux: echoMux(), MaxBody: 128, MaxLine: 128, Token: "t"}
		r := bufio.NewReaderSize(bytes.NewReader(raw), 4096)
		authed := false
		for i := 0; ; i++ {
			if i > len(raw)+1 {
				t.Fatalf("more requests than input bytes")
			}
			rep, err := s.readAndHandle(context.Background(), nil, r, &authed)
			if rep.Type > TypeError || len(rep.Data) > 1024 {
				t.Fatalf("bad reply %d %q", rep.Type, rep.Data)
			}
			if err != nil {
				return
			}
		}
	})
}

// TestReplyNotHeldBehindPartialCommand: a reply must go out even when the bytes that follow it
// are only the start of the next command (here, a body one byte short of its length).
func TestReplyNotHeldBehindPartialCommand(t *testing.T) {
	addr := startServer(t, &Server{Mux: echoMux(), IdleTimeout: 5 * time.Second})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PUT thing a\n\x00\x00\x00\x02xy)"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	rep, err := ReadReply(bufio.NewReader(c), 1024)
	if err != nil || string(rep.Data) != "a=xy" {
		t.Fatalf("reply %q, %v; want it without waiting for the next command", rep.Data, err)
	}
}

// TestUnauthenticatedCannotLockOut: with a token, connections that never authenticate do not
// count against MaxConns: however many an attacker holds, the client with the token gets in;
// they are closed after AuthTimeout; and authenticated connections are still limited.
func TestUnauthenticatedCannotLockOut(t *testing.T) {
	s := &Server{Mux: echoMux(), Token: "right", MaxConns: 2, MaxUnauthenticated: 4, AuthTimeout: time.Second}
	addr := startServer(t, s)
	var idle []net.Conn
	for range 70 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	authed := func() (net.Conn, Reply, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("AUTH token right\nGET thing x\n"))
		r := bufio.NewReader(c)
		if rep, err := ReadReply(r, 1024); err != nil || rep.Type != TypeOK {
			return c, rep, fmt.Errorf("AUTH: %q %v", rep.Data, err)
		}
		rep, err := ReadReply(r, 1024)
		return c, rep, err
	}
	for i := range 2 {
		c, rep, err := authed()
		if c != nil {
			defer c.Close()
		}
		if err != nil || rep.Type != TypeOK {
			t.Fatalf("the token holder %d, with 70 unauthenticated connections open: %q %v", i, rep.Data, err)
		}
	}
	c, _, err := authed()
	if c != nil {
		defer c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "too many admin connections (limit 2)") {
		t.Fatalf("a third authenticated connection: %v; want the limit's error at AUTH", err)
	}
	// The unauthenticated are closed: the oldest to make room, the rest after AuthTimeout.
	idle[len(idle)-1].SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle[len(idle)-1].Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("an unauthenticated connection after AuthTimeout: %d %v", n, err)
	}
}
